"""How sure a score is: bootstrap confidence intervals for accuracies measured on a small set.

On 136 held-out tickets one ticket is 0.7 points of accuracy, and a second run on other tickets of the same kind
would land several points away. A bootstrap interval says how far: resample the items with replacement many times,
recompute the score each time, and keep the middle 95% of those scores. Two models whose intervals overlap a lot
have not been shown to differ; ``paired_bootstrap_diff`` answers that question directly for two models scored on
the same items (it resamples items, keeping each item's pair of results together).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0


def _as_array(values: Sequence[float] | Sequence[bool], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: pass a non-empty flat list of per-item scores (e.g. [True, False, ...] for "
                         f"right/wrong), got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: per-item scores must be finite numbers; found NaN or infinity.")
    return array


def _check(n_resamples: int, confidence: float) -> None:
    if n_resamples < 100:
        raise ValueError(f"n_resamples={n_resamples}: use at least 100 (1000 is the course's default).")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: give a fraction such as 0.95.")


def _resample_means(matrix: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``matrix``'s rows (items) over ``n_resamples`` bootstrap resamples: shape (n_resamples, columns)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, matrix.shape[0], size=(n_resamples, matrix.shape[0]))
    return matrix[picks].mean(axis=1)


def bootstrap_ci(values: Sequence[float] | Sequence[bool], n_resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` for the mean of per-item scores (0/1 for right/wrong).
    Seeded: the same values give the same interval."""
    _check(n_resamples, confidence)
    array = _as_array(values, "bootstrap_ci")
    means = _resample_means(array[:, None], n_resamples, seed)[:, 0]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap_diff(a: Sequence[float] | Sequence[bool], b: Sequence[float] | Sequence[bool],
                          n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                          confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean(a) - mean(b), low, high)``: the difference of two systems scored on the SAME items, with a paired
    bootstrap interval. If the interval contains 0, the data do not show which system is better."""
    _check(n_resamples, confidence)
    x, y = _as_array(a, "paired_bootstrap_diff(a)"), _as_array(b, "paired_bootstrap_diff(b)")
    if x.shape != y.shape:
        raise ValueError(f"paired_bootstrap_diff: a has {x.size} items and b has {y.size}; pass both systems' "
                         "scores on the same items, in the same order.")
    means = _resample_means(np.stack([x, y], axis=1), n_resamples, seed)
    diffs = means[:, 0] - means[:, 1]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(x.mean() - y.mean()), float(low), float(high)


def verdict(diff: float, low: float, high: float, what: str = "the difference") -> str:
    """One plain sentence on a paired difference: real (the interval excludes 0) or noise (it contains 0)."""
    if low > 0 or high < 0:
        sign = "higher" if diff > 0 else "lower"
        return f"{what}: {diff:+.3f} [{low:+.3f}, {high:+.3f}] — {sign}, and the interval excludes 0: real."
    return f"{what}: {diff:+.3f} [{low:+.3f}, {high:+.3f}] — the interval contains 0: not shown to differ (noise)."


def format_score(value: float, interval: tuple[float, float] | None = None) -> str:
    """``0.551 [0.471, 0.632]``: a score with its interval, the way the course prints every small-set score."""
    if interval is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"
