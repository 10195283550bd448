"""LoRA learning rate and replay share against forgetting: one full-profile run per call, appended to a JSON file.

Trains the notebook-04 recipe (embedded model, all 506 training rows + the replay rows repeated ``--replay-copies``
times, 200 steps, rank 16, cpu preset) at ``--lr``, then scores the tuned model on every held-out ticket (short
prompt) and on the regression set. Base-model scores for comparison are in ``results/cpu_lesson.json``.

    COURSE_CACHE=/tmp/cc1 .venv/bin/python benchmarks/lr_trials.py --lr 2e-4 --replay-copies 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_lib import data, evaluate, models, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--replay-copies", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "lr_trials.json"))
    args = parser.parse_args()

    model, tok = models.load_model("embedded", verbose=False)
    heldout, regression = data.load_split("heldout"), data.load_split("regression")
    start = time.perf_counter()
    run = train.train_sft(model, data.load_split("train"), None, steps=200, lr=args.lr, tokenizer=tok,
                          threads=args.threads, progress=False, replay=data.load_split("replay") * args.replay_copies)
    seconds = time.perf_counter() - start
    task = evaluate.score_task(run.model, tok, train.with_system_prompt(heldout, train.SHORT_SYSTEM_PROMPT),
                               progress=False)
    reg = evaluate.score_regression(run.model, tok, regression)
    trial = {"command": " ".join(sys.argv), "lr": args.lr, "replay_copies": args.replay_copies,
             "train_seconds": round(seconds, 1), "json_valid": task.metrics["json_valid"],
             "field_accuracy_mean": task.metrics["field_accuracy_mean"],
             "field_accuracy": task.metrics["field_accuracy"], "regression": reg["accuracy"]}
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.is_file() else {"trials": []}
    record["trials"].append(trial)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(trial, indent=2))


if __name__ == "__main__":
    main()
