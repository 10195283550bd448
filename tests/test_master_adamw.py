"""course_lib.train.master_adamw: AdamW on fp32 masters of bf16 weights updates like AdamW on fp32 weights, keeps the
updates bf16 would round away, and checkpoints its masters."""

from __future__ import annotations

import copy

import pytest
import torch

from course_lib.train.master_adamw import MasterWeightAdamW


def _grads(n: int, shape, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) * 1e-2 for _ in range(n)]


def test_updates_equal_adamw_on_fp32_weights():
    torch.manual_seed(0)
    start = (torch.randn(64, 32) * 0.02).bfloat16().float()  # a bf16 model's weights, as fp32 starts too
    fp32 = torch.nn.Parameter(start.clone())
    bf16 = torch.nn.Parameter(start.clone().bfloat16())
    reference = torch.optim.AdamW([fp32], lr=5e-5, weight_decay=0.01)
    ours = MasterWeightAdamW([bf16], lr=5e-5, weight_decay=0.01)
    for g in _grads(20, (64, 32), seed=1):
        fp32.grad, bf16.grad = g.bfloat16().float(), g.bfloat16()  # a bf16 model's gradients, for both
        reference.step()
        ours.step()
    master = ours.state[bf16]["master"]
    assert float((master - fp32.detach()).abs().max()) < 1e-8  # fp32 AdamW's updates, to float rounding
    assert torch.equal(bf16.detach(), master.bfloat16())  # the weights are the masters rounded


def test_small_updates_are_kept_in_the_master_and_reach_the_weight():
    """lr 5e-5 moves a weight of 0.02 by 0.25% a step, under bf16's rounding step: in place on bf16 it is lost."""
    w = torch.full((4,), 0.02)
    in_place = torch.nn.Parameter(w.clone().bfloat16())
    ours = torch.nn.Parameter(w.clone().bfloat16())
    plain, master = torch.optim.AdamW([in_place], lr=5e-5, weight_decay=0.0), MasterWeightAdamW([ours], lr=5e-5,
                                                                                                 weight_decay=0.0)
    for _ in range(40):
        in_place.grad, ours.grad = torch.ones(4, dtype=torch.bfloat16), torch.ones(4, dtype=torch.bfloat16)
        plain.step()
        master.step()
    assert torch.equal(in_place.detach(), w.bfloat16())  # every update rounded away
    assert float(ours.detach()[0]) < 0.02 - 30 * 5e-5  # about 40 x 5e-5 moved, kept in the master
    start = float(w.bfloat16()[0])  # 0.0200195...: 0.02 rounded to bf16 when the model was stored
    assert abs(float(master.state[ours]["master"][0]) - (start - 40 * 5e-5)) < 1e-6


def test_state_dict_round_trip_restores_masters_and_moments():
    p = torch.nn.Parameter(torch.randn(8).bfloat16())
    opt = MasterWeightAdamW([p], lr=1e-3)
    p.grad = torch.ones(8, dtype=torch.bfloat16)
    opt.step()
    q = torch.nn.Parameter(p.detach().clone())
    other = MasterWeightAdamW([q], lr=1e-3)
    other.load_state_dict(copy.deepcopy(opt.state_dict()))  # as from disk: no tensor shared with opt
    for o in (opt, other):
        for param in o.param_groups[0]["params"]:
            param.grad = torch.full((8,), 0.5, dtype=torch.bfloat16)
        o.step()
    assert torch.equal(opt.state[p]["master"], other.state[q]["master"])
    assert torch.equal(p.detach(), q.detach())


def test_bad_learning_rate_is_refused():
    with pytest.raises(ValueError, match="must be positive"):
        MasterWeightAdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
