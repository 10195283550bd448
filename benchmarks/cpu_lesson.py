"""Notebook 04's full-profile recipe on a CPU, timed and scored; plus our recipe's speed against the naive one.

Runs the same ``course_lib`` calls as ``notebooks/04_lora_with_trl.ipynb`` in the ``full`` profile: the embedded
SmolLM2-135M-Instruct, every training and held-out row, ``PROFILE.train_steps`` LoRA steps with the ``cpu``
preset and the short system prompt, then held-out and regression scores before and after (and, unless
``--skip-full``, the notebook's full fine-tuning run at a quarter of the steps). Then, in the same process, a few
steps of our recipe and of the naive one (trl's defaults on a CPU: fp32, the long prompt, padded batches, checkpointing
on) to print their throughput as a ratio. Writes ``benchmarks/results/cpu_lesson.json``.

Usage (from the repo root)::

    COURSE_CACHE=/tmp/cc1 .venv/bin/python benchmarks/cpu_lesson.py --threads 2
    COURSE_CACHE=/tmp/cc1 .venv/bin/python benchmarks/cpu_lesson.py --threads 2 --no-replay --skip-full \
        --out benchmarks/results/cpu_lesson_no_replay.json   # the same recipe without replay: forgetting
    .venv/bin/python benchmarks/cpu_lesson.py --steps 4 --limit 8 --skip-full --out /tmp/smoke.json   # smoke run

Timings depend on what else the machine runs: the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("COURSE_PROFILE", "full")

from transformers import TrainerCallback  # noqa: E402

from course_lib import acceptance, baselines, data, evaluate, models, profile, stats, train  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine, versions  # noqa: E402

PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "course-lib")
EVAL_DURING_TRAINING = 32  # held-out rows whose loss is tracked while training (as in the notebook)


def _versions() -> dict[str, str]:
    return versions(PACKAGES)


def _task(metrics: dict) -> dict:
    return {"json_valid": metrics["json_valid"], "schema_valid": metrics["schema_valid"],
            "field_accuracy": metrics["field_accuracy"], "field_accuracy_mean": metrics["field_accuracy_mean"],
            "sign_off": metrics["sign_off"], "n": metrics["n"]}


class _StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.tokens: list[int] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t)


def measure_recipe(model, tok, rows, preset, system_prompt, steps: int, label: str) -> dict:
    """Tokens/s of a few LoRA steps (the first, warm-up step excluded) with one preset and system prompt."""
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as out:
        config = train.sft_config(preset, out, steps=steps, lr=5e-4, save_steps=10**6, eval_steps=10**6,
                                  logging_steps=1, progress=False)
        trainer = train.build_trainer(copy.deepcopy(model), tok, rows, None, config, method="lora",
                                      lora=train.lora_config(), system_prompt=system_prompt,
                                      max_length=preset.max_length, callbacks=[timer])
        trainer.train()
    tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    seconds = sum(timer.times[1:])
    examples = preset.batch_size * preset.grad_accum * (steps - 1)
    answer = train._answer_tokens_per_example(trainer.train_dataset) * examples
    result = {"recipe": label, "preset": asdict(preset), "system_prompt": system_prompt or "(rows' own, long)",
              "steps_timed": steps - 1, "seconds": seconds, "seconds_per_step": seconds / (steps - 1),
              "tokens_per_second": (tokens[-1] - tokens[0]) / seconds, "examples_per_second": examples / seconds,
              "answer_tokens_per_second": answer / seconds}
    print(f"  {label:>6}: {result['seconds_per_step']:.1f} s/step, {result['tokens_per_second']:.0f} tokens/s, "
          f"{result['examples_per_second']:.2f} examples/s", flush=True)
    return result


def seeds_summary(args, steps: int, lr: float, tables: dict) -> str:
    """This run (seed ``args.seed``) and the trials of the same recipe with other seeds in ``args.trials``: each
    field's mean over the seeds against the TF-IDF baseline, and the regression change per seed."""
    rows = [(args.seed, {f: tables["LoRA"][f]["accuracy"] for f in (*baselines.FIELDS, "mean")}, None)]
    trials_path = Path(args.trials)
    if trials_path.is_file():
        for trial in json.loads(trials_path.read_text())["trials"]:
            same = (trial.get("steps") == steps and abs(trial.get("lr", 0) - lr) < 1e-12 and trial.get("r") == 16
                    and trial.get("decision_weight") == args.decision_weight and trial.get("replay_copies") == 1
                    and bool(trial.get("reply_first")) == args.reply_first
                    and trial.get("preset", {}).get("dtype") == "bf16" and trial.get("seed") != args.seed)
            if same and trial["seed"] not in [r[0] for r in rows]:
                rows.append((trial["seed"], trial["field_accuracy"], trial["regression"]["change"]))
    tfidf = tables["TF-IDF + logistic regression"]
    lines = [f"Seeds {sorted(r[0] for r in rows)} of this recipe (seed {args.seed} is this run; the others are "
             f"recorded in {trials_path.name}):"]
    for f in (*baselines.FIELDS, "mean"):
        values = [r[1][f] for r in rows]
        mean = sum(values) / len(values)
        lines.append(f"  {f:<12} mean over seeds {mean:.3f} (each: {', '.join(f'{v:.3f}' for v in values)})  "
                     f"TF-IDF {tfidf[f]['accuracy']:.3f}  -> {'beats' if mean > tfidf[f]['accuracy'] else 'does NOT beat'} it")
    others = [f"seed {r[0]}: {100 * r[2]:+.1f}" for r in rows if r[2] is not None]
    if others:
        lines.append("  regression change (points) of the other seeds: " + ", ".join(others))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="LoRA steps (default: the full profile's)")
    parser.add_argument("--limit", type=int, default=0, help="use only this many rows of each split (smoke runs)")
    parser.add_argument("--ratio-steps", type=int, default=5, help="steps per recipe in the speed comparison")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: free physical cores)")
    parser.add_argument("--skip-full", action="store_true", help="skip the full fine-tuning comparison")
    parser.add_argument("--no-replay", action="store_true",
                        help="train on the tickets only (no replay rows): shows the forgetting replay prevents")
    parser.add_argument("--lr", type=float, default=None, help="LoRA learning rate (default: train.DEFAULT_LR)")
    parser.add_argument("--decision-weight", type=float, default=1.0)
    parser.add_argument("--reply-first", action="store_true", help="train on answers that write the reply first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", default=str(REPO / "benchmarks" / "results" / "recipe_trials.json"),
                        help="recipe trials of other seeds of the same recipe, summarised with this run")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cpu_lesson.json"))
    args = parser.parse_args()
    if args.ratio_steps < 2:
        parser.error(f"--ratio-steps {args.ratio_steps}: the first step is warm-up and not timed, so time at least 2.")

    PROFILE = profile.get_profile()
    steps = args.steps or PROFILE.train_steps
    threads, why = train.cpu_threads(args.threads)
    print(f"{threads} thread(s): {why}", flush=True)
    report: dict = {"command": " ".join(shlex.quote(a) for a in sys.argv), "profile": PROFILE.name,
                    "machine": {**machine(), "threads": threads}, "versions": _versions(), "wall_seconds": {}}
    wall = report["wall_seconds"]
    t_all = time.perf_counter()

    t = time.perf_counter()
    model, tok = models.load_model(PROFILE.model)
    limit = args.limit or None
    train_rows = data.load_split("train")[: PROFILE.train_examples or None][:limit]
    heldout = data.load_split("heldout")[: PROFILE.eval_examples or None][:limit]
    regression = data.load_split("regression")[: PROFILE.eval_examples or None][:limit]
    replay = [] if args.no_replay else data.load_split("replay")[:limit]
    wall["load"] = time.perf_counter() - t
    report["rows"] = {"train": len(train_rows), "heldout": len(heldout), "regression": len(regression),
                      "replay": len(replay)}

    t = time.perf_counter()
    base_task = evaluate.score_task(model, tok, heldout, progress=False)
    base_reg = evaluate.score_regression(model, tok, regression)
    wall["eval_base"] = time.perf_counter() - t
    print(f"base: {_task(base_task.metrics)}, regression {base_reg['accuracy']:.3f}", flush=True)

    t = time.perf_counter()
    lr = args.lr or train.DEFAULT_LR["lora"]
    run = train.train_sft(model, train_rows, heldout[:EVAL_DURING_TRAINING], method="lora", steps=steps, lr=lr,
                          tokenizer=tok, threads=threads, progress=False, replay=replay, seed=args.seed,
                          decision_weight=args.decision_weight, reply_first=args.reply_first)
    wall["train_lora"] = time.perf_counter() - t
    adapter = train.save_adapter(run.model, run.output_dir / "adapter")

    t = time.perf_counter()
    heldout_short = train.with_system_prompt(heldout, train.SHORT_SYSTEM_PROMPT)
    lora_task = evaluate.score_task(run.model, tok, heldout_short, progress=False)
    lora_reg = evaluate.score_regression(run.model, tok, regression)
    wall["eval_lora"] = time.perf_counter() - t
    print(f"LoRA: {_task(lora_task.metrics)}, regression {lora_reg['accuracy']:.3f}", flush=True)
    losses = [(h["step"], h["eval_loss"]) for h in run.history if "eval_loss" in h]
    report["lora"] = {
        "steps": steps, "lr": lr, "decision_weight": args.decision_weight, "reply_first": args.reply_first, "seed": args.seed,
        "r": 16, "alpha": 32, "target_modules": "all-linear",
        "preset": asdict(run.preset), "system_prompt": train.SHORT_SYSTEM_PROMPT,
        "train_seconds": run.seconds, "tokens_per_second": run.tokens_per_second,
        "answer_tokens_per_second": run.answer_tokens / run.seconds, "trainable_params": run.trainable_params,
        "total_params": run.total_params, "adapter_bytes": train.size_on_disk(adapter),
        "eval_loss_by_step": losses, "final_train_loss": [h["loss"] for h in run.history if "loss" in h][-1],
    }
    report["heldout"] = {"base_zero_shot_long_prompt": _task(base_task.metrics),
                         "lora_short_prompt": _task(lora_task.metrics),
                         "lora_examples": lora_task.predictions[:3], "base_examples": base_task.predictions[:3]}
    before = [i["correct"] for i in base_reg["items"]]
    after = [i["correct"] for i in lora_reg["items"]]
    change, low, high = stats.paired_bootstrap_diff(after, before)
    t = time.perf_counter()
    answers = {"majority class": baselines.majority(train_rows, heldout),
               "TF-IDF + logistic regression": baselines.tfidf(train_rows, heldout),
               "base, zero-shot": base_task.predictions, "LoRA": lora_task.predictions}
    wall["baselines"] = time.perf_counter() - t
    tables = baselines.compare(answers, heldout)
    print(baselines.format_table(tables), flush=True)
    strongest = {f: max(tables[n][f]["accuracy"] for n in tables if n != "LoRA") for f in baselines.FIELDS}
    test = acceptance.greenleaf_test(strongest, n_heldout=len(heldout))
    results = acceptance.run(test, acceptance.measure(lora_task.metrics, tables["LoRA"], before, after))
    printed = acceptance.format_results(results)
    print(printed, flush=True)
    report["fields"] = {name: {f: {"accuracy": t[f]["accuracy"], "interval": t[f]["interval"]}
                               for f in (*baselines.FIELDS, "mean")} for name, t in tables.items()}
    report["acceptance"] = {"test": test.to_markdown(), "printed": printed,
                            "passed": [r["check"].metric for r in results if r["passed"]],
                            "failed": [r["check"].metric for r in results if not r["passed"]],
                            "seeds_summary": seeds_summary(args, steps, lr, tables)}
    print(report["acceptance"]["seeds_summary"], flush=True)
    report["regression"] = {"base": base_reg["accuracy"], "lora": lora_reg["accuracy"],
                            "change": change, "change_interval": [low, high],
                            "base_interval": base_reg["interval"], "lora_interval": lora_reg["interval"],
                            "base_per_skill": base_reg["per_skill"], "lora_per_skill": lora_reg["per_skill"],
                            "forgotten": [{k: after[k] for k in ("prompt", "answer", "output")}
                                          for before, after in zip(base_reg["items"], lora_reg["items"])
                                          if before["correct"] and not after["correct"]]}
    del run

    if not args.skip_full:
        full_steps = max(1, steps // 4)
        t = time.perf_counter()
        full = train.train_sft(model, train_rows, heldout[:EVAL_DURING_TRAINING], method="full", steps=full_steps,
                               tokenizer=tok, save_steps=full_steps, threads=threads, progress=False, replay=replay,
                               reply_first=args.reply_first)
        wall["train_full"] = time.perf_counter() - t
        t = time.perf_counter()
        full_task = evaluate.score_task(full.model, tok, heldout_short, progress=False)
        full_reg = evaluate.score_regression(full.model, tok, regression)
        wall["eval_full"] = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as folder:
            full.model.save_pretrained(folder)
            full_bytes = train.size_on_disk(folder)
        report["full"] = {"steps": full_steps, "lr": train.DEFAULT_LR["full"], "train_seconds": full.seconds,
                          "seconds_per_step": full.seconds / full_steps, "tokens_per_second": full.tokens_per_second,
                          "trainable_params": full.trainable_params, "model_bytes": full_bytes,
                          "checkpoint_bytes": train.size_on_disk(train.latest_checkpoint(full.output_dir)),
                          "heldout": _task(full_task.metrics), "regression": full_reg["accuracy"]}
        report["lora"]["seconds_per_step"] = report["lora"]["train_seconds"] / steps
        del full

    t = time.perf_counter()
    print("speed: our recipe vs the naive one (same rows, same LoRA, same batch size)", flush=True)
    ours_preset, _ = train.choose_preset("cpu")
    # naive = trl's defaults on a CPU: fp32, padded batches, gradient checkpointing on, the rows' long prompt
    naive_preset = replace(ours_preset, name="naive", dtype="fp32", gradient_checkpointing=True, padding_free=False)
    rows = train_rows[: ours_preset.batch_size * args.ratio_steps]
    naive = measure_recipe(model, tok, rows, naive_preset, None, args.ratio_steps, "naive")
    ours = measure_recipe(model, tok, rows, ours_preset, train.SHORT_SYSTEM_PROMPT, args.ratio_steps, "ours")
    wall["speed_ratio"] = time.perf_counter() - t
    report["speed"] = {
        "naive": naive, "ours": ours,
        "ratio_examples_per_second": ours["examples_per_second"] / naive["examples_per_second"],
        "ratio_answer_tokens_per_second": ours["answer_tokens_per_second"] / naive["answer_tokens_per_second"],
        "ratio_tokens_per_second": ours["tokens_per_second"] / naive["tokens_per_second"],
        "note": "examples/s (= answer tokens/s) is the fair ratio: both recipes learn the same answers; the short "
                "prompt makes each example fewer tokens, so raw tokens/s understates the gain.",
    }

    wall["total_recipe"] = sum(v for k, v in wall.items() if k != "speed_ratio")
    wall["total_with_speed_ratio"] = time.perf_counter() - t_all
    base_fewshot = REPO / "benchmarks" / "results" / "baseline_fewshot.json"
    targets = {"recipe_minutes": wall["total_recipe"] / 60,
               "recipe_minutes_without_full_ft": sum(v for k, v in wall.items() if k in
                                                     ("load", "eval_base", "train_lora", "eval_lora")) / 60,
               "regression_drop_points": 100 * (base_reg["accuracy"] - lora_reg["accuracy"]),
               "recipe_minutes_base_reused": sum(v for k, v in wall.items() if k in ("load", "train_lora", "eval_lora")) / 60}
    if base_fewshot.is_file():
        base = json.loads(base_fewshot.read_text())
        report["baseline_fewshot_file"] = str(base_fewshot.relative_to(REPO))
        fewshot = max(v["json_valid"] for k, v in base["task"].items() if k != "zero-shot")
        targets["json_valid_gain_points_vs_fewshot"] = 100 * (lora_task.metrics["json_valid"] - fewshot)
        targets["fewshot_json_valid"] = fewshot
    targets["json_valid_gain_points_vs_base_zero_shot"] = 100 * (lora_task.metrics["json_valid"]
                                                                 - base_task.metrics["json_valid"])
    report["targets"] = targets
    report["machine"]["load_average_1m_at_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"wall_seconds": wall, "targets": targets, "speed_ratio_examples_per_second":
                      report["speed"]["ratio_examples_per_second"]}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
