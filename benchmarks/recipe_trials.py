"""What moves the tuned model's triage decisions: one full-profile LoRA run per call, appended to a JSON file.

Trains the notebook-04 recipe (embedded SmolLM2-135M-Instruct, all 506 training rows + the replay rows, cpu preset,
short system prompt) with the options given, then scores it on every held-out ticket (field accuracy per field
with 95% bootstrap intervals) and on the general-skills regression set (drop from the base model, with a paired
interval). Each trial records its exact command, the CPU (and whether it has bf16 instructions) and wall times.

    .venv/bin/python benchmarks/recipe_trials.py --steps 200 --lr 2e-4 --decision-weight 5 --seed 0
    .venv/bin/python benchmarks/recipe_trials.py --steps 200 --dtype fp32 ...   # the path of CPUs without bf16

The base model's regression answers are computed once per dtype and reused (``course_lib.runcache``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from course_lib import baselines, data, evaluate, models, stats, train  # noqa: E402


def machine() -> dict:
    flags = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = line
            break
    name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), "unknown")
    return {"cpu": name, "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "avx2": "avx2" in flags, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--r", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=None, help="default: 2 r")
    parser.add_argument("--decision-weight", type=float, default=1.0)
    parser.add_argument("--replay-copies", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", choices=("auto", "fp32"), default="auto",
                        help="fp32: the path a CPU without bf16 instructions takes")
    parser.add_argument("--reply-first", action="store_true", help="train on targets with the reply before the decisions")
    parser.add_argument("--tag", default="")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "recipe_trials.json"))
    args = parser.parse_args()

    from dataclasses import replace

    preset, _ = train.choose_preset("cpu")
    if args.dtype == "fp32":
        preset = replace(preset, dtype="fp32")
    if args.batch_size:
        preset = replace(preset, batch_size=args.batch_size)
    threads, _ = train.cpu_threads(args.threads)
    model, tok = models.load_model("embedded", verbose=False)
    if args.dtype == "fp32":
        model = model.float()
    dtype = "fp32" if model.dtype == torch.float32 else "bf16"
    heldout, regression = data.load_split("heldout"), data.load_split("regression")
    base_reg = evaluate.score_regression(model, tok, regression, reuse=True)  # the base model, scored once

    start = time.perf_counter()
    run = train.train_sft(model, data.load_split("train"), None, steps=args.steps, lr=args.lr, tokenizer=tok,
                          lora_r=args.r, lora_alpha=args.alpha or 2 * args.r, preset=preset, threads=threads,
                          progress=False, replay=data.load_split("replay") * args.replay_copies, seed=args.seed,
                          decision_weight=args.decision_weight, reply_first=args.reply_first)
    train_seconds = time.perf_counter() - start
    if args.dtype == "fp32":
        run.model.float()
    start = time.perf_counter()
    task = evaluate.score_task(run.model, tok, train.with_system_prompt(heldout, train.SHORT_SYSTEM_PROMPT),
                               progress=False)
    eval_task_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reg = evaluate.score_regression(run.model, tok, regression)
    eval_reg_seconds = time.perf_counter() - start
    table = baselines.field_table(task.predictions, heldout)
    before = [i["correct"] for i in base_reg["items"]]
    after = [i["correct"] for i in reg["items"]]
    diff, low, high = stats.paired_bootstrap_diff(after, before)
    trial_lr = args.lr or train.DEFAULT_LR["lora"]
    trial = {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
        "tag": args.tag or (f"LoRA {args.steps} steps, lr {trial_lr:g}, decision weight {args.decision_weight:g}"
                            + (", reply first" if args.reply_first else "") + (", fp32" if dtype == "fp32" else "")
                            + f", seed {args.seed}"),
        "steps": args.steps, "lr": args.lr or train.DEFAULT_LR["lora"], "r": args.r, "alpha": args.alpha or 2 * args.r,
        "decision_weight": args.decision_weight, "replay_copies": args.replay_copies, "seed": args.seed,
        "reply_first": args.reply_first,
        "preset": {"dtype": preset.dtype, "batch_size": preset.batch_size}, "machine": machine(),
        "seconds": {"train": round(train_seconds, 1), "eval_heldout": round(eval_task_seconds, 1),
                    "eval_regression": round(eval_reg_seconds, 1)},
        "json_valid": task.metrics["json_valid"], "schema_valid": task.metrics["schema_valid"],
        "sign_off": task.metrics["sign_off"], "field_accuracy": {f: table[f]["accuracy"] for f in table},
        "field_interval": {f: table[f]["interval"] for f in table},
        "field_accuracy_mean": task.metrics["field_accuracy_mean"],
        "regression": {"base": base_reg["accuracy"], "tuned": reg["accuracy"], "change": diff,
                       "change_interval": [low, high]},
        "field_correct": {f: table[f]["correct"] for f in table},
    }
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.is_file() else {"trials": []}
    record["trials"].append(trial)
    out.write_text(json.dumps(record, indent=1) + "\n")
    short = {k: v for k, v in trial.items() if k not in ("field_correct", "field_interval", "machine", "command")}
    print(json.dumps(short, indent=1))


if __name__ == "__main__":
    main()
