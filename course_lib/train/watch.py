"""Watching the loss: train and held-out loss against the optimiser step (after a run, or live in the notebook
while it trains), and small multiples that compare runs measure by measure.
"""

from __future__ import annotations

from typing import Sequence

from transformers import TrainerCallback

from course_lib.plots import new_figure


def _loss_points(history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(h["step"], h[key]) for h in history if key in h and h[key] is not None and "step" in h]
    return [p[0] for p in points], [p[1] for p in points]


def plot_history(history: Sequence[dict], title: str = "Training and held-out loss"):
    """Train loss and held-out (eval) loss against the optimiser step, from ``TrainResult.history``."""
    fig, (ax,) = new_figure()
    for key, label, style in (("loss", "train", "-"), ("eval_loss", "held-out", "o-")):
        steps, values = _loss_points(history, key)
        if steps:
            ax.plot(steps, values, style, label=label)
    ax.set(xlabel="optimiser step", ylabel="loss (answer tokens only)", title=title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    return fig


def plot_comparison(runs: dict[str, dict[str, float]], title: str = ""):
    """Small multiples: one panel per measure, one bar per run, e.g.
    ``{"LoRA": {"trainable params": 4.9e6, "minutes": 6}, "full": {...}}``. Returns the Figure."""
    if not runs:
        raise ValueError("Nothing to plot: pass {run name: {measure: value}}.")
    measures = list(next(iter(runs.values())))
    fig, axes = new_figure(ncols=len(measures), width=max(7.0, 2.2 * len(measures)))
    names = list(runs)
    for ax, measure in zip(axes, measures):
        values = [runs[name].get(measure, float("nan")) for name in names]
        bars = ax.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=7)
        ax.set_xticks(range(len(names)), names, fontsize=7, rotation=15)
        ax.set_title(measure, fontsize=9)
        ax.margins(y=0.2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


class LiveLossPlot(TrainerCallback):
    """Redraw train + held-out loss in the notebook each time the trainer logs. Outside a notebook it only records."""

    def __init__(self, title: str = "Training and held-out loss") -> None:
        self.title = title
        self.history: list[dict] = []
        self._handle = None

    def _in_notebook(self) -> bool:
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            return False
        return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.history.append({**logs, "step": state.global_step})
        if not self._in_notebook():
            return
        import io

        from IPython.display import Image, display

        png = io.BytesIO()  # an image, not the Figure object: it shows whatever matplotlib backend is active
        plot_history(self.history, self.title).savefig(png, format="png", dpi=90)
        image = Image(data=png.getvalue(), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)
