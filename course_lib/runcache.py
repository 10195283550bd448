"""Results worth computing once: the base model's scores, reused across notebooks and re-runs.

Greedy generation from the same weights on the same prompts gives the same answers, so notebook 04 need not
re-score the base model that notebook 01 already scored. A result is stored under a key made of everything that
could change it (a fingerprint of the weights, their dtype, the exact inputs, the settings); change any of them and
it is computed afresh. Delete ``<course cache>/results/`` to force that.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from course_lib.paths import cache_dir


def weights_fingerprint(model) -> str:
    """A short hash of a model's weights (parameter names, shapes, dtypes and a sample of values of every tensor),
    so a tuned model or another checkpoint never matches the base model's stored results."""
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, param in model.named_parameters():
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 64)][:64].float().cpu().numpy().tobytes()
            digest.update(f"{name}{tuple(param.shape)}{param.dtype}{float(flat.float().sum()):.6e}".encode())
            digest.update(sample)
    return digest.hexdigest()[:16]


def key_of(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached(kind: str, parts: dict[str, Any], compute: Callable[[], Any], folder: Path | None = None) -> tuple[Any, Path, bool]:
    """``(result, path, reused)``: the stored result for ``kind`` + ``parts`` if there is one, else ``compute()``
    stored as JSON. ``result`` must be JSON-serialisable."""
    folder = folder or cache_dir() / "results"
    path = folder / f"{kind}-{key_of(parts)}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))["result"], path, True
        except (json.JSONDecodeError, KeyError, TypeError):
            path.unlink()  # a half-written file from an interrupted run: compute again
    result = compute()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"kind": kind, "parts": parts, "result": result}), encoding="utf-8")
    tmp.replace(path)
    return result, path, False


def model_answers(kind: str, model, prompts: list, settings: dict[str, Any], compute: Callable[[], list[str]]) -> list[str]:
    """``compute()``'s answers of ``model`` to ``prompts``, or the stored ones if these exact weights (fingerprint and
    dtype) already answered these exact prompts with these ``settings``; says so when it reuses them."""
    parts = {"weights": weights_fingerprint(model), "dtype": str(model.dtype), "prompts": prompts, **settings}
    answers, path, reused = cached(kind, parts, compute)
    if reused:
        print(f"({kind} of these weights to these {len(prompts)} prompts reused from {path.name}: delete it to "
              "generate them again)")
    return answers
