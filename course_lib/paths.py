"""Where the course keeps things: the repo's data folder and the user's cache."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"


def cache_dir() -> Path:
    """The course cache (converted models, run outputs): ``$COURSE_CACHE`` or ``~/.cache/finetune-course``."""
    root = os.environ.get("COURSE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "finetune-course"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
