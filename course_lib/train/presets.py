"""Training presets: the numbers a run uses on each kind of hardware (``cpu``, ``t4``, ``h100``), how one is picked
or checked against this machine (``choose_preset``), and how many CPU threads to train with (``cpu_threads``).
``TrainSetupError`` (training cannot start as asked) and the default learning rates live here too: every other
module of ``course_lib.train`` builds on them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from course_lib import models


DEFAULT_LR = {"lora": 2e-4, "full": 5e-5}  # full FT moves every weight: a smaller step keeps what the model knew


class TrainSetupError(ValueError):
    """Training cannot start as asked; the message says what is wrong and what to do instead."""


def _check_method(method: str) -> None:
    if method not in DEFAULT_LR:
        raise TrainSetupError(f"method={method!r}: use 'lora' (train small adapters) or 'full' (train every weight).")


@dataclass(frozen=True)
class Preset:
    name: str  # "cpu", "t4" or "h100": the hardware this recipe is sized for
    dtype: str  # compute dtype: "fp32" (CPUs without bf16 instructions), "fp16" (T4), "bf16" (Ampere+, bf16 CPUs)
    batch_size: int  # examples per forward pass (per device)
    grad_accum: int  # forward passes summed per optimiser step: effective batch = batch_size * grad_accum
    max_length: int  # longest example in tokens (prompt + answer); longer rows are an error, never cut
    gradient_checkpointing: bool  # recompute activations during backward: less memory, ~30% more time
    optim: str  # optimiser name as transformers spells it
    padding_free: bool  # concatenate a batch into one row (no pad tokens) instead of padding to its longest row
    needs: str  # what the hardware must offer: "cpu", "cuda" or "cuda+bf16"

    def describe(self) -> str:
        """One line: the numbers that matter."""
        layout = "padding-free" if self.padding_free else "padded"
        return (f"preset {self.name!r}: {self.dtype}, batch {self.batch_size} x accumulation {self.grad_accum}, "
                f"max {self.max_length} tokens, {layout}, gradient checkpointing "
                f"{'on' if self.gradient_checkpointing else 'off'}, {self.optim}")


PRESETS: dict[str, Preset] = {
    # CPU: memory is plentiful and time is scarce: no checkpointing (it costs time to save memory), no pad tokens.
    # choose_preset switches it to bf16 autocast on CPUs with bf16 instructions (2x faster measured).
    "cpu": Preset("cpu", "fp32", batch_size=4, grad_accum=1, max_length=512, gradient_checkpointing=False,
                  optim="adamw_torch", padding_free=True, needs="cpu"),
    # Colab T4 (16 GB, compute capability 7.5): fp16 with loss scaling; checkpointing keeps 1B-3B models in memory.
    # 16 rows packed into one (sdpa's block mask: a T4 has no flash attention) instead of 4 padded rows x 4
    # accumulation steps: the same 16 examples a step, 3.3x the tokens/s for 1.1B LoRA on this code path
    # (measured on an H100 running it: benchmarks/results/gpu_greenleaf_t4.json; a T4 gains less).
    "t4": Preset("t4", "fp16", batch_size=16, grad_accum=1, max_length=1024, gradient_checkpointing=True,
                 optim="adamw_torch_fused", padding_free=True, needs="cuda"),
    # H100 / A100 / any bf16 GPU: 64 rows packed into one, with variable-length flash attention
    # (course_lib.attention), no checkpointing. 1.1B LoRA on GreenLeaf rows: 27.5k tokens/s at 17.5 GiB against 4.6k
    # for 16 padded rows (benchmarks/results/gpu_greenleaf.json). 128 rows ran 40k tokens/s at 30 GiB, too much for a
    # 24 GB GPU. Memory grows with the tokens in a batch (64 x your row length): for long rows lower batch_size or turn
    # checkpointing on (notebook 05's memory model says what fits). An optimiser step sees 64 examples, 16 on a T4
    # and 4 on a CPU: for the same passes over the data, give a GPU run fewer steps.
    "h100": Preset("h100", "bf16", batch_size=64, grad_accum=1, max_length=2048, gradient_checkpointing=False,
                   optim="adamw_torch_fused", padding_free=True, needs="cuda+bf16"),
}


def choose_preset(name: str | Preset | None = None) -> tuple[Preset, str]:
    """Pick a preset from the hardware (``name=None``) or check that ``name`` can run here; return it and why."""
    has_cuda = torch.cuda.is_available()
    has_bf16 = has_cuda and torch.cuda.is_bf16_supported()
    gpu = torch.cuda.get_device_name() if has_cuda else None
    if isinstance(name, Preset):
        preset, reason = name, "a preset you built yourself"
    elif name is None:
        if has_bf16:
            preset, reason = PRESETS["h100"], f"{gpu} supports bf16"
        elif has_cuda:
            preset, reason = PRESETS["t4"], f"{gpu} has no bf16, so fp16 with loss scaling"
        else:
            preset, reason = PRESETS["cpu"], "no CUDA GPU"
    elif name in PRESETS:
        preset, reason = PRESETS[name], "asked for by name"
    else:
        raise TrainSetupError(f"Unknown preset {name!r}. Use one of {sorted(PRESETS)}, or preset=None to pick from "
                              "the hardware.")
    if preset is PRESETS["cpu"] and models.cpu_has_native_bf16():
        preset = replace(preset, dtype="bf16")
        reason += "; this CPU has bf16 instructions, so bf16 autocast (fp32 master weights): about 2x faster than fp32"
    elif preset is PRESETS["cpu"]:
        reason += "; this CPU has no bf16 instructions, so fp32"
    if preset.needs.startswith("cuda") and not has_cuda:
        raise TrainSetupError(
            f"Preset {preset.name!r} trains in {preset.dtype} on a CUDA GPU, but PyTorch sees no CUDA GPU on this "
            "machine. Use preset='cpu' here (or preset=None to pick from the hardware), or run on a GPU machine.")
    if preset.needs == "cuda+bf16" and not has_bf16:
        raise TrainSetupError(
            f"Preset {preset.name!r} trains in bf16, which {gpu} does not support (bf16 needs compute capability "
            "8.0+). Use preset='t4' (fp16) on this GPU, or preset=None to pick from the hardware.")
    if preset.dtype == "bf16" and not (models.cpu_has_native_bf16() if preset.needs == "cpu" else has_bf16):
        raise TrainSetupError(f"Preset {preset.name!r} asks for bf16, which this machine cannot train in. Use "
                              "dtype='fp32' on a CPU or 'fp16' on an older GPU.")
    return preset, reason


def storage_dtype(preset: Preset, method: str, model_dtype: torch.dtype) -> tuple[torch.dtype, str]:
    """The dtype the trained copy's weights are kept in during training, and why. Compute precision comes from
    autocast (the preset's ``dtype``); what is stored is what the optimiser updates. Full fine-tuning of a bf16 or
    fp16 model needs fp32 master weights: an Adam step moves a weight by about the learning rate (5e-5), and next to
    a weight of 0.02 that is less than half of bf16's rounding step there (2^-13 = 1.2e-4), so the update rounds
    away and the weight never moves (``tests/test_train_units.py`` shows it). LoRA's adapters are fp32 already
    (peft), so the frozen base may stay in 16 bits on a GPU."""
    _check_method(method)
    if model_dtype == torch.float32:
        return model_dtype, "already fp32"
    if preset.needs == "cpu":
        return torch.float32, "CPU: fp32 master weights, bf16 compute from autocast where the CPU has bf16 instructions"
    if method == "full":
        return torch.float32, ("full fine-tuning: fp32 master weights (a 5e-5 step on a 16-bit weight of 0.02 "
                               "rounds away), 16-bit compute from autocast")
    return model_dtype, "LoRA: the frozen base stays in 16 bits, the adapters train in fp32"


def cpu_threads(threads: int | None = None) -> tuple[int, str]:
    """Set how many CPU threads PyTorch uses: ``threads``, or the physical cores that other programs leave free,
    from a 0.3 s sample of CPU use taken while this process is idle (the load average would count this notebook's
    own last cell as "other programs"). More threads than free cores is much SLOWER, not a little: the threads wait
    for each other (4x slower measured with 2 threads on a 2-core machine shared with other jobs)."""
    import psutil  # installed with jupyter (ipykernel)

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    if threads is None:
        busy = psutil.cpu_percent(interval=0.3) / 100 * (psutil.cpu_count() or cores)
        threads = max(1, min(cores, round(cores - busy)))
        reason = f"{cores} physical cores, about {min(busy, cores):.1f} of them busy with other programs"
    else:
        reason = "asked for"
    torch.set_num_threads(threads)
    return threads, reason
