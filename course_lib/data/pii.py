"""PII: detect, redact and score personal data (Microsoft Presidio's recognizers, run offline, plus our patterns).

Card numbers count only if they pass the Luhn check (Presidio's ``CreditCardRecognizer`` runs it; our own copy,
for tests and the data generator, is ``course_lib.cards.luhn_valid``, re-exported as ``data.luhn_valid``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from course_lib.data.formats import Row, _row_name

PII_TYPES = ("EMAIL", "PHONE", "CARD", "ADDRESS", "PERSON")
_PRESIDIO_TO_OURS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD",
                     "STREET_ADDRESS": "ADDRESS", "PERSON": "PERSON"}


@dataclass(frozen=True)
class PiiSpan:
    start: int  # character offsets into the text, end exclusive
    end: int
    type: str  # one of PII_TYPES
    text: str  # the matched text (kept out of reports; only redact() callers see it)


_STREET_TYPES = ("Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Close|Way|Court|Ct|Place|Pl|Boulevard|Blvd|"
                 "Terrace|Crescent|Gardens|Row|Square|Parkway|Hill|Mews|Walk|Grove|Rise|Green")
_CAP_WORD = r"[A-Z][a-z]+"
# Patterns for what Presidio does not predefine offline (it finds addresses and names with NER models).
ADDRESS_PATTERNS = [
    # "12 Elm Street", "41 Brambleworth Mews, Quillhaven": house number, 1-3 capitalised words, a street type,
    # then optionally a flat number and ", Town" (one to three capitalised words)
    (r"\b\d{1,5}[A-Za-z]?,? (?:" + _CAP_WORD + r" ){1,3}(?:" + _STREET_TYPES + r")\b\.?"
     r"(?:,? (?:Apt|Flat|Unit|Suite) \w+)?(?:, " + _CAP_WORD + r"(?: " + _CAP_WORD + r"){0,2}(?![a-z]))?", 0.6),
]
# Phone shapes the python-phonenumbers check (behind Presidio's PhoneRecognizer) rejects: North American numbers
# in the 555 range (reserved for fiction, so "not a valid number" to it) and UK numbers in Ofcom's drama ranges.
PHONE_PATTERNS = [
    (r"(?<![\w.])(?:\+1[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]\d{4}(?![\w])", 0.5),
    (r"(?<![\w+])(?:\+44 ?|0)(?:\d{2} ?\d{4} ?\d{4}|\d{4} ?\d{6}|\d{3} ?\d{3} ?\d{4})(?!\w)", 0.5),
]
_NAME = r"(?:[A-Z]')?[A-Z][a-z]+(?:[A-Z][a-z]+)?(?:-[A-Z][a-z]+)?"  # Jane, O'Neil, McAllister, Quenby-Saltash
_FULL_NAME = _NAME + r"(?: " + _NAME + r")?"
PERSON_PATTERNS = [
    # a cue that a name follows ("my name is", "I'm", "reach me as", greetings, sign-offs), then 1-2 capitalised words
    (r"(?<=\b(?:[Mm]y name is|[Nn]ame's|I am|I'm|[Tt]his is|[Rr]each me as|[Aa]ccount is under|[Dd]etails:) )"
     + _FULL_NAME, 0.5),
    (r"(?<=^(?:Hi|Hello|Dear|Hey) )" + _FULL_NAME + r"(?=[,!])", 0.5),
    (r"(?<=\b(?:Thanks|Thank you|Regards|Best|Cheers|Sincerely|Best wishes|Kind regards|Many thanks)(?:,\s{1,2}|,?\n))"
     + _FULL_NAME, 0.5),
    (r"(?<=^\s*[-–—] ?)" + _FULL_NAME, 0.5),  # "- Jane Doe" signature line
    (r"\b(?:Mr|Mrs|Ms|Miss|Dr)\.? " + _FULL_NAME, 0.6),
    (r"\b" + _NAME + " " + _NAME + r"(?=, (?:\d|\+|phone|email))", 0.4),  # a full name right before contact details
]
_NOT_NAMES = {"GreenLeaf", "Happy", "Monstera", "Pothos", "Fern", "Support", "Order", "The", "It", "My", "Please",
              "Thanks", "Hello", "Hi", "Sorry", "Not", "Still", "Just", "So", "Very", "Really", "Also", "And", "But",
              "Worried", "Sure", "Here", "There", "Glad", "Happy growing", "Team"}


@lru_cache(maxsize=1)
def pii_analyzer():
    """A Presidio ``AnalyzerEngine`` that runs offline: predefined email/phone/card recognizers plus our
    pattern recognizers for street addresses and names. No spaCy language model is needed (a blank English
    tokenizer stands in for it), so nothing is downloaded; the price is no NER, which is what finds names in
    Presidio's default setup."""
    import regex
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SlimSpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer, PhoneRecognizer

    offline_suffixes = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # the bundled list, no fetch

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            # the public-suffix list, plus reserved names such as .example and .test that real data uses too
            return offline_suffixes(pattern_text).fqdn != "" or bool(regex.search(r"\.[A-Za-z]{2,}$", pattern_text))

    class CapitalisedNameRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            # False drops a match; None keeps the pattern's own score (True would raise it to 1.0)
            first = pattern_text.split()[0].rstrip(".")
            return False if first in _NOT_NAMES or pattern_text.strip() in _NOT_NAMES else None

    engine = SlimSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank:en"}], auto_download=False)
    engine.nlp = {"en": spacy.blank("en")}  # tokenizer only: no tagger, lemmatizer or NER to download
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(OfflineEmailRecognizer())
    registry.add_recognizer(PhoneRecognizer(supported_regions=("US", "GB", "CA", "IE", "AU")))
    registry.add_recognizer(CreditCardRecognizer())
    registry.add_recognizer(PatternRecognizer(
        supported_entity="PHONE_NUMBER", name="FictionalPhoneRecognizer", global_regex_flags=regex.MULTILINE,
        patterns=[Pattern(f"phone {i}", p, s) for i, (p, s) in enumerate(PHONE_PATTERNS)]))
    registry.add_recognizer(PatternRecognizer(
        supported_entity="STREET_ADDRESS", name="StreetAddressRecognizer", global_regex_flags=regex.MULTILINE,
        patterns=[Pattern(f"address {i}", p, s) for i, (p, s) in enumerate(ADDRESS_PATTERNS)]))
    registry.add_recognizer(CapitalisedNameRecognizer(
        supported_entity="PERSON", name="CuedNameRecognizer", global_regex_flags=regex.MULTILINE,
        patterns=[Pattern(f"name {i}", p, s) for i, (p, s) in enumerate(PERSON_PATTERNS)]))
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


def detect_pii(text: str, score_threshold: float = 0.3) -> list[PiiSpan]:
    """PII spans in ``text``, sorted, without overlaps (where two overlap, the higher-scoring, then longer wins).

    Card numbers must pass the Luhn check (Presidio's ``CreditCardRecognizer`` does it), so a 16-digit
    tracking number that fails it is left alone.
    """
    if not text:
        return []
    results = pii_analyzer().analyze(text, language="en", entities=list(_PRESIDIO_TO_OURS),
                                      score_threshold=score_threshold)
    results = sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start))
    chosen: list[PiiSpan] = []
    for r in results:
        if any(r.start < c.end and c.start < r.end for c in chosen):
            continue
        chosen.append(PiiSpan(r.start, r.end, _PRESIDIO_TO_OURS[r.entity_type], text[r.start:r.end]))
    return sorted(chosen, key=lambda s: s.start)


def redact(text: str) -> tuple[str, list[PiiSpan]]:
    """Replace each PII span with a typed placeholder (``<EMAIL>``, ``<PHONE>``, ``<CARD>``, ``<ADDRESS>``,
    ``<PERSON>``); returns the new text and the spans found (offsets refer to the original text)."""
    spans = detect_pii(text)
    out, last = [], 0
    for s in spans:
        out += [text[last:s.start], f"<{s.type}>"]
        last = s.end
    out.append(text[last:])
    return "".join(out), spans


@dataclass
class RedactionRecord:
    row: str  # row id (or #index)
    turn: int  # index into messages
    role: str
    type: str  # what was replaced; the secret itself is not kept


@dataclass
class PiiReport:
    records: list[RedactionRecord]
    n_rows: int
    rows_changed: int

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.type for r in self.records))

    def frame(self):
        import pandas as pd

        return pd.DataFrame([r.__dict__ for r in self.records], columns=["row", "turn", "role", "type"])


def redact_rows(rows: list[Row], roles: tuple[str, ...] = ("user", "assistant")) -> tuple[list[Row], PiiReport]:
    """Redact the content of ``roles`` in every chat row; returns new rows (inputs untouched) and a report of
    what was replaced where (row, turn, role, type)."""
    out, records, changed = [], [], 0
    for i, row in enumerate(rows):
        messages, row_changed = [], False
        for t, m in enumerate(row["messages"]):
            if m["role"] in roles:
                content, spans = redact(m["content"])
                records += [RedactionRecord(_row_name(row, i), t, m["role"], s.type) for s in spans]
                row_changed |= bool(spans)
                m = {**m, "content": content}
            messages.append(dict(m))
        changed += row_changed
        out.append({**row, "messages": messages})
    return out, PiiReport(records, len(rows), changed)


def score_pii(labelled_rows: list[Row], text_key: str = "text", spans_key: str = "spans") -> dict[str, dict]:
    """Span-level precision/recall/F1 of ``detect_pii`` on hand-labelled rows ``{"text", "spans": [{start, end,
    type}]}``. A predicted span matches a gold one if they overlap and have the same type. The extra row
    ``"hidden"`` ignores types: a gold span counts as caught if *any* predicted span overlaps it (what matters
    for safety: was it hidden?)."""
    tp, fp, fn = Counter(), Counter(), Counter()
    hidden, n_gold = 0, 0
    for row in labelled_rows:
        text = row[text_key]
        gold = [(s["start"], s["end"], s["type"]) for s in row[spans_key]]
        pred = [(s.start, s.end, s.type) for s in detect_pii(text)]
        overlap = lambda a, b: a[0] < b[1] and b[0] < a[1]  # noqa: E731
        for p in pred:
            (tp if any(overlap(p, g) and g[2] == p[2] for g in gold) else fp)[p[2]] += 1
        for g in gold:
            if not any(overlap(p, g) and g[2] == p[2] for p in pred):
                fn[g[2]] += 1
            hidden += any(overlap(p, g) for p in pred)
            n_gold += 1
    scores = {}
    for t in [*PII_TYPES, "overall"]:
        a, b, c = (sum(x.values()) for x in (tp, fp, fn)) if t == "overall" else (tp[t], fp[t], fn[t])
        p = a / (a + b) if a + b else float("nan")
        r = a / (a + c) if a + c else float("nan")
        f1 = 2 * p * r / (p + r) if a else 0.0
        scores[t] = {"precision": p, "recall": r, "f1": f1, "gold": a + c, "predicted": a + b}
    scores["hidden"] = {"precision": float("nan"), "recall": hidden / n_gold if n_gold else float("nan"),
                        "f1": float("nan"), "gold": n_gold, "predicted": float("nan")}
    return scores


def pii_errors(labelled_rows: list[Row], text_key: str = "text", spans_key: str = "spans"):
    """What ``detect_pii`` got wrong on labelled rows, one line per span: ``missed`` (gold span with no
    same-type prediction) or ``false alarm`` (prediction with no same-type gold span), with a little context."""
    import pandas as pd

    out = []
    for i, row in enumerate(labelled_rows):
        text = row[text_key]
        gold = [(s["start"], s["end"], s["type"]) for s in row[spans_key]]
        pred = [(s.start, s.end, s.type) for s in detect_pii(text)]
        for kind, mine, other in (("missed", gold, pred), ("false alarm", pred, gold)):
            for a, b, t in mine:
                if not any(a < d and c < b and t == u for c, d, u in other):
                    out.append({"row": _row_name(row, i), "error": kind, "type": t, "span": text[a:b],
                                "context": text[max(0, a - 25):b + 25].replace("\n", " ")})
    return pd.DataFrame(out, columns=["row", "error", "type", "span", "context"])
