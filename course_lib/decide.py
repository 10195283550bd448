"""Deciding whether to fine-tune: the prompt → RAG → fine-tune ladder, and the decision note.

Climb the ladder one rung at a time and stop at the first rung that works:

1. **prompt** — instructions, a few examples in the prompt (few-shot), structured output. Cheapest, instant to change.
2. **rag** — retrieval-augmented generation: fetch the facts at question time and put them in the prompt. For
   knowledge, above all knowledge that changes.
3. **fine-tune** — train the weights on labelled examples. For behaviour, format and style the model must show on
   every call, and for moving a task that works on a big prompted model onto a smaller, cheaper one.

and a fourth answer, **don't**: when you cannot test the result, do not let anyone depend on it.

A fine-tune is worth it only when you can name the win (a metric that improves), the risk you accept, and the
test (data + thresholds) you will run before anyone depends on it. ``recommend`` applies the ladder to a
``Problem``; the decision note (``DECISION_NOTE_TEMPLATE``, ``validate_decision_note``) writes the win, risk
and test down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

GAPS = ("knowledge", "format", "behaviour", "style")  # what the model gets wrong today
CHANGE_RATES = ("never", "yearly", "monthly", "weekly", "daily")  # how often the facts behind an answer change
PROMPT_RESULTS = ("untried", "works", "inconsistent", "fails")  # what your best prompt achieves on a test set
BUDGETS = ("loose", "tight")  # tight: the prompted model is too slow or too costly per call at your volume
RISKS = ("low", "medium", "high")  # how bad a wrong answer is
CHOICES = ("prompt", "rag", "fine-tune", "don't")

FAST_CHANGING = ("monthly", "weekly", "daily")  # facts that change faster than you would retrain
MIN_TRAIN_EXAMPLES = 100  # fewer labelled examples than this: a fine-tune learns little; use them as few-shot
MIN_TEST_EXAMPLES = 50  # fewer than this: no held-out test can tell a 5-point change from noise
HIGH_VOLUME = 10_000  # requests per day at which a long prompt on every call costs more than a training run


@dataclass(frozen=True)
class Problem:
    """The learner's situation, in the terms the ladder needs."""

    gap: str = "behaviour"  # one of GAPS: what the model lacks (facts it does not know vs how it answers)
    facts_change: str = "yearly"  # one of CHANGE_RATES: how often the facts the answers depend on change
    labelled_examples: int = 0  # input → ideal output pairs you have (or can write) and trust
    requests_per_day: int = 100  # expected calls once in use
    budget: str = "loose"  # one of BUDGETS: does the prompted model fit the latency/cost budget at that volume?
    risk: str = "medium"  # one of RISKS: what a wrong answer costs
    prompt_result: str = "untried"  # one of PROMPT_RESULTS: measured, on a held-out set, with your best prompt


@dataclass(frozen=True)
class Recommendation:
    """What to do, why, and what to try before (or while) doing it."""

    choice: str  # one of CHOICES
    reasons: list[str] = field(default_factory=list)  # why, one sentence each, in the order the rules fired
    try_first: list[str] = field(default_factory=list)  # cheaper steps to take first, or the first steps of the choice

    def to_markdown(self) -> str:
        """The recommendation as a short markdown block (used by the form and the notebooks)."""
        lines = [f"**Recommendation: {self.choice}**", "", "Why:"]
        lines += [f"- {r}" for r in self.reasons]
        if self.try_first:
            lines += ["", "Try first:"] + [f"- {t}" for t in self.try_first]
        return "\n".join(lines)


_ALLOWED = {"gap": GAPS, "facts_change": CHANGE_RATES, "prompt_result": PROMPT_RESULTS, "budget": BUDGETS,
            "risk": RISKS}


def check_problem(problem: Problem) -> None:
    """Raise ``ValueError`` naming the field and its valid values if ``problem`` has a value the rules do not know."""
    for name, allowed in _ALLOWED.items():
        value = getattr(problem, name)
        if value not in allowed:
            raise ValueError(f"Problem.{name}={value!r} is not one of {allowed}.")
    for name in ("labelled_examples", "requests_per_day"):
        value = getattr(problem, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"Problem.{name}={value!r} must be a whole number ≥ 0.")


def recommend(problem: Problem) -> Recommendation:
    """Apply the prompt → RAG → fine-tune ladder to ``problem``. Pure and deterministic: the same input always gives
    the same recommendation. The rules, in order (the first that fires decides):

    1. high risk and too few labelled examples to build a test → don't;
    2. missing knowledge → RAG (fine-tuning is a poor way to store facts, worse when they change);
    3. no prompt measured yet → prompt;
    4. the prompt works → keep it, unless volume is high and the budget tight (then fine-tune a smaller model);
    5. too few labelled examples to train on → prompt (few-shot with them, and label more);
    6. inconsistent format → structured output first; inconsistent behaviour at low volume and a loose budget →
       prompt;
    7. otherwise → fine-tune.
    """
    check_problem(problem)
    p = problem
    n, volume = p.labelled_examples, p.requests_per_day
    test_steps = [
        "Measure your best prompt on a held-out set (or keep the measurement you have): that score is the bar any "
        "other option must beat.",
        "Write the decision note: the win (a metric), the risk you accept, the test with thresholds.",
    ]

    if p.risk == "high" and n < MIN_TEST_EXAMPLES:
        return Recommendation("don't", [
            f"A wrong answer is costly (risk: high) and {n} labelled examples are too few to build a held-out "
            f"test (at least {MIN_TEST_EXAMPLES}): you could not show the model is safe to depend on.",
            "Without a test you can name neither the win nor the risk, so no option can be justified yet.",
        ], [
            f"Label at least {MIN_TEST_EXAMPLES} real cases with their correct answers, as a test set.",
            "Keep a person deciding these cases until a model passes that test.",
        ])

    if p.gap == "knowledge":
        if p.facts_change in FAST_CHANGING:
            why = (f"The facts change {p.facts_change}: a fine-tuned model is frozen at training time, while "
                   "retrieval reads the current documents on every call.")
        else:
            why = ("Fine-tuning is a poor way to add facts: the model blurs or invents them, and you cannot cite "
                   "where an answer came from. Retrieval puts the source text in front of the model.")
        return Recommendation("rag", [
            "What is missing is knowledge (facts the model was never shown), not how it answers.", why,
        ], [
            "Put the relevant documents in the prompt by hand for a few questions: if answers improve, "
            "retrieval will help.",
            "Build a small search over your documents and measure answers with and without it.",
        ])

    if p.prompt_result == "untried":
        return Recommendation("prompt", [
            "No prompt has been measured yet: prompting is the cheapest rung of the ladder and often enough.",
            "You need a prompted baseline anyway: it is the bar a fine-tune would have to beat.",
        ], [
            "Write clear instructions with the exact output format; add 3–5 worked examples (few-shot).",
            "Use structured output (JSON mode or a schema) if the format must be exact.",
        ] + test_steps[:1])

    if p.prompt_result == "works":
        if p.budget == "tight" and volume >= HIGH_VOLUME:
            if n >= MIN_TRAIN_EXAMPLES:
                return Recommendation("fine-tune", [
                    f"The prompt works, but at {volume:,} requests a day the long prompt and large model do not "
                    "fit the latency/cost budget.",
                    "A smaller model fine-tuned on the task can match the prompted large model at a fraction of "
                    "the cost per call, with no long prompt.",
                    f"{n} labelled examples are enough to start (at least {MIN_TRAIN_EXAMPLES}).",
                ], test_steps + ["Fine-tune the smallest model that might work (LoRA), and compare cost per call."])
            return Recommendation("prompt", [
                f"The prompt works; the budget is tight at {volume:,} requests a day, but {n} labelled examples "
                f"are too few to train a replacement (at least {MIN_TRAIN_EXAMPLES}).",
            ], [
                "Shorten the prompt and cache what repeats; measure latency and cost per call.",
                "Collect the prompted model's answers, review them, and use the good ones as training data later.",
            ])
        return Recommendation("prompt", [
            "Your prompt already passes your test and fits the budget: a fine-tune would add training, "
            "hosting and retraining costs for no measured win.",
        ], ["Keep the held-out test and re-run it whenever the model or the prompt changes."])

    # From here the prompt was measured and falls short (inconsistent or fails).
    if n < MIN_TRAIN_EXAMPLES:
        return Recommendation("prompt", [
            f"The prompt falls short, but {n} labelled examples are too few to fine-tune on "
            f"(at least {MIN_TRAIN_EXAMPLES}); a model trained on a handful copies them rather than the task.",
        ], [
            "Use the examples you have as few-shot examples in the prompt.",
            f"Label more examples (aim for {MIN_TRAIN_EXAMPLES}+ for training, plus a held-out test set).",
        ])

    if p.prompt_result == "inconsistent" and p.gap == "format":
        return Recommendation("prompt", [
            "The gap is the output format, and format can be enforced at generation time: structured output "
            "(a JSON schema or grammar) makes every answer parse, without training.",
        ], [
            "Turn on structured output / constrained decoding with your schema, or validate and retry.",
            "Fine-tune only if the content inside the valid format is still wrong.",
        ])

    if p.prompt_result == "inconsistent" and volume < HIGH_VOLUME and p.budget == "loose":
        return Recommendation("prompt", [
            f"The prompt mostly works, and at {volume:,} requests a day within budget, better examples and "
            "a validate-and-retry step cost less than training and hosting a model.",
        ], [
            "Add few-shot examples of the cases it gets wrong; validate each answer and retry or escalate.",
            f"Revisit fine-tuning if volume passes {HIGH_VOLUME:,} a day or the budget tightens.",
        ])

    reasons = [
        f"The gap is {p.gap} (how the model answers), which training on examples changes and prompting has not "
        f"fixed (best prompt: {p.prompt_result}).",
        f"{n} labelled examples are enough to train on and keep a held-out test aside.",
    ]
    if p.budget == "tight" or volume >= HIGH_VOLUME:
        reasons.append(f"At {volume:,} requests a day, a small tuned model without a long prompt is cheaper and "
                       "faster per call.")
    if p.risk == "high":
        reasons.append("Risk is high: keep a person reviewing answers until the tuned model passes the test.")
    return Recommendation("fine-tune", reasons, test_steps + [
        "Start with LoRA on the smallest model that might work; check it did not forget general skills."
    ])


# ---------------------------------------------------------------------------------------------- the form


def decision_form(problem: Problem | None = None):
    """An ipywidgets form over the ``Problem`` fields with a button that shows ``recommend``'s answer.

    Returns the widget (a ``VBox``); display it by making it the last expression of a cell. The form's parts are
    reachable for tests: ``form.children[-2]`` is the button, ``form.children[-1]`` the output (HTML).
    """
    import ipywidgets as w

    p = problem or Problem()
    style = {"description_width": "190px"}
    layout = w.Layout(width="480px")
    controls = {
        "gap": w.Dropdown(options=GAPS, value=p.gap, description="What is lacking", style=style, layout=layout),
        "facts_change": w.Dropdown(options=CHANGE_RATES, value=p.facts_change, description="Facts change",
                                   style=style, layout=layout),
        "labelled_examples": w.IntSlider(value=p.labelled_examples, min=0, max=max(5000, p.labelled_examples),
                                         step=10, description="Labelled examples", style=style, layout=layout),
        "requests_per_day": w.Dropdown(options=sorted({10, 100, 1_000, 10_000, 100_000, p.requests_per_day}),
                                       value=p.requests_per_day, description="Requests per day", style=style,
                                       layout=layout),
        "budget": w.Dropdown(options=BUDGETS, value=p.budget, description="Latency/cost budget", style=style,
                             layout=layout),
        "risk": w.Dropdown(options=RISKS, value=p.risk, description="Risk if wrong", style=style, layout=layout),
        "prompt_result": w.Dropdown(options=PROMPT_RESULTS, value=p.prompt_result, description="Best prompt so far",
                                    style=style, layout=layout),
    }
    assert set(controls) == {f.name for f in fields(Problem)}
    button = w.Button(description="Recommend", button_style="success")
    out = w.HTML()

    def on_click(_):
        rec = recommend(Problem(**{name: c.value for name, c in controls.items()}))
        items = "".join(f"<li>{r}</li>" for r in rec.reasons)
        first = "".join(f"<li>{t}</li>" for t in rec.try_first)
        out.value = (f"<p><b>Recommendation: {rec.choice}</b></p><p>Why:</p><ul>{items}</ul>"
                     f"<p>Try first:</p><ul>{first}</ul>")

    button.on_click(on_click)
    return w.VBox(list(controls.values()) + [button, out])


# ------------------------------------------------------------------------------------- the decision note

NOTE_SECTIONS = ("The win", "The risk we accept", "The test", "Baseline", "Decision")
MIN_NOTE_WORDS = 80  # a one-page note with real numbers is rarely shorter than this

DECISION_NOTE_TEMPLATE = """\
# Decision note: <project name>

## The win
<What gets better, named as a metric on a named test set, with the number you expect: e.g. "field accuracy on
the held-out tickets rises from 0.40 to at least 0.85".>

## The risk we accept
<What could get worse and how you will notice: forgetting general skills, repeating training data, cost of
training and hosting, the model going stale. Say which risk you accept and why it is acceptable.>

## The test
<The data (held-out set, regression set) and the thresholds that must all hold before anyone depends on the
model: e.g. "json_valid >= 0.98 on the 60 held-out tickets; regression accuracy drops by at most 5 points".>

## Baseline
<What the best prompted option scores on the same test today (zero-shot and few-shot), measured, with the date.>

## Decision
<prompt / RAG / fine-tune / don't, and the two or three reasons that decided it.>
"""

_PLACEHOLDER = re.compile(r"<[^<>\n]{3,}>|\b(TODO|TBD|FIXME|XXX|lorem ipsum)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d")
_THRESHOLD = re.compile(
    r"(>=|<=|≥|≤|>|<|\bat least\b|\bat most\b|\bno more than\b|\bno less than\b|\bor more\b|\bor less\b|"
    r"\bbelow\b|\babove\b|\bunder\b|\bover\b|\bwithin\b|\bminimum\b|\bmaximum\b|\bdrops? by\b)",
    re.IGNORECASE,
)
_METRIC = re.compile(
    r"\b(accuracy|json_valid|schema_valid|sign_off|valid|validity|rate|score|precision|recall|f1|latency|ms|"
    r"seconds|cost|tokens|errors?|exact match|percent|points|perplexity)\b|%|\$",
    re.IGNORECASE,
)
_CHOICE_WORDS = ("prompt", "rag", "retrieval", "fine-tune", "fine tune", "fine-tuning", "don't", "do not")


def _sections(text: str) -> dict[str, str]:
    """Map each ``## heading`` (lower-cased) to the text under it."""
    found: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^\s*##\s+(.+?)\s*#*\s*$", line)
        if heading:
            current = heading.group(1).strip().lower()
            found[current] = ""
        elif current is not None:
            found[current] += line + "\n"
    return {k: v.strip() for k, v in found.items()}


def _find(sections: dict[str, str], name: str) -> str | None:
    key = {"The win": "win", "The risk we accept": "risk", "The test": "test", "Baseline": "baseline",
           "Decision": "decision"}[name]
    for heading, body in sections.items():
        if re.search(rf"\b{key}\b", heading):
            return body
    return None


def validate_decision_note(text: str) -> list[str]:
    """Problems with a decision note, one sentence each saying which part is missing or vague ([] = looks fine).

    Checks: every section of ``NOTE_SECTIONS`` is there and not empty; no template placeholder is left in; the
    win names a metric; the test has a number and a threshold; the baseline has a measured number; the decision
    names an option; the whole note is at least ``MIN_NOTE_WORDS`` words.
    """
    problems: list[str] = []
    sections = _sections(text)
    bodies: dict[str, str] = {}
    for name in NOTE_SECTIONS:
        body = _find(sections, name)
        if body is None:
            problems.append(f"Missing section '## {name}': add it (see DECISION_NOTE_TEMPLATE).")
        elif not body:
            problems.append(f"Section '{name}' is empty: write it.")
        else:
            bodies[name] = body

    for name, body in bodies.items():
        hit = _PLACEHOLDER.search(body)
        if hit:
            shown = hit.group(0) if len(hit.group(0)) <= 40 else hit.group(0)[:37] + "..."
            problems.append(f"Section '{name}' still has placeholder text {shown!r}: replace it with your own.")

    win = bodies.get("The win", "")
    if win and not _METRIC.search(win):
        problems.append("'The win' names no measurable metric: say which number improves (e.g. field accuracy on "
                        "the held-out set) and by how much.")
    elif win and not _NUMBER.search(win):
        problems.append("'The win' has no number: say how much the metric should improve (from what, to what).")

    test = bodies.get("The test", "")
    if test and not _NUMBER.search(test):
        problems.append("'The test' has no number: give the thresholds the model must reach (e.g. json_valid >= "
                        "0.98) and the size of the test set.")
    elif test and not _THRESHOLD.search(test):
        problems.append("'The test' has numbers but no threshold: say which way each must go (at least / at "
                        "most / >= / <=).")

    baseline = bodies.get("Baseline", "")
    if baseline and not _NUMBER.search(baseline):
        problems.append("'Baseline' has no measured number: run the prompted model on the same test and report "
                        "its scores.")

    decision = bodies.get("Decision", "")
    if decision and not any(word in decision.lower() for word in _CHOICE_WORDS):
        problems.append("'Decision' does not name an option: say prompt, RAG, fine-tune or don't.")

    words = len(re.findall(r"\w+", " ".join(bodies.values())))
    if words < MIN_NOTE_WORDS:
        problems.append(f"The note is too short ({words} words under the headings; aim for at least "
                        f"{MIN_NOTE_WORDS}): a reviewer needs the numbers and the reasons.")
    return problems


def write_decision_note(text: str, path: str | Path, overwrite: bool = False, allow_problems: bool = False) -> Path:
    """Save a decision note to ``path`` (markdown) and return the path.

    Refuses to replace an existing file unless ``overwrite=True``, and refuses a note that
    ``validate_decision_note`` finds problems with unless ``allow_problems=True`` (for saving a draft).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or choose another path.")
    problems = validate_decision_note(text)
    if problems and not allow_problems:
        listed = "\n".join(f"- {p}" for p in problems)
        raise ValueError(f"The note has {len(problems)} problem(s); fix them or pass allow_problems=True to save "
                         f"a draft:\n{listed}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path
