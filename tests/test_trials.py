"""course_lib.trials: recorded recipe trials read, grouped by recipe, averaged over seeds, printed and plotted."""

from __future__ import annotations

import json

import pytest

from course_lib import trials


def _trial(seed, category, priority, needs_human, change=None, tag="LoRA 600 steps", correct=None):
    t = {"tag": f"{tag}, seed {seed}", "seed": seed,
         "field_accuracy": {"category": category, "priority": priority, "needs_human": needs_human,
                            "mean": (category + priority + needs_human) / 3}}
    if change is not None:
        t["regression"] = {"change": change, "change_interval": [change - 0.05, change + 0.05]}
    if correct is not None:
        t["field_correct"] = correct
    return t


def test_load_reads_trials_and_explains_a_missing_file(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"trials": [{"tag": "a"}]}))
    assert trials.load("x", tmp_path) == [{"tag": "a"}]
    assert trials.load("x.json", tmp_path) == [{"tag": "a"}]
    with pytest.raises(FileNotFoundError, match="re-run the benchmark that writes it"):
        trials.load("missing", tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"runs": []}))
    with pytest.raises(ValueError, match="has no 'trials' list"):
        trials.load("bad", tmp_path)


def test_recipe_name_drops_only_the_seed():
    assert trials.recipe_name({"tag": "LoRA 600 steps, lr 0.0002, GPU, seed 12"}) == "LoRA 600 steps, lr 0.0002, GPU"
    assert trials.recipe_name({"tag": "classification head (no reply)"}) == "classification head (no reply)"


def test_seed_means_exact():
    runs = [_trial(0, 0.8, 0.5, 0.6, -0.10), _trial(1, 0.6, 0.7, 0.8, -0.20), _trial(0, 0.5, 0.5, 0.5, tag="head")]
    means = trials.seed_means(runs)
    assert list(means) == ["LoRA 600 steps", "head"]
    lora = means["LoRA 600 steps"]
    assert lora["seeds"] == [0, 1]
    assert lora["field_accuracy"] == pytest.approx({"category": 0.7, "priority": 0.6, "needs_human": 0.7,
                                                    "mean": 2.0 / 3})
    assert lora["regression_change"] == pytest.approx(-0.15)
    assert means["head"]["regression_change"] is None


def test_per_label_and_format():
    truth = [{"priority": "low", "needs_human": False}, {"priority": "low", "needs_human": True},
             {"priority": "urgent", "needs_human": True}]
    t = _trial(0, 1.0, 2 / 3, 1 / 3, -0.05,
               correct={"priority": [True, True, False], "needs_human": [False, True, False]})
    assert trials.per_label(t, truth, "priority") == {"low": (2, 2), "urgent": (0, 1)}
    assert trials.per_label(t, truth, "needs_human") == {False: (0, 1), True: (1, 2)}
    text = trials.format_trials([t], truth, width=20)
    assert text.splitlines() == [
        f"{'run':<20} category priority needs_h.   mean regression",
        "LoRA 600 steps, seed    1.000    0.667    0.333  0.667    -5.0 pt",
        "    priority right per true label: low 2/2, urgent 0/1",
        "    needs_human right per true label: False 0/1, True 1/2"]
    with pytest.raises(ValueError, match="scored on 3 rows, not these 2"):
        trials.per_label(t, truth[:2], "priority")
    with pytest.raises(ValueError, match="summary-only record"):
        trials.per_label(_trial(0, 1, 1, 1), truth, "priority")


def test_paired_against_matches_stats_and_refuses_summaries():
    from course_lib import stats

    trial = _trial(0, 0.75, 0.5, 0.25, correct={"category": [True, True, True, False], "priority": [True, False, True, False],
                                             "needs_human": [False, False, True, False]})
    base = {f: {"correct": [True, False, False, False]} for f in trials.FIELDS}
    out = trials.paired_against(trial, base)
    assert out["category"] == stats.paired_bootstrap_diff([True, True, True, False], [True, False, False, False])
    assert [round(out[f][0], 6) for f in trials.FIELDS] == [0.5, 0.25, 0.0]
    with pytest.raises(ValueError, match="cannot be paired"):
        trials.paired_against(_trial(0, 1, 1, 1), base)
    with pytest.raises(ValueError, match="pair them on the same rows"):
        trials.paired_against(trial, {f: {"correct": [True]} for f in trials.FIELDS})


def test_plot_against_baseline_draws_one_point_per_run_and_panel():
    baseline = {f: {"accuracy": 0.6, "interval": (0.5, 0.7)} for f in trials.FIELDS}
    fig = trials.plot_against_baseline([_trial(0, 0.8, 0.5, 0.6, -0.10), _trial(1, 0.7, 0.4, 0.5, -0.02),
                                        _trial(2, 0.7, 0.4, 0.5)], baseline)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == list(trials.FIELDS)
    offsets = axes[0].collections[-1].get_offsets()
    assert [tuple(p) for p in offsets] == [(-10.0, 0.8), (-2.0, 0.7)]  # the run without a regression score is left out
    with pytest.raises(ValueError, match="No trial has a regression score"):
        trials.plot_against_baseline([_trial(0, 1, 1, 1)], baseline)


def test_recorded_files_parse_and_group():
    sweep = trials.load("recipe_sweep_gpu")
    means = trials.seed_means(trials.select(sweep, lambda t: t["steps"] == 600 and not t.get("reply_first")
                                            and t["lr"] == 2e-4 and t.get("r", 16) == 16))
    assert means["LoRA 600 steps, lr 0.0002, r 16, GPU"]["seeds"] == [0, 1, 2]
