"""Write a llama-architecture model (SmolLM2 is one) to a GGUF file with the ``gguf`` package: the file llama.cpp,
Ollama and LM Studio run, and transformers reads back (``ship.load_gguf``). Nothing to build: no llama.cpp.

What goes in, as llama.cpp's own converter (``convert_hf_to_gguf.py``) writes it for a llama model:

- metadata under llama.cpp's key names (``llama.block_count``, ``llama.attention.head_count_kv``, ...);
- the tokenizer: byte-level BPE tokens, their types (3 = control for special tokens), merges, special token ids,
  whether a BOS token is added, and the chat template;
- the tensors under llama.cpp's names (``gguf.get_tensor_name_map``), with the rows of the query and key
  projections reordered for llama.cpp's rope (it rotates pairs of neighbouring dimensions; transformers rotates the
  first half against the second half), 1-D tensors (norms) in f32, 2-D tensors in f16 or Q8_0 (``gguf.quants``).
  Tied embeddings are stated the llama.cpp way: no ``output.weight`` tensor.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DTYPES = ("f16", "q8_0")
UNSUPPORTED = ("Only llama-architecture models (LlamaForCausalLM, such as SmolLM2) can be exported here. For {what}, "
               "use llama.cpp's convert_hf_to_gguf.py, which knows every architecture llama.cpp runs "
               "(clone github.com/ggml-org/llama.cpp, pip install -r requirements.txt, then python "
               "convert_hf_to_gguf.py <saved folder>; converting needs no build).")


class ExportError(ValueError):
    """The model or the arguments cannot be exported; the message says why and what to do."""


def permute_for_rope(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the rows of a q or k projection (``n_head`` heads) from transformers' rope layout (each head: first
    half of its dimensions rotated against the second half) to llama.cpp's (neighbouring pairs rotated together).
    Same as ``LlamaModel.permute`` in llama.cpp's converter; transformers undoes it when it reads a GGUF."""
    return (weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def check_architecture(config) -> dict:
    """The llama hyper-parameters a GGUF file states, read from a transformers config; ``ExportError`` for any
    model this exporter would write wrongly (another architecture, rope scaling, biases)."""
    archs = getattr(config, "architectures", None) or []
    if getattr(config, "model_type", None) != "llama" or (archs and archs[0] != "LlamaForCausalLM"):
        raise ExportError(UNSUPPORTED.format(what=f"{archs[0] if archs else config.model_type!r} models"))
    rope = dict(getattr(config, "rope_parameters", None) or {})
    theta = rope.get("rope_theta", getattr(config, "rope_theta", None))
    if rope.get("rope_type", "default") != "default":  # transformers 5 keeps rope scaling in rope_parameters
        raise ExportError(UNSUPPORTED.format(what=f"rope scaling {rope.get('rope_type')!r}"))
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ExportError(UNSUPPORTED.format(what="llama models with biases"))
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if head_dim * heads != config.hidden_size:
        raise ExportError(UNSUPPORTED.format(what="a head size other than hidden_size / heads"))
    return {
        "context_length": config.max_position_embeddings, "embedding_length": config.hidden_size,
        "block_count": config.num_hidden_layers, "feed_forward_length": config.intermediate_size,
        "head_count": heads, "head_count_kv": config.num_key_value_heads or heads, "rope_freq_base": float(theta),
        "rms_eps": float(config.rms_norm_eps), "rope_dimension_count": head_dim, "vocab_size": config.vocab_size,
        "tied_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
    }


def _vocab(tokenizer, n_vocab: int) -> tuple[list[str], list[int]]:
    """Tokens by id and their llama.cpp types, padded to the model's vocabulary size as llama.cpp pads it."""
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model, decoder = spec.get("model", {}), spec.get("decoder") or {}
    if model.get("type") != "BPE" or decoder.get("type") != "ByteLevel":
        raise ExportError("Only byte-level BPE tokenizers (GPT-2 style, as SmolLM2's) are exported here; this one is "
                          f"{model.get('type')!r} with decoder {decoder.get('type')!r}. Sentencepiece vocabularies "
                          "need llama.cpp's convert_hf_to_gguf.py.")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    if len(by_id) > n_vocab:
        raise ExportError(f"The tokenizer has {len(by_id)} tokens but the model only {n_vocab} embedding rows: "
                          "they do not belong together. Save the model with the tokenizer it was trained with.")
    added = {tok.content: tok.special for tok in tokenizer.added_tokens_decoder.values()}
    tokens, types = [], []
    for i in range(n_vocab):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]"), types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token), types.append(gguf.TokenType.CONTROL if added[token] else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token), types.append(gguf.TokenType.NORMAL)
    return tokens, [int(t) for t in types]


def _add_tokenizer(writer, tokenizer, n_vocab: int, pre: str) -> None:
    import gguf

    tokens, types = _vocab(tokenizer, n_vocab)
    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory() as folder:  # SpecialVocab reads the tokenizer's files: merges, ids, template
        tokenizer.save_pretrained(folder)
        special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=n_vocab)
    if not special.merges:
        raise ExportError("The tokenizer has no BPE merges to write: llama.cpp could not tokenize with it.")
    special.add_to_gguf(writer, quiet=True)
    if "bos" not in special.add_special_token:  # llama.cpp adds a BOS to BPE vocabularies unless told not to
        probe = tokenizer("a", add_special_tokens=True)["input_ids"]
        writer.add_add_bos_token(bool(probe) and probe[0] == tokenizer.bos_token_id
                                 and probe != tokenizer("a", add_special_tokens=False)["input_ids"])


def _tensors(source) -> dict[str, torch.Tensor]:
    if isinstance(source, Path):
        from safetensors import safe_open

        files = sorted(source.glob("*.safetensors"))
        if not files:
            raise ExportError(f"{source} has no *.safetensors weights: save the model with ship.save_merged first.")
        out = {}
        for file in files:
            with safe_open(file, framework="pt") as f:
                out.update({name: f.get_tensor(name) for name in f.keys()})
        return out
    return {name: t.detach() for name, t in source.state_dict().items()}


def _gguf_tensor(array: np.ndarray, dtype: str):
    """``(data, raw_dtype)`` as GGUFWriter.add_tensor takes them: 1-D in f32; 2-D in f16 or Q8_0 (blocks of 32
    along a row; a row whose length is not a multiple of 32 stays f16, as llama.cpp's converter does)."""
    import gguf

    if array.ndim == 1:
        return array.astype(np.float32), None
    if dtype == "q8_0" and array.shape[-1] % 32 == 0:
        q8 = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(array.astype(np.float32), q8), q8
    if np.abs(array).max() > np.finfo(np.float16).max:
        raise ExportError("A weight is larger than f16 can hold (65504): export with dtype='q8_0', or use llama.cpp's "
                          "converter with --outtype bf16.")
    return array.astype(np.float16), None


def export_gguf(source, out_path: str | Path, dtype: str = "f16", tokenizer=None, tokenizer_pre: str = "smollm",
                description: str | None = None) -> dict:
    """Write ``source`` to the GGUF file ``out_path`` and return ``{"path", "bytes", "seconds", "tensors"}``.

    ``source``: a folder saved by ``ship.save_merged`` (config, safetensors, tokenizer), or a merged (not peft)
    llama model together with ``tokenizer``. ``dtype``: ``"f16"`` (every 2-D weight rounded to half precision:
    relative error below 2**-11) or ``"q8_0"`` (8-bit integers with one f16 scale per block of 32 weights: about
    half the size of f16, error up to half a step of ``max|w| / 127`` in each block). ``tokenizer_pre``: the name
    llama.cpp knows the pre-tokenizer (text splitting) by; ``"smollm"`` is SmolLM2's, as its published GGUF states.
    ``description`` goes to ``general.description`` (``ship.export`` passes the provenance there)."""
    import gguf
    from transformers import AutoConfig, AutoTokenizer

    if dtype not in DTYPES:
        raise ExportError(f"dtype={dtype!r} is not one of {DTYPES}: 'f16' (half precision, twice the size, nearly "
                          "lossless) or 'q8_0' (8-bit blocks, half of f16's size, a small rounding error).")
    if isinstance(source, (str, Path)):
        source = Path(source)
        if not (source / "config.json").is_file():
            raise ExportError(f"{source} is not a saved model folder (no config.json). Save the merged model with "
                              "ship.save_merged(model, tokenizer, folder) and export that folder.")
        config, tokenizer = AutoConfig.from_pretrained(source), tokenizer or AutoTokenizer.from_pretrained(source)
    else:
        if hasattr(source, "peft_config"):
            raise ExportError("This is a peft model with its adapter still separate: merge it first "
                              "(merged, gap = ship.merge_adapter(model)) and export the merged model.")
        if tokenizer is None:
            raise ExportError("Exporting a model object needs its tokenizer too: export_gguf(model, path, "
                              "tokenizer=tokenizer).")
        config = source.config
    hp = check_architecture(config)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    writer = gguf.GGUFWriter(out_path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(Path(str(getattr(config, "_name_or_path", "") or "model")).name)
    if description:
        writer.add_description(description)
    writer.add_context_length(hp["context_length"])
    writer.add_embedding_length(hp["embedding_length"])
    writer.add_block_count(hp["block_count"])
    writer.add_feed_forward_length(hp["feed_forward_length"])
    writer.add_head_count(hp["head_count"])
    writer.add_head_count_kv(hp["head_count_kv"])
    writer.add_rope_freq_base(hp["rope_freq_base"])
    writer.add_layer_norm_rms_eps(hp["rms_eps"])
    writer.add_rope_dimension_count(hp["rope_dimension_count"])
    writer.add_vocab_size(hp["vocab_size"])
    ftype = gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(int(ftype))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_tokenizer(writer, tokenizer, hp["vocab_size"], tokenizer_pre)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, hp["block_count"])
    written: dict[str, str] = {}
    for hf_name, tensor in _tensors(source).items():
        if hf_name.endswith("rotary_emb.inv_freq") or (hf_name == "lm_head.weight" and hp["tied_embeddings"]):
            continue  # recomputed from the metadata / the embedding matrix is the output layer
        stem, _, suffix = hf_name.rpartition(".")
        gguf_stem = names.get_name(stem)
        if gguf_stem is None:
            raise ExportError(f"Tensor {hf_name!r} has no llama.cpp name: this is not a plain llama model. "
                              + UNSUPPORTED.format(what="it"))
        array = tensor.float().numpy()
        if stem.endswith("self_attn.q_proj"):
            array = permute_for_rope(array, hp["head_count"])
        elif stem.endswith("self_attn.k_proj"):
            array = permute_for_rope(array, hp["head_count_kv"])
        data, raw = _gguf_tensor(array, dtype)
        name = f"{gguf_stem}.{suffix}"
        writer.add_tensor(name, data, raw_dtype=raw)
        written[name] = raw.name if raw is not None else {np.float16: "F16", np.float32: "F32"}[data.dtype.type]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"path": out_path, "bytes": out_path.stat().st_size, "seconds": time.perf_counter() - start,
            "tensors": written}


def read_metadata(path: str | Path) -> dict:
    """A GGUF file's metadata (every key except the long tokenizer arrays, which are given as their lengths) and
    ``"tensors"``: name -> ggml type, as ``gguf.GGUFReader`` reads them."""
    import gguf

    reader = gguf.GGUFReader(Path(path))
    out: dict = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        long_array = field.types and field.types[0] == gguf.GGUFValueType.ARRAY and len(field.data) > 64
        out[key] = len(field.data) if long_array else field.contents()
    out["tensors"] = {t.name: t.tensor_type.name for t in reader.tensors}
    return out
