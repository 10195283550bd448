"""The running example, GreenLeaf Support: the task's definition, shared by data, training and evaluation.

A plant-care shop's support ticket goes in; one line of JSON comes out:
``{"category": ..., "priority": ..., "needs_human": ..., "reply": ...}`` with a short reply in the brand voice.
"""

from __future__ import annotations

import functools
import json

CATEGORIES = (
    "plant_health",  # pests, yellow leaves, watering, light, repotting questions about a plant they own
    "shipping",  # where is my order, delays, tracking, delivery address problems
    "damaged_item",  # arrived broken, dead or wrong item
    "returns_refunds",  # wants to send back or get money back
    "billing",  # double charge, wrong amount, invoice, payment failed
    "account",  # login, password, email change, delete my data, newsletter
    "product_question",  # before buying: which plant/pot/soil, stock, sizes, care difficulty
)
PRIORITIES = ("low", "medium", "high", "urgent")
FIELDS = ("category", "priority", "needs_human", "reply")
DECISION_FIELDS = FIELDS[:3]  # the fields with one right answer; the reply is free text
SIGN_OFF = "Happy growing!"  # every on-brand reply ends with this

SYSTEM_PROMPT = (
    "You are GreenLeaf Support's triage assistant. Read the customer's ticket and answer with one line of JSON "
    'with exactly these keys: "category" (one of: ' + ", ".join(CATEGORIES) + '), "priority" (one of: '
    + ", ".join(PRIORITIES) + '), "needs_human" (true or false), and "reply" (two or three warm, plain '
    f'sentences to the customer that end with "{SIGN_OFF}"). Output only the JSON.'
)

# JSON schema of a target; used to validate the data we ship and the model's answers.
TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"enum": list(CATEGORIES)},
        "priority": {"enum": list(PRIORITIES)},
        "needs_human": {"type": "boolean"},
        "reply": {"type": "string", "minLength": 1},
    },
    "required": list(FIELDS),
    "additionalProperties": False,
}


@functools.cache
def triage_validator():
    """The ``jsonschema`` validator of ``TRIAGE_SCHEMA``, built once and shared (data checks, task metrics, the
    service's log). jsonschema is imported here, not with the module: the data generator uses this module with the
    standard library only."""
    import jsonschema

    return jsonschema.Draft202012Validator(TRIAGE_SCHEMA)


def format_target(category: str, priority: str, needs_human: bool, reply: str) -> str:
    """The exact assistant text we train on: compact one-line JSON, keys in a fixed order."""
    if category not in CATEGORIES:
        raise ValueError(f"category {category!r} is not one of {CATEGORIES}")
    if priority not in PRIORITIES:
        raise ValueError(f"priority {priority!r} is not one of {PRIORITIES}")
    obj = {"category": category, "priority": priority, "needs_human": bool(needs_human), "reply": reply}
    return json.dumps(obj, ensure_ascii=False)


def reply_first(target: str) -> str:
    """The same target JSON with the reply written first and the three decisions after it. A model writes its answer
    left to right, so in this order each decision can draw on the reply the model has just written ("I've passed
    this to our team..." says a person is needed). JSON objects have no order, so the scorer reads both alike."""
    obj = parse_triage(target)
    if not isinstance(obj, dict) or set(obj) != set(FIELDS):
        raise ValueError(f"{target[:80]!r} is not a triage target with exactly the keys {FIELDS}.")
    return json.dumps({"reply": obj["reply"], **{k: obj[k] for k in FIELDS if k != "reply"}}, ensure_ascii=False)


def parse_triage(text: str) -> dict | None:
    """Parse a model answer into a dict, or ``None`` if it is not a JSON object.

    Lenient about what surrounds the object (a model may add a code fence or a sentence), strict about the
    object itself: the first ``{...}`` that parses is returned as is; field checks are evaluation's job.
    """
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(text, start)
            return obj
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    return None


def messages_for(ticket: str) -> list[dict[str, str]]:
    """The prompt side of one example: system prompt + the customer's ticket."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": ticket}]
