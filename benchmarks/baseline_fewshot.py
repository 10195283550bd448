"""The bars fine-tuning must beat: the embedded model prompted, and two classic baselines, on GreenLeaf's tickets.

Runs the full-profile baseline — SmolLM2-135M-Instruct (``models.load_model("embedded")``), every held-out row,
zero-shot and 3-shot (examples from the train split, ``evaluate.pick_examples``), greedy decoding — and the
general-skills regression set; then the majority-class and TF-IDF + logistic-regression baselines
(``course_lib.baselines``, tuned and untuned) on the same tickets, every decision field with its 95% bootstrap
interval (``course_lib.baselines.field_table``). Writes ``benchmarks/results/baseline_fewshot.json`` with the command, the
machine, package versions, wall times and every metric. Prints the 3-shot scores as ratios of the zero-shot ones.

Usage (from the repo root)::

    COURSE_CACHE=/tmp/cc1 .venv/bin/python benchmarks/baseline_fewshot.py
    .venv/bin/python benchmarks/baseline_fewshot.py --limit 8 --out /tmp/smoke.json   # quick smoke run

On a CPU shared with other busy processes, ``--threads 1`` avoids thread oversubscription (much faster there);
the metrics do not depend on it (greedy decoding).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_lib import baselines, evaluate, greenleaf, models  # noqa: E402
from course_lib.paths import DATA_DIR  # noqa: E402

PACKAGES = ("torch", "transformers", "jsonschema", "course-lib")
SAMPLES = 5  # raw answers kept per condition, to show how the model fails


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _fallback_splits() -> tuple[list[dict], list[dict], list[dict]]:
    """Split the raw export by ``families.json`` ourselves, keeping only rows that are well formed and not listed in
    ``planted_problems.json`` (so no planted duplicate, PII row or broken target reaches the evaluation)."""
    folder = DATA_DIR / "greenleaf"
    families = json.loads((folder / "families.json").read_text())
    planted = {p["line"] for p in json.loads((folder / "planted_problems.json").read_text())}
    train, heldout = [], []
    for line_no, line in enumerate((folder / "raw_tickets.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if line_no in planted or not line.strip():
            continue
        row = json.loads(line)
        roles = [m.get("role") for m in row.get("messages", [])]
        if roles != ["system", "user", "assistant"]:
            continue
        target = greenleaf.parse_triage(row["messages"][2]["content"])
        if target is None or not greenleaf.triage_validator().is_valid(target):
            continue
        (heldout if row["family"] in families["heldout"] else train).append(row)
    return train, heldout, _load_regression()


def load_splits() -> tuple[list[dict], list[dict], list[dict], str]:
    """``(train, heldout, regression, source)``. In order of preference: the shipped splits through
    ``course_lib.data.load_split``; the same splits built now by ``course_lib.data.build_greenleaf_splits`` into a
    temporary folder (before they are shipped); our own split of the raw export (``_fallback_splits``)."""
    try:
        regression = _load_regression()
        from course_lib import data

        try:
            return data.load_split("train"), data.load_split("heldout"), regression, "course_lib.data.load_split"
        except (ValueError, OSError) as err:  # data.DataError is a ValueError
            print(f"load_split: {err}; building the splits with course_lib.data.build_greenleaf_splits instead.",
                  flush=True)
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="greenleaf_splits_"))
        data.build_greenleaf_splits(folder)
        return _read_jsonl(folder / "train.jsonl"), _read_jsonl(folder / "heldout.jsonl"), regression, \
            "course_lib.data.build_greenleaf_splits() into a temporary folder (split files not shipped yet)"
    except (ImportError, AttributeError, ValueError, OSError) as err:
        print(f"course_lib.data unavailable ({type(err).__name__}: {err}); splitting raw_tickets.jsonl "
              "by families.json here (valid rows, planted problems excluded).", flush=True)
        train, heldout, regression = _fallback_splits()
        return train, heldout, regression, "fallback: raw_tickets.jsonl split by families.json in this script"


def _load_regression() -> list[dict]:
    """The regression set (``{"id", "skill", "prompt", "answer", "check"}`` rows, not chat rows)."""
    try:
        from course_lib import data

        return data.load_split("regression")
    except (ImportError, AttributeError, ValueError, OSError):
        return _read_jsonl(DATA_DIR / "greenleaf" / "regression.jsonl")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seed of evaluate.pick_examples (which train rows)")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N held-out/regression rows (0: all)")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="the full profile's budget")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--no-reuse", action="store_true",
                        help="generate even if stored answers of these weights exist (to time generation)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "baseline_fewshot.json"))
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    train, heldout, regression, source = load_splits()
    if args.limit:
        heldout, regression = heldout[: args.limit], regression[: args.limit]
    examples = evaluate.pick_examples(train, args.shots, seed=args.seed)
    model, tok = models.load_model(args.model)
    print(f"{len(heldout)} held-out rows, {len(regression)} regression rows, {args.shots}-shot examples "
          f"{[e['id'] for e in examples]}, data from {source}", flush=True)

    runs, timings, samples, predictions = {}, {}, {}, {}
    for name, shots in (("zero-shot", 0), (f"{args.shots}-shot", args.shots)):
        t0 = time.perf_counter()
        score = evaluate.score_task(model, tok, heldout, examples=examples, shots=shots, reuse=not args.no_reuse,
                                    max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, progress=True)
        timings[name] = round(time.perf_counter() - t0, 1)
        runs[name] = score.metrics
        predictions[name] = score.predictions
        samples[name] = [{"id": i, "answer": p} for i, p in zip(score.ids[:SAMPLES], score.predictions[:SAMPLES])]
        print(f"{name}: {json.dumps(score.metrics)} ({timings[name]} s)", flush=True)
    t0 = time.perf_counter()
    reg = evaluate.score_regression(model, tok, regression, max_new_tokens=32, batch_size=args.batch_size,
                                    reuse=not args.no_reuse)
    timings["regression"] = round(time.perf_counter() - t0, 1)
    print(f"regression: accuracy {reg['accuracy']:.3f} {reg['per_skill']} ({timings['regression']} s)", flush=True)

    answers = {name: preds for name, preds in predictions.items()}
    t0 = time.perf_counter()
    answers["majority class"] = baselines.majority(train, heldout)
    timings["majority"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    answers["TF-IDF + LR (C=1)"] = baselines.tfidf(train, heldout, C={f: 1.0 for f in baselines.FIELDS})
    timings["tfidf_default_C"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    answers["TF-IDF + LR (TUNED_C)"] = baselines.tfidf(train, heldout)
    timings["tfidf_tuned_C"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    chosen = {f: float(p[-1].C) for f, p in baselines.fit_tfidf(train, tune=True).items()}
    timings["tfidf_tuning"] = round(time.perf_counter() - t0, 1)
    print(f"grouped 5-fold CV picks C = {chosen} (baselines.TUNED_C = {baselines.TUNED_C})", flush=True)
    tables = baselines.compare(answers, heldout)
    print("\n" + baselines.format_table(tables), flush=True)
    fields = {name: {f: {"accuracy": t[f]["accuracy"], "interval": t[f]["interval"]} for f in (*baselines.FIELDS, "mean")}
              for name, t in tables.items()}
    strongest = {f: max(fields, key=lambda name: fields[name][f]["accuracy"]) for f in (*baselines.FIELDS, "mean")}

    base, few = runs["zero-shot"], runs[f"{args.shots}-shot"]
    print(f"\n{args.shots}-shot / zero-shot (ratio; the zero-shot run in this process is the baseline):")
    for key in ("json_valid", "schema_valid", "field_accuracy_mean", "sign_off"):
        ratio = few[key] / base[key] if base[key] else float("inf") if few[key] else 1.0
        print(f"  {key:<20} {base[key]:.3f} -> {few[key]:.3f}  (x{ratio:.2f})")

    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "not installed"
    result = {
        "command": " ".join(["COURSE_CACHE=" + os.environ.get("COURSE_CACHE", "<default>"), ".venv/bin/python",
                             "benchmarks/baseline_fewshot.py"] + [shlex.quote(a) for a in (argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "device": str(model.device),
                    "dtype": str(next(model.parameters()).dtype),
                    "cpu_bf16_instructions": models.cpu_has_native_bf16(),
                    "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"python": platform.python_version(), **versions},
        "settings": {"model": args.model, "decoding": "greedy", "max_new_tokens": args.max_new_tokens,
                     "batch_size": args.batch_size, "shots": args.shots, "seed": args.seed, "limit": args.limit},
        "data": {"source": source, "heldout_rows": len(heldout), "train_rows": len(train),
                 "regression_rows": len(regression), "few_shot_example_ids": [e["id"] for e in examples]},
        "task": runs,
        "fields": fields,
        "strongest_per_field": strongest,
        "tfidf_cv_chosen_C": chosen, "tfidf_tuned_C_used": baselines.TUNED_C,
        "regression": {"accuracy": reg["accuracy"], "interval": reg["interval"], "per_skill": reg["per_skill"],
                       "wrong_ids": [i["id"] for i in reg["items"] if not i["correct"]]},
        "samples": samples,
        "wall_time_s": {**timings, "total": round(time.perf_counter() - start, 1)},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out} (total {result['wall_time_s']['total']} s)")
    return result


if __name__ == "__main__":
    main()
