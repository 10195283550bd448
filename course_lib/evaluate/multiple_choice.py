"""A multiple-choice benchmark scored by log-likelihood (MMLU-style), and the broken way, for contrast.

Each item is ``{"id", "subject", "question", "options": [4 strings], "answer": index}``. The model never writes
an answer: for every option we compute how likely the model finds that option's text after the question
(``option_logprobs``) and its pick is the most likely one. So an answer is always one of the options and nothing
has to be parsed. The common shortcut, asking the model to write a letter and taking the first A-D found, with "A"
when none is found (``letter_in_response``), gives credit for outputs that answer nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from course_lib.data import IGNORE_INDEX, read_json_lines
from course_lib.paths import DATA_DIR

LETTERS = "ABCD"
BENCHMARK_FILE = DATA_DIR / "eval" / "mc_benchmark.jsonl"


def load_items(path: str | Path = BENCHMARK_FILE) -> list[dict]:
    """The benchmark's items (default: the course's 64, ``data/eval/mc_benchmark.jsonl``), checked by
    ``check_items``; a line that is not JSON is reported with its line number."""
    items = [item for _, item in read_json_lines(path)]
    check_items(items)
    return items


def as_rows(items: Sequence[dict]) -> list[dict]:
    """Items as chat rows (question and options as the user text), for ``data.contamination``."""
    return [{"id": i.get("id", k), "messages": [{"role": "user", "content": f"{i['question']} {' '.join(i['options'])}"}]}
            for k, i in enumerate(items)]


def check_items(items: Sequence[dict]) -> None:
    """Raise ``ValueError`` naming the first malformed item: it needs a question, exactly four distinct non-empty
    options, and ``answer`` an index 0-3."""
    if not items:
        raise ValueError("No benchmark items: pass a list of {'id', 'subject', 'question', 'options', 'answer'}.")
    for i, item in enumerate(items):
        name = f"item {i} (id {item.get('id', '?')!r})" if isinstance(item, dict) else f"item {i}"
        if not isinstance(item, dict):
            raise ValueError(f"{name} is a {type(item).__name__}, not a dict.")
        if not str(item.get("question", "")).strip():
            raise ValueError(f"{name} has no question.")
        options = item.get("options")
        if not isinstance(options, list) or len(options) != 4:
            got = len(options) if isinstance(options, list) else type(options).__name__
            raise ValueError(f"{name} must have exactly 4 options, it has {got}. Add the missing option(s).")
        if any(not isinstance(o, str) or not o.strip() for o in options):
            raise ValueError(f"{name} has an empty or non-text option: {options!r}.")
        if len({o.strip().lower() for o in options}) != 4:
            raise ValueError(f"{name} repeats an option: {options!r}.")
        answer = item.get("answer")
        if type(answer) is not int or not 0 <= answer < 4:
            raise ValueError(f"{name} has answer={answer!r}: use the index (0-3) of the right option.")


def prompt_of(item: dict) -> str:
    """The text every option is scored after: the question and an answer cue (options are not listed: each is
    scored on its own, as a continuation)."""
    return f"Question: {item['question'].strip()}\nAnswer:"


def option_logprobs(model, tokenizer, item: dict) -> list[tuple[float, int]]:
    """``[(sum of log-probabilities of the option's tokens, number of tokens)]`` for each option, given
    ``prompt_of(item)``. The prompt and the option are tokenised separately and joined, so every option is scored
    after exactly the same prompt tokens."""
    from course_lib.evaluate.perplexity import pad_batch, token_losses

    prompt = tokenizer(prompt_of(item), add_special_tokens=False)["input_ids"]
    rows = []
    for option in item["options"]:
        ids = tokenizer(" " + option.strip(), add_special_tokens=False)["input_ids"]
        rows.append({"input_ids": prompt + ids, "labels": [IGNORE_INDEX] * len(prompt) + ids})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    nll, counted = token_losses(model, *pad_batch(rows, pad))
    return [(-float(nll[j].sum()), int(counted[j].sum())) for j in range(len(rows))]


def score_multiple_choice(model, tokenizer, items: Sequence[dict], length_normalised: bool = False,
                          progress: bool = False) -> dict:
    """Accuracy of the model's picks (the option with the highest log-likelihood; ``length_normalised``: per token,
    so long options are not penalised for their length). Returns ``{"accuracy", "interval", "per_subject",
    "picks_per_position", "items": [{"id", "subject", "answer", "pick", "correct", "scores"}]}``."""
    from course_lib import stats

    check_items(items)
    was_training = model.training
    model.eval()
    iterator = items
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(items, desc="benchmark")
    results = []
    for item in iterator:
        scored = option_logprobs(model, tokenizer, item)
        scores = [lp / n if length_normalised else lp for lp, n in scored]
        pick = max(range(4), key=lambda k: scores[k])
        results.append({"id": item.get("id"), "subject": item.get("subject", "?"), "answer": item["answer"],
                        "pick": pick, "correct": pick == item["answer"], "scores": scores})
    model.train(was_training)
    correct = [r["correct"] for r in results]
    per_subject: dict[str, list[bool]] = {}
    for r in results:
        per_subject.setdefault(r["subject"], []).append(r["correct"])
    low, high = stats.bootstrap_ci(correct)
    return {"accuracy": sum(correct) / len(correct), "interval": [low, high],
            "per_subject": {s: sum(v) / len(v) for s, v in per_subject.items()},
            "picks_per_position": [sum(r["pick"] == k for r in results) for k in range(4)], "items": results}


def letter_in_response(output: str) -> str:
    """The shortcut runner's parser, kept to show its flaw: the first standalone letter A-D in the output, or "A"
    when there is none. An empty or off-topic output is thereby scored as the answer "A"."""
    match = re.search(r"\b([ABCD])\b", output or "")
    return match.group(1) if match else "A"


def letter_accuracy(outputs: Sequence[str], items: Sequence[dict], default: str | None = "A") -> dict:
    """Score generated outputs by the letter they contain. ``default="A"`` is the shortcut (no letter counts as
    "A"); ``default=None`` counts such an output as wrong and reports how many there were. Returns
    ``{"accuracy", "unparsed"}``."""
    check_items(items)
    if len(outputs) != len(items):
        raise ValueError(f"{len(outputs)} outputs for {len(items)} items: give one output per item, in order.")
    right, unparsed = 0, 0
    for output, item in zip(outputs, items):
        match = re.search(r"\b([ABCD])\b", output or "")
        if match is None:
            unparsed += 1
            letter = default
        else:
            letter = match.group(1)
        right += letter is not None and LETTERS.index(letter) == item["answer"]
    return {"accuracy": right / len(items), "unparsed": unparsed}
