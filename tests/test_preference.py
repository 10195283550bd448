"""course_lib.preference: pairs (load, line-numbered errors, family split), the DPO loss by hand and against trl,
DPO training on the tiny model, held-out measures and text baselines; preference_plots' figures."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from course_lib import data, preference as pref, preference_plots


@pytest.fixture(scope="module")
def pairs():
    return pref.load_preferences()


def _line(row) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


# --- pairs --------------------------------------------------------------------------------------------------


def test_shipped_pairs_load_whole(pairs):
    assert len(pairs) == 180
    assert {"id", "family", "flaw", "prompt", "chosen", "rejected"} <= set(pairs[0])


def test_errors_name_the_line(pairs):
    good = pairs[0]
    no_rejected = {k: v for k, v in good.items() if k != "rejected"}
    same = {**good, "chosen": good["rejected"]}
    no_family = {k: v for k, v in good.items() if k != "family"}
    text = _line(good) + "\n" + _line(no_rejected) + "{not json\n" + _line(same) + _line(no_family)
    result = pref.check_text(text)
    assert len(result.rows) == 1 and result.lines == [1]
    by_line = {e.line: e for e in result.errors}
    assert sorted(by_line) == [3, 4, 5, 6]  # the blank line 2 is skipped but still counted
    assert "'rejected' is a required property" in by_line[3].reason
    assert by_line[4].field == "(line)" and "invalid JSON" in by_line[4].reason
    assert (by_line[5].field, by_line[5].reason) == ("rejected", "is identical to chosen")
    assert (by_line[6].field, by_line[6].reason) == ("family", "missing")
    assert "line    3" in result.summary()


def test_load_preferences_raises_with_the_line(tmp_path, pairs):
    path = tmp_path / "p.jsonl"
    bad = {**pairs[1], "prompt": pairs[1]["prompt"] + pairs[1]["chosen"]}  # prompt ending with the assistant
    path.write_text(_line(pairs[0]) + _line(bad), encoding="utf-8")
    with pytest.raises(data.DataError, match=r"line\s+2\s+prompt\[2\]\.role\s+the prompt ends with 'assistant'"):
        pref.load_preferences(path)


def test_family_split_is_disjoint_and_deterministic(pairs, capsys):
    train_pairs, held = pref.split_pairs(pairs)
    assert not {p["family"] for p in train_pairs} & {p["family"] for p in held}
    assert len(train_pairs) + len(held) == 180
    assert (len(train_pairs), len(held)) == (134, 46)
    assert "0 families in both" in capsys.readouterr().out
    again = pref.split_pairs(pairs)[1]
    assert [p["id"] for p in again] == [p["id"] for p in held]
    with pytest.raises(ValueError, match="No pairs"):
        pref.split_pairs([])


def test_policy_rows_use_the_sft_prompt_and_order(pairs):
    broken = next(p for p in pairs if p["flaw"] == "broken_json")
    row = pref.policy_rows([broken])[0]
    assert row["prompt"][0]["content"] == pref.train.SHORT_SYSTEM_PROMPT
    assert row["chosen"][0]["content"].startswith('{"reply": ')
    assert row["rejected"] == broken["rejected"]  # not JSON: left as written
    assert broken["prompt"][0]["content"] != pref.train.SHORT_SYSTEM_PROMPT  # the input is not changed


# --- the loss -----------------------------------------------------------------------------------------------


def test_dpo_loss_by_hand():
    # pair 1: (pc - rc) - (pr - rr) = (-10 + 12) - (-20 + 20) = 2; beta 0.5 -> margin 1, loss log(1 + e^-1)
    # pair 2: the policy equals the reference: margin 0, loss log 2
    out = pref.dpo_loss([-10.0, -5.0], [-20.0, -7.0], [-12.0, -5.0], [-20.0, -7.0], beta=0.5)
    assert out["margins"].tolist() == [1.0, 0.0]
    assert out["chosen_rewards"].tolist() == [1.0, 0.0]
    assert out["rejected_rewards"].tolist() == [0.0, 0.0]
    expected = [math.log(1 + math.exp(-1.0)), math.log(2)]
    assert out["losses"].tolist() == pytest.approx(expected, abs=1e-12)
    assert float(out["loss"]) == pytest.approx(sum(expected) / 2, abs=1e-12)


def test_dpo_loss_bad_input():
    with pytest.raises(ValueError, match="beta must be > 0"):
        pref.dpo_loss([0.0], [0.0], [0.0], [0.0], beta=0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        pref.dpo_loss([0.0], [0.0], [0.0], [0.0], beta=-0.1)
    with pytest.raises(ValueError, match="no pairs"):
        pref.dpo_loss([], [], [], [])
    with pytest.raises(ValueError, match=r"lengths \[2, 1, 1, 1\]"):
        pref.dpo_loss([0.0, 1.0], [0.0], [0.0], [0.0])


def test_hand_loss_equals_trl(tiny_model, pairs):
    model, tok = tiny_model
    batch = pref.policy_rows(pairs[:4])
    policy = copy.deepcopy(model)
    torch.manual_seed(0)
    with torch.no_grad():  # a policy a little away from the reference, so the margins are not all 0
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    pol, ref = pref.answer_logps(policy, tok, batch), pref.answer_logps(model, tok, batch)
    hand = pref.dpo_loss(pol["chosen"], pol["rejected"], ref["chosen"], ref["rejected"], beta=0.1)
    assert float(hand["margins"].abs().min()) > 0
    assert pref.trl_dpo_loss(policy, model, tok, batch, beta=0.1) == pytest.approx(float(hand["loss"]), abs=1e-5)


def test_answer_logps_scores_the_answer_only(tiny_model, pairs):
    model, tok = tiny_model
    row = pref.policy_rows(pairs[:1])[0]
    out = pref.answer_logps(model, tok, [row])
    answer = tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
    prompt = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    assert out["chosen_tokens"] == [len(tok(answer[len(prompt):], add_special_tokens=False)["input_ids"])]
    with torch.no_grad():  # the same number from one unpadded forward pass
        ids = tok(answer, add_special_tokens=False, return_tensors="pt")["input_ids"]
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1).gather(-1, ids[0, 1:, None])[:, 0]
    n = out["chosen_tokens"][0]
    assert float(out["chosen"][0]) == pytest.approx(float(logp[-n:].double().sum()), abs=1e-4)


# --- training and measuring ------------------------------------------------------------------------------------


def test_train_dpo_on_the_tiny_model(tiny_model, pairs, tmp_path):
    model, tok = tiny_model
    batch = pref.policy_rows(pairs[:8])
    run = pref.train_dpo(model, tok, batch, steps=2, preset="cpu", output_dir=tmp_path, progress=False)
    assert run.steps == 2 and run.pairs == 8 and run.reference is model
    assert [h["step"] for h in run.history if "loss" in h] == [1, 2]
    first = next(h for h in run.history if "loss" in h)
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-3)  # step 1: the fresh LoRA is zero, policy = reference
    with run.model.disable_adapter():  # the reference trl used is the SFT model passed in
        ref = pref.answer_logps(run.model, tok, batch[:2])
    assert ref["chosen"].tolist() == pytest.approx(pref.answer_logps(model, tok, batch[:2])["chosen"].tolist(), abs=1e-6)
    scores = pref.pair_scores(model, model, tok, batch[:3])
    assert scores["correct"] == [0.5, 0.5, 0.5] and scores["margins"] == [0.0, 0.0, 0.0]
    summary = pref.summarise(scores)
    assert (summary["accuracy"], summary["margin"], summary["accuracy_interval"]) == (0.5, 0.0, [0.5, 0.5])
    with pytest.raises(ValueError, match="at least one step"):
        pref.train_dpo(model, tok, batch, steps=0)
    with pytest.raises(ValueError, match="No training pairs"):
        pref.train_dpo(model, tok, [], steps=1)


def test_text_baselines(pairs):
    train_pairs, held = pref.split_pairs(pairs)
    out = pref.text_baselines(train_pairs, held)
    lengths = [(len(p["chosen"][0]["content"]), len(p["rejected"][0]["content"])) for p in held]
    assert sum(out["longer answer"]) == sum(c > r for c, r in lengths) + 0.5 * sum(c == r for c, r in lengths) == 30.5
    # the rule decides only pairs whose rejected answer does not parse (3 of the 6 broken_json ones: the other 3 parse,
    # they only lack a key) or lacks the sign-off (the 4 no_sign_off ones), rightly; the other 39 tie (0.5 each)
    assert [p["flaw"] for p in held].count("broken_json") == 6
    assert sum(out["JSON + sign-off rule"]) == 7 + 0.5 * 39
    assert set(out["TF-IDF + logistic regression"]) <= {0.0, 0.5, 1.0}
    table = pref.format_preferences({}, out)
    assert "longer answer (text only)" in table


def test_figures():
    fig = preference_plots.plot_dpo_history([{"step": 1, "loss": 0.69, "rewards/margins": 0.0},
                                             {"step": 2, "loss": 0.5, "rewards/margins": 0.4}])
    loss_line = fig.axes[0].lines[0]
    assert list(loss_line.get_ydata()) == [0.69, 0.5]
    with pytest.raises(ValueError, match="No loss records"):
        preference_plots.plot_dpo_history([{"step": 1}])
    texts = [t.get_text() for t in preference_plots.plot_pipelines().axes[0].texts]
    assert any("reward model" in t for t in texts) and any("KL penalty" in t for t in texts)
