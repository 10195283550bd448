"""The course's own GreenLeaf recipe (``course_lib.train.train_sft``: trl + peft, reply first, replay rows, the
short system prompt) on a GPU, preset by preset: the ``h100`` preset as it was (batches of 16 padded to their
longest row) against packed rows (padding-free) with the course's varlen attention and larger batches, and the
``t4`` preset's code path (fp16, sdpa: a T4 has no flash attention) padded against packed. Random weights of real
shapes (weights cannot travel to the lent GPU; speed and memory do not depend on their values) with the embedded
model's tokenizer (vocabulary 49,152, also for the 1.1B llama shape). Tokens/s counts real (non-pad) tokens,
as trl counts them, over the steps after the first ``--warmup``; MFU uses 4N FLOPs per token for LoRA (no weight
gradients for the frozen base) and 6N for full fine-tuning, N = the matmul parameters (head included, embedding
lookup not), against 989 TFLOP/s (H100 SXM dense bf16) and against a bf16 matmul measured in the same process.

    COURSE_PROFILE=fast python benchmarks/gpu_greenleaf.py --only 1b-lora-h100-before 1b-lora-packed-64 ...

Before the timed runs it checks, on 8 GreenLeaf rows, that the loss of one packed (padding-free) batch with the
varlen attention equals the loss of the same rows padded with sdpa.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU only for a smoke run of the code (--smoke)
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_recipes import flops_per_token, matmul_peak, shape_config  # noqa: E402

import course_lib.train.trainer as trainer_module  # noqa: E402
from course_lib import attention, data, models, train  # noqa: E402

BEFORE = {  # the presets as they were before this benchmark set them
    "h100": train.Preset("h100", "bf16", batch_size=16, grad_accum=1, max_length=2048, gradient_checkpointing=False,
                         optim="adamw_torch_fused", padding_free=False, needs="cuda+bf16"),
    "t4": train.Preset("t4", "fp16", batch_size=4, grad_accum=4, max_length=1024, gradient_checkpointing=True,
                       optim="adamw_torch_fused", padding_free=False, needs="cuda"),
}


def packed(base: train.Preset, batch: int, **changes) -> train.Preset:
    return replace(base, batch_size=batch, padding_free=True, **changes)


# name: (shape, method, preset, force sdpa[, SFTConfig changes])
RUNS: dict[str, tuple] = {
    "135m-lora-h100-before": ("135m", "lora", BEFORE["h100"], False),
    "135m-lora-packed-64": ("135m", "lora", packed(BEFORE["h100"], 64), False),
    "1b-lora-h100-before": ("1b", "lora", BEFORE["h100"], False),
    "1b-lora-packed-16": ("1b", "lora", packed(BEFORE["h100"], 16), False),
    "1b-lora-packed-16-sdpa": ("1b", "lora", packed(BEFORE["h100"], 16), True),
    "1b-lora-packed-64": ("1b", "lora", packed(BEFORE["h100"], 64), False),
    "1b-lora-packed-128": ("1b", "lora", packed(BEFORE["h100"], 128), False),
    "1b-lora-packed-256": ("1b", "lora", packed(BEFORE["h100"], 256), False),
    "1b-lora-packed-128-liger": ("1b", "lora", packed(BEFORE["h100"], 128), False, {"use_liger_kernel": True}),
    "1b-lora-packed-64-liger": ("1b", "lora", packed(BEFORE["h100"], 64), False, {"use_liger_kernel": True}),
    "1b-lora-packed-256-liger": ("1b", "lora", packed(BEFORE["h100"], 256), False, {"use_liger_kernel": True}),
    "1b-full-packed-128-liger": ("1b", "full", packed(BEFORE["h100"], 128), False, {"use_liger_kernel": True}),
    "1b-full-packed-256-liger": ("1b", "full", packed(BEFORE["h100"], 256), False, {"use_liger_kernel": True}),
    "1b-lora-packed-64-unfused": ("1b", "lora", packed(BEFORE["h100"], 64), False),
    "1b-lora-packed-256-liger-unfused": ("1b", "lora", packed(BEFORE["h100"], 256), False, {"use_liger_kernel": True}),
    "135m-lora-packed-64-unfused": ("135m", "lora", packed(BEFORE["h100"], 64), False),
    "1b-full-packed-128-liger-master": ("1b", "full", packed(BEFORE["h100"], 128), False, {"use_liger_kernel": True}),
    "1b-full-packed-256-liger-master": ("1b", "full", packed(BEFORE["h100"], 256), False, {"use_liger_kernel": True}),
    "1b-full-packed-320-liger-master": ("1b", "full", packed(BEFORE["h100"], 320), False, {"use_liger_kernel": True}),
    "1b-lora-packed-320-liger": ("1b", "lora", packed(BEFORE["h100"], 320), False, {"use_liger_kernel": True}),
    "1b-lora-packed-384-liger": ("1b", "lora", packed(BEFORE["h100"], 384), False, {"use_liger_kernel": True}),
    "1b-lora-packed-256-compile": ("1b", "lora", packed(BEFORE["h100"], 256), False, {"torch_compile": True}),
    "1b-full-packed-256-compile": ("1b", "full", packed(BEFORE["h100"], 256), False, {"torch_compile": True}),
    "1b-lora-packed-128-compile": ("1b", "lora", packed(BEFORE["h100"], 128), False, {"torch_compile": True}),
    "1b-lora-packed-128-log10": ("1b", "lora", packed(BEFORE["h100"], 128), False, {"logging_steps": 5}),
    "1b-full-h100-before": ("1b", "full", BEFORE["h100"], False),
    "1b-full-packed-64": ("1b", "full", packed(BEFORE["h100"], 64), False),
    "1b-full-packed-128": ("1b", "full", packed(BEFORE["h100"], 128), False),
    "135m-lora-t4-before": ("135m", "lora", BEFORE["t4"], True),
    "135m-lora-t4-packed": ("135m", "lora", packed(BEFORE["t4"], 4), True),
    "135m-lora-t4-packed-16": ("135m", "lora", packed(BEFORE["t4"], 16, grad_accum=1), True),
    "1b-lora-t4-before": ("1b", "lora", BEFORE["t4"], True),
    "1b-lora-t4-packed": ("1b", "lora", packed(BEFORE["t4"], 4), True),
    "1b-lora-t4-packed-16": ("1b", "lora", packed(BEFORE["t4"], 16, grad_accum=1), True),
    "1b-lora-t4-packed-16-nockpt": ("1b", "lora", packed(BEFORE["t4"], 16, grad_accum=1,
                                                        gradient_checkpointing=False), True),
}


def random_model(shape: str, vocab: int):
    """The shape with random weights in bf16 on the GPU (seconds), the tokenizer's vocabulary."""
    from transformers import LlamaForCausalLM

    config = shape_config(shape)
    config.vocab_size = vocab
    config.max_position_embeddings = 2048
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.config._attn_implementation = "sdpa"
    return model


class StepClock:
    """A trainer callback that records the wall time at the end of every optimiser step (after a sync)."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if DEVICE == "cuda":
                    torch.cuda.synchronize()
                clock.times[state.global_step] = time.perf_counter()

        self.times: dict[int, float] = {}
        self.callback = _Callback()


PROFILE: dict = {"step": 0, "folder": None}  # --profile STEP: torch.profiler over 3 steps from STEP, a table per run


def profile_callback(name: str):
    """A trainer callback that profiles steps STEP..STEP+2 and writes the kernels by total GPU time to a text file."""
    from transformers import TrainerCallback

    class _Profile(TrainerCallback):
        prof = None

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == PROFILE["step"]:
                acts = [torch.profiler.ProfilerActivity.CPU] + (
                    [torch.profiler.ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
                self.prof = torch.profiler.profile(activities=acts)
                self.prof.__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            if self.prof is not None and state.global_step == PROFILE["step"] + 3:
                if DEVICE == "cuda":
                    torch.cuda.synchronize()
                self.prof.__exit__(None, None, None)
                key = "cuda_time_total" if DEVICE == "cuda" else "cpu_time_total"
                table = self.prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=70)
                Path(PROFILE["folder"], f"profile_{name}.txt").write_text(table)
                print(table[:6000], flush=True)
                self.prof = None

    return _Profile()


def packing_check(model, tok, rows) -> dict:
    """Loss of 8 rows as one packed batch (varlen attention) against the same rows padded (sdpa), in bf16."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    preset = packed(BEFORE["h100"], 8) if DEVICE == "cuda" else train.PRESETS["cpu"]
    config = train.sft_config(preset, tempfile.mkdtemp(), steps=1, lr=1e-4, progress=False)
    trainer = train.build_trainer(model, tok, train.reply_first_rows(rows[:8]), None, config,
                                  max_length=2048)
    examples = [trainer.train_dataset[i] for i in range(8)]
    examples = [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples]  # labels: answer only
    losses = {}
    model.eval()
    for layout, padding_free in (("packed varlen", True), ("padded sdpa", False)):
        collate = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=padding_free)
        batch = {k: v.to(DEVICE) if torch.is_tensor(v) else v for k, v in collate(examples).items()}
        batch.pop("seq_idx", None)
        used, _ = attention.for_packed_rows(model, padding_free)
        with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.bfloat16):
            losses[layout] = float(model(**batch, use_cache=False).loss)
        attention.restore(model, "sdpa")
    losses["relative_difference"] = abs(losses["packed varlen"] - losses["padded sdpa"]) / losses["padded sdpa"]
    return losses


def fp32_storage_patch():
    """For full fine-tuning runs not named ``-master``: the model stored in fp32 under bf16 autocast, as train_sft did
    before ``train.masters_in_optimizer`` (the control). Returns an undo function."""
    real = trainer_module.masters_in_optimizer
    trainer_module.masters_in_optimizer = lambda *args: False

    def undo():
        trainer_module.masters_in_optimizer = real

    return undo


def run(name: str, rows, replay, tok, peak: float, steps: int, warmup: int) -> dict:
    shape, method, preset, force_sdpa, *changes = RUNS[name]
    if DEVICE == "cpu":  # --smoke: the code path only, on the tiny shape
        shape, preset = "tiny", replace(preset, dtype="fp32", needs="cpu", optim="adamw_torch")
    model = random_model(shape, len(tok))
    clock = StepClock()
    real, real_config = attention.varlen_available, train.sft_config
    if changes:  # SFTConfig options beyond the preset (Liger kernels, torch.compile, logging cadence)
        train.sft_config = lambda *a, **k: replace(real_config(*a, **k), **changes[0])
        trainer_module.sft_config = train.sft_config
    real_cast, real_fused = trainer_module.adapter_input_casts_off, trainer_module.lora_fused_on_gpu
    if name.endswith("-unfused") or name.endswith("-before"):  # peft's own LoRA forward (before train.fused_lora)
        trainer_module.lora_fused_on_gpu = lambda *args: contextlib.nullcontext(0)
    if name.endswith("-before"):  # the code as it was, too: peft casts every adapter input to fp32
        trainer_module.adapter_input_casts_off = lambda *args: contextlib.nullcontext()
    undo_master = fp32_storage_patch() if method == "full" and not name.endswith("-master") else (lambda: None)
    if force_sdpa:  # the T4's code path: no flash attention, packed rows get sdpa's block mask
        attention.varlen_available = lambda: (False, "forced sdpa (the T4 code path)")
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        callbacks = [clock.callback] + ([profile_callback(name)] if PROFILE["folder"] else [])
        result = train.train_sft(model, rows, method=method, preset=preset, steps=steps, replay=replay,
                                 reply_first=True, tokenizer=tok, output_dir=tempfile.mkdtemp(), eval_steps=10**6,
                                 save_steps=10**6, progress=False, callbacks=callbacks)
    finally:
        attention.varlen_available = real
        trainer_module.adapter_input_casts_off, trainer_module.lora_fused_on_gpu = real_cast, real_fused
        undo_master()
        train.sft_config = trainer_module.sft_config = real_config
    tokens = {h["step"]: h["num_tokens"] for h in result.history if "num_tokens" in h}
    losses = [h["loss"] for h in result.history if "loss" in h]
    last, first = max(tokens), min(step for step in tokens if step >= warmup)
    tps = (tokens[last] - tokens[first]) / (clock.times[last] - clock.times[first])
    fpt = flops_per_token(model.config, method)
    out = {
        "shape": shape, "method": method, "preset": asdict(preset), "attention": "sdpa" if force_sdpa or
        not preset.padding_free else attention.VARLEN, "steps": steps, "timed_steps": last - first,
        "real_tokens_timed": tokens[last] - tokens[first], "config_changes": changes[0] if changes else {}, "tokens_per_s": round(tps),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if DEVICE == "cuda" else 0.0,
        "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3),
        "mfu_vs_989_tflops": round(fpt * tps / 989e12, 4), "mfu_vs_measured_peak": round(fpt * tps / peak, 4),
        "trainable_params": result.trainable_params, "seconds_whole_run": round(result.seconds, 1),
    }
    del model, result
    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="steps not timed")
    parser.add_argument("--smoke", action="store_true", help="on a CPU: the tiny shape, 3 steps, no results file")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_greenleaf.json"))
    parser.add_argument("--profile", metavar="STEP", type=int, default=0,
                        help="profile 3 steps from STEP in each run; tables written beside --out")
    args = parser.parse_args()
    from machine import machine, versions

    if args.profile:
        PROFILE.update(step=args.profile, folder=str(Path(args.out).parent))

    if args.smoke:
        args.steps, args.warmup, args.out = 4, 1, tempfile.mktemp(suffix=".json")

    tok = models.load_tokenizer("tiny")
    rows, replay = data.load_split("train"), data.load_split("replay")
    peak = matmul_peak()
    results = {"command": " ".join(sys.argv), "machine": machine(),
               "versions": versions(("torch", "transformers", "trl", "peft", "accelerate", "datasets")),
               "matmul_peak_tflops": round(peak / 1e12), "train_rows": len(rows), "replay_rows": len(replay),
               "recipe": "train.train_sft(reply_first=True, replay=replay rows, short system prompt), LoRA r16 "
                         "all-linear, lr default; random weights, vocabulary 49,152", "runs": {}}
    model = random_model("1b" if DEVICE == "cuda" else "tiny", len(tok))
    results["packing_check_1b"] = packing_check(model, tok, rows)
    print("packing check", results["packing_check_1b"], flush=True)
    del model
    for name in args.only:
        try:
            results["runs"][name] = run(name, rows, replay, tok, peak, args.steps, args.warmup)
        except torch.OutOfMemoryError as err:
            results["runs"][name] = {"error": f"out of memory: {str(err)[:200]}"}
        gc.collect()
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
        print(name, json.dumps(results["runs"][name]), flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"{'run':<30}{'tok/s':>9}{'peak GiB':>10}{'MFU(989)':>9}  loss")
    for name, r in results["runs"].items():
        if "error" not in r:
            print(f"{name:<30}{r['tokens_per_s']:>9}{r['peak_gib']:>10.1f}{r['mfu_vs_989_tflops']:>9.1%}  "
                  f"{r['loss_first']:.2f} -> {r['loss_last']:.2f}")


if __name__ == "__main__":
    main()
