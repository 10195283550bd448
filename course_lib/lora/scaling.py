"""What the scaling factor in front of ``B A`` does to a training step (notebook 03's experiment): how far a few
optimizer steps move a fresh LoRA layer's output at each rank, under ``alpha / r``, ``alpha`` and
``alpha / sqrt(r)``, with Adam and with plain SGD, and the figure that compares them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from course_lib.lora.layer import LoRALinear, _check_hyperparameters


SCALING_RULES = {  # the factor in front of B·A, from alpha and r
    "alpha/r": lambda alpha, r: alpha / r,  # the LoRA paper and peft's default
    "alpha": lambda alpha, r: alpha,  # no division by r
    "alpha/sqrt(r)": lambda alpha, r: alpha / math.sqrt(r),  # rank-stabilised LoRA (peft's use_rslora=True)
}
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def output_change(
    r: int, alpha: float = 16.0, scaling: str = "alpha/r", optimizer: str = "adam", lr: float = 1e-4,
    steps: int = 5, d: int = 576, n: int = 16, seed: int = 0,
) -> float:
    """How far ``steps`` optimizer steps move a fresh ``LoRALinear``'s output: ``‖y_after − y_before‖ / ‖y_before‖``.

    A toy regression: a random ``d × d`` base layer, ``n`` fixed random inputs, and a target that is the base output
    plus a fixed random linear change. The base layer, inputs and target do not depend on ``r``, ``scaling``,
    ``optimizer`` or ``lr``, and A is drawn from the same distribution at every rank (``LoRALinear``'s init, seeded),
    so calls that differ only in those are a fair comparison. ``scaling`` is a key of ``SCALING_RULES``. The global
    random state is left as it was.
    """
    _check_hyperparameters(r, alpha, 0.0)
    if scaling not in SCALING_RULES:
        raise ValueError(f"scaling must be one of {list(SCALING_RULES)}, got {scaling!r}.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer (1 to a few dozen), got {steps!r}.")
    if not lr > 0:
        raise ValueError(f"lr (the learning rate) must be positive, e.g. 1e-4, got {lr!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = nn.Linear(d, d, bias=False)
        x = torch.randn(n, d)
        with torch.no_grad():
            target = base(x) + x @ (0.1 * torch.randn(d, d) / math.sqrt(d)).T
        torch.manual_seed(seed + 1)
        layer = LoRALinear(base, r=r, alpha=alpha)
    layer.scaling = SCALING_RULES[scaling](alpha, r)
    opt = OPTIMIZERS[optimizer]([layer.lora_A.weight, layer.lora_B.weight], lr=lr)
    with torch.no_grad():
        before = layer(x)
    for _ in range(steps):
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        return ((layer(x) - before).norm() / before.norm()).item()


def change_by_rank(
    ranks: Iterable[int] = (4, 8, 16, 32), scalings: Iterable[str] = tuple(SCALING_RULES),
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """``{optimizer: {scaling: [output_change per rank]}}``; ``settings`` maps each optimizer to its
    ``output_change`` keyword arguments (default: Adam at lr 1e-4 and plain SGD at lr 0.1, 5 steps each)."""
    settings = settings or {"adam": {"lr": 1e-4, "steps": 5}, "sgd": {"lr": 0.1, "steps": 5}}
    return {opt: {s: [output_change(r, scaling=s, optimizer=opt, **kwargs) for r in ranks] for s in scalings}
            for opt, kwargs in settings.items()}


def plot_change_by_rank(table: Mapping[str, Mapping[str, list[float]]], ranks: Iterable[int] = (4, 8, 16, 32)):
    """Figure: one panel per optimizer; for each scaling rule, the output change at each rank as a multiple of its
    change at the smallest rank (log scale; a flat line at 1 = the same change at every rank)."""
    from course_lib.plots import new_figure

    ranks = list(ranks)
    fig, axes = new_figure(ncols=len(table))
    ratios = {opt: {s: [v / values[0] for v in values] for s, values in rows.items()} for opt, rows in table.items()}
    everything = [v for rows in ratios.values() for values in rows.values() for v in values]
    low = 2.0 ** math.floor(math.log2(min(everything)))
    high = 2.0 ** math.ceil(math.log2(max(everything)))
    ticks = [2.0 ** k for k in range(round(math.log2(low)), round(math.log2(high)) + 1)]
    for ax, (opt, rows) in zip(axes, ratios.items()):
        ax.axhline(1.0, color="grey", lw=1, ls="--")
        for scaling, values in rows.items():
            ax.plot(ranks, values, "o-", label=f"scaling = {scaling}")
        ax.set(xscale="log", yscale="log", xlabel="rank r", ylim=(low / 1.2, high * 1.2),
               title={"adam": "Adam", "sgd": "plain SGD"}.get(opt, opt))
        ax.set_xticks(ranks, [str(r) for r in ranks])
        ax.set_yticks(ticks, [f"{t:g}" if t >= 1 else f"1/{1 / t:g}" for t in ticks])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"output change / change at r = {ranks[0]}")
    axes[0].legend(fontsize=7)
    fig.suptitle("Same alpha, lr and input: how far a few steps move a LoRA layer's output", fontsize=10)
    fig.tight_layout()
    return fig
