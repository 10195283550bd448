"""course_lib.lora: the from-scratch LoRA against peft, on the tiny llama and on small nn.Linear stacks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from course_lib import lora, models

CONFIGS = [  # (targets, r, alpha)
    (lora.ATTENTION, 8, 16),
    (lora.ALL_LINEAR, 16, 32),
    (["q_proj", "v_proj"], 4, 4),
    (lora.ALL_LINEAR, 2, 8),
]


def _inputs(tokenizer) -> dict[str, torch.Tensor]:
    return tokenizer(["My monstera has yellow leaves.", "Where is order 1234?"], return_tensors="pt", padding=True)


def _logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def _randomise_b(model: nn.Module, seed: int = 0) -> None:
    """B starts at zero; give it values so the LoRA path really contributes."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=gen) * 0.05)


def _peft_model(base, targets, r, alpha):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets), bias="none")
    return get_peft_model(copy.deepcopy(base), config)


def test_layer_starts_as_base_and_merges():
    torch.manual_seed(0)
    base = nn.Linear(12, 7)
    layer = lora.LoRALinear(copy.deepcopy(base), r=3, alpha=6)
    x = torch.randn(5, 12)
    assert torch.equal(layer(x), base(x))  # B = 0: exactly the base layer
    assert torch.count_nonzero(layer.lora_A.weight) > 0 and torch.count_nonzero(layer.lora_B.weight) == 0
    nn.init.normal_(layer.lora_B.weight)
    expected = base(x) + 2.0 * x @ layer.lora_A.weight.T @ layer.lora_B.weight.T
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    layer.merge()
    layer.merge()  # a second merge is a no-op, not a double add
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, base.weight, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_injected_model_starts_exactly_as_base(tiny_model):
    model, tokenizer = tiny_model
    batch = _inputs(tokenizer)
    injected = copy.deepcopy(model)
    names = lora.inject_lora(injected, lora.ALL_LINEAR, r=8, alpha=16)
    assert len(names) == 7 * model.config.num_hidden_layers
    assert "lm_head" not in names
    assert torch.equal(_logits(injected, batch), _logits(model, batch))


@pytest.mark.parametrize("targets,r,alpha", CONFIGS)
def test_matches_peft_outputs_and_counts(tiny_model, targets, r, alpha):
    model, tokenizer = tiny_model
    batch = _inputs(tokenizer)
    theirs = _peft_model(model, targets, r, alpha)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(getattr(module, "lora_B", None), nn.ModuleDict):
                w = module.lora_B["default"].weight
                w.copy_(torch.randn(w.shape, generator=gen) * 0.05)
    ours = copy.deepcopy(model)
    replaced = lora.inject_lora(ours, targets, r=r, alpha=alpha)
    assert lora.copy_from_peft(ours, theirs) == len(replaced)
    got, want, plain = _logits(ours, batch), _logits(theirs, batch), _logits(model, batch)
    assert (want - plain).abs().max() > 1e-3  # the adapters really change the output
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    trainable, total = theirs.get_nb_trainable_parameters()
    counts = lora.count_parameters(ours)
    assert (counts["trainable"], counts["total"]) == (trainable, total)
    assert counts["trainable"] == lora.lora_parameter_count(model.config, r, targets)



def test_matches_peft_exactly_on_a_bf16_base(tiny_model):
    """bf16 base + fp32 adapters: the update is added in fp32 and rounded once, as peft does, so the logits agree
    bit for bit (rounding the update to bf16 before adding gave gaps of ~1 logit on the embedded model)."""
    model, tokenizer = tiny_model
    base = copy.deepcopy(model).to(torch.bfloat16)
    theirs = _peft_model(base, lora.ALL_LINEAR, 16, 32)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(getattr(module, "lora_B", None), nn.ModuleDict):
                w = module.lora_B["default"].weight
                w.copy_(torch.randn(w.shape, generator=gen) * 0.02)
    ours = copy.deepcopy(base)
    lora.inject_lora(ours, lora.ALL_LINEAR, r=16, alpha=32)
    lora.copy_from_peft(ours, theirs)
    assert all(layer.lora_A.weight.dtype == torch.float32 for layer in lora.lora_layers(ours).values())
    batch = _inputs(tokenizer)
    assert torch.equal(_logits(ours, batch), _logits(theirs, batch))

def test_merge_equals_unmerged_and_unmerge_restores(tiny_model):
    model, tokenizer = tiny_model
    batch = _inputs(tokenizer)
    ours = copy.deepcopy(model)
    lora.inject_lora(ours, lora.ALL_LINEAR, r=4, alpha=8)
    _randomise_b(ours)
    original = {n: m.base.weight.clone() for n, m in lora.lora_layers(ours).items()}
    before = _logits(ours, batch)
    assert lora.merge_lora(ours) == 7 * model.config.num_hidden_layers
    assert any(not torch.equal(m.base.weight, original[n]) for n, m in lora.lora_layers(ours).items())
    torch.testing.assert_close(_logits(ours, batch), before, atol=1e-5, rtol=1e-5)
    lora.merge_lora(ours)  # merging twice must not add the update twice
    torch.testing.assert_close(_logits(ours, batch), before, atol=1e-5, rtol=1e-5)
    lora.unmerge_lora(ours)
    for name, layer in lora.lora_layers(ours).items():
        torch.testing.assert_close(layer.base.weight, original[name], atol=1e-6, rtol=0)
    torch.testing.assert_close(_logits(ours, batch), before, atol=1e-5, rtol=1e-5)


def test_gradients_reach_only_a_and_b(tiny_model):
    model, tokenizer = tiny_model
    ours = copy.deepcopy(model)
    lora.inject_lora(ours, lora.ATTENTION, r=4, alpha=8)
    _randomise_b(ours)  # with B = 0 the gradient of A would be zero
    batch = _inputs(tokenizer)
    ours(**batch, labels=batch["input_ids"]).loss.backward()
    trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A.weight", "lora_B.weight")) for n in trainable)
    for name, param in ours.named_parameters():
        if name in trainable:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name


def test_arithmetic_matches_built_model_tiny(tiny_model):
    model, _ = tiny_model
    config = models.model_config("tiny")
    assert lora.base_parameter_count(config) == lora.count_parameters(model)["total"]
    for targets, r, _ in CONFIGS:
        ours = copy.deepcopy(model)
        lora.inject_lora(ours, targets, r=r, alpha=1.0)
        assert lora.count_parameters(ours)["trainable"] == lora.lora_parameter_count(config, r, targets)


def test_arithmetic_for_embedded_config_without_weights():
    from transformers import AutoModelForCausalLM

    config = models.model_config("embedded")
    for key, value in lora.SMOLLM2_135M.items():
        assert getattr(config, key) == value, key
    with torch.device("meta"):  # builds the shapes only: no memory, no weights
        skeleton = AutoModelForCausalLM.from_config(config)
    assert lora.base_parameter_count(config) == lora.count_parameters(skeleton)["total"] == 134_515_008
    lora.inject_lora(skeleton, lora.ALL_LINEAR, r=16, alpha=32)
    assert lora.count_parameters(skeleton)["trainable"] == lora.lora_parameter_count(config, 16, lora.ALL_LINEAR)


def test_published_shapes_give_published_sizes():
    assert round(lora.base_parameter_count(lora.LLAMA_3_1_8B) / 1e9, 2) == 8.03
    assert round(lora.base_parameter_count(lora.LLAMA_3_1_70B) / 1e9, 1) == 70.6
    # r=16 on all linear layers of Llama-3.1-8B: 32 blocks × 16 × (sum of in+out) = 41,943,040
    assert lora.lora_parameter_count(lora.LLAMA_3_1_8B, 16, lora.ALL_LINEAR) == 41_943_040


def test_memory_arithmetic():
    full = lora.training_memory(lora.LLAMA_3_1_8B, "full", "bf16")
    assert full["total"] == pytest.approx(16 * lora.base_parameter_count(lora.LLAMA_3_1_8B))  # 16 bytes/param
    lo = lora.training_memory(lora.LLAMA_3_1_8B, "lora", "bf16")
    q = lora.training_memory(lora.LLAMA_3_1_8B, "lora", "4bit")
    assert lo["weights"] >= full["weights"]  # LoRA does not shrink the frozen weights ...
    assert lo["gradients"] + lo["optimizer"] < 0.01 * (full["gradients"] + full["optimizer"])  # ... only the rest
    assert q["weights"] < 0.4 * lo["weights"]  # 4-bit shrinks the weights
    q70 = lora.training_memory(lora.LLAMA_3_1_70B, "lora", "4bit")
    assert q70["total"] > 24e9  # 70B QLoRA does not fit a 24 GB card, even before activations
    with pytest.raises(ValueError, match="4-bit"):
        lora.training_memory(lora.LLAMA_3_1_8B, "full", "4bit")
    with pytest.raises(ValueError, match="dtype"):
        lora.training_memory(lora.LLAMA_3_1_8B, "lora", "int3")


def test_bad_inputs(tiny_model):
    model, _ = tiny_model
    ours = copy.deepcopy(model)
    with pytest.raises(ValueError, match="q_proj") as err:
        lora.inject_lora(ours, ["query"], r=4, alpha=8)
    assert "query" in str(err.value)
    for r in (0, -2, 1.5):
        with pytest.raises(ValueError, match="positive integer"):
            lora.inject_lora(ours, lora.ATTENTION, r=r, alpha=8)
    with pytest.raises(ValueError, match="alpha"):
        lora.inject_lora(ours, lora.ATTENTION, r=4, alpha=0)
    with pytest.raises(ValueError, match="list"):
        lora.inject_lora(ours, "q_proj", r=4, alpha=8)
    assert not lora.lora_layers(ours)  # failed calls changed nothing
    assert all(p.requires_grad for p in ours.parameters())
    lora.inject_lora(ours, lora.ATTENTION, r=4, alpha=8)
    with pytest.raises(ValueError, match="already has LoRA"):
        lora.inject_lora(ours, lora.ATTENTION, r=4, alpha=8)
    with pytest.raises(TypeError):
        lora.LoRALinear(nn.Conv1d(3, 3, 1), r=2, alpha=2)
    with pytest.raises(ValueError, match="Unknown targets"):
        lora.lora_parameter_count(lora.LLAMA_3_1_8B, 8, ["attn"])
    with pytest.raises(ValueError, match="lacks"):
        lora.lora_parameter_count({"hidden_size": 8}, 8, ["q_proj"])


def test_copy_from_peft_refuses_different_targets(tiny_model):
    model, _ = tiny_model
    theirs = _peft_model(model, lora.ATTENTION, 4, 8)
    ours = copy.deepcopy(model)
    lora.inject_lora(ours, ["q_proj"], r=4, alpha=8)
    with pytest.raises(ValueError, match="different layers"):
        lora.copy_from_peft(ours, theirs)


# ---- the scaling alpha/r: how far a few steps move the output, by rank ----------------------------------------

SMALL = dict(d=64, n=8, steps=5)  # a smaller toy than the notebook's (576 wide), same behaviour, faster


def _ratio(optimizer: str, scaling: str, lr: float) -> float:
    """Output change at r=32 divided by the change at r=4."""
    small, large = (lora.output_change(r, scaling=scaling, optimizer=optimizer, lr=lr, **SMALL) for r in (4, 32))
    return large / small


def test_output_change_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    first = lora.output_change(8, **SMALL)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert lora.output_change(8, **SMALL) == first > 0
    assert lora.output_change(8, lr=2e-4, **SMALL) > first  # a larger step moves the output further


def test_dividing_by_r_tames_the_rank_dependence_under_adam_but_overshoots_under_sgd():
    import math

    adam_div, adam_plain = _ratio("adam", "alpha/r", 1e-4), _ratio("adam", "alpha", 1e-4)
    assert adam_plain > 2.5  # without 1/r a rank-32 adapter moves several times further than a rank-4 one
    assert 0.3 < adam_div < 1.0  # with 1/r: somewhat less far, within a factor of about 2
    assert abs(math.log(adam_div)) < abs(math.log(adam_plain))
    assert 5 < adam_plain / adam_div < 12  # Adam's step ignores the gradient's scale: 1/r acts once, 32/4 = 8
    sgd_div, sgd_plain = _ratio("sgd", "alpha/r", 0.1), _ratio("sgd", "alpha", 0.1)
    assert sgd_plain > 1.5 and sgd_div < 0.2  # plain SGD: 1/r over-corrects, the change shrinks steeply with r
    assert sgd_plain / sgd_div > 2 * adam_plain / adam_div  # ... because under SGD the factor acts twice
    assert abs(math.log(_ratio("sgd", "alpha/sqrt(r)", 0.1))) < abs(math.log(sgd_div))


def test_change_by_rank_table_and_figure():
    from matplotlib.figure import Figure

    settings = {"adam": {"lr": 1e-4, **SMALL}, "sgd": {"lr": 0.1, **SMALL}}
    table = lora.change_by_rank((4, 8), scalings=("alpha/r", "alpha"), settings=settings)
    assert list(table) == ["adam", "sgd"] and list(table["adam"]) == ["alpha/r", "alpha"]
    assert table["adam"]["alpha/r"][0] == lora.output_change(4, optimizer="adam", lr=1e-4, **SMALL)
    fig = lora.plot_change_by_rank(table, (4, 8))
    assert isinstance(fig, Figure) and len(fig.axes) == 2


def test_output_change_bad_inputs():
    with pytest.raises(ValueError, match="scaling"):
        lora.output_change(4, scaling="alpha*r")
    with pytest.raises(ValueError, match="optimizer"):
        lora.output_change(4, optimizer="lion")
    with pytest.raises(ValueError, match="steps"):
        lora.output_change(4, steps=0)
    with pytest.raises(ValueError, match="lr"):
        lora.output_change(4, lr=0)
    with pytest.raises(ValueError, match="positive integer"):
        lora.output_change(0)


# ---- merging on a bf16 base ---------------------------------------------------------------------------------

def test_merge_logit_gap_fp32_tiny_bf16_larger(tiny_model):
    model, tokenizer = tiny_model
    ours = copy.deepcopy(model)
    lora.inject_lora(ours, lora.ALL_LINEAR, r=4, alpha=8)
    _randomise_b(ours)
    weights = {n: p.clone() for n, p in ours.named_parameters()}
    ids = _inputs(tokenizer)["input_ids"]
    fp32 = lora.merge_logit_gap(ours, ids, torch.float32)
    bf16 = lora.merge_logit_gap(ours, ids, torch.bfloat16)
    assert fp32 < 1e-4
    assert bf16 > 100 * fp32 and bf16 > 1e-3
    # the model itself is unchanged: same dtype, same values, still unmerged
    assert all(torch.equal(p, weights[n]) for n, p in ours.named_parameters())
    assert not any(layer.merged for layer in lora.lora_layers(ours).values())


def test_merge_logit_gap_refuses_merged_or_plain_models(tiny_model):
    model, tokenizer = tiny_model
    ids = _inputs(tokenizer)["input_ids"]
    with pytest.raises(ValueError, match="no LoRA layers"):
        lora.merge_logit_gap(model, ids, torch.bfloat16)
    ours = copy.deepcopy(model)
    lora.inject_lora(ours, ["q_proj"], r=2, alpha=4)
    lora.merge_lora(ours)
    with pytest.raises(ValueError, match="unmerge_lora"):
        lora.merge_logit_gap(ours, ids, torch.bfloat16)
    with pytest.raises(ValueError, match="unmerge_lora"):
        lora.merge_rounding(ours)


def _layer_with(weight: float, update: float) -> lora.LoRALinear:
    """A LoRA layer whose W is all ``weight`` and whose update (alpha/r)·B·A is all ``update``."""
    layer = lora.LoRALinear(nn.Linear(4, 3, bias=False), r=1, alpha=1)
    with torch.no_grad():
        layer.base.weight.fill_(weight)
        layer.lora_A.weight.fill_(1.0)
        layer.lora_B.weight.fill_(update)
    return layer


def test_merge_rounding_in_bf16():
    # bf16 keeps 8 significant bits: neighbouring numbers at 1.0 are 2**-7 = 0.0078125 apart
    small = lora.merge_rounding(_layer_with(1.0, 1e-3))  # below half a step: rounded away entirely
    assert small["median_step"] == 2**-7 and small["median_abs_w"] == 1.0
    assert small["median_abs_update"] == pytest.approx(1e-3)
    assert small["lost_share"] == 1.0 and small["update_error"] == pytest.approx(1.0)
    kept = lora.merge_rounding(_layer_with(1.0, 0.01))  # 1.01 is stored as 1.0078125: kept, 22% off
    assert kept["lost_share"] == 0.0 and kept["update_error"] == pytest.approx(0.21875, rel=1e-4)
    exact = lora.merge_rounding(_layer_with(1.0, 1e-3), torch.float32)  # fp32: 24 bits, nothing lost
    assert exact["lost_share"] == 0.0 and exact["update_error"] < 1e-4
    assert lora.merge_rounding(_layer_with(0.05, 1e-3))["median_step"] == 2**-12  # 0.05 is in [2**-5, 2**-4)
