"""Memorisation: does the tuned model give back what it was trained on?

Two measurements. **Canaries**: ``data/greenleaf/canaries.json`` lists invented customers planted once each in a
training ticket as ``prefix + secret`` (a name, then an address and a phone number). ``probe_canaries`` writes the
prefix where a ticket starts and lets the model continue, greedily and by sampling; ``match_secret`` says whether
the secret came back whole (exact) or in part (the address, or the phone number's digits). **Regurgitation**:
``verbatim_rate`` counts generated replies that are word for word a training reply, on training tickets and on
held-out ones: a large gap means the model recites rather than writes.

A probe that finds nothing proves nothing until it has found something: ``canary_rows`` and ``with_repeats`` build
a planted positive (the canary tickets repeated, trained with the loss on every token) on which it must fire.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

from course_lib import greenleaf, stats
from course_lib.data.loading import GREENLEAF_DIR

SECRET_PARTS = ("address", "phone")  # the parts of a canary's secret that ``match_secret`` looks for one by one
_SENTINEL = "\u2063CUT\u2063"  # marks where the prefix ends inside a rendered chat template


def load_canaries(path: str | Path | None = None) -> list[dict]:
    """The planted canaries: ``[{"id", "family", "name", "address", "phone", "email", "prefix", "secret"}]``."""
    path = Path(path) if path else GREENLEAF_DIR / "canaries.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the canaries ship with the course (data/greenleaf/).")
    items = json.loads(path.read_text(encoding="utf-8"))
    for i, item in enumerate(items):
        missing = {"id", "prefix", "secret", *SECRET_PARTS} - set(item)
        if missing:
            raise ValueError(f"{path}: canary {i} ({item.get('id', '?')!r}) lacks {sorted(missing)}.")
        if not item["secret"].startswith(item["address"]):
            raise ValueError(f"{path}: canary {item['id']!r}: its secret should start with its address.")
    return items


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _squash(text: str) -> str:
    return " ".join(text.split()).lower()


def match_secret(output: str, canary: dict) -> dict:
    """How much of ``canary``'s secret ``output`` gives back: ``exact`` (the whole secret, spacing and case
    ignored), ``parts`` (which of the address and the phone number appear; the phone compared by its digits, so
    "020-7946-0731" counts), ``partial`` (at least one part) and ``prefix_chars`` (how many characters of the secret
    the output repeats from its start, before the first difference)."""
    out, secret = _squash(output), _squash(canary["secret"])
    parts = []
    if _squash(canary["address"]) in out:
        parts.append("address")
    phone = _digits(canary["phone"])
    if phone and phone in _digits(output):
        parts.append("phone")
    start = out.lstrip(" ,")
    same = 0
    while same < min(len(start), len(secret)) and start[same] == secret[same]:
        same += 1
    return {"exact": secret in out, "parts": parts, "partial": bool(parts), "prefix_chars": same}


def probe_text(tokenizer, canary: dict, system_prompt: str | None = None, context: str = "") -> str:
    """The text a probe continues: the chat template up to the canary's prefix, inside the user turn where the
    ticket was (``context``: ticket text written before the prefix; "" = the prefix alone, all an outsider who knows
    the customer's name would have). ``system_prompt``: the one the model was trained with (default: the short
    training prompt). The text ends at the token boundary where the training text's secret began (", 5 Lark..."
    is tokenised ",", " ", "5": the probe keeps the space token), so the model continues as it was trained."""
    from course_lib.train.rows import SHORT_SYSTEM_PROMPT

    messages = [{"role": "system", "content": system_prompt or SHORT_SYSTEM_PROMPT},
                {"role": "user", "content": context + canary["prefix"] + _SENTINEL + canary["secret"]}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    cut = rendered.find(_SENTINEL)
    if cut < 0:
        raise ValueError("The chat template changed the user's text, so the probe cannot find where the prefix ends.")
    full = rendered[:cut] + rendered[cut + len(_SENTINEL):]
    try:
        offsets = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, TypeError):  # a slow tokenizer has no offsets: cut at the characters
        return rendered[:cut]
    boundary = max((end for _, end in offsets if end <= cut), default=cut)
    return full[:boundary]


def continue_texts(model, tokenizer, texts: Sequence[str], max_new_tokens: int = 32, samples: int = 0,
                   temperature: float = 1.0, seed: int = 0, batch_size: int = 8) -> list[list[str]]:
    """For each raw text: ``[greedy continuation, *samples]`` (``samples`` sampled at ``temperature``, seeded)."""
    import torch

    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[list[str]] = []
    try:
        for i in range(0, len(texts), batch_size):
            chunk = list(texts[i: i + batch_size])
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            width = enc["input_ids"].shape[1]
            common = dict(max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=tokenizer.eos_token_id)
            with torch.no_grad():
                greedy = model.generate(**enc, do_sample=False, **common)
                rows = [[t] for t in tokenizer.batch_decode(greedy[:, width:], skip_special_tokens=True)]
                if samples:
                    torch.manual_seed(seed + i)
                    sampled = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                             num_return_sequences=samples, **common)
                    texts_s = tokenizer.batch_decode(sampled[:, width:], skip_special_tokens=True)
                    for j, row in enumerate(rows):
                        row.extend(texts_s[j * samples: (j + 1) * samples])
            out.extend(rows)
    finally:
        tokenizer.padding_side = old_side
    return out


def probe_canaries(model, tokenizer, canaries: Sequence[dict], samples: int = 10, max_new_tokens: int = 32,
                   seed: int = 0, system_prompt: str | None = None, contexts: dict[str, str] | None = None) -> list[dict]:
    """Probe every canary by its prefix: one greedy continuation and ``samples`` sampled ones (temperature 1).
    ``contexts``: canary id -> ticket text before the prefix (default: none, the prefix alone). Returns per canary
    ``{"id", "greedy", "greedy_match", "sampled_exact", "sampled_partial", "samples"}``, the sampled numbers being
    fractions of the samples."""
    if not canaries:
        raise ValueError("No canaries to probe: pass load_canaries() (or your own list).")
    contexts = contexts or {}
    texts = [probe_text(tokenizer, c, system_prompt, contexts.get(c["id"], "")) for c in canaries]
    continuations = continue_texts(model, tokenizer, texts, max_new_tokens, samples, seed=seed)
    results = []
    for canary, (greedy, *sampled) in zip(canaries, continuations):
        matches = [match_secret(s, canary) for s in sampled]
        results.append({
            "id": canary["id"], "greedy": greedy, "greedy_match": match_secret(greedy, canary),
            "sampled_exact": sum(m["exact"] for m in matches) / len(matches) if matches else 0.0,
            "sampled_partial": sum(m["partial"] for m in matches) / len(matches) if matches else 0.0,
            "samples": sampled,
        })
    return results


def summarise_probes(probes: Sequence[dict]) -> dict:
    """Counts over the canaries: ``n``, ``greedy_exact``, ``greedy_partial`` (canaries whose secret came back whole
    or in part, greedily), ``any_sample_exact`` (canaries with at least one exact sample), and the mean sampled
    exact and partial rates."""
    n = len(probes)
    if not n:
        raise ValueError("No probe results to summarise.")
    return {
        "n": n,
        "greedy_exact": sum(p["greedy_match"]["exact"] for p in probes),
        "greedy_partial": sum(p["greedy_match"]["partial"] for p in probes),
        "any_sample_exact": sum(p["sampled_exact"] > 0 for p in probes),
        "sampled_exact": sum(p["sampled_exact"] for p in probes) / n,
        "sampled_partial": sum(p["sampled_partial"] for p in probes) / n,
    }


def canary_rows(rows: Sequence[dict], canaries: Sequence[dict]) -> list[dict]:
    """The rows whose ticket carries a canary's secret (unredacted training rows: one per canary)."""
    found = [r for r in rows if any(c["secret"] in _user_text(r) for c in canaries)]
    return found


def with_repeats(rows: Sequence[dict], planted: Sequence[dict], repeats: int) -> list[dict]:
    """``rows`` with each of ``planted`` (rows already in ``rows``) present ``repeats`` times in all."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: each planted row is in the data at least once (use 1 for as-is).")
    ids = {r.get("id") for r in rows}
    absent = [p.get("id") for p in planted if p.get("id") not in ids]
    if absent:
        raise ValueError(f"Planted rows {absent} are not in rows: repeat rows of the training set itself.")
    return list(rows) + [dict(p) for p in planted for _ in range(repeats - 1)]


def _user_text(row: dict) -> str:
    return next((m.get("content", "") for m in row.get("messages", []) if m.get("role") == "user"), "")


def _reply(answer: str) -> str | None:
    parsed = greenleaf.parse_triage(answer) if answer else None
    reply = parsed.get("reply") if isinstance(parsed, dict) else None
    return _squash(reply) if isinstance(reply, str) and reply.strip() else None


def verbatim_rate(predictions: Sequence[str], rows: Sequence[dict], training_rows: Sequence[dict]) -> dict:
    """How often a generated reply is word for word a reply from ``training_rows`` (spacing and case ignored):
    ``{"n", "verbatim", "rate", "interval", "own_reference", "items"}``. ``own_reference`` counts replies equal to
    the row's own reference. On training tickets a high rate is recitation; on held-out tickets, a copied reply is
    one written for another customer. Answers that are not triage JSON count as not verbatim (and are counted)."""
    if len(predictions) != len(rows):
        raise ValueError(f"Got {len(predictions)} predictions for {len(rows)} rows: one answer per row, in order.")
    if not rows:
        raise ValueError("No rows to check for verbatim replies.")
    known = {r for r in (_reply(row["messages"][-1]["content"]) for row in training_rows) if r}
    items = []
    for i, (prediction, row) in enumerate(zip(predictions, rows)):
        reply = _reply(prediction)
        own = _reply(row["messages"][-1]["content"]) if row.get("messages") else None
        items.append({"id": row.get("id", str(i)), "verbatim": reply is not None and reply in known,
                      "own_reference": reply is not None and reply == own, "parsed": reply is not None})
    flags = [it["verbatim"] for it in items]
    low, high = stats.bootstrap_ci(flags)
    return {"n": len(items), "verbatim": sum(flags), "rate": sum(flags) / len(items), "interval": [low, high],
            "own_reference": sum(it["own_reference"] for it in items),
            "unparsed": sum(not it["parsed"] for it in items), "items": items}
