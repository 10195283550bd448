"""Duplicates: exact (hash of the normalised conversation) and near (MinHash + LSH, exact Jaccard on shingles)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass

from course_lib.data.formats import DataError, Row, _row_name, _text_of

NUM_PERM = 128  # MinHash permutations: the similarity estimate's standard error is about 1/sqrt(128) ~ 0.09


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s<>]", " ", text)).strip()


def exact_key(row: Row) -> str:
    """Hash of the normalised conversation (case, punctuation and spacing ignored)."""
    payload = json.dumps([(m["role"], _normalise(m["content"])) for m in row["messages"]])
    return hashlib.sha1(payload.encode()).hexdigest()


def shingles(text: str, shingle: str = "word3") -> set[str]:
    """The set of shingles of the normalised text: ``"word3"`` = overlapping runs of 3 words, ``"char5"`` =
    overlapping runs of 5 characters (any ``word<k>`` / ``char<k>`` works)."""
    match = re.fullmatch(r"(word|char)(\d+)", shingle)
    if not match:
        raise DataError(f"shingle={shingle!r}: use 'word<k>' (e.g. 'word3') or 'char<k>' (e.g. 'char5').")
    unit, k = match.group(1), int(match.group(2))
    if unit == "char":
        text = _normalise(text)
        return {text[i:i + k] for i in range(max(1, len(text) - k + 1))} if text else set()
    words = _normalise(text).split()
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicate_pairs(rows: list[Row], threshold: float = 0.8, role: str = "user",
                         shingle: str = "word3") -> list[tuple[int, int, float]]:
    """Index pairs ``(i, j, similarity)``, i < j, whose ``role`` texts have Jaccard similarity >= threshold.

    MinHash + LSH finds candidate pairs without comparing every pair; the similarity reported (and
    thresholded) is the exact Jaccard of the two shingle sets, so the result does not depend on hash luck.
    """
    from datasketch import MinHash, MinHashLSH

    sets = [shingles(_text_of(r, role), shingle) for r in rows]
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.1), num_perm=NUM_PERM)  # a bit lower: recall over precision
    hashes = MinHash.bulk([[s.encode() for s in st] for st in sets], num_perm=NUM_PERM, seed=1)
    for i, m in enumerate(hashes):
        lsh.insert(i, m)
    pairs = set()
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j != i:
                a, b = min(i, j), max(i, j)
                pairs.add((a, b))
    out = [(a, b, round(jaccard(sets[a], sets[b]), 3)) for a, b in sorted(pairs)]
    return [p for p in out if p[2] >= threshold]


@dataclass(frozen=True)
class Removal:
    row: str  # id of the removed row
    index: int  # its position in the input
    reason: str  # "exact duplicate" or "near duplicate"
    duplicate_of: str  # id of the kept row it repeats
    similarity: float  # 1.0 for exact; Jaccard similarity of the user texts' shingle sets for near


@dataclass
class DedupReport:
    n_rows: int
    threshold: float
    shingle: str  # what the similarity was computed on ("word3", "char5", ...)
    removed: list[Removal]
    pairs: list[tuple[int, int, float]]  # every near-duplicate pair found (indices into the input), incl. exact

    @property
    def n_kept(self) -> int:
        return self.n_rows - len(self.removed)

    def frame(self):
        import pandas as pd

        cols = ["row", "reason", "duplicate_of", "similarity"]
        return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.removed], columns=cols)


def find_duplicates(rows: list[Row], threshold: float = 0.8, shingle: str = "word3") -> DedupReport:
    """Which rows repeat an earlier row: exactly (same normalised conversation) or nearly (user-text Jaccard
    similarity >= ``threshold``). The first occurrence is kept; each later copy is listed with the row it
    repeats and how similar they are."""
    removed: list[Removal] = []
    dropped: set[int] = set()
    first_by_key: dict[str, int] = {}
    for i, row in enumerate(rows):
        key = exact_key(row)
        if key in first_by_key:
            j = first_by_key[key]
            removed.append(Removal(_row_name(row, i), i, "exact duplicate", _row_name(rows[j], j), 1.0))
            dropped.add(i)
        else:
            first_by_key[key] = i
    pairs = near_duplicate_pairs(rows, threshold, shingle=shingle)
    partners: dict[int, list[tuple[int, float]]] = {}
    for a, b, sim in pairs:
        partners.setdefault(b, []).append((a, sim))
    for i in range(len(rows)):
        if i in dropped:
            continue
        earlier = [(a, s) for a, s in partners.get(i, []) if a not in dropped]
        if earlier:
            a, s = max(earlier, key=lambda x: x[1])
            removed.append(Removal(_row_name(rows[i], i), i, "near duplicate", _row_name(rows[a], a), s))
            dropped.add(i)
    removed.sort(key=lambda r: r.index)
    return DedupReport(len(rows), threshold, shingle, removed, pairs)


def drop_duplicates(rows: list[Row], threshold: float = 0.8, shingle: str = "word3") -> tuple[list[Row], DedupReport]:
    """Rows without exact and near duplicates, and the report of each removal."""
    report = find_duplicates(rows, threshold, shingle)
    gone = {r.index for r in report.removed}
    return [r for i, r in enumerate(rows) if i not in gone], report
