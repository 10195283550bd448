"""Loading and validation: read a JSONL file, report every bad row as a ``RowError``, save rows safely.

``load_jsonl`` never raises for a bad row, however hostile: each row-level failure becomes a
``RowError(line, field, reason, fix)`` and the rest of the file is still read.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jsonschema

from course_lib import greenleaf
from course_lib.data.formats import FORMATS, ROW_SCHEMAS, DataError, Messages, Row
from course_lib.paths import DATA_DIR

GREENLEAF_DIR = DATA_DIR / "greenleaf"
MAX_LINE_BYTES = 1_000_000  # ~250k tokens: no sequence budget in this course comes near; longer lines are rejected
MAX_DEPTH = 32  # nested objects/arrays per row (a chat row needs 3); deeper rows are rejected, not parsed further
_MAX_REASON = 300  # characters: a 5 MB value must not make a 5 MB report
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark; Windows editors put one at the start of a file


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


def _clip(text: str, limit: int = _MAX_REASON) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _message(err: jsonschema.ValidationError) -> str:
    """jsonschema's message, with the offending value cut short when it is long."""
    if len(err.message) <= _MAX_REASON:
        return err.message
    return _clip(err.message.replace(repr(err.instance), _clip(repr(err.instance), 60)))


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null", int: "number",
             float: "number"}
    return names.get(type(value), type(value).__name__)


# --- reading one line ------------------------------------------------------------------------------------------


class _NotJson(ValueError):
    """Raised from the decoder's hooks for text that Python's json module accepts but JSON does not."""


def _reject_constant(name: str):
    raise _NotJson(name)


class _DuplicateKeys(dict):
    """A parsed object in which a key appeared more than once (Python keeps the last value silently)."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) < len(pairs):
        counts = Counter(k for k, _ in pairs)
        obj = _DuplicateKeys(obj)
        obj.duplicates = [k for k, n in counts.items() if n > 1]
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_reject_constant)
_JSON_FIX = "one complete JSON object per line; check quotes, commas and brackets"
_DEPTH_FIX = f"flatten the row: at most {MAX_DEPTH} levels of nested objects and arrays (a chat row needs 3)"
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _bracket_depth(text: str) -> int:
    """How deep the brackets of ``text`` nest (strings skipped), counted without parsing or recursion."""
    depth = deepest = 0
    for ch in re.findall(r"[\[\]{}]", _STRING.sub('""', text)):
        depth += 1 if ch in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _parse_json(text: str) -> tuple[Any, tuple[str, str] | None]:
    """``(value, None)``, or ``(None, (reason, fix))`` when ``text`` is not one strict JSON value. Never raises."""
    try:
        return _DECODER.decode(text), None
    except json.JSONDecodeError as err:
        return None, (f"invalid JSON: {err.msg} at column {err.colno}", _JSON_FIX)
    except _NotJson as err:
        return None, (f"invalid JSON: {err} is not a JSON value", "write null (or a number); NaN, Infinity and "
                      "-Infinity are JavaScript, not JSON")
    except RecursionError:
        return None, (f"nested {_bracket_depth(text)} levels deep; the limit is {MAX_DEPTH}", _DEPTH_FIX)
    except ValueError as err:  # from converting a number: an integer of more than 4300 digits
        return None, (f"invalid JSON: {_clip(str(err).split(':')[0], 120)}",
                      "write a number this long as a string (in quotes)")


def _read_line(raw_line: bytes, max_line_bytes: int) -> tuple[Any, tuple[str, str] | None]:
    """The JSON value on one line, or ``(None, (reason, fix))`` when the line cannot be read as one."""
    if len(raw_line) > max_line_bytes:
        return None, (f"the line is {len(raw_line)} bytes long, over the limit of {max_line_bytes}",
                      "shorten or split the row: no sequence budget fits a row this long")
    nul = raw_line.find(b"\x00")
    if nul >= 0:
        return None, (f"contains a NUL byte (0x00) at byte {nul + 1}",
                      "remove it; NUL bytes usually mean a binary or UTF-16 file: re-save it as UTF-8")
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, (f"not valid UTF-8 (byte 0x{raw_line[err.start]:02x} at byte {err.start + 1})",
                      "re-save the file as UTF-8")
    if text.startswith("\ufeff"):
        return None, ("starts with a byte-order mark (BOM), which belongs only at the very start of a file",
                      "delete the invisible BOM character (were two files joined together?)")
    return _parse_json(text)


_BAD_CHAR = re.compile(r"[\x00\ud800-\udfff]")


def _bad_char(field: str, text: str) -> tuple[str, str, str]:
    """The problem with a ``text`` that holds a NUL character or half of a surrogate pair (both come from escapes
    such as ``\\u0000`` or ``\\ud83d``; tokenizers and UTF-8 writers fail on them)."""
    bad = _BAD_CHAR.search(text)
    if bad.group() == "\x00":
        return field, f"contains a NUL character (\\u0000) at character {bad.start() + 1}", "remove the \\u0000"
    return (field, f"contains half of a surrogate pair (\\u{ord(bad.group()):04x}) at character {bad.start() + 1}",
            "write the whole character (an emoji cut in half?) or remove it")


def _structure_problems(value: Any) -> tuple[list[tuple[str, str, str]], bool]:
    """Duplicate keys and bad characters anywhere in a parsed row, and whether it nests deeper than
    ``MAX_DEPTH`` (then that is the only problem given). An iterative walk: no depth can make it recurse."""
    problems, deepest = [], 0
    stack: list[tuple[Any, tuple | None, int]] = [(value, None, 1)]  # (node, path as (parent, key) links, depth)

    def path_of(link: tuple | None) -> str:
        parts = []
        while link is not None:
            link, key = link
            parts.append(key)
        return _field_path(reversed(parts))

    while stack:
        node, link, depth = stack.pop()
        if isinstance(node, str) and _BAD_CHAR.search(node):  # the path is built only when it is needed
            problems.append(_bad_char(path_of(link), node))
        if not isinstance(node, (dict, list)):
            continue
        deepest = max(deepest, depth)
        for key in getattr(node, "duplicates", ()):
            problems.append((path_of((link, key)), f"the key {_clip(repr(key), 60)} appears more than once in one "
                             "object", "keep one copy: JSON readers disagree on which one counts"))
        children = list(node.items() if isinstance(node, dict) else enumerate(node))
        for key, child in reversed(children):  # reversed: the stack pops them in file order
            if isinstance(key, str) and _BAD_CHAR.search(key):
                problems.append(_bad_char(path_of((link, key)) + " (the key)", key))
            stack.append((child, (link, key), depth + 1))
    if deepest > MAX_DEPTH:
        return [("(row)", f"nested {deepest} levels deep; the limit is {MAX_DEPTH}", _DEPTH_FIX)], True
    return problems, False


# --- checking one row ------------------------------------------------------------------------------------------

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
        reason = _message(err)
        if err.validator == "pattern":
            reason = "is empty (only whitespace)"
        elif err.validator == "enum":
            reason = f"{_clip(repr(err.instance), 60)} is not one of {err.validator_value}"
        elif err.validator == "additionalProperties":
            reason = reason.replace("Additional properties are not allowed", "unknown key(s)")
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
    """Why an assistant answer is not a valid GreenLeaf triage target (empty list if it is). Never raises."""
    try:
        obj = json.loads(answer)
    except json.JSONDecodeError as err:
        return [f"not valid JSON ({err.msg} at character {err.pos})"]
    except RecursionError:
        return [f"not valid JSON (nested {_bracket_depth(answer)} levels deep)"]
    except ValueError as err:  # an integer of more than 4300 digits, ...
        return [f"not valid JSON ({_clip(str(err).split(':')[0], 120)})"]
    depth = _bracket_depth(answer)
    if depth > MAX_DEPTH:  # too deep for the schema check to report safely
        return [f"nested {depth} levels deep; a triage answer is one flat JSON object"]
    return [f"{_field_path(e.absolute_path)}: {_message(e)}" for e in greenleaf.triage_validator().iter_errors(obj)]


def _row_problems(row: Any, fmt: str, check_target_json: bool) -> list[tuple[str, str, str]]:
    if not isinstance(row, dict):
        return [("(row)", f"is a JSON {_json_type(row)}, not an object", "write one JSON object {...} per line")]
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


def load_jsonl(path: str | Path, fmt: str = "chat", check_target: bool = False,
               max_line_bytes: int = MAX_LINE_BYTES) -> LoadResult:
    """Read a JSONL file of ``fmt`` rows and check every row; never raises for a bad row, reports it instead.

    Each problem becomes a ``RowError(line, field, reason, fix)`` and the rest of the file is still read.
    Line-level problems (field ``"(line)"``): longer than ``max_line_bytes``, a NUL byte, bytes that are not
    UTF-8, a byte-order mark (BOM) after the first line, invalid JSON (``NaN``/``Infinity`` included), nesting
    too deep to parse. Row-level problems: nesting deeper than ``MAX_DEPTH``, a key twice in one object, a NUL
    or half-surrogate character in a string, a value that is not an object, wrong types, missing or unknown keys
    and roles, empty content, turn order, and, with ``check_target=True``, assistant answers that are not valid
    GreenLeaf triage JSON.

    Handled, not reported: blank lines are skipped (not counted in ``n_lines``; line numbers still count them);
    ``\\n``, ``\\r\\n`` and ``\\r`` all end a line; a UTF-8 BOM at the very start of the file is ignored.
    A missing or empty file, or an unknown ``fmt``, raises ``DataError``.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise DataError(f"fmt={fmt!r} is not a format; use one of {FORMATS}.")
    if not path.is_file():
        raise DataError(f"{path} does not exist (or is not a file). Check the path; the course data lives in "
                        f"{GREENLEAF_DIR}.")
    raw = path.read_bytes()
    _INPUT_FILES.add(path.resolve())
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    rows, lines, errors, n_lines = [], [], [], 0
    for number, raw_line in enumerate(raw.splitlines(), start=1):
        if not raw_line.strip():
            continue
        n_lines += 1
        row, unreadable = _read_line(raw_line, max_line_bytes)
        if unreadable:
            errors.append(RowError(number, "(line)", *unreadable))
            continue
        problems, too_deep = _structure_problems(row)
        if not too_deep:  # a row nested that deep is not checked further
            problems += _row_problems(row, fmt, check_target)
        if problems:
            errors.extend(RowError(number, f, r, fix) for f, r, fix in problems)
        else:
            rows.append(row)
            lines.append(number)
    if n_lines == 0:
        raise DataError(f"{path} is empty: a JSONL file needs one JSON object per line.")
    return LoadResult(path, fmt, rows, lines, errors, n_lines)


def read_json_lines(path: str | Path) -> list[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line of a small JSONL file the course ships (the regression
    set, the evaluation sets): a missing file, or a line that is not JSON, raises ``DataError`` naming the file
    and line. Files a learner brings go through ``load_jsonl``, which checks each row and reports every problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing: it ships with the course (git checkout it).")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append((n, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{n}: not JSON ({err.msg}).") from err
    return out


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
