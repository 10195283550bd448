"""Training rows: chat rows ``{"messages": [system, user, assistant]}`` turned into the prompt-completion rows
trl trains on (the loss then covers the answer only), with the short system prompt swapped in, replay rows mixed
in, and every row checked: it must end with an answer and fit in ``max_length`` tokens (never cut).
"""

from __future__ import annotations

from typing import Any, Sequence

from transformers import PreTrainedTokenizerBase

from course_lib import data, greenleaf
from course_lib.train.presets import TrainSetupError


Row = dict[str, Any]

# "Distil the long prompt into the weights": the tuned model learns the task from examples, so it no longer needs
# the 110-token instructions of greenleaf.SYSTEM_PROMPT. Training (and then prompting the tuned model) with this
# short prompt cuts each example from ~230 to ~130 tokens. Evaluate the tuned model with the SAME short prompt.
SHORT_SYSTEM_PROMPT = "GreenLeaf support triage: answer with one line of JSON."


def with_system_prompt(rows: Sequence[Row], system_prompt: str) -> list[Row]:
    """Copies of chat rows whose system message is ``system_prompt`` (added if a row has none)."""
    out = []
    for row in rows:
        messages = [dict(m) for m in row["messages"]]
        if messages and messages[0]["role"] == "system":
            messages[0]["content"] = system_prompt
        else:
            messages.insert(0, {"role": "system", "content": system_prompt})
        out.append({**row, "messages": messages})
    return out


def training_rows(task_rows: Sequence[Row], system_prompt: str | None, replay: Sequence[Row] = ()) -> list[Row]:
    """The rows a run trains on: the task rows with ``system_prompt`` (``None``: their own), then the ``replay`` rows
    untouched (their own system prompt, or none: the chat template's default). The trainer shuffles them."""
    task = list(task_rows) if system_prompt is None else with_system_prompt(task_rows, system_prompt)
    return task + list(replay)


def reply_first_rows(rows: Sequence[Row]) -> list[Row]:
    """Copies of GreenLeaf chat rows whose answer writes the reply before the three decisions
    (``greenleaf.reply_first``): the model then decides after writing what it will tell the customer."""
    out = []
    for i, row in enumerate(rows):
        messages = [dict(m) for m in row.get("messages", [])]
        if not messages or messages[-1].get("role") != "assistant":
            raise TrainSetupError(f"row {i} (id {row.get('id', '?')!r}) does not end with an assistant answer to reorder.")
        messages[-1]["content"] = greenleaf.reply_first(messages[-1]["content"])
        out.append({**row, "messages": messages})
    return out


def prompt_completion_rows(rows: Sequence[Row], system_prompt: str | None = None) -> list[Row]:
    """Chat rows -> ``{"prompt": [system, user], "completion": [assistant]}`` (optionally with a new system prompt).

    Every row must end with a non-empty assistant turn: that turn is what the model is trained to write.
    """
    if not rows:
        raise TrainSetupError("No training rows: pass a non-empty list of chat rows ({'messages': [...]}).")
    if system_prompt is not None:
        rows = with_system_prompt(rows, system_prompt)
    out = []
    for i, row in enumerate(rows):
        messages = row.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") != "assistant" or not str(last.get("content", "")).strip():
            roles = [m.get("role") for m in messages]
            raise TrainSetupError(
                f"row {i} (id {row.get('id', '?')!r}) does not end with a non-empty assistant turn (roles: {roles}). "
                "SFT learns the assistant's answer, so each row needs one: add it, or drop the row (and report it).")
        pc = data.to_prompt_completion(row)
        out.append({"prompt": pc["prompt"], "completion": pc["completion"]})
    return out


def check_lengths(pc_rows: Sequence[Row], tokenizer: PreTrainedTokenizerBase, max_length: int,
                  ids: Sequence[str] | None = None) -> list[int]:
    """Token length of each prompt-completion row; raise naming the first row longer than ``max_length``."""
    lengths = []
    for i, row in enumerate(pc_rows):
        n = len(tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True,
                                              return_dict=True)["input_ids"])
        if n > max_length:
            name = f"row {i}" + (f" (id {ids[i]!r})" if ids else "")
            raise TrainSetupError(
                f"{name} is {n} tokens, longer than max_length={max_length}. Cutting it would cut the answer the "
                "model should learn. Shorten or drop that row (and report it), or raise max_length.")
        lengths.append(n)
    return lengths
