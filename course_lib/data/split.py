"""Leak-free splits: whole groups (ticket families) per side, near-copy families merged first; leak checks.

``cross_duplicates`` (the detector that merged), ``cross_overlap`` (a different one) and ``contamination``
(shared word n-grams) measure what overlap a split leaves between train and held-out.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from course_lib.data.dedup import _normalise, near_duplicate_pairs, shingles
from course_lib.data.formats import DataError, Row, _row_name, _text_of


def merged_groups(rows: list[Row], group_key: str = "family", threshold: float = 0.8,
                  shingle: str = "word3") -> dict[str, str]:
    """Map each group to a representative: groups joined by a near-duplicate pair share one (union-find)."""
    parent: dict[str, str] = {}

    def find(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    groups = [str(r[group_key]) for r in rows]
    for g in groups:
        parent.setdefault(g, g)
    for a, b, _ in near_duplicate_pairs(rows, threshold, shingle=shingle):
        ra, rb = find(groups[a]), find(groups[b])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {g: find(g) for g in parent}


def split_by_group(
    rows: list[Row],
    group_key: str = "family",
    heldout_families: Iterable[str] | None = None,
    heldout_fraction: float = 0.2,
    seed: int = 0,
    keep_in_train: Iterable[str] = (),
    threshold: float | None = 0.5,
    shingle: str = "word3",
) -> tuple[list[Row], list[Row]]:
    """Split so that every group (ticket family) lies wholly in train or wholly in held-out.

    Groups linked by a near-duplicate pair (user-text Jaccard >= ``threshold``; ``None`` turns merging off) are
    merged first, so a near copy cannot straddle the split. The default is lower than the dedup threshold: a
    paraphrase too loose to delete can still leak an answer.
    With ``heldout_families`` a merged group is held out if it contains one of them; otherwise whole merged
    groups are drawn at random (``seed``) until ``heldout_fraction`` of the rows is held out. Groups in
    ``keep_in_train`` (and anything merged with them) always stay in train.
    """
    missing = [i for i, r in enumerate(rows) if group_key not in r]
    if missing:
        first = _row_name(rows[missing[0]], missing[0])
        raise DataError(f"{len(missing)} rows have no {group_key!r} key (first: row {first}). "
                        "Give every row a group, or pick another group_key.")
    rep = (merged_groups(rows, group_key, threshold, shingle) if threshold is not None
           else {str(r[group_key]): str(r[group_key]) for r in rows})
    pinned = {rep[str(g)] for g in keep_in_train if str(g) in rep}
    if heldout_families is not None:
        wanted = {rep[str(g)] for g in heldout_families if str(g) in rep}
        held = wanted - pinned
    else:
        sizes = Counter(rep[str(r[group_key])] for r in rows)
        order = sorted(c for c in sizes if c not in pinned)
        random.Random(seed).shuffle(order)
        held, count, target = set(), 0, heldout_fraction * len(rows)
        for comp in order:
            if count >= target:
                break
            held.add(comp)
            count += sizes[comp]
    train = [r for r in rows if rep[str(r[group_key])] not in held]
    heldout = [r for r in rows if rep[str(r[group_key])] in held]
    return train, heldout


def random_split(rows: list[Row], heldout_fraction: float = 0.2, seed: int = 0) -> tuple[list[Row], list[Row]]:
    """The naive split: rows shuffled and cut, ignoring groups. Shown only to see what leaks."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    cut = int(round(len(rows) * heldout_fraction))
    held = set(order[:cut])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def cross_duplicates(a_rows: list[Row], b_rows: list[Row], threshold: float = 0.8,
                     shingle: str = "word3") -> list[tuple[str, str, float]]:
    """Near-duplicate pairs with one row in ``a_rows`` and one in ``b_rows``: ``(a id, b id, similarity)``."""
    rows = list(a_rows) + list(b_rows)
    n = len(a_rows)
    return [(_row_name(rows[i], i), _row_name(rows[j], j - n), s)
            for i, j, s in near_duplicate_pairs(rows, threshold, shingle=shingle) if i < n <= j]


def cross_overlap(a_rows: list[Row], b_rows: list[Row], threshold: float = 0.3, shingle: str = "word3",
                  role: str = "user") -> list[tuple[str, str, str, float]]:
    """A second opinion on a split, with a detector other than the one that merged it: every (a, b) pair whose
    ``role`` texts are equal once normalised (``"exact"``) or have a ``shingle`` Jaccard similarity >=
    ``threshold`` (``"near"``), as ``(a id, b id, kind, similarity)``, most similar first.

    Unlike ``cross_duplicates`` (MinHash + LSH candidates), every pair that shares a shingle is scored exactly,
    through an inverted index, so nothing is missed by hashing luck. Word 3-shingles at 0.3 are the default: on
    GreenLeaf they score the planted near copies 0.54 to 0.97, and different tickets almost never reach 0.3.
    """
    a_raw = [_text_of(r, role) for r in a_rows]
    a_sets = [shingles(t, shingle) for t in a_raw]
    by_text: dict[str, list[int]] = {}
    index: dict[str, list[int]] = {}
    for i, (raw, st) in enumerate(zip(a_raw, a_sets)):
        by_text.setdefault(_normalise(raw), []).append(i)
        for sh in st:
            index.setdefault(sh, []).append(i)
    out = []
    for j, row in enumerate(b_rows):
        raw = _text_of(row, role)
        key = _normalise(raw)
        exact = set(by_text.get(key, ())) if key else set()
        out += [(_row_name(a_rows[i], i), _row_name(row, j), "exact", 1.0) for i in sorted(exact)]
        b_set = shingles(raw, shingle)
        shared = Counter(i for sh in b_set for i in index.get(sh, ()))
        for i, n in shared.items():
            sim = round(n / (len(a_sets[i]) + len(b_set) - n), 3)
            if i not in exact and sim >= threshold:
                out.append((_row_name(a_rows[i], i), _row_name(row, j), "near", sim))
    return sorted(out, key=lambda p: (-p[3], p[0], p[1]))


def ngrams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = _normalise(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@dataclass
class ContaminationReport:
    n: int  # n-gram length in words
    n_b: int  # rows checked
    n_contaminated: int  # rows of b sharing at least one counted n-gram with a
    worst: list[dict]  # the most overlapping b rows: {row, shared, fraction, example}
    common_limit: float = 2  # n-grams in more than this many of a's rows were ignored as boilerplate
    n_ignored: int = 0  # how many distinct n-grams of a that rule ignored

    @property
    def fraction(self) -> float:
        return self.n_contaminated / self.n_b if self.n_b else 0.0

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.worst, columns=["row", "shared", "fraction", "example"])


def contamination(a_rows: list[Row], b_rows: list[Row], n: int = 8, role: str = "user", top: int = 5,
                  ignore_common: float = 0.05) -> ContaminationReport:
    """How much of ``b_rows`` also appears in ``a_rows``: the fraction of b rows whose ``role`` text shares any
    counted word ``n``-gram with a's, and the worst offenders (share of their n-grams found in a).

    An n-gram is not counted when more than ``max(2, ignore_common * len(a_rows))`` of a's rows contain it (5%
    by default, never fewer than 2 rows): such a phrase is boilerplate ("thank you for your help ...") rather
    than leaked content. ``ignore_common=1.0`` counts every n-gram. The report records the limit used
    (``common_limit``) and how many distinct n-grams it ignored (``n_ignored``).
    """
    df = Counter()
    for r in a_rows:
        df.update(ngrams(_text_of(r, role), n))
    limit = max(2, ignore_common * len(a_rows))
    seen = {g for g, c in df.items() if c <= limit}
    worst, hit = [], 0
    for i, r in enumerate(b_rows):
        grams = ngrams(_text_of(r, role), n)
        shared = grams & seen
        if shared:
            hit += 1
            worst.append({"row": _row_name(r, i), "shared": len(shared),
                          "fraction": round(len(shared) / len(grams), 3), "example": " ".join(sorted(shared)[0])})
    worst.sort(key=lambda w: (-w["fraction"], -w["shared"]))
    return ContaminationReport(n, len(b_rows), hit, worst[:top], limit, len(df) - len(seen))
