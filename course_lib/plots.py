"""One figure style for every notebook: a default size and a helper that makes a figure with axes."""

from __future__ import annotations

from matplotlib.figure import Figure

FIGSIZE = (7.0, 3.8)  # inches; wide enough for two panels side by side at ncols=2


def new_figure(ncols: int = 1, nrows: int = 1, width: float | None = None) -> tuple[Figure, list]:
    """A figure and a flat list of its axes, sized from ``FIGSIZE``."""
    import matplotlib.pyplot as plt

    w, h = FIGSIZE
    fig, axes = plt.subplots(nrows, ncols, figsize=(width or w, h * nrows), squeeze=False)
    plt.close(fig)  # returned, not shown twice: the notebook displays the returned figure
    return fig, [ax for row in axes for ax in row]


def grouped_bars(groups: list[str], series: dict[str, list[float]], horizontal: bool = False,
                 value_labels: bool = False):
    """A figure with one group of bars per entry of ``groups`` and one bar per series in each group
    (``series``: name -> one value per group). Returns ``(fig, ax)`` for titles and limits."""
    fig, (ax,) = new_figure()
    size = 0.8 / len(series)
    for j, (name, values) in enumerate(series.items()):
        positions = [i + (j - (len(series) - 1) / 2) * size for i in range(len(groups))]
        bars = (ax.barh if horizontal else ax.bar)(positions, values, size, label=name)
        if value_labels:
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    (ax.set_yticks if horizontal else ax.set_xticks)(range(len(groups)), groups, fontsize=8)
    return fig, ax
