"""course_lib.train.offload: checkpointing with the layer inputs stashed off the GPU gives the loss and gradients of
no checkpointing at all (on the CPU here: the stash is a copy, the Function's logic is the same)."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import get_peft_model

from course_lib import train
from course_lib.train.offload import offload_checkpoints


def _lora(model, checkpointing: bool):
    model = copy.deepcopy(model)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(1)
    peft_model = get_peft_model(model, train.lora_config(r=4, lora_alpha=8))
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.1)  # B = 0 would hide the adapters
    return peft_model


def _loss_and_grads(model, ids, autocast: bool = False):
    model.train()
    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("autocast", [False, True])
def test_offloaded_checkpoints_give_the_gradients_of_no_checkpointing(tiny_model, autocast, monkeypatch):
    from course_lib.train import offload

    calls = []
    real_apply = offload._OffloadedLayer.apply
    monkeypatch.setattr(offload._OffloadedLayer, "apply", lambda *a: calls.append(1) or real_apply(*a))
    ids = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(0))
    plain = _lora(tiny_model[0], checkpointing=False)
    offloaded = _lora(tiny_model[0], checkpointing=True)
    assert offload_checkpoints(offloaded) == 2  # the tiny model's two decoder layers
    loss, grads = _loss_and_grads(plain, ids, autocast)
    off_loss, off_grads = _loss_and_grads(offloaded, ids, autocast)
    assert len(calls) == 2  # each layer went through the offloading Function, not ordinary checkpointing
    assert grads.keys() == off_grads.keys() and len(grads) == 28
    tolerance = 1e-2 if autocast else 1e-6  # the backward pass reruns the layer under the forward's autocast
    assert abs(off_loss - loss) <= tolerance * loss
    for n in grads:
        scale = float(grads[n].abs().max())
        assert scale > 0 and float((grads[n] - off_grads[n]).abs().max()) <= 5 * tolerance * scale, n


def test_offload_checkpoints_says_when_checkpointing_is_off(tiny_model):
    with pytest.raises(ValueError, match="gradient checkpointing"):
        offload_checkpoints(_lora(tiny_model[0], checkpointing=False))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the side stream and pinned memory need a CUDA GPU")
def test_on_a_gpu_the_copies_and_prefetches_give_the_same_gradients():
    """Run on the lent GPU (``benchmarks/results/gpu_recipes_8b_variants.json`` names the call): copies on a side
    stream, each layer's input prefetched during the backward pass of the layer after it, two steps in a row."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from course_lib import models

    torch.manual_seed(0)  # the tiny shape with four layers, built here: no tokenizer needed on the GPU machine
    tiny = LlamaForCausalLM(LlamaConfig(**{**models.TINY_CONFIG, "num_hidden_layers": 4, "vocab_size": 1024}))
    ids = torch.randint(0, 1000, (2, 64), generator=torch.Generator().manual_seed(0)).cuda()
    plain = _lora(tiny, checkpointing=False).cuda()
    offloaded = _lora(tiny, checkpointing=True).cuda()
    assert offload_checkpoints(offloaded) == 4
    for _ in range(2):  # the second step starts from an empty list of waiting layers
        for model in (plain, offloaded):
            model.zero_grad(set_to_none=True)
        loss, grads = _loss_and_grads(plain, ids, autocast=True)
        off_loss, off_grads = _loss_and_grads(offloaded, ids, autocast=True)
        assert abs(off_loss - loss) <= 1e-2 * loss
        for n in grads:
            scale = float(grads[n].abs().max())
            assert scale > 0 and float((grads[n] - off_grads[n]).abs().max()) <= 0.05 * scale, n
