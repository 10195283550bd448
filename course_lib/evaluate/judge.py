"""LLM-as-judge for GreenLeaf replies, and its limits measured rather than assumed.

A judge model reads ``RUBRIC``, a ticket and two replies (``judge_pairs``: which is better?) or one reply
(``judge_scores``: 1-5). It never writes text: the verdict is read off the next-token probabilities of "A"/"B"
(or "1".."5") right where its answer would start, so there is nothing to parse and no silent default. A judge that
does write text (a hosted model, a generated answer) is read by ``parse_verdict``, which refuses to guess.

A judge is a model, with a model's failures. The limits, each measured on replies whose ranking we know:
- ``make_label_pairs`` + ``agreement_with_labels``: the reference reply against one made worse by a rule;
- ``swap_pairs`` + ``position_bias``: every pair judged in both orders; a fair judge picks the same reply twice;
- ``make_length_pairs`` + ``length_bias``: a reply against itself padded with empty sentences;
- ``rating_widget`` + ``judge_human_agreement``: your own 1-5 ratings of a dozen replies against the judge's.
"""

from __future__ import annotations

import random
import re
import warnings
from numbers import Integral
from typing import Mapping, Sequence

from course_lib import greenleaf, stats

RUBRIC = f"""How to grade a GreenLeaf Support reply (GreenLeaf is a plant shop; the reply goes to a customer).
A good reply does four things:
1. Deals with the problem the customer actually wrote about, not a different one.
2. Gives the right next step. When the ticket needs a person (money to move, a damaged, dead, wrong or missing
item, a safety worry, account security, a change to a placed order, a complaint to escalate), it says our team
will follow up; when it does not, it helps directly.
3. Promises nothing the shop cannot keep: no exact refund amounts, no guaranteed outcomes.
4. Sounds warm and plain, stays short (two or three sentences, at most 48 words) and ends with "{greenleaf.SIGN_OFF}".
Scale:
5 = does all four well.
4 = does all four, with a small weakness (a little vague, a little long).
3 = misses one of the four.
2 = misses two, or only half answers the customer's problem.
1 = answers a different problem, promises what the shop cannot keep, or is rude."""
JUDGE_SYSTEM = "You are a careful, fair judge of customer-support replies."
DIGITS = "12345"
FLAWS = ("off_topic", "no_sign_off", "exact_refund", "guarantee")  # make_label_pairs cycles through these
REFUND_AMOUNTS = ("12.99", "38.50", "64", "500")
GUARANTEE = "We guarantee this will never happen again."
FILLERS = ("Thank you for taking the time to write to us.", "We really value every message our customers send.",
           "We hope the rest of your week is going well.", "It is always nice to hear from a fellow plant lover.")


class JudgeError(ValueError):
    """A judge's written verdict names neither reply or both; the message shows the row and the text."""


def pair_messages(ticket: str, a: str, b: str, rubric: str = RUBRIC) -> list[dict[str, str]]:
    """The chat that asks which of two replies is better (also what to send a judge that writes its answer)."""
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": (
        f"{rubric}\n\nCustomer's ticket:\n{ticket.strip()}\n\nReply A:\n{a.strip()}\n\nReply B:\n{b.strip()}\n\n"
        "Which reply is better? Answer A or B.")}]


def rating_messages(ticket: str, reply: str, rubric: str = RUBRIC) -> list[dict[str, str]]:
    """The chat that asks for a 1-5 rating of one reply."""
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": (
        f"{rubric}\n\nCustomer's ticket:\n{ticket.strip()}\n\nReply:\n{reply.strip()}\n\n"
        "Rate the reply from 1 to 5 using the scale above. Answer with one digit.")}]


def answer_token_ids(tokenizer, labels: Sequence[str]) -> list[int]:
    """The token each label's answer would start with, read off the chat template: the first token after the
    generation prompt in a chat whose assistant turn is ``label``. SmolLM2's prompt ends ``<|im_start|>assistant\\n``,
    so that is "A" (id 49), not " A" (id 330); a template without the newline would give " A", and this follows it."""
    probe = [{"role": "user", "content": "?"}]
    prompt = tokenizer(tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"]
    ids = []
    for label in labels:
        text = tokenizer.apply_chat_template(probe + [{"role": "assistant", "content": label}], tokenize=False)
        full = tokenizer(text, add_special_tokens=False)["input_ids"]
        if full[: len(prompt)] != prompt or tokenizer.decode(full[len(prompt) : len(prompt) + 1]).strip() != label:
            raise ValueError(f"This tokenizer's chat template does not start an answer {label!r} with one token of "
                             f"its own, so the judge cannot read {labels} off one next-token distribution. Use "
                             "a judge model whose template ends the prompt with the assistant header.")
        ids.append(full[len(prompt)])
    if len(set(ids)) != len(ids):
        raise ValueError(f"Labels {labels} map to the same token ids {ids}: the judge could not tell them apart.")
    return ids


def _check_rows(rows: Sequence[dict], keys: tuple[str, ...], what: str) -> None:
    if not rows:
        raise ValueError(f"No {what}s given: pass a list of dicts with keys {keys}.")
    for i, row in enumerate(rows):
        bad = [k for k in keys if not isinstance(row, dict) or row.get(k) is None or
               (k != "id" and (not isinstance(row[k], str) or not row[k].strip()))]
        if bad:
            row_id = row.get("id", "?") if isinstance(row, dict) else "?"
            raise ValueError(f"{what} {i} (id {row_id!r}) has no usable {bad}: every {what} needs non-empty {keys}.")


def _next_token_logprobs(model, tokenizer, conversations: list, token_ids: list[int], batch_size: int,
                         progress: bool, desc: str):
    """``[len(conversations), len(token_ids)]`` log-probabilities (over the whole vocabulary) of each token as the
    first token of the answer. Prompts are sorted by length, left-padded with an attention mask and position ids
    that start at 0 on the first real token, so padding changes nothing; results come back in input order."""
    import torch

    encoded = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    encoded = tokenizer(encoded, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(encoded)), key=lambda k: len(encoded[k]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    out = torch.empty(len(encoded), len(token_ids))
    starts = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="batch")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in starts:
                batch = order[start : start + batch_size]
                width = max(len(encoded[k]) for k in batch)
                ids = torch.tensor([[pad] * (width - len(encoded[k])) + encoded[k] for k in batch])
                mask = torch.tensor([[0] * (width - len(encoded[k])) + [1] * len(encoded[k]) for k in batch])
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                               position_ids=positions.to(device), logits_to_keep=1).logits[:, -1].float()
                out[batch] = torch.log_softmax(logits, dim=-1)[:, token_ids].cpu()
    finally:
        model.train(was_training)
    return out


def judge_pairs(model, tokenizer, pairs: Sequence[dict], batch_size: int = 8, progress: bool = False,
                rubric: str = RUBRIC) -> list[dict]:
    """Which reply of each pair ``{"id", "ticket", "a", "b"}`` is better, by the judge's next-token probabilities
    of "A" and "B" after ``pair_messages``. Returns ``[{"id", "verdict": "A"|"B", "p_a", "mass"}]`` in input
    order: ``p_a`` = P(A) / (P(A) + P(B)); ``mass`` = P(A) + P(B), how much of its probability the judge put on
    answering at all (near 0: it would have written something else, and the verdict means little). An exact tie
    (p_a == 0.5; possible in bf16, whose logits are coarse) is "A", so count ties before reading an A-rate."""
    _check_rows(pairs, ("id", "ticket", "a", "b"), "pair")
    chats = [pair_messages(p["ticket"], p["a"], p["b"], rubric) for p in pairs]
    logprobs = _next_token_logprobs(model, tokenizer, chats, answer_token_ids(tokenizer, ("A", "B")), batch_size,
                                    progress, "judging pairs")
    p_a, mass = logprobs.softmax(dim=-1)[:, 0], logprobs.exp().sum(-1)
    return [{"id": p["id"], "verdict": "A" if float(pa) >= 0.5 else "B", "p_a": float(pa), "mass": float(m)}
            for p, pa, m in zip(pairs, p_a, mass)]


def judge_scores(model, tokenizer, items: Sequence[dict], batch_size: int = 8, progress: bool = False,
                 rubric: str = RUBRIC) -> list[dict]:
    """A 1-5 rating of each item ``{"id", "ticket", "reply"}`` from the judge's next-token distribution restricted
    to "1".."5" (renormalised). Returns ``[{"id", "expected", "argmax", "probs"}]``: ``expected`` = sum of k * P(k),
    a float that separates replies the argmax rates alike; ``argmax`` the most likely digit (an int, what to compare
    with human ratings); ``probs`` the five renormalised probabilities."""
    _check_rows(items, ("id", "ticket", "reply"), "item")
    chats = [rating_messages(i["ticket"], i["reply"], rubric) for i in items]
    probs = _next_token_logprobs(model, tokenizer, chats, answer_token_ids(tokenizer, tuple(DIGITS)), batch_size,
                                 progress, "rating replies").softmax(dim=-1).tolist()
    return [{"id": i["id"], "expected": sum(k * q for k, q in enumerate(p, 1)), "argmax": 1 + p.index(max(p)),
             "probs": p} for i, p in zip(items, probs)]


_ARTICLE = re.compile(r"(?:^|(?<=[.!?:] ))A(?= (?!(?:is|was|wins|because|seems|looks|does|has|gives|answers|and|or)"
                      r"\b)[a-z])")


def parse_verdict(text: str, row_id) -> str:
    """"A" or "B" from a judge's written answer: "A", "Reply B", "**B**", "The better reply is A." all work.
    Markdown is dropped, a sentence-opening article ("A better reply is B") is not read as a letter, and only
    capital A/B standing alone count. Raises ``JudgeError`` naming the row and quoting the text when it names
    neither or both: never a silent default (a default "A" would itself be a position bias)."""
    clean = " ".join(re.sub(r"[*_`#>\"'()\[\]]", " ", text or "").split())
    found = set(re.findall(r"(?<![A-Za-z0-9])([AB])(?![A-Za-z0-9])", _ARTICLE.sub(" ", clean)))
    if len(found) == 1:
        return found.pop()
    names = "both A and B" if found else "neither A nor B"
    raise JudgeError(f"Row {row_id!r}: the judge's answer names {names}: {text!r}. Ask again (a lower temperature, "
                     "or 'Answer with one letter'), or leave the row out and report how many were left out.")


def swap_pairs(pairs: Sequence[dict]) -> list[dict]:
    """The same pairs with replies A and B exchanged (labels "better" / "longer" flipped with them)."""
    flip = {"A": "B", "B": "A"}
    return [{**p, "a": p["b"], "b": p["a"], **{k: flip[p[k]] for k in ("better", "longer") if k in p}} for p in pairs]


def _reference(row: dict, i: int) -> tuple[str, str, str]:
    """(ticket, category, reply) of a GreenLeaf chat row, or a ValueError naming the row."""
    try:
        target = greenleaf.parse_triage(row["messages"][-1]["content"])
        ticket = next(m["content"] for m in row["messages"] if m["role"] == "user")
        return ticket, target["category"], target["reply"]
    except (AttributeError, KeyError, TypeError, StopIteration, IndexError) as err:
        row_id = row.get("id", "?") if isinstance(row, dict) else "?"
        raise ValueError(f"Row {i} (id {row_id!r}) is not a GreenLeaf chat row with a user ticket and a triage "
                         f"answer ({err!r}); pass rows like data.load_split('heldout').") from err


def _pick(rows: Sequence[dict], seed: int, n: int | None) -> tuple[random.Random, list[tuple[dict, str, str, str]]]:
    if not rows:
        raise ValueError("No rows given: pass GreenLeaf chat rows, e.g. data.load_split('heldout').")
    if n is not None and not 0 < n <= len(rows):
        raise ValueError(f"n={n}, but there are {len(rows)} rows: ask for 1 to {len(rows)} pairs (or n=None for all).")
    rng = random.Random(seed)
    chosen = rng.sample(range(len(rows)), len(rows) if n is None else n)
    return rng, [(rows[k], *_reference(rows[k], k)) for k in chosen]


def _before_sign_off(reply: str, extra: str) -> str:
    body = reply.strip().removesuffix(greenleaf.SIGN_OFF).strip()
    return f"{body} {extra} {greenleaf.SIGN_OFF}"


def make_label_pairs(rows: Sequence[dict], seed: int = 0, n: int | None = None) -> list[dict]:
    """Pairs with a known better reply: the reference reply of ``n`` rows (default all; picked with ``seed``)
    against a copy made worse by one rule, cycling through ``FLAWS``: ``off_topic`` (the reference reply of a
    ticket of another category), ``no_sign_off`` (the sign-off removed), ``exact_refund`` ("We will refund £500
    today." added) and ``guarantee`` (a guarantee added). Within each flaw the good reply is A in every other pair,
    so A is right in half the pairs (exactly, when n is a multiple of 8). Returns ``[{"id", "ticket", "a", "b",
    "better", "flaw"}]``; the same rows and seed always give the same pairs."""
    rng, picked = _pick(rows, seed, n)
    everyone = [_reference(r, k) for k, r in enumerate(rows)]
    pairs = []
    for i, (row, ticket, category, reply) in enumerate(picked):
        flaw = FLAWS[i % len(FLAWS)]
        if flaw == "off_topic":
            others = [r for _, c, r in everyone if c != category]
            if not others:
                raise ValueError("make_label_pairs needs rows of two or more categories for its off-topic replies.")
            worse = rng.choice(others)
        elif flaw == "no_sign_off":
            worse = reply.strip().removesuffix(greenleaf.SIGN_OFF).strip()
        elif flaw == "exact_refund":
            worse = _before_sign_off(reply, f"We will refund £{rng.choice(REFUND_AMOUNTS)} today.")
        else:
            worse = _before_sign_off(reply, GUARANTEE)
        k = (i // len(FLAWS)) % 2  # 0: the good reply is A
        pairs.append({"id": row["id"], "ticket": ticket, "a": (reply, worse)[k], "b": (worse, reply)[k],
                      "better": "AB"[k], "flaw": flaw})
    return pairs


def make_length_pairs(rows: Sequence[dict], seed: int = 0, n: int | None = None, fillers: int = 2) -> list[dict]:
    """Pairs that differ only in length: the reference reply against itself with ``fillers`` content-free sentences
    (``FILLERS``) before the sign-off. The padded reply says nothing more and the rubric asks for short replies, so
    it is at best as good: a judge that prefers it (``length_bias`` above 0.5) rewards length itself, 0.5 means it
    treats the two as equal, and one that follows the rubric scores below 0.5. The longer reply is A in every other
    pair. Returns ``[{"id", "ticket", "a", "b", "longer"}]``."""
    rng, picked = _pick(rows, seed, n)
    padded = [(row, ticket, _before_sign_off(reply, " ".join(rng.sample(FILLERS, fillers))), reply)
              for row, ticket, _, reply in picked]
    return [{"id": row["id"], "ticket": ticket, "a": (long, short)[i % 2], "b": (short, long)[i % 2],
             "longer": "AB"[i % 2]} for i, (row, ticket, long, short) in enumerate(padded)]


def _aligned(verdicts: Sequence[dict], pairs: Sequence[dict], what: str) -> None:
    """Verdicts must be one per pair, in the same order (as ``judge_pairs`` returns them), each "A" or "B"."""
    if not pairs or len(verdicts) != len(pairs):
        raise ValueError(f"{what}: {len(verdicts)} verdicts for {len(pairs)} pairs: give one verdict per pair, in "
                         "the order judge_pairs returned them.")
    for i, (v, p) in enumerate(zip(verdicts, pairs)):
        if v.get("id") != p.get("id"):
            raise ValueError(f"{what}: verdict {i} is for id {v.get('id')!r} but pair {i} is {p.get('id')!r}: keep "
                             "verdicts in the order of their pairs.")
        if v.get("verdict") not in ("A", "B"):
            raise ValueError(f"{what}: verdict {i} (id {p.get('id')!r}) is {v.get('verdict')!r}, not 'A' or 'B'.")


def _rate(values: Sequence[float], interval: bool = True) -> tuple[float, list[float] | None]:
    return sum(values) / len(values), list(stats.bootstrap_ci(values)) if interval else None


def agreement_with_labels(verdicts: Sequence[dict], pairs: Sequence[dict]) -> dict:
    """How often the judge picked the reply the label says is better. Returns ``{"n", "accuracy", "interval",
    "per_flaw": {flaw: accuracy}}`` (``per_flaw`` empty when pairs have no "flaw"). Chance is 0.5."""
    _aligned(verdicts, pairs, "agreement_with_labels")
    if any(p.get("better") not in ("A", "B") for p in pairs):
        raise ValueError("agreement_with_labels: every pair needs 'better': 'A' or 'B' (make_label_pairs sets it).")
    right = [v["verdict"] == p["better"] for v, p in zip(verdicts, pairs)]
    accuracy, interval = _rate(right)
    per_flaw = {f: _rate([ok for ok, p in zip(right, pairs) if p.get("flaw") == f], False)[0]
                for f in dict.fromkeys(p["flaw"] for p in pairs if "flaw" in p)}
    return {"n": len(right), "accuracy": accuracy, "interval": interval, "per_flaw": per_flaw}


def position_bias(verdicts_ab: Sequence[dict], verdicts_ba: Sequence[dict]) -> dict:
    """Each pair judged as (a, b) and again as (b, a) (``swap_pairs``). ``consistency``: share of pairs where the
    same reply won both times (verdicts "A" then "B", or "B" then "A"); ``a_rate``: share of all verdicts that
    chose position A (0.5 = no preference for a position). A judge that always says "A" scores consistency 0 and
    a_rate 1. Intervals resample pairs. Returns ``{"n", "consistency", "consistency_interval", "a_rate",
    "a_rate_interval"}``."""
    _aligned(verdicts_ab, [{"id": v.get("id")} for v in verdicts_ba], "position_bias")
    _aligned(verdicts_ba, [{"id": v.get("id")} for v in verdicts_ab], "position_bias")
    same = [ab["verdict"] != ba["verdict"] for ab, ba in zip(verdicts_ab, verdicts_ba)]
    a_share = [((ab["verdict"] == "A") + (ba["verdict"] == "A")) / 2 for ab, ba in zip(verdicts_ab, verdicts_ba)]
    (consistency, c_interval), (a_rate, a_interval) = _rate(same), _rate(a_share)
    return {"n": len(same), "consistency": consistency, "consistency_interval": c_interval, "a_rate": a_rate,
            "a_rate_interval": a_interval}


def length_bias(verdicts: Sequence[dict], pairs: Sequence[dict]) -> dict:
    """Share of pairs (``make_length_pairs``) where the longer reply won, with its interval: above 0.5 the judge
    rewards padding. Judge both orders and pass both (``verdicts_ab + verdicts_ba``, ``pairs + swap_pairs(pairs)``)
    so a position bias cancels out. Returns ``{"n", "longer_wins", "interval"}``."""
    _aligned(verdicts, pairs, "length_bias")
    if any(p.get("longer") not in ("A", "B") for p in pairs):
        raise ValueError("length_bias: every pair needs 'longer': 'A' or 'B' (make_length_pairs sets it).")
    wins, interval = _rate([v["verdict"] == p["longer"] for v, p in zip(verdicts, pairs)])
    return {"n": len(pairs), "longer_wins": wins, "interval": interval}


def _ratings_of(ratings, keys: list, who: str) -> list[int]:
    unrated = [k for k in keys if ratings[k] is None]
    if unrated:
        raise ValueError(f"{who} ratings are missing for {len(unrated)} item(s): {unrated}. Rate every item (or "
                         "drop those items from both sides) before comparing.")
    for k in keys:
        value = ratings[k]
        if isinstance(value, bool) or not isinstance(value, Integral) or not 1 <= value <= 5:
            raise ValueError(f"{who} rating of item {k!r} is {value!r}: ratings are whole numbers 1-5 (from "
                             "judge_scores pass 'argmax', not 'expected').")
    return [int(ratings[k]) for k in keys]


def judge_human_agreement(judge_ratings: Mapping | Sequence, human_ratings: Mapping | Sequence) -> dict:
    """How well the judge's 1-5 ratings match a person's on the same items: two dicts id -> rating (e.g.
    ``{s["id"]: s["argmax"] for s in judge_scores(...)}`` and ``rating_widget``'s dict), or two lists in the same
    order. Returns ``{"n", "exact", "exact_interval", "within_one", "kappa_quadratic", "note"}``. Quadratic-weighted
    Cohen's kappa (scikit-learn) counts a 5-vs-1 disagreement far worse than 5-vs-4 and 0 is chance-level
    agreement; it is None when undefined (e.g. both rated every item the same)."""
    from sklearn.metrics import cohen_kappa_score

    if isinstance(judge_ratings, Mapping) != isinstance(human_ratings, Mapping):
        raise ValueError("Pass two dicts (id -> rating) or two lists in the same order, not one of each.")
    keys = list(human_ratings) if isinstance(human_ratings, Mapping) else list(range(len(human_ratings)))
    if isinstance(human_ratings, Mapping) and set(judge_ratings) != set(keys):
        raise ValueError(f"The judge rated items {sorted(set(judge_ratings) - set(keys))} that the person did not, "
                         f"and not {sorted(set(keys) - set(judge_ratings))}: rate the same items.")
    if len(judge_ratings) != len(keys) or not keys:
        raise ValueError(f"{len(judge_ratings)} judge ratings for {len(keys)} human ratings: give one of each per "
                         "item, in the same order.")
    judge, human = _ratings_of(judge_ratings, keys, "Judge"), _ratings_of(human_ratings, keys, "Human")
    exact = [j == h for j, h in zip(judge, human)]
    low, high = stats.bootstrap_ci(exact)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = float(cohen_kappa_score(human, judge, weights="quadratic", labels=[1, 2, 3, 4, 5]))
    n = len(keys)
    return {"n": n, "exact": sum(exact) / n, "exact_interval": [low, high],
            "within_one": sum(abs(j - h) <= 1 for j, h in zip(judge, human)) / n,
            "kappa_quadratic": None if kappa != kappa else kappa,
            "note": f"{n} items: one item moves exact agreement by {100 / n:.0f} points, and its 95% interval "
                    f"[{low:.2f}, {high:.2f}] is wide. Read this as a rough check, not a measurement."}


def rating_widget(items: Sequence[dict], rubric: str = RUBRIC):
    """``(widget, ratings)``: an ipywidgets form with the rubric on top and, for each item ``{"id", "ticket",
    "reply"}``, the ticket, the reply and 1-5 buttons with nothing selected. ``ratings`` (id -> int or None) fills
    in as you click; pass it to ``judge_human_agreement``."""
    import html

    import ipywidgets as widgets

    _check_rows(items, ("id", "ticket", "reply"), "item")
    ids = [i["id"] for i in items]
    ratings: dict = dict.fromkeys(ids)
    if len(ratings) != len(ids):
        raise ValueError(f"Item ids repeat ({sorted({i for i in ids if ids.count(i) > 1})}): each needs its own id.")
    done = widgets.Label(f"0 of {len(items)} rated")
    children = [widgets.HTML(f"<pre style='white-space: pre-wrap'>{html.escape(rubric)}</pre>"), done]
    for k, item in enumerate(items, 1):
        buttons = widgets.ToggleButtons(options=[(d, int(d)) for d in DIGITS], value=None, description="rating",
                                        style={"button_width": "40px"})

        def record(change, key=item["id"]):
            ratings[key] = change["new"]
            done.value = f"{sum(v is not None for v in ratings.values())} of {len(ratings)} rated"

        buttons.observe(record, names="value")
        children += [widgets.HTML(f"<hr><b>{k}. Ticket</b> ({html.escape(str(item['id']))}):<br>"
                                  f"{html.escape(item['ticket'])}<br><b>Reply:</b> {html.escape(item['reply'])}"),
                     buttons]
    return widgets.VBox(children), ratings
