"""course_lib.train.fused_lora: LoRA's update as one addmm gives peft's outputs and gradients, and peft's forward
comes back after the block."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import get_peft_model

from course_lib import train
from course_lib.train.fused_lora import fusable, fused_lora


def _peft(model, dropout: float = 0.0):
    torch.manual_seed(1)
    peft_model = get_peft_model(copy.deepcopy(model), train.lora_config(r=4, lora_alpha=8, lora_dropout=dropout))
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.1)  # B = 0 would hide the adapters from the output
    return peft_model


def _loss_and_grads(model, ids, fuse: bool, autocast: bool = False):
    model.zero_grad(set_to_none=True)
    ctx = fused_lora(model) if fuse else _Nothing()
    with ctx as fused, torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads, fused


class _Nothing:
    def __enter__(self):
        return 0

    def __exit__(self, *exc):
        return False


def test_fused_lora_matches_peft_in_fp32(tiny_model):
    model = _peft(tiny_model[0])
    ids = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(0))
    loss, grads, _ = _loss_and_grads(model, ids, fuse=False)
    fused_loss, fused_grads, fused = _loss_and_grads(model, ids, fuse=True)
    assert fused == 14  # 7 linear layers x 2 blocks
    assert abs(float(fused_loss) - float(loss)) < 1e-6
    assert grads.keys() == fused_grads.keys() and len(grads) == 28
    assert max(float((grads[n] - fused_grads[n]).abs().max()) for n in grads) < 1e-6


def test_fused_lora_matches_peft_under_bf16_autocast(tiny_model):
    model = _peft(tiny_model[0])
    ids = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(0))
    loss, grads, _ = _loss_and_grads(model, ids, fuse=False, autocast=True)
    fused_loss, fused_grads, _ = _loss_and_grads(model, ids, fuse=True, autocast=True)
    assert abs(float(fused_loss) - float(loss)) / float(loss) < 1e-2  # bf16 rounding, summed in another order
    for n in grads:
        scale = float(grads[n].abs().max())
        assert float((grads[n] - fused_grads[n]).abs().max()) <= 0.05 * scale, n


def test_peft_forward_is_back_after_the_block_even_on_error(tiny_model):
    model = _peft(tiny_model[0])
    layers = [m for m in model.modules() if fusable(m)]
    with pytest.raises(RuntimeError, match="inside"):
        with fused_lora(model):
            assert all("forward" in vars(m) for m in layers)
            raise RuntimeError("inside the block")
    assert layers and not any("forward" in vars(m) for m in layers)


def test_layers_with_dropout_keep_pefts_forward(tiny_model):
    model = _peft(tiny_model[0], dropout=0.1)
    with fused_lora(model) as fused:
        assert fused == 0
        assert not any("forward" in vars(m) for m in model.modules())


def test_fused_lora_matches_peft_on_4bit_layers_under_bf16_autocast():
    """QLoRA: peft's ``Linear4bit`` layers (bitsandbytes' 4-bit product, run on the CPU here) fuse too, with peft's
    loss and gradients, under bf16 autocast with peft's fp32 input cast off, as train_sft trains on a GPU."""
    import warnings

    from peft.helpers import disable_input_dtype_casting

    from course_lib import qlora

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's note on backpropagating through bitsandbytes on a CPU
        model, _ = qlora.load_4bit("tiny", device="cpu", verbose=False)
        model = qlora.add_adapters(model, r=4, alpha=8, checkpointing=False)
        torch.manual_seed(1)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 0.1)
        assert sum(fusable(m) for m in model.modules()) == 14
        ids = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(0))
        with disable_input_dtype_casting(model):
            loss, grads, _ = _loss_and_grads(model, ids, fuse=False, autocast=True)
            fused_loss, fused_grads, fused = _loss_and_grads(model, ids, fuse=True, autocast=True)
    assert fused == 14
    assert abs(float(fused_loss) - float(loss)) / float(loss) < 1e-2
    assert grads.keys() == fused_grads.keys() and len(grads) == 28
    for n in grads:
        scale = float(grads[n].abs().max())
        assert scale > 0 and float((grads[n] - fused_grads[n]).abs().max()) <= 0.05 * scale, n


def test_fusing_needs_no_bitsandbytes(tiny_model, monkeypatch):
    """A LoRA run on a GPU without bitsandbytes installed (peft's bnb module imports it) still fuses its layers."""
    import sys

    model = _peft(tiny_model[0])
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes now raises ImportError
    monkeypatch.delitem(sys.modules, "peft.tuners.lora.bnb", raising=False)
    import peft.tuners.lora

    monkeypatch.delattr(peft.tuners.lora, "bnb", raising=False)  # so that importing it runs its module again
    from course_lib.train.fused_lora import _lora_linear_types

    _lora_linear_types.cache_clear()
    try:
        with fused_lora(model) as fused:
            assert fused == 14
        assert _lora_linear_types.cache_info().misses == 1  # asked once, remembered for every later forward
    finally:
        _lora_linear_types.cache_clear()  # later tests see bitsandbytes again
