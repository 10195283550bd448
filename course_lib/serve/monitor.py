"""Monitoring: every chat completion the service answers is logged in its database (model id, latency, tokens in
and out, whether the answer is a JSON object and whether it fits the GreenLeaf triage schema, and the request's
``metadata``), and read back here for notebook 08: a summary per model with 95% intervals, and rates per bucket
of time (drift).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from course_lib import greenleaf, stats
from course_lib.serve.store import Store


def judge_answer(text: str) -> tuple[bool, bool]:
    """``(valid_json, schema_valid)`` of an answer: it holds a JSON object (``greenleaf.parse_triage``), and that
    object is a valid triage answer."""
    obj = greenleaf.parse_triage(text or "")
    return isinstance(obj, dict), isinstance(obj, dict) and greenleaf.triage_validator().is_valid(obj)


def record(store: Store, completion_id: str, model: str, latency_s: float, answer: dict,
           metadata: dict | None = None) -> None:
    """Log one completion (``answer``: ``chat.complete``'s result)."""
    valid, schema_valid = judge_answer(answer["text"])
    store.insert("completions", {
        "id": completion_id, "created_at": time.time(), "model": model, "latency_s": latency_s,
        "prompt_tokens": answer["prompt_tokens"], "completion_tokens": answer["completion_tokens"],
        "finish_reason": answer["finish_reason"], "valid_json": int(valid), "schema_valid": int(schema_valid),
        "metadata": metadata or None})


def completion_log(data_dir: str | Path | Store, model: str | None = None, since_id: str | None = None) -> list[dict]:
    """The logged completions in the order they were answered (optionally of one model, and only those after the
    completion ``since_id``)."""
    store = data_dir if isinstance(data_dir, Store) else Store(data_dir)
    where, params = ["1=1"], []
    if model:
        where.append("model = ?")
        params.append(model)
    if since_id:
        where.append("seq > (SELECT seq FROM completions WHERE id = ?)")
        params.append(since_id)
    rows = store.query(f"SELECT * FROM completions WHERE {' AND '.join(where)} ORDER BY seq", params)
    for row in rows:
        row["valid_json"], row["schema_valid"] = bool(row["valid_json"]), bool(row["schema_valid"])
    return rows


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(log: Sequence[dict]) -> dict[str, dict]:
    """Per model: ``n``, ``valid_json`` and ``schema_valid`` rates with 95% bootstrap intervals, latency (mean,
    median, 95th percentile, seconds), mean tokens in and out, and tokens out per second of latency."""
    if not log:
        raise ValueError("The completion log is empty: send some chat completions to the service first.")
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["model"] for r in log):
        rows = [r for r in log if r["model"] == name]
        latency = [r["latency_s"] for r in rows]
        valid = [r["valid_json"] for r in rows]
        schema = [r["schema_valid"] for r in rows]
        out[name] = {
            "n": len(rows),
            "valid_json": sum(valid) / len(rows), "valid_json_interval": list(stats.bootstrap_ci(valid)),
            "schema_valid": sum(schema) / len(rows), "schema_valid_interval": list(stats.bootstrap_ci(schema)),
            "latency_mean_s": sum(latency) / len(rows), "latency_p50_s": _percentile(latency, 0.5),
            "latency_p95_s": _percentile(latency, 0.95),
            "prompt_tokens_mean": sum(r["prompt_tokens"] for r in rows) / len(rows),
            "completion_tokens_mean": sum(r["completion_tokens"] for r in rows) / len(rows),
            "tokens_per_second": sum(r["completion_tokens"] for r in rows) / max(sum(latency), 1e-9),
        }
    return out


def format_summary(table: dict[str, dict]) -> str:
    """One line per model: valid-JSON rate with its interval, latency and tokens."""
    width = max(len(name) for name in table) + 2
    lines = [f"{'model':<{width}}{'n':>4}  {'valid JSON':>22}  {'latency p50/p95 s':>18}  {'tokens in/out':>14}"
             f"  {'tokens/s':>8}"]
    for name, s in table.items():
        valid = stats.format_score(s["valid_json"], s["valid_json_interval"])
        lines.append(f"{name:<{width}}{s['n']:>4}  {valid:>22}  {s['latency_p50_s']:>8.2f} / {s['latency_p95_s']:<7.2f}"
                     f"  {s['prompt_tokens_mean']:>6.0f} / {s['completion_tokens_mean']:<5.0f}"
                     f"  {s['tokens_per_second']:>8.1f}")
    return "\n".join(lines)


def by_bucket(log: Sequence[dict], key: str, values: dict[str, Sequence[float]] | None = None) -> dict[str, dict]:
    """Per model, per bucket (the request metadata's ``key``, e.g. the replayed hour): the valid-JSON rate and
    the mean of each extra per-completion series in ``values`` (``{name: one value per log row}``, e.g. whether
    the answer's fields were right, which only the caller knows). Buckets sort as numbers when they are."""
    values = values or {}
    for name, series in values.items():
        if len(series) != len(log):
            raise ValueError(f"values[{name!r}] has {len(series)} items for {len(log)} log rows: give one per row.")
    out: dict[str, dict] = {}
    for i, row in enumerate(log):
        bucket = (row.get("metadata") or {}).get(key)
        if bucket is None:
            raise ValueError(f"Completion {row['id']} has no metadata {key!r}: send it with each request "
                             f"(metadata={{{key!r}: ...}}).")
        cell = out.setdefault(row["model"], {}).setdefault(bucket, {"n": 0, "valid_json": 0.0,
                                                                     **{n: 0.0 for n in values}})
        cell["n"] += 1
        cell["valid_json"] += row["valid_json"]
        for name, series in values.items():
            cell[name] += float(series[i])
    for buckets in out.values():
        for cell in buckets.values():
            for name in ("valid_json", *values):
                cell[name] /= cell["n"]
    order = (lambda b: (0, float(b))) if all(_is_number(b) for m in out.values() for b in m) else (lambda b: (1, b))
    return {m: dict(sorted(b.items(), key=lambda kv: order(kv[0]))) for m, b in out.items()}


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def plot_drift(buckets: dict[str, dict], series: Sequence[str] = ("valid_json",), xlabel: str = "hour",
               title: str = "Drift check: rates per bucket of the replayed day"):
    """One line per model and series over the buckets (``by_bucket``'s result). Returns the Figure."""
    from course_lib.plots import new_figure

    fig, axes = new_figure(ncols=len(series), width=6.0 * len(series))
    for ax, name in zip(axes, series):
        for model, cells in buckets.items():
            xs = list(cells)
            ax.plot(xs, [cells[x][name] for x in xs], marker="o", label=model)
        ax.set(xlabel=xlabel, ylabel=name.replace("_", " "), ylim=(-0.05, 1.05), title=name.replace("_", " "))
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
