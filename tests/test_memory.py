"""The GPU training memory model (course_lib.memory): hand-computed values, the saved-tensor count of a real llama
block, the fit table, error messages, the figures, and bitsandbytes' real 4-bit storage on the CPU."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import memory
from course_lib.lora import LLAMA_3_1_8B, LLAMA_3_1_70B, SMOLLM2_135M, base_parameter_count, linear_shapes
from course_lib.memory import GIB, GPUS, MODELS, PARTS, fit_table, fits, peak_memory

NF4 = (4 + 8 / 64 + 32 / (64 * 256)) / 8  # bytes per 4-bit weight: 4 bits + an 8-bit scale per 64 + fp32 per 64·256
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=256)


def test_activations_of_smollm2_by_hand():
    # h = 576, i = 1536, 30 layers, 9 heads of 64 (q = 576), 3 kv heads (kv = 192). Per token per layer, full FT:
    # 16h + 4q + 4kv + 8i + 8 + 4·heads = 2·(a·h + b·i) + 8 + 4·heads with a = 10 + 2·kv/h, b = 4.
    per_layer = 16 * 576 + 4 * 576 + 4 * 192 + 8 * 1536 + 8 + 4 * 9
    assert per_layer == 24620 == 2 * ((10 + 2 * 192 / 576) * 576 + 4 * 1536) + 8 + 4 * 9
    head = (4 * 576 + 4) + 2 * 576 + 2 * 576  # final norm (fp32 input, 1/rms, normalised) + lm_head input
    parts = peak_memory(SMOLLM2_135M, method="full", weights="bf16", batch_size=1, seq_len=128)
    assert parts["activations"] == 30 * 128 * per_layer + 128 * head  # batch 1: no padding mask
    assert parts["logits"] == 128 * 49152 * 12  # log_softmax's fp32 output + the gradients coming in and going out
    # 128 tokens: the 269 MB of bf16 gradients outweigh activations + logits (171 MB), so the peak is at the
    # optimizer step: weights + gradients + optimizer (fp32 master + moments) + overhead.
    static = parts["weights"] + parts["optimizer"] + parts["overhead"]
    assert parts["gradients"] > parts["activations"] + parts["logits"]
    assert parts["total"] == static + parts["gradients"]
    big = peak_memory(SMOLLM2_135M, method="full", weights="bf16", batch_size=8, seq_len=1024)  # 64x the tokens
    assert big["total"] == static + big["activations"] + big["logits"]  # now the start of the backward


def test_checkpointing_keeps_block_inputs_and_one_block():
    kw = dict(method="full", weights="bf16", batch_size=2, seq_len=256, padding_free=True)
    tokens, per_layer, head = 2 * 256, 24620, 4612
    plain = peak_memory(SMOLLM2_135M, **kw)["activations"]
    ckpt = peak_memory(SMOLLM2_135M, checkpointing=True, **kw)["activations"]
    assert plain == tokens * (30 * per_layer + head)
    assert ckpt == tokens * (30 * 2 * 576 + per_layer + head)  # bf16 block inputs + one recomputed block
    assert ckpt / plain == pytest.approx((34560 + 24620 + 4612) / (738600 + 4612))  # ~8.6%
    # LoRA at a batch where the logits (12 B x 49152 per token) outweigh one block: the recomputed block and the
    # logits are never alive together, so the peak counts only the larger of the two.
    lora = peak_memory(SMOLLM2_135M, batch_size=2, seq_len=256, padding_free=True, checkpointing=True)
    block = tokens * sum(memory.block_activations(SMOLLM2_135M, "lora").values())
    static = lora["weights"] + lora["adapters"] + lora["optimizer"] + lora["overhead"]
    assert lora["logits"] > block and lora["total"] == static + lora["activations"] - block + lora["logits"]


def test_padded_batches_pay_for_the_sdpa_mask():
    kw = dict(batch_size=4, seq_len=512)
    padded, packed = peak_memory(SMOLLM2_135M, **kw), peak_memory(SMOLLM2_135M, padding_free=True, **kw)
    # one bool per (row, query, key), and a bf16 copy of it kept by each of the 30 layers' attention
    assert padded["activations"] - packed["activations"] == 4 * 512 * 512 * (1 + 2 * 30)
    ckpt = peak_memory(SMOLLM2_135M, checkpointing=True, **kw)["activations"]
    assert ckpt - peak_memory(SMOLLM2_135M, checkpointing=True, padding_free=True, **kw)["activations"] == \
        4 * 512 * 512 * (1 + 2)  # only the recomputed block keeps its copy
    assert peak_memory(SMOLLM2_135M, batch_size=1, seq_len=512)["activations"] == \
        peak_memory(SMOLLM2_135M, batch_size=1, seq_len=512, padding_free=True)["activations"]  # one row: no padding


def test_qlora_on_llama_8b_by_hand():
    # One block's linears: q, o 4096x4096; k, v 4096x1024; gate, up, down 4096x14336.
    block = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336
    assert block == 218_103_808
    quantised = 32 * block
    rest = 2 * 128256 * 4096 + 32 * 2 * 4096 + 4096  # untied embeddings + lm_head, 2 norms a block, final norm
    adapters = 32 * 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + (4096 + 14336) * 3)  # r·(in + out) per layer
    assert adapters == 41_943_040
    parts = peak_memory(LLAMA_3_1_8B, method="lora", weights="4bit", batch_size=1, seq_len=512)
    assert parts["weights"] == pytest.approx(quantised * NF4 + rest * 2, rel=1e-12)
    assert parts["adapters"] == adapters * 4 == parts["gradients"]  # fp32 adapters and their fp32 gradients
    assert parts["optimizer"] == adapters * 8  # AdamW's exp_avg and exp_avg_sq in fp32
    # prepare_model_for_kbit_training casts the weights that are not 4-bit to fp32: 2 more bytes each
    upcast = peak_memory(LLAMA_3_1_8B, method="lora", weights="4bit", batch_size=1, seq_len=512, upcast_fp32=True)
    assert upcast["weights"] - parts["weights"] == rest * 2 == 2_101_878_784
    bf16 = dict(method="lora", weights="bf16", batch_size=1, seq_len=512)
    everything = 32 * block + rest
    assert peak_memory(LLAMA_3_1_8B, **bf16, upcast_fp32=True)["weights"] == everything * 4
    with pytest.raises(ValueError, match="upcast_fp32 describes a LoRA model"):
        peak_memory(LLAMA_3_1_8B, method="full", batch_size=1, seq_len=512, upcast_fp32=True)


def test_70b_qlora_does_not_fit_24gb():
    block = 2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672
    weights = 80 * block * NF4 + (2 * 128256 * 8192 + 80 * 2 * 8192 + 8192) * 2
    assert weights == pytest.approx(39_517_110_272, abs=1)  # 36.80 GiB for the weights alone
    ok, parts = fits(LLAMA_3_1_70B, GPUS["RTX 4090 / A10 (24 GB)"], method="lora", weights="4bit", batch_size=1,
                     seq_len=512, checkpointing=True)
    assert not ok and parts["weights"] / GIB > 22.0
    assert parts["weights"] == pytest.approx(weights, rel=1e-12)
    assert parts["weights"] / GIB == pytest.approx(36.803, abs=1e-3)
    assert fits(LLAMA_3_1_70B, GPUS["A100/H100 (80 GB)"], method="lora", weights="4bit", batch_size=1, seq_len=512,
                checkpointing=True)[0]


def test_full_fine_tuning_bytes_per_parameter():
    n = base_parameter_count(SMOLLM2_135M)
    kw = dict(method="full", batch_size=1, seq_len=8)
    mixed = peak_memory(SMOLLM2_135M, weights="bf16", **kw)  # 2 + 2 + (4 master + 8 moments) = 16 B/param
    assert (mixed["weights"], mixed["gradients"], mixed["optimizer"]) == (2 * n, 2 * n, 12 * n)
    pure = peak_memory(SMOLLM2_135M, weights="bf16", master_weights_fp32=False, **kw)  # torch AdamW: bf16 moments
    assert (pure["weights"], pure["gradients"], pure["optimizer"]) == (2 * n, 2 * n, 4 * n)
    fp32 = peak_memory(SMOLLM2_135M, weights="fp32", **kw)  # 4 + 4 + 8 = 16 B/param
    assert (fp32["weights"], fp32["gradients"], fp32["optimizer"]) == (4 * n, 4 * n, 8 * n)
    # bf16 autocast of an fp32 model: an fp32 residual stream and norms, a bf16 copy of the input per linear layer
    # (26h + 4q + 4kv + 8i + 8 + 4·heads per token per layer), and the bf16 copies of every linear weight.
    per_layer = 26 * 576 + 4 * 576 + 4 * 192 + 8 * 1536 + 8 + 4 * 9
    linears = 30 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536) + 49152 * 576  # blocks + (tied) lm_head
    assert fp32["activations"] == 30 * 8 * per_layer + 8 * (10 * 576 + 4) + 2 * linears


def test_8bit_adam_keeps_a_quarter_of_adams_states():
    for kw in (dict(method="lora", weights="4bit"), dict(method="full", weights="fp32")):
        adam = peak_memory(LLAMA_3_1_8B, batch_size=1, seq_len=64, **kw)["optimizer"]
        for opt in ("adamw_8bit", "paged_adamw_8bit"):
            assert peak_memory(LLAMA_3_1_8B, batch_size=1, seq_len=64, optimizer=opt, **kw)["optimizer"] == adam / 4


def test_chunked_logits_are_smaller_at_large_vocab():
    kw = dict(batch_size=4, seq_len=2048)
    fp32, bf16, chunked = (peak_memory(LLAMA_3_1_8B, logits=mode, **kw)["logits"] for mode in ("fp32", "bf16",
                                                                                                  "chunked"))
    assert fp32 == 4 * 2048 * 128256 * 12 and bf16 == fp32 / 2  # 11.7 GiB of logits at batch 4 x 2048
    assert chunked == 1024 * 128256 * 4 == fp32 / 24


def test_fit_table_marks_the_expected_cells():
    rows = fit_table(MODELS, batch_size=1, seq_len=1024, checkpointing=True)
    cell = {(row["model"], row["method"]): row for row in rows}
    assert len(rows) == 5 * 3
    t4, mid, big = GPUS
    assert all(cell["SmolLM2-135M", m][t4] for m in ("QLoRA", "LoRA", "full"))
    assert cell["Llama-3.1-8B", "QLoRA"][t4] and not cell["Llama-3.1-8B", "LoRA"][t4]  # 16 GB of bf16 weights
    assert cell["Llama-3.1-8B", "LoRA"][mid] and not cell["Llama-3.1-8B", "full"][big]  # 16 B/param = 120 GiB
    assert not cell["Llama-3.1-70B", "QLoRA"][mid] and cell["Llama-3.1-70B", "QLoRA"][big]
    assert cell["Llama-3.2-3B", "full"][big] and not cell["Llama-3.2-3B", "full"][mid]
    assert cell["Llama-3.1-70B", "QLoRA"]["total"] == pytest.approx(42.367, abs=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(weights="int8"), "weights must be one of"),
    (dict(method="full", weights="4bit"), "Full fine-tuning cannot update 4-bit weights: use method='lora'"),
    (dict(batch_size=0), "batch_size must be a whole number >= 1"),
    (dict(seq_len=1.5), "seq_len must be a whole number >= 1"),
    (dict(optimizer="sgd"), "optimizer must be one of"),
    (dict(logits="fp16"), "logits must be one of"),
    (dict(method="qlora"), "method must be 'lora' or 'full'"),
    (dict(targets="attention"), "targets must be 'all-linear' or a list"),
    (dict(targets=["q_proj", "gate"]), "Unknown targets"),
    (dict(cuda_overhead_gib=-1), "cuda_overhead_gib must be >= 0"),
    (dict(r=0), "r must be a whole number >= 1"),
])
def test_errors_say_what_to_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        peak_memory(SMOLLM2_135M, **{"batch_size": 1, "seq_len": 16, **kwargs})


def test_other_errors():
    with pytest.raises(ValueError, match="lacks"):
        peak_memory({"hidden_size": 64}, batch_size=1, seq_len=8)
    with pytest.raises(ValueError, match="gpu_gib is the GPU's usable memory"):
        fits(SMOLLM2_135M, 0, batch_size=1, seq_len=8)
    with pytest.raises(ValueError, match="sets \\['weights'\\] itself"):
        fit_table(MODELS, batch_size=1, seq_len=8, weights="bf16")
    with pytest.raises(ValueError, match="needs the batch_size and seq_len"):
        fit_table(MODELS)
    with pytest.raises(ValueError, match="method must be 'lora' or 'full'"):
        memory.block_activations(SMOLLM2_135M, method="qlora")
    with pytest.raises(ValueError, match="plot_breakdown needs rows like fit_table's"):
        memory.plot_breakdown([{"weights": 1.0}])
    with pytest.raises(ValueError, match="lacks \\['measured_gib'\\]"):
        memory.plot_predicted_vs_measured([{"name": "a", "predicted_gib": 1.0}])


def test_breakdown_figure_has_one_stacked_bar_per_row():
    rows = fit_table({"SmolLM2-135M": SMOLLM2_135M, "Llama-3.1-8B": LLAMA_3_1_8B}, batch_size=1, seq_len=512)
    fig = memory.plot_breakdown(rows)
    ax = fig.axes[0]
    assert len(ax.patches) == len(rows) * len(PARTS)  # one segment per part per bar, zero-width ones included
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{r['model']} · {r['method']}" for r in rows]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == sorted([*PARTS, "peak (total)", *(f"{g}: {v:g} GiB" for g, v in GPUS.items())])
    ends = [max(p.get_x() + p.get_width() for p in ax.patches if abs(p.get_y() + p.get_height() / 2 - k) < 1e-9)
            for k in range(len(rows))]
    assert ends == pytest.approx([r["total"] for r in rows])  # no checkpointing: the segments add up to the total
    assert ax.collections[0].get_offsets()[:, 0].tolist() == pytest.approx([r["total"] for r in rows])  # the ticks
    widths = {p.get_facecolor(): [] for p in ax.patches}
    for patch in ax.patches:
        widths[patch.get_facecolor()].append(patch.get_width())
    grads, acts = list(widths.values())[2], list(widths.values())[4]  # PARTS order: gradients 3rd, activations 5th
    full_8b = 5  # Llama-3.1-8B full FT peaks at the optimizer step: gradients shown, activations not
    assert grads[full_8b] == rows[full_8b]["gradients"] > 0 and acts[full_8b] == 0


# torch.cuda.max_memory_allocated over two steps (bf16 autocast, fused AdamW, sdpa, peft 0.21 r=16, random weights)
# on one H100 80GB, torch 2.11, transformers 5.17. Batches without padding unless "padded"; no CUDA context counted.
MEASURED_H100 = [  # name, shape, method, weights, batch, seq, checkpointing, padded, targets, measured GiB
    ("135M full b4x512", SMOLLM2_135M, "full", "bf16", 4, 512, False, False, "all-linear", 3.383),
    ("135M full b4x512 ckpt", SMOLLM2_135M, "full", "bf16", 4, 512, True, False, "all-linear", 1.958),
    ("135M LoRA b8x1024", SMOLLM2_135M, "lora", "bf16", 8, 1024, False, False, "all-linear", 11.031),
    ("135M LoRA b8x1024 padded", SMOLLM2_135M, "lora", "bf16", 8, 1024, False, True, "all-linear", 11.884),
    ("1.1B full fp32 b2x1024", memory.LLAMA_1B, "full", "fp32", 2, 1024, False, False, "all-linear", 19.520),
    ("1.1B LoRA b4x2048 ckpt", memory.LLAMA_1B, "lora", "bf16", 4, 2048, True, False, "all-linear", 5.873),
    ("1.1B LoRA q,v b4x2048", memory.LLAMA_1B, "lora", "bf16", 4, 2048, False, False, ["q_proj", "v_proj"], 16.395),
    ("3.2-1B full b2x1024", memory.LLAMA_3_2_1B, "full", "bf16", 2, 1024, False, False, "all-linear", 13.200),
    ("3.2-3B LoRA b2x2048", memory.LLAMA_3_2_3B, "lora", "bf16", 2, 2048, False, False, "all-linear", 27.523),
    ("3.2-3B LoRA b4x2048 ckpt", memory.LLAMA_3_2_3B, "lora", "bf16", 4, 2048, True, False, "all-linear", 19.406),
    ("8B LoRA b1x2048 ckpt", LLAMA_3_1_8B, "lora", "bf16", 1, 2048, True, False, "all-linear", 18.896),
    ("8B LoRA b2x1024", LLAMA_3_1_8B, "lora", "bf16", 2, 1024, False, False, "all-linear", 31.720),
]


def _measured_records() -> list[dict]:
    return [{"name": name, "measured_gib": measured, "predicted_gib": peak_memory(
        shape, method=method, weights=weights, batch_size=b, seq_len=t, checkpointing=ckpt, padding_free=not padded,
        targets=targets, master_weights_fp32=False, cuda_overhead_gib=0)["total"] / GIB}
        for name, shape, method, weights, b, t, ckpt, padded, targets, measured in MEASURED_H100]


def test_predictions_match_h100_measurements():
    for rec in _measured_records():  # within 0.3% but for the smallest model (-2.6%) and the padded batch (-3.1%)
        assert rec["predicted_gib"] == pytest.approx(rec["measured_gib"], rel=0.035), rec["name"]


def test_predicted_vs_measured_figure():
    records = _measured_records()
    ax = memory.plot_predicted_vs_measured(records).axes[0]
    assert [t.get_text() for t in ax.texts] == [r["name"] for r in records]
    points = [[r["predicted_gib"], r["measured_gib"]] for r in records]
    assert ax.collections[-1].get_offsets().ravel().tolist() == pytest.approx([x for p in points for x in p])
    (line,) = ax.lines
    assert list(line.get_xdata()) == list(line.get_ydata())  # y = x
    band = ax.collections[0].get_paths()[0].vertices
    top = 1.2 * max(max(p) for p in points)
    assert band[:, 1].max() == pytest.approx(1.15 * top)  # upper edge of the ±15% band at the right end


def test_weights_match_a_real_bf16_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    for tied in (False, True):
        config = LlamaConfig(**TINY, tie_word_embeddings=tied)
        model = LlamaForCausalLM(config).to(torch.bfloat16)
        stored = sum(p.numel() * p.element_size() for p in model.parameters())  # tied weights are counted once
        parts = peak_memory(config, method="full", weights="bf16", batch_size=1, seq_len=8)
        assert stored == parts["weights"] == (256 * 64 * (1 if tied else 2) + 2 * (36864 + 128) + 64) * 2


def _saved_bytes(layers: int, seq: int, method: str, weights: str, targets) -> int:
    """Bytes of the distinct tensors autograd saves (parameters excluded) in one forward of a random tiny llama."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{**TINY, "num_hidden_layers": layers}, attn_implementation="sdpa"))
    model = model.to(torch.bfloat16) if weights == "bf16" else model
    if method == "lora":
        model = get_peft_model(model, LoraConfig(r=8, target_modules=targets))
    params = {p.untyped_storage().data_ptr() for p in model.train().parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen.setdefault(storage.data_ptr(), storage.nbytes())
        return t

    ids = torch.randint(0, 256, (2, seq))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model(ids, labels=ids)  # HF Trainer with bf16=True runs the forward under bf16 autocast like this
    return sum(seen.values())


@pytest.mark.parametrize("method, weights, targets", [
    ("full", "bf16", None), ("full", "fp32", None), ("lora", "bf16", "all-linear"), ("lora", "bf16", ["q_proj",
                                                                                                      "v_proj"]),
])
def test_block_activations_equal_what_autograd_saves(method, weights, targets):
    # (3 layers - 2 layers) removes everything outside one block; (32 tokens - 16) removes what does not grow
    # with the tokens (autocast's weight copies): what is left is one block's bytes for 2 x 16 tokens.
    diff = [_saved_bytes(3, t, method, weights, targets) - _saved_bytes(2, t, method, weights, targets)
            for t in (32, 16)]
    predicted = memory.block_activations(TINY, method, weights, r=8, targets=targets or "all-linear")
    assert (diff[0] - diff[1]) / (2 * 16) == sum(predicted.values())


def test_bitsandbytes_4bit_storage_on_cpu():
    bnb = pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from course_lib import models

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(models.resolve("tiny"), quantization_config=quant, device_map="cpu",
                                                 dtype=torch.bfloat16)
    blocks = [m for name, m in model.named_modules() if name.split(".")[-1] in linear_shapes(TINY)]
    assert len(blocks) == 2 * 7 and all(isinstance(m, bnb.nn.Linear4bit) for m in blocks)
    # Each 4-bit layer: numel/2 bytes of packed nibbles (what get_memory_footprint counts) + one uint8 scale per 64
    # weights + one fp32 scale per 256 of those + an fp32 offset (the quant state, which it does not count).
    quant_state = 0
    for m in blocks:
        n, qs = m.weight.quant_state.shape.numel(), m.weight.quant_state
        assert m.weight.numel() * m.weight.element_size() == n // 2
        assert qs.absmax.nbytes == n // 64 and qs.state2.absmax.nbytes == 4 * math.ceil(n / 64 / 256)
        quant_state += qs.absmax.nbytes + qs.state2.absmax.nbytes + qs.offset.nbytes
    buffers = sum(b.nbytes for b in model.buffers())  # rotary inv_freq: not weights
    stored = model.get_memory_footprint() - buffers + quant_state
    predicted = peak_memory(model.config, method="lora", weights="4bit", batch_size=1, seq_len=8)["weights"]
    assert stored == pytest.approx(predicted, rel=1e-3)  # small layers round up to a whole fp32 scale per layer
    assert model.get_memory_footprint() == pytest.approx(predicted, rel=1e-2)
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3, 4, 5]])).logits
    assert logits.shape == (1, 5, model.config.vocab_size) and torch.isfinite(logits).all()
