"""Row formats: what a chat, instruction, completion or preference row looks like, and conversion to chat.

The lowest module of ``course_lib.data``: every other one imports from it, it imports none of them.
"""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]
Messages = list[dict[str, str]]

FORMATS = ("chat", "instruction", "completion", "preference")
ROLES = ("system", "user", "assistant")


class DataError(ValueError):
    """A dataset problem a learner can fix; the message says which file/row/field and how."""


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


# Small row accessors shared by the other data modules (package-internal).


def _row_name(row: Row, index: int | None = None) -> str:
    """How reports name a row: its ``id``, else ``#index``, else ``?``."""
    if isinstance(row, dict) and "id" in row:
        return str(row["id"])
    return f"#{index}" if index is not None else "?"


def _text_of(row: Row, role: str = "user") -> str:
    """The content of every ``role`` turn of a chat row, joined by newlines."""
    return "\n".join(m["content"] for m in row["messages"] if m["role"] == role)


def _answer(row: Row) -> str:
    """The last assistant turn of a chat row ("" if there is none)."""
    answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
    return answers[-1] if answers else ""
