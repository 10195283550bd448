"""Cost: what a fine-tune costs once, what each request costs with a long prompt or with a tuned model and a short
prompt, and the request volume at which the fine-tune pays for itself (the break-even).

Every input is a plain number a learner changes (prices differ by provider and month); the course fills them from
its own recorded runs (GPU seconds, prompt lengths in tokens, latency measured here). Prices are in dollars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestCost:
    prompt_tokens: float  # tokens sent per request (system prompt + examples + ticket)
    output_tokens: float  # tokens generated per request
    input_price: float  # dollars per million input tokens
    output_price: float  # dollars per million output tokens

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "output_tokens", "input_price", "output_price"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}: costs and token counts cannot be negative.")

    @property
    def dollars(self) -> float:
        """Cost of one request."""
        return (self.prompt_tokens * self.input_price + self.output_tokens * self.output_price) / 1e6


def training_cost(gpu_seconds: float, gpu_hour_price: float, runs: int = 1) -> float:
    """Dollars for ``runs`` training runs of ``gpu_seconds`` each on a GPU rented at ``gpu_hour_price`` an hour.
    Count the runs you really make: the sweep that chose the recipe and the seeds, not only the final one."""
    if gpu_seconds < 0 or gpu_hour_price < 0 or runs < 1:
        raise ValueError(f"gpu_seconds={gpu_seconds}, gpu_hour_price={gpu_hour_price}, runs={runs}: use seconds >= 0, "
                         "a price >= 0 and at least one run.")
    return gpu_seconds / 3600 * gpu_hour_price * runs


def break_even(fixed: float, per_request_before: float, per_request_after: float) -> float:
    """Requests after which ``fixed`` (the fine-tune) is paid back by the saving per request; ``math.inf`` when
    the tuned model saves nothing per request (then it never pays for itself on cost alone)."""
    if fixed < 0:
        raise ValueError(f"fixed={fixed}: a one-off cost cannot be negative.")
    saving = per_request_before - per_request_after
    return fixed / saving if saving > 0 else math.inf


def plot_break_even(fixed: float, before: RequestCost, after: RequestCost, max_requests: float | None = None,
                    labels: tuple[str, str] = ("long prompt, base model", "short prompt, tuned model")):
    """Total cost against the number of requests for both ways, the break-even marked. Returns the Figure."""
    from course_lib.plots import new_figure

    n_even = break_even(fixed, before.dollars, after.dollars)
    top = max_requests or (3 * n_even if math.isfinite(n_even) else 1e6)
    xs = [top * k / 100 for k in range(101)]
    fig, (ax,) = new_figure()
    ax.plot(xs, [x * before.dollars for x in xs], label=f"{labels[0]}: ${before.dollars * 1000:.3f} per 1k requests")
    ax.plot(xs, [fixed + x * after.dollars for x in xs],
            label=f"{labels[1]}: ${fixed:.2f} once + ${after.dollars * 1000:.3f} per 1k")
    if math.isfinite(n_even) and n_even <= top:
        ax.axvline(n_even, color="grey", linestyle=":")
        ax.annotate(f"break-even: {n_even:,.0f} requests", (n_even, fixed + n_even * after.dollars), fontsize=8,
                    xytext=(5, -15), textcoords="offset points")
    ax.set_xlabel("requests")
    ax.set_ylabel("total cost ($)")
    ax.set_title("When does the fine-tune pay for itself?", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
