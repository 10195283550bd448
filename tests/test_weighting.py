"""course_lib.train.weighting (decision-token weights, the weighted trainer) and greenleaf.reply_first."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import pytest
import torch

from course_lib import greenleaf, train
from course_lib.train import weighting

IGN = -100
W = 5.0
KEY = [7, 8]  # a stand-in for the reply key's token ids in the hand-made batches
TINY = replace(train.PRESETS["cpu"], batch_size=2)  # fp32, padding-free, 2 examples per step


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """train_sft(threads=1) sets PyTorch's thread count for the process: put it back for the tests after these."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        answer = greenleaf.format_target(greenleaf.CATEGORIES[i % 7], greenleaf.PRIORITIES[i % 4], i % 2 == 0,
                                         f"Thanks, we are looking at order {i}. {greenleaf.SIGN_OFF}")
        rows.append({"id": f"w{i}", "family": f"f{i}", "messages": greenleaf.messages_for(
            f"Ticket {i}: my {'fern' if i % 2 else 'order'} has a problem.") + [{"role": "assistant",
                                                                                 "content": answer}]})
    return rows


def _labels(ids: list[int], scored: list[bool]) -> list[int]:
    return [t if s else IGN for t, s in zip(ids, scored)]


# --------------------------------------------------------------------------------- hand-made input_ids/labels


def test_decision_weights_padded_batch_of_two_rows():
    p, a = False, True
    # row 0: prompt, answer [10 11 | key 7 8 | 12 eos], then right padding
    # row 1: the key's ids also sit in the prompt (ignored there), the answer's decisions are 3 tokens
    ids = torch.tensor([[1, 2, 3, 10, 11, 7, 8, 12, 2, 0, 0],
                        [7, 8, 4, 10, 13, 14, 7, 8, 15, 2, 0]])
    labels = torch.tensor([_labels(ids[0].tolist(), [p, p, p, a, a, a, a, a, a, p, p]),
                           _labels(ids[1].tolist(), [p, p, p, a, a, a, a, a, a, a, p])])
    weights = weighting.decision_weights(ids, labels, KEY, W)
    assert weights.dtype == torch.float32 and weights.shape == ids.shape
    assert weights.tolist() == [[1, 1, 1, W, W, 1, 1, 1, 1, 1, 1],
                                [1, 1, 1, W, W, W, 1, 1, 1, 1, 1]]


def test_decision_weights_padding_free_row_of_two_examples():
    p, a = False, True
    # one row: [prompt 1 2 | answer 10 11 key 12 eos | prompt 3 4 5 | answer 16 17 18 key 19 eos]
    ids = torch.tensor([[1, 2, 10, 11, 7, 8, 12, 2, 3, 4, 5, 16, 17, 18, 7, 8, 19, 2]])
    scored = [p, p, a, a, a, a, a, a, p, p, p, a, a, a, a, a, a, a]
    weights = weighting.decision_weights(ids, torch.tensor([_labels(ids[0].tolist(), scored)]), KEY, W)
    assert weights.tolist() == [[1, 1, W, W, 1, 1, 1, 1, 1, 1, 1, W, W, W, 1, 1, 1, 1]]


def test_decision_weights_answer_at_the_start_and_weight_one():
    ids = torch.tensor([[10, 7, 8, 2]])
    assert weighting.decision_weights(ids, ids.clone(), KEY, W).tolist() == [[W, 1, 1, 1]]
    assert weighting.decision_weights(ids, ids.clone(), KEY, 1.0).tolist() == [[1, 1, 1, 1]]
    nothing = torch.full_like(ids, IGN)
    assert weighting.decision_weights(ids, nothing, KEY, W).tolist() == [[1, 1, 1, 1]]


def test_an_answer_without_the_reply_key_is_not_weighted():
    p, a = False, True
    # padding-free: a triage answer, then a replay answer (plain text, no reply key)
    ids = torch.tensor([[1, 10, 11, 7, 8, 12, 2, 3, 20, 21, 22, 2]])
    scored = [p, a, a, a, a, a, a, p, a, a, a, a]
    weights = weighting.decision_weights(ids, torch.tensor([_labels(ids[0].tolist(), scored)]), KEY, W)
    assert weights.tolist() == [[1, W, W, 1, 1, 1, 1, 1, 1, 1, 1, 1]]


# ------------------------------------------------------------------------------------------ the real tokenizer


def test_decision_key_ids_find_the_key_inside_a_real_target(tokenizer):
    key = train.decision_key_ids(tokenizer)
    assert tokenizer.decode(key) == train.DECISION_END == ' "reply'
    target = greenleaf.format_target("billing", "high", True, f"Sorry about the double charge. {greenleaf.SIGN_OFF}")
    ids = tokenizer.encode(target, add_special_tokens=False)
    starts = [i for i in range(len(ids)) if ids[i:i + len(key)] == key]
    assert len(starts) == 1
    assert tokenizer.decode(ids[:starts[0]]) == '{"category": "billing", "priority": "high", "needs_human": true,'


def test_decision_key_ids_refuse_a_tokenizer_that_splits_the_key_differently():
    class Splitter:  # encodes the key alone differently from the key inside an answer
        def encode(self, text, add_special_tokens=False):
            return [999] if text == train.DECISION_END else [ord(c) for c in text]

    with pytest.raises(train.TrainSetupError, match="splits ' \"reply' differently.*decision_weight=1"):
        train.decision_key_ids(Splitter())


def _weighted_trainer(tiny_model, tmp_path, padding_free: bool):
    model, tok = tiny_model
    config = train.sft_config(replace(TINY, padding_free=padding_free), tmp_path / "w", steps=1, lr=1e-4,
                              progress=False)
    return train.build_trainer(copy.deepcopy(model), tok, _rows(2), None, config, system_prompt=None,
                               decision_weight=W)


@pytest.mark.parametrize("padding_free", [True, False])
def test_weights_on_the_real_collated_batch_cover_exactly_the_decisions(tiny_model, tmp_path, padding_free):
    tok = tiny_model[1]
    trainer = _weighted_trainer(tiny_model, tmp_path, padding_free)
    assert type(trainer).__name__ == "DecisionWeightedSFTTrainer"
    assert trainer.decision_weight == W and trainer.key_ids == train.decision_key_ids(tok)
    batch = next(iter(trainer.get_train_dataloader()))
    weights = weighting.decision_weights(batch["input_ids"], batch["labels"], trainer.key_ids, W)
    if padding_free:
        bounds = batch["cu_seq_lens_q"].tolist()
        pieces = [(batch["input_ids"][0, a:b], batch["labels"][0, a:b], weights[0, a:b])
                  for a, b in zip(bounds, bounds[1:])]
    else:
        pieces = list(zip(batch["input_ids"], batch["labels"], weights))
    assert len(pieces) == 2
    expected = set()
    for row in _rows(2):
        target = json.loads(row["messages"][-1]["content"])
        expected.add(f'{{"category": "{target["category"]}", "priority": "{target["priority"]}", '
                     f'"needs_human": {json.dumps(target["needs_human"])},')
    seen = set()
    for ids, labels, w in pieces:
        heavy = w == W
        assert set(w.tolist()) == {1.0, W}
        assert bool((labels[heavy] != IGN).all())  # never a prompt (or padding) token
        first = int((labels != IGN).nonzero()[0])
        assert bool(heavy[first]) and bool(heavy[first:first + int(heavy.sum())].all())  # the answer's first run
        seen.add(tok.decode(ids[heavy]))
    assert seen == expected


# ------------------------------------------------------------------------------------------- the trainer


def test_decision_weight_zero_or_negative_is_refused(tiny_model, tmp_path):
    model, tok = tiny_model
    config = train.sft_config(TINY, tmp_path / "z", steps=1, lr=1e-4, progress=False)
    for bad in (0, -1.0):
        with pytest.raises(train.TrainSetupError, match=rf"decision_weight={bad}: use 1 \(plain loss\) or more"):
            train.build_trainer(model, tok, _rows(2), None, config, decision_weight=bad)
    with pytest.raises(train.TrainSetupError, match="decision_weight=0: use 1"):
        train.train_sft(model, _rows(2), None, tokenizer=tok, preset=TINY, steps=1, output_dir=tmp_path / "z0",
                        progress=False, threads=1, decision_weight=0)


def test_weighted_train_sft_runs_with_a_finite_loss(tiny_model, tmp_path):
    model, tok = tiny_model
    result = train.train_sft(model, _rows(4), None, tokenizer=tok, preset=TINY, steps=2, output_dir=tmp_path / "run",
                             progress=False, threads=1, decision_weight=W, lora_r=4, lora_alpha=8)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert losses and all(math.isfinite(x) for x in losses)
    assert result.history[-1]["step"] == 2


def _first_loss(tiny_model, folder, preset, decision_weight):
    model, tok = tiny_model
    result = train.train_sft(model, _rows(4), None, tokenizer=tok, preset=preset, steps=1, output_dir=folder,
                             progress=False, threads=1, decision_weight=decision_weight, lora_r=4, lora_alpha=8)
    return next(h["loss"] for h in result.history if "loss" in h)


def test_weighted_loss_at_weight_one_matches_the_plain_loss_with_gradient_accumulation(tiny_model, tmp_path):
    preset = replace(TINY, grad_accum=2)
    plain = _first_loss(tiny_model, tmp_path / "plain", preset, 1.0)
    weighted = _first_loss(tiny_model, tmp_path / "weighted", preset, 1.000001)  # weighted path, weights ~1
    assert weighted == pytest.approx(plain, rel=1e-3)


def test_reply_first_with_decision_weight_is_refused(tiny_model, tmp_path):
    model, tok = tiny_model
    with pytest.raises(train.TrainSetupError, match="reply_first"):
        train.train_sft(model, _rows(2), None, tokenizer=tok, preset=TINY, steps=1, output_dir=tmp_path / "rf",
                        progress=False, threads=1, decision_weight=W, reply_first=True, lora_r=4, lora_alpha=8)


# ------------------------------------------------------------------------------------- greenleaf.reply_first


def test_reply_first_exact_output_and_same_parse():
    target = greenleaf.format_target("billing", "high", True, f"Sorry about the double charge. {greenleaf.SIGN_OFF}")
    out = greenleaf.reply_first(target)
    assert out == ('{"reply": "Sorry about the double charge. Happy growing!", "category": "billing", '
                   '"priority": "high", "needs_human": true}')
    assert greenleaf.parse_triage(out) == greenleaf.parse_triage(target)
    assert list(greenleaf.parse_triage(out)) == ["reply", "category", "priority", "needs_human"]
    accented = greenleaf.format_target("account", "low", False, f"Désolé — we fixed it. {greenleaf.SIGN_OFF}")
    assert '"reply": "Désolé — we fixed it.' in greenleaf.reply_first(accented)  # not escaped to \\u00e9


@pytest.mark.parametrize("text", ["Happy to help! Happy growing!", "",
                                  '{"category": "billing", "priority": "high", "needs_human": true}',
                                  '{"category": "billing", "priority": "high", "needs_human": true, "reply": "x", '
                                  '"extra": 1}'])
def test_reply_first_refuses_a_non_triage_string(text):
    with pytest.raises(ValueError, match="is not a triage target with exactly the keys"):
        greenleaf.reply_first(text)
