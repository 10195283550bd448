"""course_lib.evaluate.cost: request cost, training cost and the break-even, with exact values."""

from __future__ import annotations

import math

import pytest

from course_lib.evaluate import cost


def test_request_and_training_cost_exact():
    long = cost.RequestCost(prompt_tokens=1200, output_tokens=60, input_price=0.5, output_price=1.5)
    short = cost.RequestCost(prompt_tokens=150, output_tokens=60, input_price=0.5, output_price=1.5)
    assert long.dollars == pytest.approx((1200 * 0.5 + 60 * 1.5) / 1e6)  # 0.00069
    assert short.dollars == pytest.approx(0.000165)
    assert cost.training_cost(gpu_seconds=1800, gpu_hour_price=3.0, runs=4) == pytest.approx(6.0)
    # 6 dollars / (0.00069 - 0.000165) per request
    assert cost.break_even(6.0, long.dollars, short.dollars) == pytest.approx(6.0 / 0.000525)
    assert cost.break_even(6.0, short.dollars, long.dollars) == math.inf  # costs more per request: never pays back


def test_bad_inputs():
    with pytest.raises(ValueError, match="prompt_tokens=-1: costs and token counts cannot be negative"):
        cost.RequestCost(-1, 0, 0, 0)
    with pytest.raises(ValueError, match="at least one run"):
        cost.training_cost(10, 1.0, runs=0)
    with pytest.raises(ValueError, match="cannot be negative"):
        cost.break_even(-1, 1, 0)


def test_plot_marks_the_break_even():
    fig = cost.plot_break_even(6.0, cost.RequestCost(1200, 60, 0.5, 1.5), cost.RequestCost(150, 60, 0.5, 1.5))
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # two cost lines and the break-even marker
    assert ax.texts[0].get_text() == "break-even: 11,429 requests"
