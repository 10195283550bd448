"""Data that is safe to train on: formats, validation, quality, PII redaction, dedup, leak-free split, masking.

The steps, in the order notebook 02 walks them:

1. ``load_jsonl``: read a JSONL file and report *every* bad row (line, field, reason, how to fix).
2. ``quality_report`` / ``plot_quality``: token lengths per role, empty or cut-off answers, label balance.
3. ``redact_rows``: replace emails, phones, card numbers, street addresses and names with typed placeholders
   (Microsoft Presidio's recognizers, run offline without a spaCy language model).
4. ``drop_duplicates``: exact duplicates (hash) and near duplicates (MinHash + LSH on shingles: overlapping runs
   of 3 words by default, of 5 characters for GreenLeaf's short tickets).
5. ``split_by_group``: whole ticket families go to train or held-out; near-duplicate families are merged
   first, so no near copy can sit on both sides. ``contamination`` measures what overlap is left.
6. ``tokenize_sft``: token ids with labels on the assistant's answer only (everything else is -100).

Rows are plain dicts. Chat rows look like ``{"messages": [{"role": ..., "content": ...}, ...], ...}``;
other top-level keys (``id``, ``family``, ...) are metadata and travel with the row.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema

from course_lib import greenleaf
from course_lib.paths import DATA_DIR

Row = dict[str, Any]
Messages = list[dict[str, str]]

FORMATS = ("chat", "instruction", "completion", "preference")
ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100  # label value that PyTorch's cross-entropy skips: "do not learn this token"
GREENLEAF_DIR = DATA_DIR / "greenleaf"
SPLIT_NAMES = ("train", "heldout", "regression", "preferences", "replay")


class DataError(ValueError):
    """A dataset problem a learner can fix; the message says which file/row/field and how."""


# ---------------------------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------------------------

_MESSAGE = {
    "type": "object",
    "properties": {
        "role": {"enum": list(ROLES)},
        "content": {"type": "string", "pattern": r"\S"},  # at least one non-space character
    },
    "required": ["role", "content"],
    "additionalProperties": False,
}
_CONVERSATION = {"type": "array", "items": _MESSAGE, "minItems": 1}
_TEXT = {"type": "string", "pattern": r"\S"}

# One JSON schema per format; top-level keys not listed (id, family, ...) are allowed as metadata.
ROW_SCHEMAS: dict[str, dict] = {
    "chat": {"type": "object", "properties": {"messages": {**_CONVERSATION, "minItems": 2}},
             "required": ["messages"]},
    "instruction": {"type": "object", "required": ["instruction", "output"],
                    "properties": {"instruction": _TEXT, "input": {"type": "string"}, "output": _TEXT}},
    "completion": {"type": "object", "required": ["prompt", "completion"],
                   "properties": {"prompt": {"anyOf": [_TEXT, _CONVERSATION]},
                                  "completion": {"anyOf": [_TEXT, _CONVERSATION]}}},
    "preference": {"type": "object", "required": ["prompt", "chosen", "rejected"],
                   "properties": {"prompt": {"anyOf": [_TEXT, _CONVERSATION]},
                                  "chosen": {"anyOf": [_TEXT, _CONVERSATION]},
                                  "rejected": {"anyOf": [_TEXT, _CONVERSATION]}}},
}
_FORMAT_KEYS = {"chat": ("messages",), "instruction": ("instruction", "output"),
                "preference": ("prompt", "chosen", "rejected"), "completion": ("prompt", "completion")}
_DATA_KEYS = {"messages", "instruction", "input", "output", "prompt", "completion", "chosen", "rejected"}


def detect_format(row: Row) -> str:
    """Which of ``FORMATS`` a row is in, from its keys (``preference`` is checked before ``completion``)."""
    if not isinstance(row, dict):
        raise DataError(f"A row must be a JSON object, got {type(row).__name__}.")
    for fmt in ("chat", "instruction", "preference", "completion"):
        if all(k in row for k in _FORMAT_KEYS[fmt]):
            return fmt
    raise DataError(
        f"Cannot tell the format of a row with keys {sorted(row)}. Expected one of: chat {{messages}}, "
        "instruction {instruction, input, output}, completion {prompt, completion}, "
        "preference {prompt, chosen, rejected}."
    )


def _metadata(row: Row) -> Row:
    return {k: v for k, v in row.items() if k not in _DATA_KEYS}


def _as_messages(value: str | Messages, role: str) -> Messages:
    return [{"role": role, "content": value}] if isinstance(value, str) else [dict(m) for m in value]


def to_chat(row: Row, system: str | None = None) -> Row:
    """Convert a row of any format to ``{"messages": [...], **metadata}``; ``system`` is prepended if missing.

    A preference row becomes the conversation with its *chosen* answer.
    """
    fmt = detect_format(row)
    if fmt == "chat":
        messages = [dict(m) for m in row["messages"]]
    elif fmt == "instruction":
        user = row["instruction"] if not row.get("input") else f"{row['instruction']}\n\n{row['input']}"
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
    else:
        answer = row["completion"] if fmt == "completion" else row["chosen"]
        messages = _as_messages(row["prompt"], "user") + _as_messages(answer, "assistant")
    if system is not None and (not messages or messages[0]["role"] != "system"):
        messages.insert(0, {"role": "system", "content": system})
    return {"messages": messages, **_metadata(row)}


def to_prompt_completion(row: Row) -> Row:
    """A chat row as TRL's conversational prompt-completion row: everything before the last assistant turn is
    the prompt (not learned), the last assistant turn is the completion (learned)."""
    messages = to_chat(row)["messages"]
    if not messages or messages[-1]["role"] != "assistant":
        raise DataError(f"Row {_row_name(row)}: the last message must be the assistant's answer to make a "
                        "prompt-completion row.")
    return {"prompt": messages[:-1], "completion": messages[-1:], **_metadata(row)}


def render_chat(tokenizer, messages: Messages, add_generation_prompt: bool = False) -> str:
    """The exact text the model sees for ``messages``: the tokenizer's own chat template, not tokenized."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


# ---------------------------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    line: int  # 1-based line number in the file
    field: str  # where in the row, e.g. "messages[2].content"; "(line)" when the line itself is unreadable
    reason: str  # what is wrong
    fix: str = ""  # how to fix it


@dataclass
class LoadResult:
    path: Path
    fmt: str
    rows: list[Row]  # the rows that passed every check, in file order
    lines: list[int]  # line number of each kept row
    errors: list[RowError]  # every problem found, in file order (a row can have several)
    n_lines: int  # non-blank lines read

    @property
    def bad_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})

    def summary(self) -> str:
        """A short text report: counts, then one line per problem."""
        head = (f"{self.path.name}: {self.n_lines} rows read, {len(self.rows)} valid, "
                f"{len(self.bad_lines)} rejected ({len(self.errors)} problems)")
        lines = [head] + [f"  line {e.line:>4}  {e.field:<24} {e.reason}" + (f"  -> {e.fix}" if e.fix else "")
                          for e in self.errors]
        return "\n".join(lines)

    def errors_frame(self):
        """The problems as a pandas DataFrame (line, field, reason, fix)."""
        import pandas as pd

        return pd.DataFrame([e.__dict__ for e in self.errors], columns=["line", "field", "reason", "fix"])

    def __repr__(self) -> str:
        return f"LoadResult({self.summary().splitlines()[0]})"


_INPUT_FILES: set[Path] = set()  # files load_jsonl has read in this session: save_jsonl never writes over them


def _field_path(parts: Iterable) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(row)"


_SCHEMA_FIXES = {
    "required": "add the missing key",
    "type": "use the type shown",
    "enum": "use one of the allowed values",
    "pattern": "write some text (it is empty or only spaces)",
    "minItems": "add the missing items",
    "additionalProperties": "remove the extra key (or rename it)",
    "anyOf": "use a string or a list of {role, content} messages",
}


def _schema_errors(validator: jsonschema.Validator, obj: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """(field, reason, fix) for every schema violation, most specific first."""
    out = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = _field_path(err.absolute_path)
        reason = err.message
        if err.validator == "pattern":
            reason = "is empty (only whitespace)"
        elif err.validator == "enum":
            reason = f"{err.instance!r} is not one of {err.validator_value}"
        elif err.validator == "additionalProperties":
            reason = err.message.replace("Additional properties are not allowed", "unknown key(s)")
        field_name = f"{prefix}.{path}" if prefix and path != "(row)" else (prefix or path)
        out.append((field_name, reason, _SCHEMA_FIXES.get(str(err.validator), "")))
    return out


def check_role_order(messages: Messages) -> list[tuple[str, str]]:
    """Problems with the turn order: optional system first, then user/assistant alternating, ending with
    the assistant. Returns (field, reason) pairs; empty if the order is fine."""
    problems = []
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    for i, role in enumerate(roles):
        if role == "system" and i != 0:
            problems.append((f"messages[{i}].role", "a system message is only allowed first"))
    turns = [(i, r) for i, r in enumerate(roles) if r in ("user", "assistant")]
    expected = "user"
    for i, role in turns:
        if role != expected:
            problems.append((f"messages[{i}].role", f"expected {expected!r} here (turns alternate user/assistant, "
                                                    f"starting with user), got {role!r}"))
            break
        expected = "assistant" if role == "user" else "user"
    if turns and turns[-1][1] != "assistant":
        problems.append((f"messages[{turns[-1][0]}].role", "the conversation must end with the assistant's answer"))
    if not turns:
        problems.append(("messages", "no user or assistant turn"))
    return problems


def check_target(answer: str) -> list[str]:
    """Why an assistant answer is not a valid GreenLeaf triage target (empty list if it is)."""
    try:
        obj = json.loads(answer)
    except json.JSONDecodeError as err:
        return [f"not valid JSON ({err.msg} at character {err.pos})"]
    validator = jsonschema.Draft202012Validator(greenleaf.TRIAGE_SCHEMA)
    return [f"{_field_path(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]


def _row_problems(row: Any, fmt: str, check_target_json: bool) -> list[tuple[str, str, str]]:
    if not isinstance(row, dict):
        return [("(row)", f"is a JSON {type(row).__name__}, not an object", "write one JSON object {...} per line")]
    validator = jsonschema.Draft202012Validator(ROW_SCHEMAS[fmt])
    problems = _schema_errors(validator, row)
    if problems or fmt != "chat":
        return problems
    messages = row["messages"]
    problems += [(f, r, "reorder or add turns: [system], user, assistant, user, assistant, ...")
                 for f, r in check_role_order(messages)]
    if check_target_json and not problems:
        for i, m in enumerate(messages):
            if m["role"] == "assistant":
                for reason in check_target(m["content"]):
                    problems.append((f"messages[{i}].content", f"not a valid triage answer: {reason}",
                                     "write the answer with greenleaf.format_target(...)"))
    return problems


def load_jsonl(path: str | Path, fmt: str = "chat", check_target: bool = False) -> LoadResult:
    """Read a JSONL file of ``fmt`` rows and check every row; never raises for a bad row, reports it instead.

    Each problem becomes a ``RowError(line, field, reason, fix)``: undecodable bytes, invalid JSON, wrong types,
    missing or unknown keys and roles, empty content, turn order, and, with ``check_target=True``, assistant
    answers that are not valid GreenLeaf triage JSON. A missing or empty file raises ``DataError``.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise DataError(f"fmt={fmt!r} is not a format; use one of {FORMATS}.")
    if not path.is_file():
        raise DataError(f"{path} does not exist (or is not a file). Check the path; the course data lives in "
                        f"{GREENLEAF_DIR}.")
    raw = path.read_bytes()
    _INPUT_FILES.add(path.resolve())
    rows, lines, errors, n_lines = [], [], [], 0
    for number, raw_line in enumerate(raw.splitlines(), start=1):
        if not raw_line.strip():
            continue
        n_lines += 1
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError as err:
            errors.append(RowError(number, "(line)", f"not valid UTF-8 (byte 0x{raw_line[err.start]:02x} at "
                                   f"byte {err.start + 1})", "re-save the file as UTF-8"))
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            errors.append(RowError(number, "(line)", f"invalid JSON: {err.msg} at column {err.colno}",
                                   "one complete JSON object per line; check quotes, commas and brackets"))
            continue
        problems = _row_problems(row, fmt, check_target)
        if problems:
            errors.extend(RowError(number, f, r, fix) for f, r, fix in problems)
        else:
            rows.append(row)
            lines.append(number)
    if n_lines == 0:
        raise DataError(f"{path} is empty: a JSONL file needs one JSON object per line.")
    return LoadResult(path, fmt, rows, lines, errors, n_lines)


def save_jsonl(rows: Iterable[Row], path: str | Path, overwrite: bool = False) -> Path:
    """Write rows as UTF-8 JSONL. Refuses to replace an existing file unless ``overwrite=True``, and never
    writes over a file that ``load_jsonl`` read (your input stays as it was)."""
    path = Path(path)
    if path.resolve() in _INPUT_FILES:
        raise DataError(f"{path} is an input file (load_jsonl read it): writing over it would lose the original. "
                        "Save to a new file instead.")
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists. Pick a new name, or pass overwrite=True to replace it.")
    _write_jsonl(rows, path)
    return path


def _write_jsonl(rows: Iterable[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _row_name(row: Row, index: int | None = None) -> str:
    if isinstance(row, dict) and "id" in row:
        return str(row["id"])
    return f"#{index}" if index is not None else "?"


def _text_of(row: Row, role: str = "user") -> str:
    return "\n".join(m["content"] for m in row["messages"] if m["role"] == role)


def _answer(row: Row) -> str:
    answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
    return answers[-1] if answers else ""


# ---------------------------------------------------------------------------------------------------------------
# Quality report
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class QualityReport:
    n_rows: int
    token_lengths: dict[str, list[int]]  # role -> tokens of that role's content, per row (summed over turns)
    total_lengths: list[int]  # whole rendered conversation, template tokens included, per row
    max_length: int  # the sequence budget the report was made for
    role_problems: list[tuple[str, str]]  # (row id, problem)
    empty_answers: list[str]  # row ids whose assistant answer is empty
    truncated_answers: list[str]  # row ids whose answer looks cut off (unclosed JSON, no closing punctuation)
    too_long: list[str]  # row ids longer than max_length tokens
    categories: dict[str, int]  # triage label counts (GreenLeaf rows)
    priorities: dict[str, int]
    needs_human: dict[str, int]

    def lengths_frame(self):
        """Token-length statistics per role as a pandas DataFrame."""
        import pandas as pd

        data = {**self.token_lengths, "whole row (template included)": self.total_lengths}
        return pd.DataFrame(data).describe(percentiles=[0.5, 0.95]).T[["min", "50%", "95%", "max", "mean"]].round(1)

    def checks_frame(self):
        """Counts of each problem found, with example row ids."""
        import pandas as pd

        checks = {"role-order problems": [r for r, _ in self.role_problems], "empty answers": self.empty_answers,
                  "truncated answers": self.truncated_answers, f"longer than {self.max_length} tokens": self.too_long}
        return pd.DataFrame([{"check": k, "rows": len(v), "examples": ", ".join(v[:3])} for k, v in checks.items()])

    def balance_frame(self):
        import pandas as pd

        rows = [{"label": "category", "value": k, "rows": v} for k, v in self.categories.items()]
        rows += [{"label": "priority", "value": k, "rows": v} for k, v in self.priorities.items()]
        rows += [{"label": "needs_human", "value": k, "rows": v} for k, v in self.needs_human.items()]
        return pd.DataFrame(rows)


def _looks_truncated(answer: str) -> bool:
    text = answer.rstrip()
    if not text:
        return False
    if text.startswith("{"):
        try:
            json.loads(text)
            return False
        except json.JSONDecodeError:
            return True
    return text[-1] not in ".!?)]}\"'*`"


def quality_report(rows: list[Row], tokenizer, max_length: int = 512) -> QualityReport:
    """Length, structure and balance statistics of chat rows, measured in the model's tokens."""
    lengths: dict[str, list[int]] = {r: [] for r in ROLES}
    total, role_problems, empty, truncated, too_long = [], [], [], [], []
    cats, prios, human = Counter(), Counter(), Counter()
    for i, row in enumerate(rows):
        name = _row_name(row, i)
        messages = row["messages"]
        for role in ROLES:
            lengths[role].append(sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"])
                                     for m in messages if m.get("role") == role))
        n = len(tokenizer(render_chat(tokenizer, messages), add_special_tokens=False)["input_ids"])
        total.append(n)
        if n > max_length:
            too_long.append(name)
        role_problems += [(name, f"{f}: {r}") for f, r in check_role_order(messages)]
        answer = _answer(row)
        if not answer.strip():
            empty.append(name)
        elif _looks_truncated(answer):
            truncated.append(name)
        triage = greenleaf.parse_triage(answer) or {}
        if triage:
            cats[str(triage.get("category"))] += 1
            prios[str(triage.get("priority"))] += 1
            human[str(triage.get("needs_human"))] += 1
    order = {c: i for i, c in enumerate(greenleaf.CATEGORIES + greenleaf.PRIORITIES)}
    return QualityReport(
        n_rows=len(rows), token_lengths=lengths, total_lengths=total, max_length=max_length,
        role_problems=role_problems, empty_answers=empty, truncated_answers=truncated, too_long=too_long,
        categories=dict(sorted(cats.items(), key=lambda kv: order.get(kv[0], 99))),
        priorities=dict(sorted(prios.items(), key=lambda kv: order.get(kv[0], 99))), needs_human=dict(human),
    )


def plot_quality(report: QualityReport):
    """Left: histogram of whole-row token lengths with the sequence budget; right: rows per category."""
    from course_lib.plots import new_figure

    fig, (ax1, ax2) = new_figure(ncols=2)
    ax1.hist(report.total_lengths, bins=30, color="#4c8c4a")
    ax1.axvline(report.max_length, color="#b03a2e", linestyle="--", label=f"max_length = {report.max_length}")
    ax1.set(xlabel="tokens per row (chat template included)", ylabel="rows", title="Row length")
    ax1.legend(fontsize=8)
    names = list(report.categories)
    ax2.barh(names, [report.categories[n] for n in names], color="#4c8c4a")
    ax2.invert_yaxis()
    ax2.set(xlabel="rows", title="Rows per category")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------------------
# PII: detection, redaction, scoring
# ---------------------------------------------------------------------------------------------------------------

PII_TYPES = ("EMAIL", "PHONE", "CARD", "ADDRESS", "PERSON")
_PRESIDIO_TO_OURS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD",
                     "STREET_ADDRESS": "ADDRESS", "PERSON": "PERSON"}


@dataclass(frozen=True)
class PiiSpan:
    start: int  # character offsets into the text, end exclusive
    end: int
    type: str  # one of PII_TYPES
    text: str  # the matched text (kept out of reports; only redact() callers see it)


def luhn_valid(number: str) -> bool:
    """The Luhn checksum that every real payment card number passes (and ~90% of random digit strings fail)."""
    digits = [int(c) for c in number if c.isdigit()]
    if len(digits) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


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


# ---------------------------------------------------------------------------------------------------------------
# Duplicates
# ---------------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------------
# Splitting and contamination
# ---------------------------------------------------------------------------------------------------------------


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
        raise DataError(f"{len(missing)} rows have no {group_key!r} key (first: row {_row_name(rows[missing[0]], missing[0])}). "
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


def ngrams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = _normalise(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@dataclass
class ContaminationReport:
    n: int  # n-gram length in words
    n_b: int  # rows checked
    n_contaminated: int  # rows of b sharing at least one n-gram with a
    worst: list[dict]  # the most overlapping b rows: {row, shared, fraction, example}

    @property
    def fraction(self) -> float:
        return self.n_contaminated / self.n_b if self.n_b else 0.0

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.worst, columns=["row", "shared", "fraction", "example"])


def contamination(a_rows: list[Row], b_rows: list[Row], n: int = 8, role: str = "user", top: int = 5,
                  ignore_common: float = 0.05) -> ContaminationReport:
    """How much of ``b_rows`` also appears in ``a_rows``: the fraction of b rows whose ``role`` text shares any
    word ``n``-gram with a's, and the worst offenders (share of their n-grams found in a).

    N-grams found in more than ``ignore_common`` of a's rows are boilerplate ("thank you for your help ...")
    rather than leaked content, and are ignored (set 1.0 to count everything).
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
            worst.append({"row": _row_name(r, i), "shared": len(shared), "fraction": round(len(shared) / len(grams), 3),
                          "example": " ".join(sorted(shared)[0])})
    worst.sort(key=lambda w: (-w["fraction"], -w["shared"]))
    return ContaminationReport(n, len(b_rows), hit, worst[:top])


# ---------------------------------------------------------------------------------------------------------------
# Tokenisation with assistant-only labels
# ---------------------------------------------------------------------------------------------------------------


class SequenceTooLongError(DataError):
    """A row does not fit in ``max_length`` tokens (it is never cut silently: that would cut the answer)."""


def assistant_char_spans(tokenizer, messages: Messages) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans to learn: each assistant message's content plus the
    end-of-turn token that follows it. Found by rendering prefixes with the chat template, so it works for
    any template that renders a conversation as the concatenation of its turns."""
    full = render_chat(tokenizer, messages)
    eot = tokenizer.eos_token or ""
    spans = []
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:k], add_generation_prompt=True) if k else ""
        through = render_chat(tokenizer, messages[:k + 1])
        if not (full.startswith(before) and full.startswith(through)):
            raise DataError("This chat template does not render a conversation as the concatenation of its turns "
                            "(a prefix renders differently), so assistant spans cannot be found by prefixes.")
        segment = through[len(before):]
        content = m["content"]
        at = segment.find(content)
        if at < 0:
            content = content.strip()
            at = segment.find(content)
        if at < 0:
            raise DataError(f"Could not find assistant turn {k}'s text in the rendered template.")
        start = len(before) + at
        end = start + len(content)
        if eot and full.startswith(eot, end):
            end += len(eot)
        spans.append((start, end))
    return full, spans


def tokenize_sft(messages: Messages, tokenizer, max_length: int, pad: bool = True, row: str = "?") -> dict:
    """``input_ids``, ``attention_mask`` and ``labels`` for one conversation, padded to ``max_length``.

    Labels are -100 (not learned) for every system, user and template token and for padding; only the
    assistant's content tokens and the end-of-turn token after each answer keep their ids. A conversation
    longer than ``max_length`` raises ``SequenceTooLongError`` naming ``row`` and its length.
    """
    text, spans = assistant_char_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if len(ids) > max_length:
        raise SequenceTooLongError(
            f"Row {row} is {len(ids)} tokens long, more than max_length={max_length}. Cutting it would drop the "
            "end of the answer; shorten the row, drop it (and record why), or raise max_length.")
    labels = [IGNORE_INDEX] * len(ids)
    for t, (s, e) in enumerate(enc["offset_mapping"]):
        if e > s and any(a <= s and e <= b for a, b in spans):
            labels[t] = ids[t]
    mask = [1] * len(ids)
    if pad:
        extra = max_length - len(ids)
        ids += [tokenizer.pad_token_id] * extra
        mask += [0] * extra
        labels += [IGNORE_INDEX] * extra
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def naive_labels(messages: Messages, tokenizer, max_length: int, pad: bool = True) -> dict:
    """The "simplified" recipe, shown for contrast: labels = input_ids, so the model is also trained to
    produce the system prompt, the customer's ticket, the template markup and even the padding."""
    enc = tokenize_sft(messages, tokenizer, max_length, pad=pad)
    return {**enc, "labels": list(enc["input_ids"])}


def label_table(encoded: dict, tokenizer, skip_padding: bool = True):
    """One row per token: position, token text, id, and whether it is learned (label != -100)."""
    import pandas as pd

    rows = []
    for i, (tid, mask, lab) in enumerate(zip(encoded["input_ids"], encoded["attention_mask"], encoded["labels"])):
        if skip_padding and not mask:
            continue
        rows.append({"pos": i, "token": tokenizer.decode([tid]), "id": tid, "learned": lab != IGNORE_INDEX})
    return pd.DataFrame(rows)


def label_html(encoded: dict, tokenizer, skip_padding: bool = True) -> str:
    """HTML of the tokens, learned ones on green, ignored ones grey (display with ``IPython.display.HTML``)."""
    import html

    spans = []
    for tid, mask, lab in zip(encoded["input_ids"], encoded["attention_mask"], encoded["labels"]):
        if skip_padding and not mask:
            continue
        text = html.escape(tokenizer.decode([tid])).replace("\n", "↵<br>")
        style = "background:#b7e1b0" if lab != IGNORE_INDEX else "color:#888"
        spans.append(f'<span style="{style};border-right:1px solid #ddd">{text}</span>')
    return '<div style="font-family:monospace;font-size:12px;line-height:1.6">' + "".join(spans) + "</div>"


def learned_text(encoded: dict, tokenizer) -> list[str]:
    """The learned tokens decoded, one string per contiguous learned run (what the loss is computed on)."""
    runs, current = [], []
    for tid, lab in zip(encoded["input_ids"], encoded["labels"]):
        if lab != IGNORE_INDEX:
            current.append(tid)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(r) for r in runs]


def collate(examples: list[dict], pad_token_id: int, label_pad: int = IGNORE_INDEX):
    """Pad tokenised examples to the longest one and stack them into tensors for ``model(**batch)``.

    Padding gets attention 0 and label ``label_pad`` (-100: not learned; pass the pad id to copy the naive recipe).
    """
    import torch

    longest = max(len(e["input_ids"]) for e in examples)

    def padded(e, key, value):
        return list(e[key]) + [value] * (longest - len(e[key]))

    return {"input_ids": torch.tensor([padded(e, "input_ids", pad_token_id) for e in examples]),
            "attention_mask": torch.tensor([padded(e, "attention_mask", 0) for e in examples]),
            "labels": torch.tensor([padded(e, "labels", label_pad) for e in examples])}


LOSS_PARTS = ("system", "user", "template", "assistant answer", "padding")


def token_parts(conversations: list[Messages], tokenizer, batch: dict):
    """For each position of ``batch``, the index into ``LOSS_PARTS`` of what that token is."""
    import torch

    parts = torch.full_like(batch["input_ids"], LOSS_PARTS.index("template"))
    for b, messages in enumerate(conversations):
        text, answer_spans = assistant_char_spans(tokenizer, messages)
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        content = _content_char_spans(tokenizer, messages)
        for t, (s, e) in enumerate(offsets):
            if any(a <= s and e <= z for a, z in answer_spans) and e > s:
                parts[b, t] = LOSS_PARTS.index("assistant answer")
            else:
                role = next((r for r, a, z in content if a <= s and e <= z and e > s), None)
                if role in ("system", "user"):
                    parts[b, t] = LOSS_PARTS.index(role)
        parts[b, len(offsets):] = LOSS_PARTS.index("padding")
    return parts


def loss_by_part(model, tokenizer, conversations: list[Messages], max_length: int):
    """Mean next-token loss of ``model`` on each part of the conversations (system, user, template, answer,
    padding; batch padded to its longest row), and the overall loss two ways: assistant-only labels vs the
    naive labels = input_ids (every position, padding included). Returns ``(table, losses)``."""
    import pandas as pd
    import torch

    examples = [tokenize_sft(m, tokenizer, max_length, pad=False) for m in conversations]
    batch = collate(examples, tokenizer.pad_token_id)
    parts = token_parts(conversations, tokenizer, batch)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"].to(model.device),
                       attention_mask=batch["attention_mask"].to(model.device)).logits.float().cpu()
    per_token = torch.nn.functional.cross_entropy(  # position t predicts token t + 1
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch["input_ids"][:, 1:].reshape(-1), reduction="none"
    ).view(len(examples), -1)
    target_parts = parts[:, 1:]
    rows = []
    for k, name in enumerate(LOSS_PARTS):
        sel = target_parts == k
        rows.append({"part": name, "tokens": int(sel.sum()), "share of tokens": round(float(sel.float().mean()), 3),
                     "mean loss": round(float(per_token[sel].mean()), 3) if sel.any() else float("nan")})
    masked = float(per_token[target_parts == LOSS_PARTS.index("assistant answer")].mean())
    return pd.DataFrame(rows), {"assistant-only loss": round(masked, 3),
                                "naive loss (labels = input_ids)": round(float(per_token.mean()), 3)}


def _content_char_spans(tokenizer, messages: Messages) -> list[tuple[str, int, int]]:
    """(role, start, end) character span of each message's content in the rendered conversation."""
    full = render_chat(tokenizer, messages)
    out, pos = [], 0
    for k, m in enumerate(messages):
        through = render_chat(tokenizer, messages[:k + 1])
        at = full.find(m["content"], pos, len(through))
        if at >= 0:
            out.append((m["role"], at, at + len(m["content"])))
        pos = len(through)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The GreenLeaf pipeline
# ---------------------------------------------------------------------------------------------------------------


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
        if not path.is_file():
            raise DataError(f"{path} is missing: the GreenLeaf data ships with the course (data/greenleaf/).")
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    result = load_jsonl(path, fmt="preference" if name == "preferences" else "chat",
                        check_target=name in ("train", "heldout"))
    if result.errors:
        raise DataError(f"data/greenleaf/{name}.jsonl has invalid rows (it should not):\n{result.summary()}")
    return result.rows
