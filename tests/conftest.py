"""Shared fixtures. Tests run in the fast profile: tiny random model, few steps."""

from __future__ import annotations

import os

os.environ.setdefault("COURSE_PROFILE", "fast")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

# Fixture notebooks are data, not tests: nbval (make test collects *.ipynb with --nbval-lax) must never run them.
# The grading fixtures include hostile submissions (fork bombs, infinite loops) and corrupt files on purpose.
collect_ignore_glob = ["fixtures/*"]
# The browser tests start JupyterLab and chromium (minutes): `make test-browser` runs them, with this variable set.
if os.environ.get("COURSE_BROWSER_TESTS") != "1":
    collect_ignore_glob.append("browser/*")


@pytest.fixture(scope="session")
def tiny_model():
    """``(model, tokenizer)`` of the tiny random llama, loaded once per test session (do not train it in place:
    use ``copy.deepcopy(model)`` if a test changes weights). fp32 even on a CPU with bf16 instructions: tests
    compare against peft and transformers at tight tolerances."""
    import torch

    from course_lib import models

    return models.load_model("tiny", device="cpu", dtype=torch.float32, verbose=False)


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    return tiny_model[1]
