"""The GreenLeaf cleaning pipeline: raw tickets → validated → redacted → deduplicated → split by family,
and the shipped splits it writes (``build_greenleaf_splits``) and reads back (``load_split``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course_lib.data.dedup import DedupReport, drop_duplicates
from course_lib.data.formats import DataError, Row
from course_lib.data.loading import GREENLEAF_DIR, LoadResult, _write_jsonl, load_jsonl, read_json_lines
from course_lib.data.pii import PiiReport, redact_rows
from course_lib.data.split import ContaminationReport, contamination, split_by_group

SPLIT_NAMES = ("train", "heldout", "regression", "preferences", "replay")


@dataclass
class CleaningResult:
    loaded: LoadResult  # raw file + every validation error
    validated: list[Row]
    redacted: list[Row]  # == validated when redact_pii=False
    pii: PiiReport | None
    deduplicated: list[Row]
    dedup: DedupReport
    train: list[Row]
    heldout: list[Row]
    contamination: ContaminationReport  # held-out vs train, user text, 8-grams
    removed: dict[str, int]  # rows removed per step

    def steps_frame(self):
        """Rows in and out of every step, as a pandas DataFrame."""
        import pandas as pd

        n_raw, n_valid, n_dedup = self.loaded.n_lines, len(self.validated), len(self.deduplicated)
        changed = self.pii.rows_changed if self.pii else 0
        steps = [
            ("validate", n_raw, n_valid, f"{len(self.loaded.errors)} problems on {n_raw - n_valid} lines"),
            ("redact PII", n_valid, len(self.redacted), f"{changed} rows had text replaced, none removed"),
            ("remove exact duplicates", len(self.redacted), len(self.redacted) - self.removed["exact duplicates"], ""),
            ("remove near duplicates", len(self.redacted) - self.removed["exact duplicates"], n_dedup,
             f"user-text Jaccard >= {self.dedup.threshold} ({self.dedup.shingle} shingles)"),
            ("split by family", n_dedup, n_dedup, f"train {len(self.train)}, held-out {len(self.heldout)}"),
        ]
        return pd.DataFrame([{"step": a, "rows in": b, "rows out": c, "removed": b - c, "note": d}
                             for a, b, c, d in steps])

    def report(self) -> dict:
        """What ``cleaning_report.json`` records: rows in and out of every step, and why rows were removed."""
        return {
            "raw_rows": self.loaded.n_lines,
            "removed": self.removed,
            "train_rows": len(self.train),
            "heldout_rows": len(self.heldout),
            "dedup": {"threshold": self.dedup.threshold, "shingle": self.dedup.shingle},
            "validation_errors": [e.__dict__ for e in self.loaded.errors],
            "redactions": self.pii.counts() if self.pii else {},
            "rows_redacted": self.pii.rows_changed if self.pii else 0,
            "duplicates": [r.__dict__ for r in self.dedup.removed],
            "contamination": {"n": self.contamination.n, "fraction": round(self.contamination.fraction, 4),
                              "rows": self.contamination.n_contaminated, "worst": self.contamination.worst},
        }


def _read_json(name: str) -> Any:
    path = GREENLEAF_DIR / name
    if not path.is_file():
        raise DataError(f"{path} is missing: the GreenLeaf data ships with the course (data/greenleaf/).")
    return json.loads(path.read_text(encoding="utf-8"))


def canary_families() -> list[str]:
    """Families whose tickets carry the planted canaries (canaries.json): they always stay in train."""
    canaries = _read_json("canaries.json")
    items = canaries.get("canaries", canaries) if isinstance(canaries, dict) else canaries
    return sorted({str(c["family"]) for c in items if isinstance(c, dict) and "family" in c})


def heldout_families() -> list[str]:
    """The held-out ticket families listed in families.json."""
    fams = _read_json("families.json")
    if isinstance(fams, dict):
        fams = fams.get("heldout", fams.get("heldout_families", []))
    return [str(f) for f in fams]


# Near duplicates in GreenLeaf. Tickets are short (10-40 words), and one changed word in a 9-word ticket changes 3
# of its 7 word 3-shingles (Jaccard 0.4): word shingles cannot tell "one word edited" from "another ticket" there.
# Character 5-shingles can: in the raw export, different tickets score at most ~0.45 and planted copies at
# least ~0.8, so 0.7 removes the copies with a margin on both sides. Families are merged from 0.5 (a safety net).
GREENLEAF_SHINGLE = "char5"
GREENLEAF_DEDUP_THRESHOLD = 0.7
GREENLEAF_MERGE_THRESHOLD = 0.5


def clean_greenleaf(raw_path: str | Path | None = None, redact_pii: bool = True,
                    threshold: float = GREENLEAF_DEDUP_THRESHOLD) -> CleaningResult:
    """Raw GreenLeaf tickets → validated → redacted → deduplicated → split by family.

    Held-out families come from ``families.json``; canary families (``canaries.json``) always stay in train.
    ``redact_pii=False`` keeps the planted canaries verbatim, for the memorisation demo in lesson 06.
    """
    loaded = load_jsonl(raw_path or GREENLEAF_DIR / "raw_tickets.jsonl", fmt="chat", check_target=True)
    validated = loaded.rows
    redacted, pii = redact_rows(validated) if redact_pii else (validated, None)
    deduplicated, dedup = drop_duplicates(redacted, threshold, shingle=GREENLEAF_SHINGLE)
    train, heldout = split_by_group(deduplicated, "family", heldout_families=heldout_families(),
                                    keep_in_train=canary_families(), threshold=GREENLEAF_MERGE_THRESHOLD,
                                    shingle=GREENLEAF_SHINGLE)
    removed = {"validation": len(loaded.bad_lines),
               "exact duplicates": sum(r.reason == "exact duplicate" for r in dedup.removed),
               "near duplicates": sum(r.reason == "near duplicate" for r in dedup.removed)}
    return CleaningResult(loaded, validated, redacted, pii, deduplicated, dedup, train, heldout,
                          contamination(train, heldout), removed)


def build_greenleaf_splits(out_dir: str | Path | None = None) -> CleaningResult:
    """Run ``clean_greenleaf`` and write ``train.jsonl``, ``heldout.jsonl`` and ``cleaning_report.json``
    (the course's shipped files; maintainers regenerate them with this)."""
    out = Path(out_dir) if out_dir else GREENLEAF_DIR
    result = clean_greenleaf()
    _write_jsonl(result.train, out / "train.jsonl")
    _write_jsonl(result.heldout, out / "heldout.jsonl")
    (out / "cleaning_report.json").write_text(json.dumps(result.report(), indent=1, ensure_ascii=False) + "\n",
                                              encoding="utf-8")
    return result


def load_split(name: str) -> list[Row]:
    """Rows of ``data/greenleaf/{name}.jsonl`` for name in train, heldout (chat rows), regression (``prompt``,
    ``answer``, ``check``), preferences (TRL conversational preference rows) and replay (general chat rows
    answered by the base model, mixed into training against forgetting; ``data/generate_replay.py``)."""
    if name not in SPLIT_NAMES:
        raise DataError(f"Unknown split {name!r}; use one of {SPLIT_NAMES}.")
    path = GREENLEAF_DIR / f"{name}.jsonl"
    if name == "regression":
        return [row for _, row in read_json_lines(path)]
    result = load_jsonl(path, fmt="preference" if name == "preferences" else "chat",
                        check_target=name in ("train", "heldout"))
    if result.errors:
        raise DataError(f"data/greenleaf/{name}.jsonl has invalid rows (it should not):\n{result.summary()}")
    return result.rows
