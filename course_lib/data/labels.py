"""Tokenisation for SFT with assistant-only labels, the naive "labels = input_ids" recipe, and views of both."""

from __future__ import annotations

from course_lib.data.formats import DataError, Messages, render_chat

IGNORE_INDEX = -100  # label value that PyTorch's cross-entropy skips: "do not learn this token"


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

    Labels are ``IGNORE_INDEX`` (not learned) for every system, user and template token and for padding; only
    the assistant's content tokens and the end-of-turn token after each answer keep their ids. A conversation
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
    """One row per token: position, token text, id, and whether it is learned (label != ``IGNORE_INDEX``)."""
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

    Padding gets attention 0 and label ``label_pad`` (``IGNORE_INDEX``: not learned; pass the pad id to copy the
    naive recipe).
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
