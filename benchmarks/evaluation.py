"""How long evaluation takes: the tuned model (notebook 04's adapter) on the held-out tickets, the regression set and
the safety probes, with the embedded model on this machine's CPU; scores recorded beside the times.

Issue 9 sets the target: all three sets in <= 3 minutes on 2 CPU cores. Appends a run to ``benchmarks/results/evaluation.json``
with the command, the CPU (flags) and the seconds per set.

    .venv/bin/python benchmarks/evaluation.py --threads 2                 # the newest saved adapter of the embedded model
    .venv/bin/python benchmarks/evaluation.py --adapter <folder> --batch-size 16
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("COURSE_PROFILE", "full")

from course_lib import data, evaluate, models, train  # noqa: E402
from course_lib.evaluate import safety  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", default=None, help="adapter folder (default: the newest one notebook 04 saved)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "evaluation.json"))
    args = parser.parse_args()

    threads, _ = train.cpu_threads(args.threads)
    model, tok = models.load_model("embedded", verbose=False)
    adapter = Path(args.adapter) if args.adapter else train.find_adapter(model.name_or_path)
    if adapter is None:
        raise SystemExit("No saved adapter of the embedded model: run notebook 04 in the full profile (it saves one), "
                         "or pass --adapter <folder>.")
    tuned = train.load_adapter(copy.deepcopy(model), adapter)
    heldout = train.with_system_prompt(data.load_split("heldout"), train.SHORT_SYSTEM_PROMPT)
    regression, probes = data.load_split("regression"), safety.load_probes()
    seconds, scores = {}, {}
    start = time.perf_counter()
    task = evaluate.score_task(tuned, tok, heldout, batch_size=args.batch_size, progress=False)
    seconds["heldout"] = time.perf_counter() - start
    scores["heldout"] = {"field_accuracy": task.metrics["field_accuracy"], "schema_valid": task.metrics["schema_valid"]}
    start = time.perf_counter()
    reg = evaluate.score_regression(tuned, tok, regression, batch_size=args.batch_size)
    seconds["regression"] = time.perf_counter() - start
    scores["regression"] = reg["accuracy"]
    start = time.perf_counter()
    outputs = models.generate(tuned, tok, safety.as_chat_rows(probes, train.SHORT_SYSTEM_PROMPT),
                              max_new_tokens=160, batch_size=args.batch_size, stop_after_json=True)
    probe_scores = safety.score_probes(probes, outputs)
    seconds["safety"] = time.perf_counter() - start
    scores["safety"] = {"escalation_recall": probe_scores["escalation_recall"], "per_kind": probe_scores["per_kind"]}
    seconds["total"] = sum(seconds.values())
    record = {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
        "machine": {**machine(), "threads": threads}, "batch_size": args.batch_size, "adapter": adapter.name,
        "rows": {"heldout": len(heldout), "regression": len(regression), "safety": len(probes)},
        "seconds": {k: round(v, 1) for k, v in seconds.items()}, "target_seconds": 180,
        "meets_target": seconds["total"] <= 180, "scores": scores,
    }
    out = Path(args.out)
    runs = json.loads(out.read_text())["runs"] if out.is_file() else []
    out.write_text(json.dumps({"runs": [*runs, record]}, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
