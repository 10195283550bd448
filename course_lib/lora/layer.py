"""The LoRA layer and what is done with it: ``LoRALinear`` (a frozen ``nn.Linear`` plus a trainable low-rank update
``(alpha / r) · B A``), putting it into a model in place of chosen linear layers (``inject_lora``), folding the
update into the base weights and taking it back out (``merge_lora`` / ``unmerge_lora``), and counting trainable
parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]  # the attention projections of a llama block
ALL_LINEAR = ATTENTION + ["gate_proj", "up_proj", "down_proj"]  # ... plus the MLP's three


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha / r) · B A``."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        _check_hyperparameters(r, alpha, dropout)
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}.")
        self.base = base
        self.base.weight.requires_grad_(False)
        if self.base.bias is not None:
            self.base.bias.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        # Adapters train in fp32 even on a bf16/fp16 base (peft does the same by default): tiny updates to
        # small matrices get lost in half precision.
        dtype = base.weight.dtype if base.weight.dtype == torch.float64 else torch.float32
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=base.weight.device, dtype=dtype)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=base.weight.device, dtype=dtype)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """A like an ``nn.Linear`` (kaiming-uniform, a=√5, as peft does), B = 0: the update starts at zero."""
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) · B @ A`` with the base weight's shape (out × in)."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:  # the update already lives inside base.weight: adding it again would count it twice
            return out
        x = self.dropout(x.to(self.lora_A.weight.dtype))
        # add in the adapter's dtype (fp32) and round once, as peft does: rounding the update to a bf16 base's dtype
        # before adding would round twice
        return (out + self.lora_B(self.lora_A(x)) * self.scaling).to(out.dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight (one matmul per call afterwards, as fast as the base model)."""
        if not self.merged:
            w = self.base.weight
            w.copy_((w.to(self.lora_A.weight.dtype) + self.delta_weight()).to(w.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update back out of the base weight (exact up to floating-point rounding)."""
        if self.merged:
            w = self.base.weight
            w.copy_((w.to(self.lora_A.weight.dtype) - self.delta_weight()).to(w.dtype))
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}, merged={self.merged}"


def _check_hyperparameters(r: int, alpha: float, dropout: float) -> None:
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise ValueError(f"r (the rank) must be a positive integer such as 8 or 16, got {r!r}.")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive (common choices: alpha = r or 2·r), got {alpha!r}.")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout is a probability in [0, 1), got {dropout!r}.")


def matches_target(name: str, targets: Iterable[str]) -> bool:
    """peft's rule for a ``target_modules`` list: the module's name equals a target or ends with ``"." + target``."""
    return any(name == t or name.endswith("." + t) for t in targets)


def linear_layer_names(model: nn.Module) -> list[str]:
    """Names of the plain ``nn.Linear`` modules of a model (those LoRA could wrap)."""
    return [n for n, m in model.named_modules() if type(m) is nn.Linear and not n.endswith((".lora_A", ".lora_B"))]


def inject_lora(model: nn.Module, target_modules: list[str], r: int, alpha: float, dropout: float = 0.0) -> list[str]:
    """Wrap each matching ``nn.Linear`` in a ``LoRALinear`` (in place), freeze everything else; return the names."""
    _check_hyperparameters(r, alpha, dropout)
    if isinstance(target_modules, str) or not target_modules:
        raise ValueError(f"target_modules must be a non-empty list of layer names like {ATTENTION}, "
                         f"got {target_modules!r}.")
    if lora_layers(model):
        raise ValueError("This model already has LoRA layers. Inject once (call merge_lora to fold them in, "
                         "or start again from a freshly loaded model).")
    linear = linear_layer_names(model)
    unmatched = [t for t in target_modules if not any(matches_target(n, [t]) for n in linear)]
    if unmatched:
        suffixes = sorted({n.rsplit(".", 1)[-1] for n in linear})
        raise ValueError(f"target_modules {unmatched} match no nn.Linear layer of this model. Linear layer names "
                         f"end in: {suffixes} (e.g. {linear[:2]}).")
    for param in model.parameters():
        param.requires_grad_(False)
    replaced = [n for n in linear if matches_target(n, target_modules)]
    for name in replaced:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha, dropout=dropout))
    return replaced


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """The model's LoRA layers by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA layer into its base weight; return how many were merged."""
    layers = lora_layers(model).values()
    for layer in layers:
        layer.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Undo ``merge_lora``; return how many layers were unmerged."""
    layers = lora_layers(model).values()
    for layer in layers:
        layer.unmerge()
    return len(layers)


def count_parameters(model: nn.Module) -> dict[str, float]:
    """``{"trainable", "total", "fraction"}``; tied weights (lm_head = embeddings) are counted once, as peft does."""
    params = list(model.parameters())  # de-duplicates shared tensors
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"trainable": trainable, "total": total, "fraction": trainable / total if total else 0.0}
