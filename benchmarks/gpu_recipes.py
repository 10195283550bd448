"""The textbook QLoRA recipe against the course's, on one GPU, with random weights of real shapes.

    python benchmarks/gpu_recipes.py --out benchmarks/results/gpu_recipes.json [--only 8b-qlora] [--steps 10]

Memory and speed do not depend on the weights' values, so each shape is built with random weights, saved once in
bf16 and loaded back with ``from_pretrained`` (4-bit through ``BitsAndBytesConfig``, as a learner loads a hub
model). Every run trains on the same examples, tokens drawn from a Zipf law over the vocabulary (so the loss has
something to learn and must go down), with lengths from a long-tailed law: lognormal, median 300 tokens,
sigma 0.9, clipped to [32, 2048] (mean about 430: most rows short, a few long, as in chat and support data).
Examples are grouped into optimiser steps of up to ``--tokens`` real tokens (8192), the same groups for every run.

* ``naive``: the textbook recipe. 4-bit load, ``prepare_model_for_kbit_training`` with its defaults (every bf16
  weight that is not 4-bit cast to fp32, gradient checkpointing on), micro-batches of 4 examples padded to the
  longest of the four, gradient accumulation over the step, the model's own loss (fp32 logits of every position).
* ``course``: 4-bit load, no fp32 upcast, non-reentrant gradient checkpointing, each step's examples packed into
  one row without padding (``position_ids`` restart per example, so attention stays inside each example), and a
  loss computed over the vocabulary in chunks (Liger's fused linear cross-entropy, or the same in plain PyTorch
  chunks with checkpointing when Liger is missing): the full logits never exist.

Options of the course recipe, each measured against a control (``gpu_recipes_8b_variants.json``): ``--adapter-autocast``
(bf16 autocast, peft's fp32 cast of adapter inputs off, as train_sft), ``--fused-lora`` (each LoRA update as one
addmm, ``train.fused_lora``), ``--offload-checkpoints`` (checkpointed layer inputs in pinned CPU memory,
``train.offload``; pair it with a larger ``--tokens``), ``--offload-activations`` (trl's: everything offloaded).

Throughput counts real (non-padding) tokens only. MFU = model FLOPs per token x tokens/s over the GPU's peak,
measured here with one 8192^3 bf16 matrix product; FLOPs per token are 6N for full fine-tuning and 4N for (Q)LoRA
(forward 2N, backward through the activations 2N; frozen weights get no weight gradient), N the parameters of the
linear layers and the head; attention's own FLOPs and the recomputation of checkpointing are not counted.
The peak memory of each run is compared with ``course_lib.memory.peak_memory``'s prediction for the same setup.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from course_lib.train.launch import shape_config  # noqa: E402  (the run's shape; the launcher builds the same ones)

RUNS = {  # name: (shape, method, recipe)
    "tiny-qlora-naive": ("tiny", "qlora", "naive"), "tiny-qlora-course": ("tiny", "qlora", "course"),
    "tiny-full-course": ("tiny", "full", "course"),
    "135m-qlora-naive": ("135m", "qlora", "naive"), "135m-qlora-course": ("135m", "qlora", "course"),
    "1b-qlora-naive": ("1b", "qlora", "naive"), "1b-qlora-course": ("1b", "qlora", "course"),
    "1b-full-course": ("1b", "full", "course"),
    "8b-qlora-naive": ("8b", "qlora", "naive"), "8b-qlora-course": ("8b", "qlora", "course"),
}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU only for a smoke run of the code (--only tiny-*)
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear")


def examples(vocab: int, n: int, seed: int = 0) -> list[torch.Tensor]:
    """``n`` rows of token ids: lognormal lengths (median 300, sigma 0.9, in [32, 2048]), Zipf-distributed ids."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.exp(math.log(300) + 0.9 * torch.randn(n, generator=g)).round().clamp(32, 2048).long()
    ranks = torch.arange(1, vocab + 1, dtype=torch.float64)
    zipf = (1 / ranks) / (1 / ranks).sum()
    return [torch.multinomial(zipf, int(k), replacement=True, generator=g) for k in lengths]


def steps_of(rows: list[torch.Tensor], budget: int) -> list[list[torch.Tensor]]:
    """Consecutive rows grouped into optimiser steps of at most ``budget`` real tokens."""
    groups, current, size = [], [], 0
    for row in rows:
        if current and size + len(row) > budget:
            groups.append(current)
            current, size = [], 0
        current.append(row)
        size += len(row)
    return groups + ([current] if current else [])


def save_random(name: str, folder: Path) -> Path:
    """The shape with random weights, saved once in bf16 (initialised on the GPU: seconds even for 8B)."""
    from transformers import LlamaForCausalLM

    path = folder / name
    if (path / "config.json").exists():
        return path
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = LlamaForCausalLM(shape_config(name)).to(torch.bfloat16)
    model.save_pretrained(path)
    del model
    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    return path


ATTENTION = {"naive": "sdpa", "course": "sdpa"}  # --course-attention changes the course recipe's
LIGER_LAYERS = {"course": False}  # --liger-layers: Liger's RMSNorm, SwiGLU and RoPE kernels in the course recipe
# --offload-activations: the course recipe keeps no activations on the GPU between forward and backward: trl's
# OffloadActivations moves them to pinned CPU memory on a side stream, instead of recomputing them (checkpointing).
# --adapter-autocast: the (Q)LoRA step runs under bf16 autocast with peft's fp32 cast of adapter inputs switched off,
# as train_sft does (train.adapter_input_casts_off); without it peft copies every adapter input to fp32.
# --fused-lora: each LoRA layer's update as one addmm (train.fused_lora, as train_sft on a GPU); needs --adapter-autocast
# --offload-checkpoints: checkpointing with each layer's saved input in pinned CPU memory (train.offload)
COURSE_OPTIONS = {"offload_activations": False, "adapter_autocast": False, "fused_lora": False,
                  "offload_checkpoints": False}


def load(path: Path, method: str, recipe: str = "naive"):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs = dict(dtype=torch.bfloat16, device_map={"": 0 if DEVICE == "cuda" else "cpu"},
                  attn_implementation=ATTENTION[recipe])
    if method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
    elif method == "full":
        kwargs["dtype"] = torch.float32  # fp32 master weights; the forward runs under bf16 autocast
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def prepare(model, method: str, recipe: str):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if method == "full":
        model.config.use_cache = False
        return model
    if recipe == "course" and LIGER_LAYERS["course"]:
        from liger_kernel.transformers import apply_liger_kernel_to_llama

        apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False, model=model)
    if recipe == "naive":
        model = prepare_model_for_kbit_training(model)  # the defaults: fp32 upcast, checkpointing on
    elif not COURSE_OPTIONS["offload_activations"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
    if recipe == "course" and COURSE_OPTIONS["offload_checkpoints"]:
        from course_lib.train.offload import offload_checkpoints

        offload_checkpoints(model)
    return model


def naive_step(model, group: list[torch.Tensor]) -> float:
    """Micro-batches of 4 padded to their longest row; the model's own loss; gradients accumulated."""
    losses, real = [], sum(len(r) for r in group)
    for start in range(0, len(group), 4):
        batch = group[start:start + 4]
        width = max(len(r) for r in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for i, r in enumerate(batch):
            ids[i, :len(r)], mask[i, :len(r)] = r, 1
        labels = ids.masked_fill(mask == 0, -100)
        out = model(input_ids=ids.to(DEVICE), attention_mask=mask.to(DEVICE), labels=labels.to(DEVICE))
        weight = sum(len(r) - 1 for r in batch) / (real - len(group))  # token-weighted mean over the step
        (out.loss * weight).backward()
        losses.append(out.loss.item() * weight)
    return sum(losses)


def course_step_loss(model, group: list[torch.Tensor], method: str = "lora") -> tuple[torch.Tensor, str]:
    """The course's step (``course_lib.qlora.packed_loss``): one packed row, varlen attention, chunked loss."""
    from course_lib import qlora

    with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=method == "full" or COURSE_OPTIONS["adapter_autocast"]):
        loss = qlora.packed_loss(model, group)
    fused = DEVICE == "cuda" and importlib.util.find_spec("liger_kernel") is not None
    return loss, "liger" if fused else "chunked-torch"


def course_step(model, group: list[torch.Tensor], method: str) -> tuple[float, str]:
    import contextlib

    from peft.helpers import disable_input_dtype_casting
    from trl.models import get_act_offloading_ctx_manager

    with contextlib.ExitStack() as stack:
        if COURSE_OPTIONS["offload_activations"]:
            stack.enter_context(get_act_offloading_ctx_manager(model, warn_if_no_head=False))
        if COURSE_OPTIONS["adapter_autocast"] and method != "full":
            stack.enter_context(disable_input_dtype_casting(model))
            stack.enter_context(torch.autocast(DEVICE, dtype=torch.bfloat16))
        if COURSE_OPTIONS["fused_lora"] and method != "full":
            from course_lib.train.fused_lora import fused_lora

            stack.enter_context(fused_lora(model))
        loss, how = course_step_loss(model, group, method)
        loss.backward()
    return loss.item(), how


def flops_per_token(config, method: str) -> float:
    from course_lib.lora import base_parameter_count

    n = base_parameter_count(config) - config.vocab_size * config.hidden_size * (not config.tie_word_embeddings)
    n += config.vocab_size * config.hidden_size  # the head's matmul counts, the embedding lookup does not
    return (6 if method == "full" else 4) * n


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def matmul_peak() -> float:
    n = 8192 if DEVICE == "cuda" else 512
    a = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync()
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    sync()
    return 20 * 2 * n ** 3 / (time.perf_counter() - start)


def check_packing(path: Path, rows: list[torch.Tensor]) -> float:
    """The packed row's loss against the same examples run one by one: relative difference (bf16: about 1e-3).
    Attention that leaked across examples would show here as a difference of several percent."""
    from transformers import AutoModelForCausalLM

    exact = ATTENTION["course"] != "course_varlen"  # flash attention needs bf16: compare within bf16's rounding
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if exact else torch.bfloat16,
                                                 attn_implementation=ATTENTION["course"]).to(DEVICE).eval()
    with torch.no_grad():
        packed, _ = course_step_loss(model, rows)
        model.set_attn_implementation("sdpa")
        each = sum(model(input_ids=r[None].to(DEVICE), labels=r[None].to(DEVICE)).loss.item() * (len(r) - 1)
                   for r in rows) / sum(len(r) - 1 for r in rows)
    del model
    return abs(packed.item() - each) / each


def predicted_gib(config, method: str, recipe: str, groups: list[list[torch.Tensor]]) -> float:
    """``course_lib.memory.peak_memory`` for this run's largest step: the naive recipe peaks at its widest padded
    micro-batch (4 rows x the longest of them), the course recipe at its longest packed row (batch 1)."""
    from course_lib import memory

    kwargs = dict(method="full" if method == "full" else "lora", weights="fp32" if method == "full" else "4bit",
                  checkpointing=method != "full", r=LORA["r"], targets="all-linear")
    if method == "full":
        kwargs["optimizer"] = "paged_adamw_8bit"
    if recipe == "naive":
        width = max(max(len(r) for r in g[s:s + 4]) for g in groups for s in range(0, len(g), 4))
        kwargs.update(batch_size=4, seq_len=width, logits="fp32", upcast_fp32=True)
    else:
        kwargs.update(batch_size=1, seq_len=max(sum(len(r) for r in g) for g in groups), logits="chunked",
                      padding_free=True)
    return round(memory.peak_memory(config, **kwargs)["total"] / 2**30, 2)


def repredict(path: Path) -> None:
    """Recompute every run's ``predicted_gib`` in a results file with today's memory model (no GPU needed: the
    examples and their grouping are deterministic)."""
    results = json.loads(path.read_text())
    for name, r in results["runs"].items():
        if "error" not in r:
            rows = examples(shape_config(r["shape"]).vocab_size, 4000)
            groups = steps_of(rows, results["tokens_per_step"])[: r["steps"]]
            r["predicted_gib"] = predicted_gib(shape_config(r["shape"]), r["method"], r["recipe"], groups)
    path.write_text(json.dumps(results, indent=1) + "\n")


PROFILE = {"folder": None}  # --profile: torch.profiler over the step after the untimed ones, a table beside --out


def _profiler():
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
    return torch.profiler.profile(activities=acts)


def run(name: str, path: Path, groups: list[list[torch.Tensor]], warmup: int, peak: float) -> dict:
    shape, method, recipe = RUNS[name]
    torch.manual_seed(0)
    model = prepare(load(path, method, recipe), method, recipe)
    params = [p for p in model.parameters() if p.requires_grad]
    if method == "full":
        import bitsandbytes as bnb

        optimizer = bnb.optim.PagedAdamW8bit(params, lr=5e-5)
    else:
        optimizer = torch.optim.AdamW(params, lr=2e-4, fused=True)
    model.train()
    sync()
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses, how, tokens, padded_width = [], "hf-loss", 0, 0
    for i, group in enumerate(groups):
        if i == warmup:
            sync()
            start, tokens = time.perf_counter(), 0
        profiler = PROFILE["folder"] and i == warmup + 1 and _profiler()
        if profiler:
            profiler.__enter__()
        if recipe == "naive":
            losses.append(naive_step(model, group))
            padded_width += sum(4 * max(len(r) for r in group[s:s + 4]) for s in range(0, len(group), 4))
        else:
            loss, how = course_step(model, group, method)
            losses.append(loss)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += sum(len(r) for r in group)
        if profiler:
            sync()
            profiler.__exit__(None, None, None)
            table = profiler.key_averages().table(sort_by="cuda_time_total", row_limit=45, max_name_column_width=70)
            Path(PROFILE["folder"], f"profile_{name}.txt").write_text(table)
    sync()
    seconds = time.perf_counter() - start
    config = shape_config(shape)
    tps = tokens / seconds
    result = {
        "shape": shape, "method": method, "recipe": recipe, "loss_impl": how, "steps": len(groups),
        "timed_steps": len(groups) - warmup, "real_tokens_timed": tokens, "tokens_per_s": round(tps),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if DEVICE == "cuda" else 0.0,
        "reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if DEVICE == "cuda" else 0.0,
        "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3),
        "loss_went_down": losses[-1] < losses[0],
        "trainable_params": sum(p.numel() for p in params),
        "mfu_vs_measured_peak": round(flops_per_token(config, method) * tps / peak, 4),
        "mfu_vs_989_tflops": round(flops_per_token(config, method) * tps / 989e12, 4),
        "predicted_gib": predicted_gib(config, method, recipe, groups),
    }
    if recipe == "naive":
        result["padding_share"] = round(1 - sum(len(r) for g in groups for r in g) / padded_width, 3)
    del model, optimizer, params
    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_recipes.json"))
    parser.add_argument("--only", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per run (the first 2 not timed)")
    parser.add_argument("--tokens", type=int, default=8192, help="real tokens per optimiser step, at most")
    parser.add_argument("--models", default="/tmp/random-models")
    parser.add_argument("--course-attention", default="sdpa", choices=["sdpa", "flex_attention", "course_varlen"],
                        help="the course recipe's attention (sdpa: a block mask per packed row)")
    parser.add_argument("--liger-layers", action="store_true",
                        help="the course recipe also uses Liger's RMSNorm, SwiGLU and RoPE kernels")
    parser.add_argument("--offload-activations", action="store_true",
                        help="the course recipe offloads activations to CPU (trl) instead of checkpointing")
    parser.add_argument("--fused-lora", action="store_true",
                        help="each LoRA layer's update as one addmm (train.fused_lora); with --adapter-autocast")
    parser.add_argument("--adapter-autocast", action="store_true",
                        help="the course (Q)LoRA step under bf16 autocast, peft's fp32 input cast off")
    parser.add_argument("--offload-checkpoints", action="store_true",
                        help="checkpointed layer inputs wait in CPU memory (train.offload_checkpoints)")
    parser.add_argument("--repeat-kv", action="store_true",
                        help="course_varlen copies K and V to every query head (as before it passed them as they are)")
    parser.add_argument("--profile", action="store_true",
                        help="profile one timed step of each run (slows that run); kernel tables beside --out")
    parser.add_argument("--repredict", metavar="RESULTS", help="only recompute the predictions in a results file")
    args = parser.parse_args()
    if args.repredict:
        return repredict(Path(args.repredict))
    PROFILE["folder"] = str(Path(args.out).parent) if args.profile else None
    if args.repeat_kv:
        from course_lib import attention

        attention._fewer_kv_heads_work = lambda *args: False
    ATTENTION["course"] = args.course_attention
    LIGER_LAYERS["course"] = args.liger_layers
    COURSE_OPTIONS.update(offload_activations=args.offload_activations, adapter_autocast=args.adapter_autocast,
                          fused_lora=args.fused_lora, offload_checkpoints=args.offload_checkpoints)
    if args.fused_lora and not args.adapter_autocast:
        parser.error("--fused-lora needs --adapter-autocast: without autocast peft's fp32 adapters see bf16 inputs, "
                     "and the layers keep peft's forward")
    if args.course_attention == "course_varlen":
        from course_lib.qlora import register_varlen_attention

        register_varlen_attention()
    from machine import machine, versions

    peak = matmul_peak()
    results = {"command": " ".join(sys.argv), "machine": machine(),
               "versions": versions(("torch", "transformers", "peft", "bitsandbytes", "liger-kernel")),
               "lengths": "lognormal, median 300, sigma 0.9, clipped to [32, 2048]; Zipf token ids",
               "tokens_per_step": args.tokens, "course_attention": args.course_attention,
               "liger_layers": args.liger_layers, "course_options": dict(COURSE_OPTIONS), "matmul_peak_tflops": round(peak / 1e12), "runs": {}}
    for name in args.only:
        shape = RUNS[name][0]
        rows = examples(shape_config(shape).vocab_size, 4000)
        groups = steps_of(rows, args.tokens)[: args.steps]
        path = save_random(shape, Path(args.models))
        if f"{shape}_packing_rel_diff" not in results:
            results[f"{shape}_packing_rel_diff"] = check_packing(path, groups[0][:6])
            print(f"{shape}: packed loss vs one by one, relative difference {results[f'{shape}_packing_rel_diff']:.2e}")
            assert results[f"{shape}_packing_rel_diff"] < 5e-3, "attention leaks across packed examples"
            results["packing_check"] = ("packed loss of 6 examples (course attention) against each example alone "
                                        "(sdpa); fp32, or bf16 for the flash kernel")
        try:
            results["runs"][name] = run(name, path, groups, warmup=2, peak=peak)
        except torch.OutOfMemoryError as err:
            results["runs"][name] = {"error": f"out of memory: {str(err)[:200]}"}
            gc.collect()
            torch.cuda.empty_cache()
        print(name, json.dumps(results["runs"][name]), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")  # after each run: a timeout keeps the rest
    for shape in ("135m", "1b", "8b"):
        naive, course = results["runs"].get(f"{shape}-qlora-naive"), results["runs"].get(f"{shape}-qlora-course")
        if naive and course and "error" not in naive and "error" not in course:
            results[f"{shape}_qlora_course_over_naive"] = {
                "tokens_per_s": round(course["tokens_per_s"] / naive["tokens_per_s"], 2),
                "peak_memory": round(course["peak_gib"] / naive["peak_gib"], 2)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"{'run':<20}{'tok/s':>8}{'peak GiB':>10}{'pred GiB':>10}{'MFU':>7}  loss")
    for name, r in results["runs"].items():
        if "error" in r:
            print(f"{name:<20} {r['error'][:60]}")
            continue
        pred = f"{r['predicted_gib']:.1f}" if r["predicted_gib"] else "-"
        print(f"{name:<20}{r['tokens_per_s']:>8}{r['peak_gib']:>10.1f}{pred:>10}{r['mfu_vs_measured_peak']:>7.1%}  "
              f"{r['loss_first']:.2f} -> {r['loss_last']:.2f}")


if __name__ == "__main__":
    main()
