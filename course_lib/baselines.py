"""The bars a tuned model must clear on the triage decisions: a trivial baseline and a strong simple one.

- **majority class**: every ticket gets the commonest training label of each field. A model that does no better
  has learned nothing about the tickets, whatever its JSON looks like.
- **TF-IDF + logistic regression**: a classic text classifier per field (scikit-learn), word 1–2-grams and
  character 3–5-grams, trained on the same training split in about a second on a CPU. If a fine-tuned LLM does
  not beat this, the fine-tune has bought a format, not better decisions.

Both predict the three decision fields only (no reply), and are scored with the same ``evaluate.score_answer`` as
the models, with a 95% bootstrap interval per field (``course_lib.stats``) and confusion matrices.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Sequence

from course_lib import evaluate, greenleaf, stats

Row = dict[str, Any]
FIELDS = evaluate.SCORED_FIELDS  # category, priority, needs_human
LABELS = {"category": list(greenleaf.CATEGORIES), "priority": list(greenleaf.PRIORITIES),
          "needs_human": [False, True]}


def _message(row: Row, role: str, index: int) -> str:
    for message in row.get("messages", []):
        if message.get("role") == role:
            return str(message.get("content", ""))
    raise ValueError(f"Row {index} (id {row.get('id', '?')!r}) has no {role!r} message: baselines need chat rows "
                     "with a user ticket and an assistant target, as in data.load_split(...).")


def tickets(rows: Sequence[Row]) -> list[str]:
    """The customer's ticket (user message) of each chat row."""
    return [_message(row, "user", i) for i, row in enumerate(rows)]


def targets(rows: Sequence[Row]) -> list[dict]:
    """The target triage fields of each row, parsed from its assistant message."""
    out = []
    for i, row in enumerate(rows):
        target = greenleaf.parse_triage(_message(row, "assistant", i))
        if not isinstance(target, dict) or any(f not in target for f in FIELDS):
            raise ValueError(f"Row {i} (id {row.get('id', '?')!r}): the assistant message is not triage JSON with "
                             f"{FIELDS}. Use cleaned rows (data.load_split) as training and test data.")
        out.append(target)
    return out


def as_answers(fields: Sequence[dict]) -> list[str]:
    """Field predictions ``[{"category", "priority", "needs_human"}]`` as JSON answers ``score_answer`` reads."""
    return [json.dumps({f: (bool(p[f]) if f == "needs_human" else str(p[f])) for f in FIELDS}) for p in fields]


def majority(train_rows: Sequence[Row], rows: Sequence[Row]) -> list[str]:
    """Answer every row with the commonest training label of each field (ties: the first in label order)."""
    if not train_rows:
        raise ValueError("majority() needs training rows to count labels in.")
    counts = {f: Counter(t[f] for t in targets(train_rows)) for f in FIELDS}
    pick = {f: max(LABELS[f], key=lambda label, f=f: counts[f][label]) for f in FIELDS}
    return as_answers([pick] * len(rows))


C_GRID = (1.0, 3.0, 10.0, 30.0)  # inverse regularisation strengths tried by fit_tfidf(tune=True)
# Chosen by grouped 5-fold cross-validation over C_GRID on the shipped training split (an earlier run, lbfgs solver).
# benchmarks/baseline_fewshot.py re-runs that search with the current solver and records its choice
# ("tfidf_cv_chosen_C") next to TUNED_C's scores: the search takes minutes on 2 cores, a fit with fixed C seconds.
TUNED_C = {"category": 10.0, "priority": 30.0, "needs_human": 30.0}


def fit_tfidf(train_rows: Sequence[Row], seed: int = 0, tune: bool = False,
              C: dict[str, float] | None = None) -> dict:
    """One scikit-learn pipeline per field: TF-IDF of word 1–2-grams + character 3–5-grams of the ticket (fitted on
    the training tickets), then logistic regression with regularisation ``C[field]`` (default ``TUNED_C``).
    ``tune=True`` picks each ``C`` from ``C_GRID`` by 5-fold cross-validation grouped by ticket family (no family on
    both sides of a fold): the baseline as strong as a careful engineer would make it. Returns ``{field: pipeline}``;
    ``pipeline[-1].C`` is the ``C`` used."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline, make_union

    C = {**TUNED_C, **(C or {})}
    texts, labels = tickets(train_rows), targets(train_rows)
    groups = [str(row.get("family", i)) for i, row in enumerate(train_rows)]
    features = make_union(TfidfVectorizer(analyzer="word", ngram_range=(1, 2)),
                          TfidfVectorizer(analyzer="char", ngram_range=(3, 5))).fit(texts)
    matrix = features.transform(texts)  # once: the grid below only refits the classifier
    fitted = {}
    for f in FIELDS:
        y = [t[f] for t in labels]
        if len(set(y)) < 2:
            raise ValueError(f"Every training row has the same {f!r} ({y[0]!r}): a classifier needs two labels.")
        # saga: fast on sparse features; enough iterations to converge at the largest C
        classifier = LogisticRegression(C=C.get(f, 1.0), solver="saga", max_iter=2000, random_state=seed)
        if tune and len(set(groups)) >= 5:
            search = GridSearchCV(classifier, {"C": list(C_GRID)}, cv=GroupKFold(5))
            classifier = search.fit(matrix, y, groups=groups).best_estimator_
        else:
            classifier.fit(matrix, y)
        fitted[f] = make_pipeline(features, classifier)
    return fitted


def tfidf(train_rows: Sequence[Row], rows: Sequence[Row], seed: int = 0, tune: bool = False,
          C: dict[str, float] | None = None) -> list[str]:
    """Train the TF-IDF classifiers on ``train_rows`` (``fit_tfidf``) and answer every row of ``rows``."""
    fitted = fit_tfidf(train_rows, seed, tune, C)
    texts = tickets(rows)
    columns = {f: fitted[f].predict(texts).tolist() for f in FIELDS}
    return as_answers([{f: columns[f][i] for f in FIELDS} for i in range(len(texts))])


def nearest_answers(train_rows: Sequence[Row], rows: Sequence[Row]) -> list[str]:
    """Answer each row with the whole answer (decisions and reply) of its most similar training ticket: TF-IDF
    vectors of word 1–2-grams, cosine similarity (scikit-learn). The strongest simple baseline for the *reply*:
    copying what the team wrote for the nearest ticket, with no model at all."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    if not train_rows:
        raise ValueError("nearest_answers() needs training rows to copy answers from.")
    train_texts = tickets(train_rows)
    vectorizer = TfidfVectorizer(analyzer="word", ngram_range=(1, 2)).fit(train_texts)
    similarity = cosine_similarity(vectorizer.transform(tickets(rows)), vectorizer.transform(train_texts))
    answers = [_message(row, "assistant", i) for i, row in enumerate(train_rows)]
    return [answers[int(best)] for best in similarity.argmax(axis=1)]


def field_table(predictions: Sequence[str], rows: Sequence[Row], n_resamples: int = stats.DEFAULT_RESAMPLES,
                seed: int = stats.DEFAULT_SEED) -> dict[str, dict]:
    """Per field (and ``"mean"`` of the three): accuracy, 95% bootstrap interval and the per-row right/wrong list.
    An answer that is not JSON is wrong on every field."""
    if len(predictions) != len(rows):
        raise ValueError(f"{len(predictions)} predictions for {len(rows)} rows: give one answer per row, in order.")
    targets(rows)  # every reference must be triage JSON with the three fields: fail naming the row, never score 0
    refs = [_message(row, "assistant", i) for i, row in enumerate(rows)]
    scored = [evaluate.score_answer(p, r) for p, r in zip(predictions, refs)]
    table = {}
    for f in FIELDS:
        correct = [bool(s[f]) for s in scored]
        table[f] = {"accuracy": sum(correct) / len(correct), "correct": correct,
                    "interval": list(stats.bootstrap_ci(correct, n_resamples, seed))}
    mean_per_row = [sum(s[f] for f in FIELDS) / len(FIELDS) for s in scored]
    table["mean"] = {"accuracy": sum(mean_per_row) / len(mean_per_row), "correct": mean_per_row,
                     "interval": list(stats.bootstrap_ci(mean_per_row, n_resamples, seed))}
    return table


def compare(named_predictions: dict[str, Sequence[str]], rows: Sequence[Row]) -> dict[str, dict]:
    """``{system: field_table(...)}`` for several systems answering the same rows."""
    if not named_predictions:
        raise ValueError("Nothing to compare: pass {system name: predictions}.")
    return {name: field_table(preds, rows) for name, preds in named_predictions.items()}


def format_table(tables: dict[str, dict]) -> str:
    """A plain-text table: one line per system, accuracy [95% interval] per field and the mean."""
    columns = [*FIELDS, "mean"]
    width = max(len(name) for name in tables) + 2
    lines = [" " * width + "".join(f"{c:>22}" for c in columns)]
    for name, table in tables.items():
        cells = "".join(f"{stats.format_score(table[c]['accuracy'], table[c]['interval']):>22}" for c in columns)
        lines.append(f"{name:<{width}}{cells}")
    return "\n".join(lines)


def confusion(predictions: Sequence[str], rows: Sequence[Row], field: str) -> tuple[list, list[list[int]]]:
    """``(labels, matrix)``: ``matrix[i][j]`` counts rows whose true ``field`` is ``labels[i]`` and whose answer is
    ``labels[j]``; a last column ``"(invalid)"`` counts answers with no valid value for the field."""
    if field not in FIELDS:
        raise ValueError(f"field={field!r}: use one of {FIELDS}.")
    if len(predictions) != len(rows):
        raise ValueError(f"{len(predictions)} predictions for {len(rows)} rows: give one answer per row, in order.")
    labels = LABELS[field]
    matrix = [[0] * (len(labels) + 1) for _ in labels]
    for target, prediction in zip(targets(rows), predictions):
        answer = greenleaf.parse_triage(prediction or "")
        value = answer.get(field) if isinstance(answer, dict) else None
        j = next((k for k, label in enumerate(labels) if type(label) is type(value) and label == value), len(labels))
        if target[field] not in labels:
            raise ValueError(f"A target has {field}={target[field]!r}, not one of {labels}: use cleaned rows.")
        matrix[labels.index(target[field])][j] += 1
    return [*labels, "(invalid)"], matrix


def plot_confusions(predictions: Sequence[str], rows: Sequence[Row], title: str = ""):
    """One confusion-matrix panel per decision field (rows: the truth; columns: the answer). Returns the Figure."""
    from course_lib.plots import new_figure

    fig, axes = new_figure(ncols=len(FIELDS), width=13.0)
    for ax, f in zip(axes, FIELDS):
        labels, matrix = confusion(predictions, rows, f)
        ax.imshow(matrix, cmap="Greens")
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7)
        names = [str(label).replace("_", "\n") for label in labels]
        ax.set_xticks(range(len(labels)), names, fontsize=6, rotation=90)
        ax.set_yticks(range(len(labels) - 1), names[:-1], fontsize=6)
        ax.set(xlabel="answer", ylabel="truth", title=f)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_comparison(tables: dict[str, dict], title: str = "Held-out decisions: accuracy with 95% intervals"):
    """Grouped bars per field (and the mean), one bar per system, with its bootstrap interval as an error bar."""
    from course_lib.plots import grouped_bars

    columns = [*FIELDS, "mean"]
    series = {name: [t[c]["accuracy"] for c in columns] for name, t in tables.items()}
    fig, ax = grouped_bars(columns, series, value_labels=True)
    width = 0.8 / len(tables)
    for k, (name, table) in enumerate(tables.items()):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(columns))]
        ys = [table[c]["accuracy"] for c in columns]
        err = [[y - table[c]["interval"][0] for y, c in zip(ys, columns)],
               [table[c]["interval"][1] - y for y, c in zip(ys, columns)]]
        ax.errorbar(xs, ys, yerr=err, fmt="none", ecolor="black", capsize=2, linewidth=0.8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig
