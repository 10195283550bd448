"""LoRA's update folded into one matrix product, for training on a GPU.

peft computes a LoRA layer as ``result = base(x) + B(A(x)) * scaling``: after the two small matrix products come
two passes over the whole ``(tokens x out_features)`` output, one to scale it and one to add it, and a third in the
backward pass for the scaling. On a GPU those passes cost as much as the matrix products of the frozen model
(a profile of the 1.1B LoRA recipe on an H100: half its GPU time in element-wise kernels). ``torch.addmm`` does the
last product, the scaling and the sum in one cuBLAS call (its epilogue), so here each LoRA layer runs
``addmm(base(x), A(x), B^T, alpha=scaling)``: the same function, fewer passes over memory.

``fused_lora(model)`` swaps that forward into every plain LoRA linear layer of a peft model for the duration of a
``with`` block (``train.train_sft`` wraps training on a GPU with it) and puts peft's own back afterwards. Layers it
cannot fuse keep peft's forward: dropout on the adapter input, DoRA or another variant, several active adapters,
merged adapters. QLoRA's 4-bit layers (peft's ``Linear4bit``) fuse the same way: ``base(x)`` is bitsandbytes' 4-bit
product, and the addmm also spares the copy of it that peft makes. ``tests/test_fused_lora.py`` checks outputs and
gradients against peft's, for 4-bit layers too.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Iterator

import torch


def fusable(module: torch.nn.Module) -> bool:
    """True for a peft LoRA ``Linear`` (or 4-bit ``Linear4bit``) whose forward ``fused_lora`` can replace: one
    active adapter, no dropout, no variant (DoRA ...), not merged, adapters enabled."""
    if type(module) not in _lora_linear_types() or module.merged or module.disable_adapters or module.lora_variant:
        return False
    if len(module.active_adapters) != 1 or module.active_adapters[0] not in module.lora_A:
        return False
    return isinstance(module.lora_dropout[module.active_adapters[0]], torch.nn.Identity)


@functools.cache  # fusable asks in every forward of every layer, and Python retries a failed import every time
def _lora_linear_types() -> tuple[type, ...]:
    """peft's LoRA ``Linear`` and, when bitsandbytes is installed, its 4-bit ``Linear4bit`` (QLoRA): both compute
    ``base(x) + B(A(x)) * scaling``; the 4-bit one first copies ``base(x)`` (a "defensive clone" its comment says
    older PyTorch needed), a fourth pass over the output that the fused forward does not make."""
    from peft.tuners.lora.layer import Linear

    try:  # peft's bnb module imports bitsandbytes, which a LoRA run without 4-bit layers need not have
        from peft.tuners.lora import bnb as lora_bnb
    except ImportError:
        return (Linear,)
    return (Linear,) + ((lora_bnb.Linear4bit,) if hasattr(lora_bnb, "Linear4bit") else ())


def _fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    name = self.active_adapters[0]
    a, b = self.lora_A[name].weight, self.lora_B[name].weight
    same_dtype = x.dtype == a.dtype == b.dtype
    if (kwargs.get("adapter_names") is not None or not fusable(self)
            or not (same_dtype or torch.is_autocast_enabled(x.device.type))):
        return type(self).forward(self, x, *args, **kwargs)  # peft's own, e.g. bf16 input and fp32 adapters
    result = self.base_layer(x, *args, **kwargs)
    low_rank = torch.nn.functional.linear(x, a)
    fused = torch.addmm(result.reshape(-1, result.shape[-1]), low_rank.reshape(-1, low_rank.shape[-1]), b.t(),
                        alpha=self.scaling[name])
    return fused.view(result.shape).to(result.dtype)


@contextlib.contextmanager
def fused_lora(model: torch.nn.Module) -> Iterator[int]:
    """Within the block, every fusable LoRA layer of ``model`` runs ``addmm(base(x), A(x), B^T, alpha=scaling)``;
    yields how many layers were fused. peft's forward is back when the block ends, even on an error."""
    swapped = [m for m in model.modules() if fusable(m)]
    for module in swapped:
        module.forward = types.MethodType(_fused_forward, module)
    try:
        yield len(swapped)
    finally:
        for module in swapped:
            del module.forward  # the instance attribute goes: the class's (peft's) forward is used again
