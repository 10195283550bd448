"""Write ``data/greenleaf/replay.jsonl``: general requests answered by the base model itself (self-distillation).

Why: fine-tuning only on GreenLeaf tickets teaches the model that *every* answer is one line of triage JSON signed
"Happy growing!" -- it then answers "What is the capital of Canada?" in the shop's voice (measured with
``benchmarks/cpu_lesson.py --no-replay``: regression score 86% -> 49%). Mixing in a little general chat keeps the old
behaviour where it belongs. The answers here are the base model's own greedy answers, so replay can only *preserve* what the model did, never teach it new
facts; and the requests are open-ended tasks (explain, list, rewrite, write), not the short factual questions of
``regression.jsonl`` (``tests/test_shipped_data.py`` checks there is no n-gram overlap between the two).

Rows have no system message: the chat template then adds the model's default one, as for the regression set. Only
answers that ended on their own (an end-of-turn token before the limit) are kept.

Usage (needs the embedded model; ~1 min on 2 cores)::

    python data/generate_replay.py            # writes data/greenleaf/replay.jsonl (84 rows)
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TEMPLATES = {
    "explain": ("Explain {} in two sentences.", [
        "how a rainbow forms", "what a budget is", "why we sleep", "how a bicycle stays upright", "what recycling is",
        "how vaccines work", "what a library does", "why bread rises", "how a compass works", "what a volcano is",
        "why leaves change colour in autumn", "how email travels", "what compound interest is", "how bees make honey",
        "why the sea is salty", "what a password manager does", "how a thermometer works", "what a habit is"]),
    "tips": ("Give me three short tips for {}.", [
        "studying for an exam", "staying hydrated", "writing a clear email", "saving money on groceries",
        "sleeping better", "learning a new language", "running a first 5k", "keeping a tidy desk", "public speaking",
        "a job interview", "cooking rice", "taking better photos with a phone", "packing for a trip",
        "reading more books", "making new friends", "managing stress"]),
    "poem": ("Write a short poem about {}.", [
        "the moon", "a rainy Monday", "the ocean", "a cup of coffee", "autumn leaves", "a sleepy cat",
        "the city at night", "a mountain", "friendship", "the first snow", "a candle", "a long train ride"]),
    "rewrite": ("Rewrite this sentence to sound more polite: \"{}\"", [
        "Send me the report now.", "Your code is wrong.", "Stop talking during the meeting.", "Give me a refund.",
        "I need the car back today.", "Move your bag.", "Answer my email.", "This soup is cold.",
        "Fix the printer.", "Be on time tomorrow."]),
    "summarise": ("Summarise in one sentence: {}", [
        "The team met on Tuesday to plan the summer fair. They chose a date in July, agreed on a budget, and asked "
        "volunteers to sign up by Friday.",
        "Maria practised the piano every evening for a month. At the school concert she played without a mistake and "
        "the audience gave her a long applause.",
        "The bakery on the corner started opening at six in the morning. Commuters now buy breakfast there, and the "
        "owner has hired two more people.",
        "Heavy rain closed the mountain road for two days. Workers cleared the rocks, and traffic returned to normal "
        "by Sunday afternoon.",
        "A new bus line connects the university with the train station. Students say the trip now takes fifteen "
        "minutes instead of forty.",
        "The museum added an evening opening on Thursdays. Visitor numbers went up, especially among people who "
        "work during the day.",
        "Tom forgot his umbrella at home. It rained all afternoon, so he waited in a cafe and finished his book.",
        "The town planted two hundred trees along the river. In a few years the path will be shaded in summer."]),
    "ideas": ("Suggest three ideas for {}.", [
        "a rainy weekend", "a birthday gift for a friend who likes cooking", "a school science project",
        "a healthy breakfast", "a team-building activity", "a short story", "a family picnic",
        "decorating a small room", "a name for a bakery", "a weekend hobby", "a board game night", "a podcast topic"]),
    "howto": ("How do I {}? Answer briefly.", [
        "boil an egg", "make a cup of tea", "tie a tie", "change a light bulb", "write a thank-you note",
        "start a journal", "clean a laptop keyboard", "plan a simple weekly menu", "back up my phone photos",
        "stretch after a run", "introduce myself at a new job", "fold a paper airplane", "set a daily goal",
        "make a simple salad"]),
    "compare": ("What is the difference between {}? Keep it short.", [
        "weather and climate", "a virus and a bacterium", "a lake and a sea", "a noun and a verb", "tea and coffee",
        "a city and a town", "saving and investing", "a laptop and a tablet", "a poem and a song",
        "a map and a globe", "speed and velocity", "a hobby and a job"]),
    "write": ("Write {}.", [
        "a one-line birthday message for a colleague", "a two-sentence description of a sunny beach",
        "a short thank-you message to a teacher", "a friendly reminder about a team meeting",
        "a short welcome message for a new club member", "a one-sentence motto for a running club",
        "a polite message declining a party invitation", "a short note asking a neighbour to water my plants",
        "two sentences about why reading matters", "a short apology for replying late to an email"]),
}


def requests(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct ``(kind, request)`` pairs, kinds interleaved so any prefix is varied."""
    pools = []
    for kind, (template, items) in TEMPLATES.items():
        shuffled = items[:]
        random.Random(f"{seed}-{kind}").shuffle(shuffled)
        pools.append([(kind, template.format(item)) for item in shuffled])
    mixed = [r for group in itertools.zip_longest(*pools) for r in group if r]
    return mixed[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "data" / "greenleaf" / "replay.jsonl"))
    parser.add_argument("--max-new-tokens", type=int, default=160)
    args = parser.parse_args()

    from course_lib import models

    model, tok = models.load_model("embedded")
    asked = requests(10_000)
    conversations = [[{"role": "user", "content": text}] for _, text in asked]
    old = tok.padding_side
    tok.padding_side = "left"
    rows, cut = [], 0
    import torch

    with torch.inference_mode():
        for i in range(0, len(conversations), 16):
            batch = conversations[i : i + 16]
            texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in batch]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            for j, seq in enumerate(out[:, enc["input_ids"].shape[1]:].tolist()):
                if tok.eos_token_id not in seq:  # cut off at the limit: an unfinished answer would teach cutting off
                    cut += 1
                    continue
                answer = tok.decode(seq[: seq.index(tok.eos_token_id)], skip_special_tokens=True).strip()
                kind, text = asked[i + j]
                rows.append({"id": f"RP{len(rows) + 1:03d}", "kind": kind,
                             "messages": [{"role": "user", "content": text},
                                          {"role": "assistant", "content": answer}]})
            print(f"{i + len(batch)}/{len(conversations)} asked, {len(rows)} kept", flush=True)
    tok.padding_side = old
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {args.out} ({cut} answers hit the {args.max_new_tokens}-token limit, dropped)")


if __name__ == "__main__":
    main()
