"""Merging in a low-precision dtype (notebook 03's experiment): how much merging ``W + ΔW`` into base weights stored
in bf16 or fp16 changes a LoRA model's logits, and how much of the update ``ΔW`` the rounding loses.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib.lora.layer import LoRALinear, lora_layers, merge_lora


def _unmerged_lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    layers = lora_layers(model)
    if not layers:
        raise ValueError("This model has no LoRA layers: call inject_lora (and train) before comparing merges.")
    if any(layer.merged for layer in layers.values()):
        raise ValueError("This model's LoRA layers are already merged, so there is nothing left to compare. "
                         "Call unmerge_lora(model) first, or use the model from before merge_lora.")
    return layers


def _lora_copy_in(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of a LoRA model whose base parameters are stored in ``dtype``; the adapters keep their own dtype."""
    import copy

    _unmerged_lora_layers(model)
    clone = copy.deepcopy(model)
    adapters = {id(p) for layer in lora_layers(clone).values() for p in (layer.lora_A.weight, layer.lora_B.weight)}
    for param in clone.parameters():  # shared (tied) parameters appear once
        if id(param) not in adapters:
            param.data = param.data.to(dtype)
    return clone


@torch.no_grad()
def merge_logit_gap(model: nn.Module, input_ids: torch.Tensor, dtype: torch.dtype) -> float:
    """Max |logit| difference, on ``input_ids``, between a LoRA model and the same model merged, when the base weights
    are stored in ``dtype`` (the fp32 adapters are left as they are). ``model`` itself is not changed."""
    clone = _lora_copy_in(model, dtype).eval()
    input_ids = input_ids.to(next(clone.parameters()).device)
    before = clone(input_ids=input_ids).logits.float()
    merge_lora(clone)
    after = clone(input_ids=input_ids).logits.float()
    return (after - before).abs().max().item()


def _sample(t: torch.Tensor, k: int = 20_000) -> torch.Tensor:
    flat = t.flatten()
    return flat[:: max(1, flat.numel() // k)]


@torch.no_grad()
def merge_rounding(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """What storing the merged weight ``W + ΔW`` in ``dtype`` does to the LoRA update ``ΔW``, over all LoRA layers.

    ``median_abs_w`` and ``median_abs_update``: typical sizes of W's and ΔW's entries; ``median_step``: the typical
    gap between neighbouring ``dtype`` numbers at W's entries (rounding moves a number by up to half of it);
    ``lost_share``: the share of ΔW's non-zero entries that vanish (``W + ΔW`` rounds back to ``W``);
    ``update_error``: ``‖(merged − W) − ΔW‖ / ‖ΔW‖``, how much of the update the rounding changed (0 = none).
    Medians come from an evenly spaced sample of each layer's entries.
    """
    layers = _unmerged_lora_layers(model).values()
    eps = torch.finfo(dtype).eps
    lost = nonzero = 0
    err_sq = upd_sq = 0.0
    w_s, step_s, d_s = [], [], []
    for layer in layers:
        w = layer.base.weight.to(dtype).float()  # W as a model stored in dtype holds it
        delta = layer.delta_weight().float()
        stored = (w + delta).to(dtype).float() - w  # the update as the merged dtype weight carries it
        moved = delta != 0
        lost += int(((stored == 0) & moved).sum())
        nonzero += int(moved.sum())
        err_sq += float(((stored - delta) ** 2).sum())
        upd_sq += float((delta ** 2).sum())
        _, exponent = torch.frexp(w)  # w = m · 2**exponent with 0.5 <= |m| < 1
        w_s.append(_sample(w.abs()))
        step_s.append(_sample(eps * torch.pow(2.0, exponent.float() - 1)))
        d_s.append(_sample(delta.abs()))
    return {
        "median_abs_w": torch.cat(w_s).median().item(),
        "median_step": torch.cat(step_s).median().item(),
        "median_abs_update": torch.cat(d_s).median().item(),
        "lost_share": lost / nonzero if nonzero else 0.0,
        "update_error": math.sqrt(err_sq / upd_sq) if upd_sq else 0.0,
    }
