"""Perplexity of a model on reference answers: over the answer tokens only (``answer_perplexity``), and the common
mistake shown for contrast (``naive_perplexity``: labels = input ids, so the prompt and the padding are scored too).

Perplexity is ``exp(mean negative log-likelihood per token)``: how many equally likely tokens the model is choosing
between, on average, at each step of the answer. It says how well the model predicts *these reference answers*,
not whether its own answers are right: a model can lower it by learning the reply's style while its decisions
stay wrong, so it is reported next to the task metrics, never instead of them.
"""

from __future__ import annotations

import math
from typing import Sequence

from course_lib.data import IGNORE_INDEX, tokenize_sft


def _batches(n: int, batch_size: int, progress: bool, desc: str):
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        return tqdm(starts, desc=desc, total=len(starts))
    return starts


def pad_batch(encoded: list[dict], pad_id: int):
    """``(input_ids, attention_mask, labels)`` tensors for rows ``{"input_ids", "labels"}`` of different lengths:
    padded on the right with ``pad_id``, mask 0 and label ``IGNORE_INDEX``, so padding is never scored."""
    import torch

    width = max(len(e["input_ids"]) for e in encoded)
    ids = [e["input_ids"] + [pad_id] * (width - len(e["input_ids"])) for e in encoded]
    mask = [[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in encoded]
    labels = [e["labels"] + [IGNORE_INDEX] * (width - len(e["labels"])) for e in encoded]
    return torch.tensor(ids), torch.tensor(mask), torch.tensor(labels)


def token_losses(model, input_ids, attention_mask, labels):
    """Per-position negative log-likelihood of ``labels`` (shifted: position t predicts token t+1) and the mask of
    positions that count (label != ``IGNORE_INDEX``). Both ``[batch, length - 1]``, in float32."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits.float()
    target = labels[:, 1:].to(device)
    counted = target != IGNORE_INDEX
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), target.clamp(min=0), reduction="none")
    return nll * counted, counted


def answer_perplexity(model, tokenizer, rows: Sequence[dict], batch_size: int = 8, max_length: int = 1024,
                      progress: bool = False) -> dict:
    """Perplexity over the answer tokens of chat rows (``{"messages": [..., assistant]}``): the prompt and the
    padding are excluded (labels from ``data.tokenize_sft``). Returns ``{"perplexity", "mean_nll", "tokens",
    "per_row": [{"id", "mean_nll", "tokens"}]}``; ``perplexity == exp(mean_nll)`` over every answer token of every
    row (a long answer weighs more than a short one, as in training)."""
    if not rows:
        raise ValueError("answer_perplexity: no rows. Pass chat rows that end with the reference answer.")
    encoded = []
    for i, row in enumerate(rows):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not messages or messages[-1].get("role") != "assistant" or not str(messages[-1].get("content", "")).strip():
            raise ValueError(f"Row {i} (id {row.get('id', '?') if isinstance(row, dict) else '?'!r}) does not end "
                             "with a non-empty assistant answer: perplexity is measured on that answer.")
        encoded.append(tokenize_sft(messages, tokenizer, max_length, pad=False, row=str(row.get("id", i))))
    was_training = model.training
    model.eval()
    per_row, total_nll, total_tokens = [], 0.0, 0
    for start in _batches(len(encoded), batch_size, progress, "perplexity"):
        chunk = encoded[start:start + batch_size]
        nll, counted = token_losses(model, *pad_batch(chunk, tokenizer.pad_token_id))
        for j in range(len(chunk)):
            n = int(counted[j].sum())
            s = float(nll[j].sum())
            row = rows[start + j]
            per_row.append({"id": row.get("id", start + j), "mean_nll": s / n if n else float("nan"), "tokens": n})
            total_nll, total_tokens = total_nll + s, total_tokens + n
    model.train(was_training)
    mean = total_nll / total_tokens
    return {"perplexity": math.exp(mean), "mean_nll": mean, "tokens": total_tokens, "per_row": per_row}


def naive_perplexity(model, tokenizer, texts: Sequence[str], pad_to: int | None = None) -> float:
    """The mistake, for contrast: tokenise whole conversations padded to one length (``pad_to``, default: the
    longest), set labels = input ids and take ``exp`` of the mean loss over EVERY position: the prompt, which the
    model never has to write, and the padding, a token it was never trained to predict, both count. Adding padding
    changes the result, so it measures the batch as much as the model."""
    import torch

    enc = tokenizer(list(texts), add_special_tokens=False, padding="max_length" if pad_to else True,
                    max_length=pad_to, return_tensors="pt").to(next(model.parameters()).device)
    with torch.no_grad():  # labels = input ids: pad positions keep the pad id and are scored like any token
        loss = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=enc["input_ids"]).loss
    return math.exp(float(loss))
