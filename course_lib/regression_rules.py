"""The scoring rule of the general-skills regression set (``data/greenleaf/regression.jsonl``): is an output right?

One rule, used by ``course_lib.evaluate`` (which re-exports ``check_regression_answer``) and by
``data/generate_greenleaf.py``, which must run on the standard library alone: so this module imports nothing else.
"""

from __future__ import annotations

import re
from typing import NamedTuple

REGRESSION_CHECKS = ("contains", "exact", "number")

_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine".split())}
_TEENS = {w: 10 + i for i, w in enumerate(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 20 + 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1000}
_WORDS = {**_UNITS, **_TEENS, **_TENS, **_SCALES}
_KIND = {**{w: "unit" for w in _UNITS}, **{w: "teen" for w in _TEENS}, **{w: "tens" for w in _TENS},
         **{w: "scale" for w in _SCALES}}

_WORD_ALTERNATION = "|".join(sorted(_WORDS, key=len, reverse=True))
# A number in digits ("-3.5", "1000"; a minus sign only where it cannot be a hyphen, as in "3-4"), a number word, or
# the "a" of "a hundred" / "a thousand".
_TOKEN = re.compile(rf"(?P<digits>(?:(?<![\w.])-)?(?<![\d.])\d+(?:\.\d+)?)|\b(?P<word>{_WORD_ALTERNATION})\b"
                    r"|\b(?P<article>a)(?=[\s-]+(?:hundred|thousand)\b)")
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # "86,400" -> "86400"; "3,5" and "1,2,3" stay apart
_PRONOUN_ONE_BEFORE = re.compile(r"\b(?:the|this|that|no|each|every|any|which|some)\s+$")  # "the one you want"
_PRONOUN_ONE_AFTER = re.compile(r"^(?:\s+(?:of|another)\b|'s\b)")  # "one of them", "one another", "one's"

_FILLERS = (r"(?:(?:approximately|about|around|roughly|exactly|just|only|precisely|nearly|almost|also|always|"
            r"usually|typically|equal\s+to|equivalent\s+to|made\s+up\s+of|a\s+total\s+of|the\s+number)\s+)*")
# What states the value: "= 8", "equals 8", "is 24", "it's 24", "are 7", "has three", "answer: 12" (fillers allowed).
_MARKED = re.compile(r"(?:=|\b(?:equals?|is|are|was|were|has|have|answer)\b|['’]s\b)\s*[:=]?\s*" + _FILLERS + r"$")
_NEGATED = re.compile(r"(?:\bnot|\bnever|n't)\s+" + _FILLERS + r"$")  # "is not 8": 8 is not the answer
# Between two numbers: an arithmetic operator makes both operands (not answers) ...
_OPERATOR = re.compile(r"^\s*(?:[+*/×÷^x]|plus|minus|times|multiplied\s+by|divided\s+by)\s*$")
# ... and separators alone make them a list, a range or a hedge of alternatives ("3 or 4", "6, 7, 8", "7-8").
_LIST = re.compile(r"^(?:[\s,;/…–—-]|\b(?:or|and|to|nor|maybe|perhaps|possibly)\b)*$")


class Number(NamedTuple):
    start: int  # character span in the normalised (lower-cased, separator-free) text
    end: int
    value: float


def _normalise(text: str) -> str:
    return _THOUSANDS_SEPARATOR.sub("", str(text).lower())


def _tokens(text: str):
    """``(start, end, kind, value)`` for each digit number, number word and "a" (before hundred/thousand)."""
    for m in _TOKEN.finditer(text):
        if m.group("digits"):
            yield m.start(), m.end(), "digits", float(m.group("digits"))
        elif m.group("article"):
            yield m.start(), m.end(), "article", 1.0
        else:
            word = m.group("word")
            if word == "one" and (_PRONOUN_ONE_BEFORE.search(text[max(0, m.start() - 12):m.start()])
                                  or _PRONOUN_ONE_AFTER.search(text[m.end():m.end() + 10])):
                continue
            yield m.start(), m.end(), _KIND[word], float(_WORDS[word])


def find_numbers(text: str) -> list[Number]:
    """Every number in ``text``, in order: digits ("86,400" is 86400, "-3.5") and number words ("twelve",
    "twenty-four", "one hundred and five", "two thousand five hundred", "a hundred"). Spans refer to the
    lower-cased text with thousands separators removed."""
    text = _normalise(text)
    numbers: list[Number] = []
    cur = None  # [start, end, total, current, last kind] of the number being read

    def close():
        if cur is not None and cur[4] not in ("article",):
            numbers.append(Number(cur[0], cur[1], cur[2] + cur[3]))

    for start, end, kind, value in _tokens(text):
        if cur is not None and _continues(text[cur[1]:start], cur, kind, value):
            if kind == "scale" and value == 100:
                cur[3] *= 100
            elif kind == "scale":
                cur[2], cur[3] = cur[3] * 1000, 0.0
            else:
                cur[3] += value
            cur[1], cur[4] = end, kind
            continue
        close()
        cur = None if kind == "scale" else [start, end, 0.0, value, kind]  # a bare "hundred" counts nothing
    close()
    return numbers


def _continues(gap: str, cur: list, kind: str, value: float) -> bool:
    """Does a token of ``kind`` after ``gap`` extend the number being read ("twenty" + "-four", "two" + " thousand")?"""
    last, total, current = cur[4], cur[2], cur[3]
    if not (re.fullmatch(r"\s+|-", gap) or (last == "scale" and re.fullmatch(r"\s+and\s+", gap))):
        return False
    if kind == "scale" and value == 100:
        return last in ("unit", "teen", "tens", "digits", "article") and 0 < current < 100
    if kind == "scale":  # thousand: "two thousand", "five hundred thousand", "a thousand"
        return 0 < current < 1000 and total == 0
    if kind == "unit" and value > 0 and last == "tens":
        return True
    if kind in ("unit", "teen", "tens") and value > 0 and last == "scale":
        return current % 100 == 0  # "one hundred" + "five", "two thousand" + "twenty"
    return False


def final_answer(output: str) -> Number | None:
    """The number an output gives as its answer (see ``check_regression_answer``), or ``None``."""
    text = _normalise(output)
    numbers = find_numbers(output)

    def gap(a: Number, b: Number) -> str:
        return text[a.end:b.start]

    def operand(i: int) -> bool:
        return ((i > 0 and _OPERATOR.match(gap(numbers[i - 1], numbers[i])) is not None)
                or (i + 1 < len(numbers) and _OPERATOR.match(gap(numbers[i], numbers[i + 1])) is not None))

    before = [text[max(0, n.start - 80):n.start] for n in numbers]
    candidates = [i for i in range(len(numbers)) if not operand(i) and not _NEGATED.search(before[i])]
    marked = [i for i in candidates if _MARKED.search(before[i])]
    if not (marked or candidates):
        return None
    i = (marked or candidates)[-1]
    for j in (i - 1, i + 1):  # one of several different values in a list, range or hedge: no single answer
        if 0 <= j < len(numbers) and numbers[j].value != numbers[i].value:
            a, b = sorted((numbers[i], numbers[j]))
            if _LIST.match(gap(a, b)):
                return None
    return numbers[i]


def _answer_number(answer) -> float:
    numbers = find_numbers(str(answer))
    if len(numbers) != 1:
        raise ValueError(f"Regression answer {answer!r} is not one number: a 'number' check needs an answer such as "
                         "'24' or '1000'.")
    return numbers[0].value


def _strip_wrapping(text: str) -> str:
    text = " ".join(str(text).split()).lower()
    previous = None
    while text != previous:
        previous = text
        text = text.strip().strip("\"'`*_“”‘’").rstrip(".!?").strip()
    return text


def check_regression_answer(output: str, answer, check: str) -> bool:
    """Is ``output`` a right answer? Case never matters; runs of whitespace count as one space.

    ``contains``: the answer appears in the output starting at the beginning of a word ("Canberra." and "darkness"
    for "dark" count; "Nile" inside "juvenile" does not). Any other text may surround it.

    ``exact``: the output is the answer, once surrounding whitespace, quotes, backticks, asterisks and a final
    ``.``, ``!`` or ``?`` are removed ('"OK."' is "ok"; "Yes, it is." is not "yes").

    ``number``: the output's final answer equals the answer as a number. Numbers are read in digits (thousands
    separators allowed: "86,400"; decimals: "100.0" is 100) and in words, zero to twenty, the tens, hundred and
    thousand and their combinations ("twelve", "twenty-four", "one hundred and five", "a thousand"; "one" as a
    pronoun, as in "the one" or "one of", is not a number). The final answer is the last number that follows an
    answer marker ("=", "equals", "is", "it's", "are", "was", "were", "has", "have", "answer"; "approximately",
    "about", "roughly", "exactly", "equal to" and the like may stand in between), or, if no number follows a
    marker, the last number in the output. Operands of an arithmetic expression ("4 + 4", "12 × 13") and numbers
    after "not"/"never" are never the final answer. The output is wrong when it has no final answer, or when its
    final answer is one of a list, range or hedge of different numbers joined only by separators ("3 or 4",
    "6, 7, 8", "7-8", "between 7 and 8"). So "A day is approximately 86,400 seconds, which is roughly 24 hours"
    answers 24, "There are 7 days in a week, so 2 weeks have 14 days" answers 14, "A day is approximately 8 hours,
    with 24 hours in the evening" answers 8, and one output is right for at most one number.

    Raises ``ValueError`` for an unknown check, or a ``number`` answer that is not one number.
    """
    if check == "contains":
        wanted = " ".join(str(answer).split()).lower()
        return re.search(r"(?<!\w)" + re.escape(wanted), " ".join(str(output).split()).lower()) is not None
    if check == "exact":
        return _strip_wrapping(output) == _strip_wrapping(answer)
    if check == "number":
        expected = _answer_number(answer)
        found = final_answer(output)
        return found is not None and found.value == expected
    raise ValueError(f"Unknown check {check!r}: use one of {REGRESSION_CHECKS}.")
