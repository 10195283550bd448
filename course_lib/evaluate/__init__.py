"""Evaluation: quality, cost and safety of a model on the GreenLeaf task, one module per idea.

- ``task``: task metrics (JSON validity, schema, field accuracy, sign-off), prompts, ``score_task``.
- ``regression``: the general-skills regression set (``score_regression``): what a fine-tune cost elsewhere.
- ``perplexity``: perplexity over answer tokens only, and the padding-counting mistake for contrast.
- ``text``: exact match of the whole answer, ROUGE-L of the reply (``rouge-score``).
- ``multiple_choice``: a multiple-choice benchmark scored by log-likelihood, and the letter-parsing shortcut.
- ``safety``: safety probes (escalations, data requests, harmful requests, injections), a rule per kind.
- ``memorisation``: canary probes (greedy and sampled) and verbatim training replies.
- ``judge``: an LLM as judge with a written rubric, its limits (labels, position, length) and a human-rating widget.
- ``cost``: training cost against per-request cost, and the break-even volume.
- ``report``: the side-by-side report saved next to an adapter, and the decision note's test filled from it.
- ``plots``: figures of the above.

Everything is re-exported here, so ``evaluate.score_task`` and friends work as before the split.
"""

from course_lib.evaluate import cost, judge, memorisation, report, safety  # evaluate.judge.judge_pairs, ...
from course_lib.evaluate.multiple_choice import (check_items, letter_accuracy, letter_in_response, load_items,
                                                 option_logprobs, score_multiple_choice)
from course_lib.evaluate.perplexity import answer_perplexity, naive_perplexity, pad_batch, token_losses
from course_lib.evaluate.plots import PLOT_METRICS, plot_drift, plot_memorisation, plot_regression, plot_task_scores
from course_lib.evaluate.regression import (REGRESSION_CHECKS, check_regression_answer, drift_by_skill, format_drift,
                                           score_regression)
from course_lib.evaluate.text import exact_match, reply_rouge_l
from course_lib.evaluate.task import (SCORED_FIELDS, TaskScore, few_shot_messages, pick_examples, score_answer,
                                      score_task, task_metrics)

__all__ = [
    "PLOT_METRICS", "REGRESSION_CHECKS", "SCORED_FIELDS", "TaskScore", "answer_perplexity", "check_items",
    "check_regression_answer", "drift_by_skill", "exact_match", "format_drift", "few_shot_messages", "letter_accuracy", "letter_in_response",
    "load_items", "naive_perplexity", "option_logprobs", "pad_batch", "pick_examples", "plot_drift", "plot_memorisation", "plot_regression",
    "plot_task_scores", "reply_rouge_l", "score_answer", "score_multiple_choice", "score_regression", "score_task",
    "task_metrics", "token_losses",
]
