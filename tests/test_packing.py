"""Padding-free batches: examples laid end to end in one row do not attend to each other.

The CPU preset trains with ``padding_free=True``: trl's ``DataCollatorForLanguageModeling`` concatenates a batch into
one row, restarts ``position_ids`` at 0 for every example and sends no attention mask. transformers reads the
restarts as example boundaries and builds a block-diagonal causal mask (in sdpa, the attention ``load_model`` gives,
and in eager), so each example's loss in the packed row is its loss run alone. The controls show that the test can
fail: the same row without restarts, with an all-ones attention mask, or with a KV cache (``use_cache=True``, the
model's default: trl's ``compute_loss`` turns it off) lets examples see each other.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from course_lib import greenleaf, train

TICKETS = ["Where is my order #123? It was due last Monday.", "My fern has brown tips.",
           "I was charged twice for one pot, please refund the second charge.", "Can I return a cactus?"]
ATOL = 1e-5  # fp32
LEAK = 1e-3  # a loss that moved more than this saw another example


def _rows() -> list[dict]:
    rows = []
    for i, ticket in enumerate(TICKETS):
        answer = greenleaf.format_target(greenleaf.CATEGORIES[i], greenleaf.PRIORITIES[i], i % 2 == 0,
                                         f"Thanks for writing ({i}). {greenleaf.SIGN_OFF}")
        rows.append({"id": f"p{i}", "messages": greenleaf.messages_for(ticket)
                     + [{"role": "assistant", "content": answer}]})
    return rows


def _examples(tok) -> list[dict]:
    """Tokenized rows with the prompt masked (-100), as trl prepares prompt-completion rows."""
    examples = []
    for row in _rows():
        ids = tok.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]
        prompt = tok.apply_chat_template(row["messages"][:-1], tokenize=True, add_generation_prompt=True,
                                         return_dict=True)["input_ids"]
        assert ids[:len(prompt)] == prompt
        examples.append({"input_ids": ids, "labels": [-100] * len(prompt) + ids[len(prompt):]})
    return examples


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token loss of each scored (answer) token of one example: logits ``[T, V]``, labels ``[T]``."""
    log_probs = torch.log_softmax(logits[:-1].float(), dim=-1)
    target = labels[1:]
    scored = target != -100
    return -log_probs[scored].gather(1, target[scored, None])[:, 0]


def _alone(model, example: dict) -> torch.Tensor:
    ids, labels = torch.tensor(example["input_ids"]), torch.tensor(example["labels"])
    return _token_losses(model(input_ids=ids[None], use_cache=False).logits[0], labels)


def _per_example(model, batch: dict, **inputs) -> list[torch.Tensor]:
    """Token losses of each example of a padding-free ``batch``, from one forward pass over the packed row."""
    logits = model(**inputs).logits[0]
    bounds = batch["cu_seq_lens_q"].tolist()
    return [_token_losses(logits[a:b], batch["labels"][0, a:b]) for a, b in zip(bounds, bounds[1:])]


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference between two examples' token losses."""
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def packed(tiny_model):
    """The padding-free batch trl builds from the examples, and each example's loss run alone (per attention)."""
    model, tok = tiny_model
    examples = _examples(tok)
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)(examples)
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch  # one row, no mask
    assert batch["position_ids"][0].tolist() == [t for e in examples for t in range(len(e["input_ids"]))]
    return batch, examples


def _model(tiny_model, attn: str):
    model = copy.deepcopy(tiny_model[0]).eval()
    model.set_attn_implementation(attn)
    assert model.config._attn_implementation == attn
    return model


def test_the_cpu_recipe_is_padding_free_with_sdpa(tiny_model):
    assert train.PRESETS["cpu"].padding_free
    assert tiny_model[0].config._attn_implementation == "sdpa"  # what load_model gives (transformers' default)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@torch.no_grad()
def test_each_packed_example_has_its_loss_alone(tiny_model, packed, attn):
    batch, examples = packed
    model = _model(tiny_model, attn)
    alone = [_alone(model, e) for e in examples]
    inputs = {k: v for k, v in batch.items() if k != "labels"}  # what trl's compute_loss sends, with use_cache=False
    together = _per_example(model, batch, **inputs, use_cache=False)
    assert [t.mean().item() for t in together] == pytest.approx([a.mean().item() for a in alone], abs=ATOL)
    assert all(_gap(t, a) < ATOL for t, a in zip(together, alone))  # token by token, too


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("control", ["no position restarts", "all-ones attention mask", "KV cache on"])
@torch.no_grad()
def test_controls_where_examples_see_each_other(tiny_model, packed, attn, control):
    batch, examples = packed
    model = _model(tiny_model, attn)
    alone = [_alone(model, e) for e in examples]
    ids, positions = batch["input_ids"], batch["position_ids"]
    inputs = {
        "no position restarts": dict(input_ids=ids, position_ids=torch.arange(ids.shape[1])[None], use_cache=False),
        "all-ones attention mask": dict(input_ids=ids, position_ids=positions, attention_mask=torch.ones_like(ids),
                                        use_cache=False),
        "KV cache on": dict(input_ids=ids, position_ids=positions),  # use_cache from the config: True
    }[control]
    if control == "KV cache on":
        assert model.config.use_cache
    together = _per_example(model, batch, **inputs)
    gaps = [_gap(t, a) for t, a in zip(together, alone)]
    assert gaps[0] < ATOL  # the first example has nothing before it to see
    assert all(gap > LEAK for gap in gaps[1:]), gaps  # every later one saw the examples before it


@torch.no_grad()
def test_the_trainer_loss_on_a_packed_batch_is_the_loss_of_the_examples_alone(tiny_model, tmp_path):
    """The real path: the CPU preset's trainer, its first padding-free batch, trl's own compute_loss."""
    model, tok = tiny_model
    preset = replace(train.PRESETS["cpu"], dtype="fp32", batch_size=len(TICKETS))
    config = train.sft_config(preset, tmp_path / "packed", steps=1, lr=1e-4, progress=False)
    trainer = train.build_trainer(copy.deepcopy(model), tok, _rows(), None, config, system_prompt=None)
    assert trainer.model.config._attn_implementation == "sdpa"
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    bounds = batch["cu_seq_lens_q"].tolist()
    assert len(bounds) == len(TICKETS) + 1  # every example in one row
    alone = torch.cat([_token_losses(trainer.model(input_ids=batch["input_ids"][:, a:b], use_cache=False).logits[0],
                                     batch["labels"][0, a:b]) for a, b in zip(bounds, bounds[1:])])
    loss = trainer.compute_loss(trainer.model, dict(batch))
    assert loss.item() == pytest.approx(alone.mean().item(), abs=ATOL)  # trl averages over all answer tokens
