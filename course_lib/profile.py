"""Run profiles: ``COURSE_PROFILE=fast`` (tests/CI) or ``full`` (learners).

The lesson text is the same in both; only sizes change. Notebooks call ``get_profile()`` once and read
the numbers from it, so a fast run is the same code path as a full one, just smaller.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PROFILE_NAMES = ("fast", "full")


@dataclass(frozen=True)
class Profile:
    name: str  # "fast" or "full"
    model: str  # model name for course_lib.models.load_model ("tiny" in fast, "embedded" in full)
    train_examples: int  # how many training rows a lesson uses (None-like 0 means "all")
    eval_examples: int  # how many held-out rows a lesson scores
    train_steps: int  # optimiser steps for a lesson's training run
    max_seq_len: int  # tokens per training example (longer rows are reported, never silently cut)
    max_new_tokens: int  # generation budget when a lesson asks the model to answer


FAST = Profile(  # small for testing efficiency: seconds per notebook on 2 cores
    name="fast", model="tiny", train_examples=32, eval_examples=8, train_steps=4, max_seq_len=512,
    max_new_tokens=24,
)
FULL = Profile(
    name="full", model="embedded", train_examples=0, eval_examples=0, train_steps=200, max_seq_len=512,
    max_new_tokens=160,
)


def get_profile() -> Profile:
    """Read ``COURSE_PROFILE`` (default ``full``); ``COURSE_MODEL`` overrides the model name."""
    name = os.environ.get("COURSE_PROFILE", "full").strip().lower()
    if name not in PROFILE_NAMES:
        raise ValueError(
            f"COURSE_PROFILE={name!r} is not a profile. Use one of {PROFILE_NAMES}: "
            "'fast' for tests (tiny model, few steps), 'full' for the real lessons."
        )
    profile = FAST if name == "fast" else FULL
    model = os.environ.get("COURSE_MODEL")
    if model:
        from dataclasses import replace

        profile = replace(profile, model=model)
    return profile
