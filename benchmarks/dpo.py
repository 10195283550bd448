"""DPO on top of notebook 04's SFT adapter, with the embedded model on this machine's CPU: time, held-out pairs
(preference accuracy, reward margin, with intervals, for the SFT and the DPO model against the same reference, the
SFT model), text-only baselines, task metrics on the held-out tickets and drift on the regression set.

Writes ``benchmarks/results/dpo.json`` (notebook 07 reads it) with the command, the CPU (flags) and the load.

    .venv/bin/python benchmarks/dpo.py --steps 60 --threads 2
    COURSE_PROFILE=fast .venv/bin/python benchmarks/dpo.py --model tiny --steps 2 --max-eval 8 --out /tmp/dpo.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("COURSE_PROFILE", "full")

from course_lib import baselines, data, evaluate, models, train  # noqa: E402
from course_lib import preference as pref  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine, versions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--beta", type=float, default=pref.DEFAULT_BETA)
    parser.add_argument("--lr", type=float, default=pref.DEFAULT_LR)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-eval", type=int, default=0, help="held-out tickets and regression items (0: all)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dpo.json"))
    args = parser.parse_args()

    info = machine()
    threads, _ = train.cpu_threads(args.threads)
    base, tok = models.load_model(args.model, verbose=False)
    adapter = train.find_adapter(base.name_or_path)
    if adapter is None:
        raise SystemExit("No SFT adapter for this model: run notebook 04 (or 06) in this profile first.")
    sft = pref.sft_model(base, adapter)
    pairs = pref.policy_rows(pref.load_preferences())
    train_pairs, held_pairs = pref.split_pairs(pairs)
    run = pref.train_dpo(sft, tok, train_pairs, steps=args.steps, beta=args.beta, lr=args.lr, threads=threads,
                         progress=False)
    load_after = os.getloadavg()[0]

    start = time.perf_counter()
    prefs = {"SFT": pref.pair_scores(sft, sft, tok, held_pairs, args.beta),
             "DPO": pref.pair_scores(run.model, sft, tok, held_pairs, args.beta)}
    text = pref.text_baselines(train_pairs, held_pairs)
    pair_seconds = time.perf_counter() - start

    n = args.max_eval or None
    heldout = data.load_split("heldout")[:n]
    heldout_short = train.with_system_prompt(heldout, train.SHORT_SYSTEM_PROMPT)
    train_rows = data.load_split("train")
    gen = {"SFT": pref.merged(sft, base.dtype), "DPO": pref.merged(run.model, base.dtype)}
    start = time.perf_counter()
    task = {name: evaluate.score_task(m, tok, heldout_short, reuse=True, progress=False) for name, m in gen.items()}
    answers = {"majority class": baselines.majority(train_rows, heldout),
               "TF-IDF + logistic regression": baselines.tfidf(train_rows, heldout),
               **{name: t.predictions for name, t in task.items()}}
    tables = baselines.compare(answers, heldout)
    regression = data.load_split("regression")[:n]
    reg = {name: evaluate.score_regression(m, tok, regression, reuse=True) for name, m in gen.items()}
    drift = evaluate.drift_by_skill([r["skill"] for r in regression],
                                    [i["correct"] for i in reg["SFT"]["items"]], [i["correct"] for i in reg["DPO"]["items"]])
    eval_seconds = time.perf_counter() - start

    def field(name, f):
        return {"accuracy": tables[name][f]["accuracy"], "interval": tables[name][f]["interval"]}

    result = {
        "command": " ".join(["COURSE_PROFILE=" + os.environ["COURSE_PROFILE"], ".venv/bin/python"]
                            + [shlex.quote(a) for a in sys.argv]),
        "machine": {**info, "load_average_1m_after_training": load_after,
                    "note": "2-core machine shared with other jobs: times vary with the load"},
        "versions": versions(("torch", "transformers", "trl", "peft", "datasets")),
        "settings": {"model": args.model, "sft_adapter": str(adapter), "steps": run.steps, "beta": args.beta,
                     "lr": args.lr, "threads": threads, "lora_r": 16, "reference": "the SFT model (adapter merged)",
                     "batch_size": train.choose_preset(None)[0].batch_size},
        "pairs": {"train": len(train_pairs), "heldout": len(held_pairs),
                  "train_families": len({p["family"] for p in train_pairs}),
                  "heldout_families": len({p["family"] for p in held_pairs})},
        "seconds": {"dpo_train": run.seconds, "seconds_per_step": run.seconds / run.steps,
                    "pair_scores": pair_seconds, "task_and_regression": eval_seconds},
        "history": [{k: h[k] for k in ("step", "loss", "rewards/margins", "rewards/accuracies") if k in h}
                    for h in run.history if "loss" in h],
        "heldout_pairs": {name: pref.summarise(s) for name, s in prefs.items()},
        "heldout_pairs_per_flaw": {name: _per_flaw(s) for name, s in prefs.items()},
        "text_baselines": {name: {"accuracy": sum(v) / len(v), "interval": list(pref.stats.bootstrap_ci(v))}
                           for name, v in text.items()},
        "task": {name: {**{f: field(name, f) for f in (*evaluate.SCORED_FIELDS, "mean")},
                        **({k: task[name].metrics[k] for k in ("json_valid", "schema_valid", "sign_off")}
                           if name in task else {})} for name in answers},
        "task_n": len(heldout),
        "regression": {name: {"accuracy": r["accuracy"], "interval": r["interval"]} for name, r in reg.items()},
        "drift_dpo_minus_sft": drift,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("seconds", "heldout_pairs", "text_baselines", "regression")}, indent=1))


def _per_flaw(scores: dict) -> dict:
    out: dict = {}
    for flaw, correct in zip(scores["flaws"], scores["correct"]):
        out.setdefault(flaw, []).append(correct)
    return {flaw: {"n": len(v), "accuracy": sum(v) / len(v)} for flaw, v in sorted(out.items())}


if __name__ == "__main__":
    main()
