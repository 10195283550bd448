"""Where the course keeps things: the repo's data folder and the user's cache; and a file's sha256, which names
the exact bytes a model was trained on or written to (provenance)."""

from __future__ import annotations

import hashlib
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


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, as hex, as ``sha256sum`` prints it (read in 1 MiB pieces)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()
