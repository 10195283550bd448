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
