"""Shipping: merge (checked against the adapter model), safetensors round trip, GGUF export read back by
transformers (metadata, tokenizer, logits, greedy text), the Ollama Modelfile and its template, bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from course_lib import __version__, data, gguf_export, models, ship, train

# Tiny model, small adapter: measured max |Δlogit| vs the adapter model 4e-4 (f16) and 1e-2 (q8_0), on logits of
# size ~0.7. The bounds leave a margin of about 5x: f16 rounds each weight by <= 2**-11 relative, q8_0 by up to
# max|w|/254 per block of 32, about ten times more.
F16_ATOL = 2e-3
Q8_ATOL = 5e-2


@pytest.fixture(scope="module")
def adapter_model(tiny_model):
    """The tiny model with a small random LoRA adapter (B scaled to a trained adapter's size), seed 0."""
    from peft import LoraConfig, get_peft_model

    model, _ = tiny_model
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(copy.deepcopy(model), config).eval()
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.1)
    return peft_model


@pytest.fixture(scope="module")
def shipped(adapter_model, tiny_model, tmp_path_factory):
    """Adapter on disk, merged folder, and both GGUF files."""
    _, tok = tiny_model
    root = tmp_path_factory.mktemp("ship")
    adapter = train.save_adapter(adapter_model, root / "adapter")
    merged, gap = ship.merge_adapter(adapter_model)
    folder = ship.save_merged(merged, tok, root / "merged", adapter=adapter)
    ggufs = {dtype: ship.export(folder, root / f"m-{dtype}.gguf", dtype) for dtype in ship.DTYPES}
    return {"root": root, "adapter": adapter, "merged": merged, "gap": gap, "folder": folder, "gguf": ggufs}


def _prompts(n: int = 8) -> list[list[dict]]:
    rows = train.with_system_prompt(data.load_split("heldout")[:n], train.SHORT_SYSTEM_PROMPT)
    return [r["messages"][:-1] for r in rows]


# ------------------------------------------------------------------------------------------------------- merge

def test_merge_equals_the_adapter_model_and_leaves_it_alone(adapter_model, tiny_model, shipped):
    base, tok = tiny_model
    assert 0 <= shipped["gap"] <= 1e-5  # fp32 rounding on logits of size ~0.7 (measured 1.4e-6)
    merged = shipped["merged"]
    assert not hasattr(merged, "peft_config") and type(merged).__name__ == "LlamaForCausalLM"
    assert any("lora_A" in n for n, _ in adapter_model.named_parameters())  # the adapter model is still unmerged
    ids = tok("My fern arrived with brown leaves.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        moved = (merged(input_ids=ids).logits - base(input_ids=ids).logits).abs().max().item()
        gap = (merged(input_ids=ids).logits - adapter_model(input_ids=ids).logits).abs().max().item()
    assert moved > 1000 * gap  # the adapter really changes the model, so the check could fail
    assert gap <= 1e-5


def test_merge_refuses_what_it_cannot_merge(adapter_model, tiny_model):
    with pytest.raises(TypeError, match="needs a peft model"):
        ship.merge_adapter(tiny_model[0])
    with pytest.raises(RuntimeError, match=r"differ from the adapter model's by .* \(> 1e-12\)"):
        ship.merge_adapter(adapter_model, atol=1e-12)
    with pytest.raises(ValueError, match="stored in bfloat16.*dtype=torch.float32"):
        ship.merge_adapter(copy.deepcopy(adapter_model).to(torch.bfloat16))


# ---------------------------------------------------------------------------------------------- safetensors

def test_safetensors_round_trip_is_exact_and_has_provenance(shipped):
    from transformers import AutoModelForCausalLM

    folder = shipped["folder"]
    back = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    want = shipped["merged"].state_dict()
    got = back.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    prov = ship.read_provenance(folder)
    assert prov["adapter_sha256"] == ship.sha256_file(shipped["adapter"] / "adapter_model.safetensors")
    assert prov["weights_sha256"] == {"model.safetensors": ship.sha256_file(folder / "model.safetensors")}
    assert prov["course_lib"] == __version__ and prov["dtype"] == "float32"
    assert prov["adapter"] == str(shipped["adapter"]) and prov["base_model"].endswith("tiny-llama")


def test_save_merged_refuses_peft_models_and_full_folders(adapter_model, tiny_model, shipped):
    with pytest.raises(TypeError, match="merge it first"):
        ship.save_merged(adapter_model, tiny_model[1], shipped["root"] / "other")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ship.save_merged(shipped["merged"], tiny_model[1], shipped["folder"])
    with pytest.raises(FileNotFoundError, match="no adapter_model.safetensors"):
        ship.save_merged(shipped["merged"], tiny_model[1], shipped["root"] / "x", adapter=shipped["root"])


# ---------------------------------------------------------------------------------------------------- GGUF

def test_gguf_metadata_is_exact(shipped):
    for dtype, ftype, matrix_type in (("f16", 1, "F16"), ("q8_0", 7, "Q8_0")):
        meta = gguf_export.read_metadata(shipped["gguf"][dtype]["path"])
        assert {k: meta[k] for k in ("general.architecture", "llama.block_count", "llama.context_length",
                                     "llama.embedding_length", "llama.feed_forward_length",
                                     "llama.attention.head_count", "llama.attention.head_count_kv",
                                     "llama.rope.dimension_count", "llama.vocab_size", "general.file_type")} == {
            "general.architecture": "llama", "llama.block_count": 2, "llama.context_length": 2048,
            "llama.embedding_length": 64, "llama.feed_forward_length": 128, "llama.attention.head_count": 4,
            "llama.attention.head_count_kv": 2, "llama.rope.dimension_count": 16, "llama.vocab_size": 49152,
            "general.file_type": ftype}
        assert meta["llama.rope.freq_base"] == 10000.0
        assert meta["llama.attention.layer_norm_rms_epsilon"] == np.float32(1e-5)
        tensors = meta["tensors"]
        assert len(tensors) == 1 + 2 * 9 + 1 and "output.weight" not in tensors  # tied: no output matrix
        assert tensors["token_embd.weight"] == matrix_type and tensors["blk.1.attn_k.weight"] == matrix_type
        assert tensors["blk.0.attn_norm.weight"] == "F32" and tensors["output_norm.weight"] == "F32"
        assert (meta["tokenizer.ggml.model"], meta["tokenizer.ggml.pre"]) == ("gpt2", "smollm")
        assert (meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]) == (1, 2)
        assert meta["tokenizer.ggml.add_bos_token"] is False
        assert "sha256" in meta["general.description"] and __version__ in meta["general.description"]


def test_gguf_tokenizer_fields_equal_the_published_smollm2_gguf(shipped):
    """The tiny model shares SmolLM2's tokenizer, so our tokens, types and merges must equal those of the GGUF
    file SmolLM2 ships in (written by llama.cpp's own converter)."""
    import gguf

    ours = gguf.GGUFReader(shipped["gguf"]["f16"]["path"]).fields
    theirs = gguf.GGUFReader(models.find_embedded_gguf()).fields
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                "tokenizer.chat_template"):
        assert ours[key].contents() == theirs[key].contents(), key


def test_rope_permutation_is_what_transformers_undoes():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    weight = np.arange(8 * 2 * 3, dtype=np.float32).reshape(8 * 2, 3)  # 4 heads of dimension 4 (rows), 3 columns
    undo = LlamaTensorProcessor({"num_attention_heads": 4, "num_key_value_heads": 2})
    permuted = gguf_export.permute_for_rope(weight, 4)
    assert not np.array_equal(permuted, weight)
    assert np.array_equal(undo._reverse_permute_weights(permuted, 4, 4), weight)
    assert np.array_equal(permuted[:4, 0], [0, 6, 3, 9])  # head 0 (rows 0-3): pairs (0, 2), (1, 3) interleaved
    k = weight[:8]
    assert np.array_equal(undo._reverse_permute_weights(gguf_export.permute_for_rope(k, 2), 4, 2), k)


@pytest.fixture(scope="module")
def loaded(shipped):
    """Both GGUF files read back by transformers (the tokenizer from the f16 file only: it is slow to rebuild)."""
    return {dtype: ship.load_gguf(shipped["gguf"][dtype]["path"], with_tokenizer=dtype == "f16")
            for dtype in ship.DTYPES}


@pytest.mark.parametrize("dtype, atol, min_top1", [("f16", F16_ATOL, 1.0), ("q8_0", Q8_ATOL, 0.95)])
def test_gguf_round_trip_through_transformers(loaded, adapter_model, tiny_model, dtype, atol, min_top1):
    result = ship.compare(adapter_model, loaded[dtype][0], tiny_model[1], _prompts(), max_new_tokens=24)
    assert result["max_abs_logit_diff"] <= atol
    assert result["top1_agreement"] >= min_top1 and result["positions"] > 8 * 40
    if dtype == "f16":
        assert all(result["identical"]), result["texts_a"]


def test_gguf_tokenizer_round_trip(loaded, tiny_model):
    tok, back_tok = tiny_model[1], loaded["f16"][1]
    assert loaded["q8_0"][1] is None
    for text in ("Hello GreenLeaf!", "  two spaces, digits 12345 and émoji 🌿", "<|im_start|>user\nhi<|im_end|>\n"):
        assert back_tok(text)["input_ids"] == tok(text)["input_ids"], text
    messages = _prompts(1)[0]
    assert back_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert (back_tok.eos_token, back_tok.pad_token) == ("<|im_end|>", models.PAD_TOKEN)


def test_export_from_a_model_object_equals_export_from_its_folder(shipped, tiny_model, tmp_path):
    out = gguf_export.export_gguf(shipped["merged"], tmp_path / "m.gguf", "q8_0", tokenizer=tiny_model[1])
    import gguf

    a = {t.name: bytes(t.data) for t in gguf.GGUFReader(out["path"]).tensors}
    b = {t.name: bytes(t.data) for t in gguf.GGUFReader(shipped["gguf"]["q8_0"]["path"]).tensors}
    assert a == b


def test_export_bad_input_says_what_to_do(shipped, adapter_model, tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    with pytest.raises(gguf_export.ExportError, match=r"dtype='q4_k' is not one of \('f16', 'q8_0'\)"):
        ship.export(shipped["folder"], tmp_path / "x.gguf", "q4_k")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ship.export(tmp_path / "missing", tmp_path / "x.gguf")
    with pytest.raises(gguf_export.ExportError, match="not a saved model folder"):
        gguf_export.export_gguf(tmp_path, tmp_path / "x.gguf")
    with pytest.raises(gguf_export.ExportError, match="merge it first"):
        gguf_export.export_gguf(adapter_model, tmp_path / "x.gguf", tokenizer=tiny_model[1])
    with pytest.raises(gguf_export.ExportError, match="needs its tokenizer"):
        gguf_export.export_gguf(shipped["merged"], tmp_path / "x.gguf")
    gpt2 = AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64))
    with pytest.raises(gguf_export.ExportError, match="Only llama-architecture.*'gpt2' models.*convert_hf_to_gguf"):
        gguf_export.export_gguf(gpt2, tmp_path / "x.gguf", tokenizer=tiny_model[1])
    scaled = LlamaConfig(**{**json.loads((shipped["folder"] / "config.json").read_text()),
                            "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}})
    with pytest.raises(gguf_export.ExportError, match="rope scaling 'linear'"):
        gguf_export.check_architecture(scaled)
    assert not (tmp_path / "x.gguf").exists()
    with pytest.raises(FileNotFoundError, match="not a .gguf file"):
        ship.load_gguf(tmp_path / "missing.gguf")


# ------------------------------------------------------------------------------------------------ Modelfile

CONVERSATIONS = [
    [{"role": "user", "content": "Where is my order?"}],
    [{"role": "system", "content": train.SHORT_SYSTEM_PROMPT}, {"role": "user", "content": "Fern died.\n\nHelp"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": '{"x": 1}'}, {"role": "user", "content": ""}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
     {"role": "user", "content": "u2 {{ not a template }}"}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS, ids=range(len(CONVERSATIONS)))
def test_template_renders_exactly_what_the_chat_template_renders(tokenizer, messages):
    template = ship.chatml_template(tokenizer)
    assert ship.render_template(template, messages) == \
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_modelfile_content(shipped, tokenizer):
    path = ship.write_modelfile(shipped["gguf"]["q8_0"]["path"], tokenizer, shipped["root"])
    lines = path.read_text().splitlines()
    sha = ship.sha256_file(shipped["gguf"]["q8_0"]["path"])
    assert lines[0] == f"# m-q8_0.gguf: sha256 {sha}, written by course_lib {__version__}"
    assert lines[1] == "FROM ./m-q8_0.gguf"
    text = path.read_text()
    assert f'TEMPLATE """{ship.chatml_template(tokenizer)}"""' in text
    assert lines[-3:] == [f'SYSTEM """{train.SHORT_SYSTEM_PROMPT}"""', 'PARAMETER stop "<|im_end|>"',
                          "PARAMETER temperature 0"]
    elsewhere = ship.write_modelfile(shipped["gguf"]["f16"]["path"], tokenizer, shipped["root"] / "ollama", system="Hi")
    assert f"FROM ./../m-f16.gguf" not in elsewhere.read_text()
    assert f"FROM {shipped['gguf']['f16']['path'].resolve()}" in elsewhere.read_text()


def test_modelfile_bad_input(shipped, tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="export the GGUF first"):
        ship.write_modelfile(tmp_path / "none.gguf", tokenizer, tmp_path)
    with pytest.raises(ValueError, match='contains """'):
        ship.write_modelfile(shipped["gguf"]["f16"]["path"], tokenizer, tmp_path, system='say """')
    other = copy.deepcopy(tokenizer)
    other.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(ValueError, match="not ChatML"):
        ship.chatml_template(other)
    with pytest.raises(ValueError, match="does not support"):
        ship.render_template("{{ printf .Messages }}", [])
