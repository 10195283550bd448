"""course_lib.stats: seeded bootstrap intervals, paired differences, verdicts and score formatting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from course_lib import stats

VALUES = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]  # 7 of 10 right
A = [1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1]  # system a: 10 of 12
B = [0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0]  # system b on the same items: 4 of 12


def _percentile(sorted_values: list[float], q: float) -> float:
    """numpy's default ("linear") percentile, written out: interpolate between the two nearest order statistics."""
    h = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(h), math.ceil(h)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def _reference_resample_picks(n_items: int, n_resamples: int, seed: int) -> np.ndarray:
    # The documented recipe: one seeded generator, n_resamples rows of n_items picks with replacement.
    return np.random.default_rng(seed).integers(0, n_items, size=(n_resamples, n_items))


def _reference_ci(values, n_resamples=1000, seed=0, confidence=0.95):
    picks = _reference_resample_picks(len(values), n_resamples, seed)
    means = sorted(sum(values[i] for i in row) / len(values) for row in picks)
    tail = (1 - confidence) / 2 * 100
    return _percentile(means, tail), _percentile(means, 100 - tail)


def _reference_paired(a, b, n_resamples=1000, seed=0, confidence=0.95):
    picks = _reference_resample_picks(len(a), n_resamples, seed)
    diffs = sorted(sum(a[i] - b[i] for i in row) / len(a) for row in picks)
    tail = (1 - confidence) / 2 * 100
    return sum(a) / len(a) - sum(b) / len(b), _percentile(diffs, tail), _percentile(diffs, 100 - tail)


def test_bootstrap_ci_exact_seeded_values():
    low, high = stats.bootstrap_ci(VALUES)
    assert (low, high) == pytest.approx(_reference_ci(VALUES), abs=1e-12)
    assert (low, high) == pytest.approx((0.4, 1.0), abs=1e-12)  # recorded once, checked against the re-implementation
    assert stats.bootstrap_ci(VALUES) == (low, high)  # seeded: the same every time
    other = stats.bootstrap_ci(VALUES, n_resamples=200, seed=3, confidence=0.8)
    assert other == pytest.approx(_reference_ci(VALUES, 200, 3, 0.8), abs=1e-12)
    assert other == pytest.approx((0.5, 0.9), abs=1e-12)


def test_bootstrap_ci_bools_floats_and_the_mean_inside():
    bools = [bool(v) for v in VALUES]
    assert stats.bootstrap_ci(bools) == stats.bootstrap_ci([float(v) for v in VALUES])
    for values in (VALUES, A, B, [0.0, 1 / 3, 2 / 3, 1.0, 1.0]):
        low, high = stats.bootstrap_ci(values)
        assert low <= float(np.mean(values)) <= high
        assert 0.0 <= low <= high <= 1.0


def test_all_equal_values_give_a_zero_width_interval():
    assert stats.bootstrap_ci([1, 1, 1]) == (1.0, 1.0)
    assert stats.bootstrap_ci([0.5] * 7) == (0.5, 0.5)
    assert stats.bootstrap_ci([False] * 4) == (0.0, 0.0)


def test_paired_bootstrap_diff_exact_seeded_values():
    diff, low, high = stats.paired_bootstrap_diff(A, B)
    assert (diff, low, high) == pytest.approx(_reference_paired(A, B), abs=1e-12)
    assert (diff, low, high) == pytest.approx((0.5, 0.25, 0.75), abs=1e-12)
    assert low <= diff <= high
    reverse = stats.paired_bootstrap_diff(B, A)  # same resamples: the mirror image
    assert reverse == pytest.approx((-0.5, -0.75, -0.25), abs=1e-12)


def test_paired_diff_of_identical_systems_is_zero():
    assert stats.paired_bootstrap_diff(VALUES, VALUES) == (0.0, 0.0, 0.0)
    assert stats.paired_bootstrap_diff(A, list(A), seed=7) == (0.0, 0.0, 0.0)


def test_verdict_wording_real_and_noise():
    real = stats.verdict(*stats.paired_bootstrap_diff(A, B), what="tuned vs base")
    assert real == "tuned vs base: +0.500 [+0.250, +0.750] — higher, and the interval excludes 0: real."
    lower = stats.verdict(-0.2, -0.3, -0.1)
    assert lower == "the difference: -0.200 [-0.300, -0.100] — lower, and the interval excludes 0: real."
    noise = stats.verdict(*stats.paired_bootstrap_diff([1, 0, 1, 0], [0, 1, 0, 1]))
    assert noise == ("the difference: +0.000 [-1.000, +1.000] — the interval contains 0: not shown to differ "
                     "(noise).")
    assert "noise" in stats.verdict(0.1, 0.0, 0.2)  # an interval that touches 0 contains it


def test_format_score():
    assert stats.format_score(0.5514) == "0.551"
    assert stats.format_score(0.5514, (0.4706, 0.6324)) == "0.551 [0.471, 0.632]"
    assert stats.format_score(1, (1, 1)) == "1.000 [1.000, 1.000]"


@pytest.mark.parametrize("call, message", [
    (lambda: stats.bootstrap_ci([]), r"bootstrap_ci: pass a non-empty flat list"),
    (lambda: stats.bootstrap_ci([[1, 0], [0, 1]]), r"non-empty flat list"),
    (lambda: stats.bootstrap_ci([1.0, float("nan")]), r"must be finite numbers; found NaN"),
    (lambda: stats.bootstrap_ci([1.0, float("inf")]), r"must be finite numbers"),
    (lambda: stats.bootstrap_ci(VALUES, n_resamples=99), r"n_resamples=99: use at least 100"),
    (lambda: stats.bootstrap_ci(VALUES, confidence=0.0), r"confidence=0.0: give a fraction such as 0.95"),
    (lambda: stats.bootstrap_ci(VALUES, confidence=1.0), r"confidence=1.0: give a fraction"),
    (lambda: stats.bootstrap_ci(VALUES, confidence=95), r"confidence=95: give a fraction"),
    (lambda: stats.paired_bootstrap_diff([], []), r"paired_bootstrap_diff\(a\): pass a non-empty"),
    (lambda: stats.paired_bootstrap_diff([1, 0], [1, float("nan")]), r"paired_bootstrap_diff\(b\).*finite"),
    (lambda: stats.paired_bootstrap_diff([1, 0, 1], [1, 0]),
     r"a has 3 items and b has 2; pass both systems' scores on the same items, in the same order"),
    (lambda: stats.paired_bootstrap_diff(A, B, n_resamples=10), r"n_resamples=10: use at least 100"),
    (lambda: stats.paired_bootstrap_diff(A, B, confidence=-0.5), r"give a fraction such as 0.95"),
])
def test_bad_input_says_what_to_do(call, message):
    with pytest.raises(ValueError, match=message):
        call()
