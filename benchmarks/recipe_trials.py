"""What moves the tuned model's triage decisions: LoRA runs of the notebook-04 recipe, each appended to a JSON file.

Trains the notebook-04 recipe (embedded SmolLM2-135M-Instruct, all 506 training rows + the replay rows, batch 4
padding-free, short system prompt) with the options given, then scores it on every held-out ticket (field
accuracy per field with 95% bootstrap intervals) and on the general-skills regression set (change from the base
model, with a paired interval). Each trial records its exact command, the machine (CPU flags, or the GPU) and
wall times.

One trial on a CPU (the ``cpu`` preset: bf16 autocast on CPUs with bf16 instructions, fp32 otherwise):

    .venv/bin/python benchmarks/recipe_trials.py --steps 200 --lr 5e-4 --reply-first --seed 0
    .venv/bin/python benchmarks/recipe_trials.py --steps 200 --dtype fp32 ...   # the path of CPUs without bf16

Many trials in one process (the model is loaded and the base model scored once), e.g. a sweep on a GPU with the
CPU recipe's batch shape (batch 4, padding-free, bf16), each ``--trial`` a list of ``key=value`` overrides of the
options above (steps, lr, r, alpha, replay, reply_first, oversample, batch, seed, decision_weight):

    python benchmarks/recipe_trials.py --device cuda --out $OUT/sweep.json \\
        --trial "steps=600 lr=5e-4 reply_first=1" --trial "steps=600 lr=2e-4 reply_first=1 replay=3"

The base model's regression answers are computed once per dtype and reused (``course_lib.runcache``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from course_lib import baselines, data, evaluate, greenleaf, models, stats, train  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine, recipe_preset  # noqa: E402

DEFAULTS = {"steps": 200, "lr": None, "r": 16, "alpha": None, "replay": 1, "reply_first": False, "oversample": 1,
            "batch": None, "seed": 0, "decision_weight": 1.0}
# how a --trial value is read, per option ("reply_first=1" is True)
PARSERS = {"steps": int, "lr": float, "r": int, "alpha": int, "replay": int, "reply_first": lambda v: bool(int(v)),
           "oversample": int, "batch": int, "seed": int, "decision_weight": float}
RARE_PRIORITIES = ("high", "urgent")


def parse_trial(spec: str, base: dict) -> dict:
    """``"steps=600 lr=5e-4 reply_first=1"`` -> the options of one trial (``base`` updated)."""
    options = dict(base)
    for part in spec.split():
        key, _, value = part.partition("=")
        if key not in DEFAULTS:
            raise SystemExit(f"--trial: unknown option {key!r} (known: {sorted(DEFAULTS)})")
        options[key] = PARSERS[key](value)
    return options


def oversampled(rows: list[dict], copies: int) -> list[dict]:
    """The training rows with every high/urgent ticket repeated ``copies`` times in all (the rare priorities)."""
    if copies <= 1:
        return list(rows)
    out = []
    for row in rows:
        target = greenleaf.parse_triage(row["messages"][-1]["content"]) or {}
        out += [row] * (copies if target.get("priority") in RARE_PRIORITIES else 1)
    return out


def run_trial(model, tok, preset, options: dict, base_reg: dict, threads: int, command: str) -> dict:
    heldout, regression = data.load_split("heldout"), data.load_split("regression")
    if options["batch"]:
        preset = replace(preset, batch_size=options["batch"])
    rows = oversampled(data.load_split("train"), options["oversample"])
    lr = options["lr"] or train.DEFAULT_LR["lora"]
    alpha = options["alpha"] or 2 * options["r"]
    start = time.perf_counter()
    run = train.train_sft(model, rows, None, steps=options["steps"], lr=lr, tokenizer=tok, lora_r=options["r"],
                          lora_alpha=alpha, preset=preset, threads=threads, progress=False,
                          replay=data.load_split("replay") * options["replay"], seed=options["seed"],
                          decision_weight=options["decision_weight"], reply_first=options["reply_first"])
    train_seconds = time.perf_counter() - start
    if preset.dtype == "fp32":
        run.model.float()
    batch = 32 if torch.cuda.is_available() else 8
    start = time.perf_counter()
    task = evaluate.score_task(run.model, tok, train.with_system_prompt(heldout, train.SHORT_SYSTEM_PROMPT),
                               progress=False, batch_size=batch)
    eval_task_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reg = evaluate.score_regression(run.model, tok, regression, batch_size=batch)
    eval_reg_seconds = time.perf_counter() - start
    table = baselines.field_table(task.predictions, heldout)
    before = [i["correct"] for i in base_reg["items"]]
    after = [i["correct"] for i in reg["items"]]
    diff, low, high = stats.paired_bootstrap_diff(after, before)
    dtype = preset.dtype
    tag = (f"LoRA {options['steps']} steps, lr {lr:g}, r {options['r']}"
           + (", reply first" if options["reply_first"] else "")
           + (f", decision weight {options['decision_weight']:g}" if options["decision_weight"] != 1 else "")
           + (f", replay x{options['replay']}" if options["replay"] != 1 else "")
           + (f", high/urgent x{options['oversample']}" if options["oversample"] > 1 else "")
           + (f", batch {preset.batch_size}" if options["batch"] else "")
           + (", fp32" if dtype == "fp32" else "") + (", GPU" if torch.cuda.is_available() else "")
           + f", seed {options['seed']}")
    return {
        "command": command, "tag": tag, "steps": options["steps"], "lr": lr, "r": options["r"], "alpha": alpha,
        "decision_weight": options["decision_weight"], "replay_copies": options["replay"],
        "oversample_high_urgent": options["oversample"], "seed": options["seed"],
        "reply_first": options["reply_first"],
        "preset": {"dtype": preset.dtype, "batch_size": preset.batch_size, "padding_free": preset.padding_free},
        "machine": {**machine(), "threads": threads},
        "seconds": {"train": round(train_seconds, 1), "eval_heldout": round(eval_task_seconds, 1),
                    "eval_regression": round(eval_reg_seconds, 1)},
        "json_valid": task.metrics["json_valid"], "schema_valid": task.metrics["schema_valid"],
        "sign_off": task.metrics["sign_off"], "field_accuracy": {f: table[f]["accuracy"] for f in table},
        "field_interval": {f: table[f]["interval"] for f in table},
        "field_accuracy_mean": task.metrics["field_accuracy_mean"],
        "regression": {"base": base_reg["accuracy"], "tuned": reg["accuracy"], "change": diff,
                       "change_interval": [low, high],  # right (1) / wrong (0) per item, regression.jsonl's order
                       "base_correct": [int(c) for c in before], "tuned_correct": [int(c) for c in after]},
        "field_correct": {f: table[f]["correct"] for f in table},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--r", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=None, help="default: 2 r")
    parser.add_argument("--decision-weight", type=float, default=1.0)
    parser.add_argument("--replay-copies", type=int, default=1)
    parser.add_argument("--oversample", type=int, default=1, help="copies of each high/urgent training ticket")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", choices=("auto", "fp32"), default="auto",
                        help="fp32: the path a CPU without bf16 instructions takes")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: the CPU recipe's batch shape (padding-free, batch 4) in bf16 on a GPU, for sweeps")
    parser.add_argument("--reply-first", action="store_true", help="train on targets with the reply before the decisions")
    parser.add_argument("--trial", action="append", default=[], help="key=value overrides; repeat for a sweep")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "recipe_trials.json"))
    args = parser.parse_args()

    base_options = {"steps": args.steps, "lr": args.lr, "r": args.r, "alpha": args.alpha, "replay": args.replay_copies,
                    "reply_first": args.reply_first, "oversample": args.oversample, "batch": args.batch_size,
                    "seed": args.seed, "decision_weight": args.decision_weight}
    trials = [parse_trial(spec, base_options) for spec in args.trial] or [base_options]

    preset, threads = recipe_preset(args.device, args.threads, fp32=args.dtype == "fp32")
    model, tok = models.load_model("embedded", device=args.device, verbose=False)
    if args.dtype == "fp32":
        model = model.float()
    base_reg = evaluate.score_regression(model, tok, data.load_split("regression"), reuse=True,
                                         batch_size=32 if args.device == "cuda" else 8)
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python" if args.device == "cpu" else "python", *sys.argv])
    out = Path(args.out)
    for options in trials:
        trial = run_trial(model, tok, preset, options, base_reg, threads, command)
        record = json.loads(out.read_text()) if out.is_file() else {"trials": []}
        record["trials"].append(trial)
        out.write_text(json.dumps(record, indent=1) + "\n")
        short = {k: trial[k] for k in ("tag", "seconds", "schema_valid", "field_accuracy", "regression")}
        print(json.dumps(short), flush=True)


if __name__ == "__main__":
    main()
