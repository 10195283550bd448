"""Figures for notebook 07: a DPO run's loss and reward margin over the steps, and the RLHF and DPO pipelines side by
side (boxes and arrows). Both return the matplotlib Figure (``course_lib.plots`` style)."""

from __future__ import annotations

import math
from typing import Sequence

from course_lib.plots import FIGSIZE, new_figure


def plot_dpo_history(history: Sequence[dict], title: str = "DPO: loss and reward margin"):
    """Two panels from a DPO run's ``history`` (trl's log records): the loss against the optimiser step, with
    log 2 (the loss when the policy still equals the reference) marked, and the mean reward margin of the batches."""
    points = [h for h in history if "loss" in h and "step" in h]
    if not points:
        raise ValueError("No loss records in this history: pass DPOResult.history (trl logs every logging_steps).")
    steps = [h["step"] for h in points]
    fig, (ax_loss, ax_margin) = new_figure(ncols=2)
    ax_loss.plot(steps, [h["loss"] for h in points], "o-", ms=3, label="DPO loss")
    ax_loss.axhline(math.log(2), color="grey", ls="--", lw=1, label="log 2: policy = reference")
    ax_loss.set(xlabel="optimiser step", ylabel="loss", title="loss")
    ax_loss.legend(fontsize=7)
    margins = [h.get("rewards/margins", float("nan")) for h in points]
    ax_margin.plot(steps, margins, "o-", ms=3, color="C1")
    ax_margin.axhline(0, color="grey", ls="--", lw=1)
    ax_margin.set(xlabel="optimiser step", ylabel="reward(chosen) - reward(rejected)", title="reward margin (batch mean)")
    for ax in (ax_loss, ax_margin):
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _box(ax, x, y, text, color, w=1.7, h=0.62):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04", fc=color, ec="black",
                                lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5)


def _arrow(ax, start, end, text="", style="-|>", ls="-", offset=(0, 0.18)):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle=style, lw=1, ls=ls, color="black",
                                                          shrinkA=2, shrinkB=2))
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text, ha="center",
                fontsize=6.5, color="dimgray")


def plot_pipelines():
    """RLHF (SFT -> reward model trained on pairs -> PPO, which samples answers, scores them with the reward model
    and pays a KL penalty for leaving the reference) against DPO (SFT -> one classification-style loss on the pairs,
    measured against the same reference). Returns the Figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(FIGSIZE[0] + 1.5, FIGSIZE[1] + 0.6))
    ax = fig.add_subplot()
    ax.set(xlim=(0, 10), ylim=(-0.1, 6.4))
    ax.axis("off")
    sft, pairs, rm, ppo, ref = "#dde8f5", "#fbe3c8", "#f6cfcf", "#d9efd4", "#e6e6e6"
    # RLHF, top row
    ax.text(0.1, 6.15, "RLHF: SFT, then a reward model, then PPO", fontsize=9, weight="bold")
    _box(ax, 1.1, 4.9, "SFT model\n(notebook 04)", sft)
    _box(ax, 3.5, 3.9, "preference pairs\n(chosen, rejected)", pairs)
    _box(ax, 3.5, 4.9, "reward model\nanswer -> score", rm)
    _box(ax, 6.1, 4.9, "PPO: sample answers,\nscore them, update", ppo)
    _box(ax, 6.1, 3.7, "reference = SFT\n(frozen copy)", ref, h=0.55)
    _box(ax, 8.8, 4.9, "tuned model", sft)
    _arrow(ax, (1.95, 4.9), (2.65, 4.9), "init")
    _arrow(ax, (3.5, 4.21), (3.5, 4.59), "train on", offset=(0.55, -0.1))
    _arrow(ax, (4.35, 4.9), (5.25, 4.9), "reward")
    _arrow(ax, (6.1, 3.98), (6.1, 4.59), "KL penalty", offset=(0.6, -0.1))
    _arrow(ax, (6.95, 4.9), (7.95, 4.9))
    ax.annotate("", xy=(5.6, 5.2), xytext=(1.1, 5.21), arrowprops=dict(arrowstyle="-|>", lw=0.8, ls=":",
                connectionstyle="arc3,rad=-0.18"))
    ax.text(3.3, 5.78, "policy starts as the SFT model", fontsize=6.5, color="dimgray", ha="center")
    # DPO, bottom row
    ax.text(0.1, 2.35, "DPO: SFT, then one loss on the pairs", fontsize=9, weight="bold")
    _box(ax, 1.1, 1.4, "SFT model\n(notebook 04)", sft)
    _box(ax, 4.6, 1.4, "DPO loss on pairs:\n-log sigmoid(beta x margin)", ppo, w=2.3)
    _box(ax, 4.6, 0.3, "reference = SFT\n(DPO's LoRA switched off)", ref, w=2.3, h=0.5)
    _box(ax, 2.5, 0.3, "preference pairs", pairs, w=1.3, h=0.45)
    _box(ax, 8.8, 1.4, "tuned model", sft)
    _arrow(ax, (1.95, 1.4), (3.45, 1.4), "init (+ new LoRA)")
    _arrow(ax, (4.6, 0.55), (4.6, 1.09), "log-probs", offset=(0.45, -0.1))
    _arrow(ax, (2.8, 0.53), (3.7, 1.09))
    _arrow(ax, (5.75, 1.4), (7.95, 1.4), "no reward model, no sampling")
    return fig
