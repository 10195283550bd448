"""course_lib.qlora on the CPU, with the tiny model: the 4-bit load, its storage against the memory model, the
course's adapters (no fp32 upcast), the packed loss against the examples one by one, the chunked loss against the
plain one, and the recorded GPU comparison."""

from __future__ import annotations

import warnings

import pytest
import torch

from course_lib import memory, qlora

pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def tiny_4bit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return qlora.load_4bit("tiny", device="cpu", verbose=False)


def test_linear_layers_are_4bit_and_storage_matches_the_memory_model(tiny_4bit):
    import bitsandbytes as bnb

    model, _ = tiny_4bit
    blocks = [m for n, m in model.named_modules() if n.startswith("model.layers.") and isinstance(m, torch.nn.Linear)]
    assert len(blocks) == 7 * model.config.num_hidden_layers and all(isinstance(m, bnb.nn.Linear4bit) for m in blocks)
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)  # the head and the embeddings stay in bf16
    stored = qlora.storage_bytes(model)
    predicted = memory.peak_memory(model.config, method="lora", weights="4bit", batch_size=1, seq_len=1)["weights"]
    # the memory model rounds the 256-block fp32 scales up as a fraction; the real layers store whole blocks
    assert stored["total"] == pytest.approx(predicted, rel=1e-4)
    # 73,728 linear weights (2 layers x (2·64·64 + 2·64·32 + 3·64·128)) at 4 bits, one uint8 scale per 64 of them
    assert stored["4bit"] >= 73_728 // 2 + 73_728 // 64
    embedding = model.config.vocab_size * model.config.hidden_size * 2  # tied with the head: counted once
    norms = (2 * model.config.num_hidden_layers + 1) * model.config.hidden_size * 2
    assert stored["other"] == embedding + norms


def test_quantization_config_picks_the_compute_dtype_of_the_device():
    config, why = qlora.quantization_config("cpu")
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype in (torch.bfloat16, torch.float32) and "nf4" in why


def test_adapters_keep_frozen_weights_in_their_dtype_and_train_only_lora(tiny_4bit):
    model, _ = tiny_4bit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = qlora.add_adapters(model, r=8, alpha=16)
    trainable = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # r·(in + out) per adapted layer: 8 · (2·(64+64) + 2·(64+32) + 3·(64+128)) per block, 2 blocks
    assert sum(p.numel() for p in trainable.values()) == 2 * 8 * (2 * 128 + 2 * 96 + 3 * 192) == 16_384
    assert peft_model.get_base_model().model.embed_tokens.weight.dtype == torch.bfloat16  # no fp32 upcast


def test_packed_loss_equals_the_examples_one_by_one(tiny_4bit):
    model, _ = tiny_4bit
    torch.manual_seed(0)
    rows = [torch.randint(0, 1000, (n,)) for n in (7, 12, 5)]
    with torch.no_grad():
        packed = qlora.packed_loss(model, rows).item()
        each = sum(model(input_ids=r[None], labels=r[None], use_cache=False).loss.item() * (len(r) - 1)
                   for r in rows) / sum(len(r) - 1 for r in rows)
        # if attention leaked across examples, the 2nd and 3rd rows would see the 1st: the losses would differ
        crossed = model(input_ids=torch.cat(rows)[None], labels=torch.cat(rows)[None], use_cache=False).loss.item()
    assert packed == pytest.approx(each, rel=1e-3)
    assert abs(crossed - each) > 10 * abs(packed - each)
    with pytest.raises(qlora.QLoRAError, match="no rows"):
        qlora.packed_loss(model, [])


def test_chunked_cross_entropy_equals_the_plain_loss_and_its_gradient():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False)
    hidden = torch.randn(37, 16, requires_grad=True)
    targets = torch.randint(0, 50, (37,))
    targets[[0, 5, 36]] = -100
    chunked = qlora.chunked_cross_entropy(hidden, head, targets, chunk=8)
    (grad_chunked,) = torch.autograd.grad(chunked, hidden)
    plain = torch.nn.functional.cross_entropy(head(hidden), targets, ignore_index=-100)
    (grad_plain,) = torch.autograd.grad(plain, hidden)
    assert chunked.item() == pytest.approx(plain.item(), rel=1e-6)
    assert torch.allclose(grad_chunked, grad_plain, atol=1e-7)
    with pytest.raises(qlora.QLoRAError, match="every target is -100"):
        qlora.chunked_cross_entropy(hidden, head, torch.full((37,), -100))


def test_recorded_recipes_give_the_ratios_of_the_same_process():
    results = qlora.recorded_recipes()
    runs, ratios = results["runs"], results["ratios"]
    assert set(ratios) == {"135m", "1b", "8b"}
    assert ratios["8b"]["tokens_per_s"] == runs["8b-qlora-course"]["tokens_per_s"] / runs["8b-qlora-naive"]["tokens_per_s"]
    assert round(ratios["8b"]["tokens_per_s"], 2) == 3.70 and round(ratios["8b"]["peak_memory"], 2) == 0.39
    assert all(run["loss_went_down"] for run in runs.values())
    fig = qlora.plot_recipes(results)
    ax = fig.axes[0]
    assert len(ax.collections) == 2 * 3 + 2 and ax.get_xscale() == "log"  # two points per shape, two legend keys
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["textbook QLoRA", "course recipe"]
    with pytest.raises(qlora.QLoRAError, match="is missing"):
        qlora.recorded_recipes("/nonexistent/gpu_recipes.json")


def test_train_steps_lower_the_loss_on_greenleaf_rows_and_say_what_is_wrong(tiny_4bit):
    from course_lib import data

    model, tok = tiny_4bit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = qlora.add_adapters(model, r=8, alpha=16, checkpointing=False)
        torch.manual_seed(0)
        run = qlora.train_steps(peft_model, data.load_split("train")[:4], tok, steps=6, lr=1e-2, rows_per_step=2,
                                progress=False)
    assert len(run["losses"]) == 6 and run["losses"][-1] < run["losses"][0]
    assert run["tokens_per_s"] > 0 and run["peak_gib"] is None  # no GPU here
    fresh, _ = qlora.load_4bit("tiny", device="cpu", verbose=False)
    with pytest.raises(qlora.QLoRAError, match="no LoRA adapters to train"):
        qlora.train_steps(fresh, data.load_split("train")[:2], tok, steps=1)
    with pytest.raises(qlora.QLoRAError, match="need steps >= 1"):
        qlora.train_steps(peft_model, [], tok, steps=1)


def test_next_token_agreement_is_one_for_a_model_with_itself(tiny_4bit):
    model, tok = tiny_4bit
    same = qlora.next_token_agreement(model, model, tok, ["Hello there", "My order is late"])
    assert same["top1_agreement"] == 1.0 and same["mean_kl"] == pytest.approx(0.0, abs=1e-6) and same["positions"] > 2


def test_gradients_through_4bit_layers_match_the_dequantised_model():
    """PyTorch warns on a CPU that it backpropagates through bitsandbytes' 4-bit kernel by a fallback "that may be
    silently incorrect": the adapters' gradients must equal those of the same model with each 4-bit layer replaced
    by its dequantised bf16 weight (bf16 rounding: a few percent)."""
    import copy

    import bitsandbytes as bnb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantised, _ = qlora.load_4bit("tiny", device="cpu", verbose=False)
        reference = copy.deepcopy(quantised)
        for module in list(reference.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, bnb.nn.Linear4bit):
                    linear = torch.nn.Linear(child.in_features, child.out_features, bias=False, dtype=torch.bfloat16)
                    linear.weight.data = bnb.functional.dequantize_4bit(child.weight.data,
                                                                       child.weight.quant_state).to(torch.bfloat16)
                    setattr(module, name, linear)
        models = [qlora.add_adapters(m, r=8, alpha=16, checkpointing=False) for m in (quantised, reference)]
        torch.manual_seed(0)
        state = {k: torch.randn_like(v) * 0.1 for k, v in models[0].state_dict().items() if "lora_" in k}
        rows = [torch.randint(0, 1000, (n,)) for n in (9, 14)]
        grads = []
        for model in models:
            model.load_state_dict(state, strict=False)  # the same adapters, B not zero: gradients reach every layer
            qlora.packed_loss(model, rows).backward()
            grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == 28
    for name, grad in grads[0].items():
        reference_grad = grads[1][name]
        assert grad is not None and reference_grad.norm() > 0
        assert float((grad - reference_grad).norm() / reference_grad.norm()) < 0.05, name


def test_recorded_presets_pair_each_preset_with_its_old_version():
    rows = qlora.recorded_presets()
    assert [r["run"] for r in rows] == list(qlora.PRESET_RUNS)
    h100 = rows[0]
    assert (h100["before"]["tokens_per_s"], h100["after"]["tokens_per_s"]) == (4629, 27516)
    assert h100["speedup"] == pytest.approx(27516 / 4629)
    assert all(r["after"]["preset"]["padding_free"] and not r["before"]["preset"]["padding_free"] for r in rows)
    with pytest.raises(qlora.QLoRAError, match="is missing"):
        qlora.recorded_presets("/nonexistent")


def test_recorded_variants_read_the_8b_runs():
    rows = qlora.recorded_variants()
    assert [(r["tokens_per_s"], r["peak_gib"], r["tokens_per_step"]) for r in rows] == [
        (6683, 10.46, 8192), (2903, 7.53, 8192), (8020, 9.44, 8192), (8712, 11.25, 12288), (8913, 9.44, 8192),
        (9189, 9.44, 8192), (9473, 7.75, 8192), (10421, 9.92, 18432), (10483, 10.37, 20480), (9043, 9.34, 8192),
        (1518, 27.76, 8192)]
    assert all("--only 8b-qlora-" in r["device_command"] for r in rows)
    assert [r["repeats"] for r in rows if r["repeats"]] == [[8838], [9311], [10379, 10097]]
    best = qlora.fastest_within(rows, 10)  # the target: 10,000 tokens/s within 10 GiB
    assert best["variant"] == "the same, 18,432 tokens a step"
    assert min([best["tokens_per_s"]] + best["repeats"]) >= 10_000  # each of its three runs
    offloaded = next(r for r in rows if "offload" in r["device_command"] and r["tokens_per_step"] == 18432)
    assert "--fused-lora" in offloaded["device_command"] and "--offload-checkpoints" in offloaded["device_command"]
    assert qlora.fastest_within(rows, 9.4)["tokens_per_s"] == 9473  # the offloaded 8,192-token line, 7.75 GiB
    with pytest.raises(qlora.QLoRAError, match="smallest peak was 7.53 GiB"):
        qlora.fastest_within(rows, 5)
    with pytest.raises(qlora.QLoRAError, match="ships with the course"):
        qlora.recorded_variants("/nonexistent/variants.json")


def test_recorded_large_batches_read_the_measured_runs_against_the_preset_as_it_was():
    rows = qlora.recorded_large_batches()
    assert [(r["run"], r["rows"], r["tokens_per_s"]) for r in rows] == [
        ("1b-full-packed-256-liger-master", 256, 66257), ("1b-full-packed-256-liger-master", 256, 65546),
        ("1b-full-packed-320-liger-master", 320, 69486), ("1b-lora-packed-256-liger", 256, 58357),
        ("1b-lora-packed-384-liger", 384, 65264), ("1b-lora-packed-256-liger-unfused", 256, 56365),
        ("1b-lora-packed-448-liger", 448, 64161), ("1b-lora-packed-384-liger", 384, 66694)]  # not the regression call
    full = [r for r in rows if r["method"] == "full"]
    assert all(r["before_tokens_per_s"] == 12784 and r["mfu"] > 0.45 for r in full)  # the 45% MFU
    lora_384 = [r for r in rows if r["rows"] == 384]
    assert [round(r["speedup"], 1) for r in lora_384] == [14.1, 14.4]  # against 4,629 tokens/s, the preset as it was
    with pytest.raises(qlora.QLoRAError, match="ships with the course"):
        qlora.recorded_large_batches("/nonexistent")


def test_add_adapters_can_offload_the_checkpoints_and_says_what_it_needs():
    """``offload=True`` on a 4-bit model: the same adapter gradients as ordinary checkpointing (CPU here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models_ = [qlora.add_adapters(qlora.load_4bit("tiny", device="cpu", verbose=False)[0], r=4, alpha=8,
                                      offload=offload) for offload in (False, True)]
        torch.manual_seed(0)
        state = {k: torch.randn_like(v) * 0.1 for k, v in models_[0].state_dict().items() if "lora_" in k}
        rows = [torch.randint(0, 1000, (n,)) for n in (9, 14)]
        grads = []
        for model in models_:
            model.load_state_dict(state, strict=False)
            model.train()
            qlora.packed_loss(model, rows).backward()
            grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    from course_lib.train.offload import offloaded_checkpoint

    layers = models_[1].get_base_model().model.layers
    assert all(layer._gradient_checkpointing_func.func is offloaded_checkpoint for layer in layers)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == 28
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], rtol=1e-3, atol=1e-6), name
    with pytest.raises(qlora.QLoRAError, match="needs checkpointing=True"):
        qlora.add_adapters(models_[0].get_base_model(), offload=True, checkpointing=False)
