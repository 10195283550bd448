"""Parameter and memory arithmetic from a model's shape, without building it: published shapes of a few llama
models, the linear layers of a block, LoRA's trainable parameters against the whole model's, and the bytes that
weights, gradients and optimizer state take when training fully, with LoRA or with QLoRA.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from course_lib.lora.layer import ALL_LINEAR, _check_hyperparameters


# Published shapes (the models' config.json on the Hugging Face hub) so the arithmetic needs no download.
SMOLLM2_135M = dict(  # HuggingFaceTB/SmolLM2-135M-Instruct, the course's embedded model
    hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
    vocab_size=49152, tie_word_embeddings=True,
)
LLAMA_3_1_8B = dict(  # meta-llama/Llama-3.1-8B: 8.03B parameters
    hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
    vocab_size=128256, tie_word_embeddings=False,
)
LLAMA_3_1_70B = dict(  # meta-llama/Llama-3.1-70B: 70.6B parameters
    hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
    vocab_size=128256, tie_word_embeddings=False,
)
LLAMA_1B = dict(  # TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T: 1.10B parameters
    hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
    vocab_size=32000, tie_word_embeddings=False,
)
LLAMA_3_2_1B = dict(  # meta-llama/Llama-3.2-1B: 1.24B parameters
    hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
    vocab_size=128256, tie_word_embeddings=True,
)
LLAMA_3_2_3B = dict(  # meta-llama/Llama-3.2-3B: 3.21B parameters
    hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8,
    vocab_size=128256, tie_word_embeddings=True,
)

BYTES_PER_PARAM = {
    "fp32": 4.0,
    "bf16": 2.0,
    # nf4 with double quantisation (QLoRA): 4 bits + one 8-bit scale per 64 weights + one fp32 scale per 256
    # of those blocks = ~4.127 bits per weight.
    "4bit": (4 + 8 / 64 + 32 / (64 * 256)) / 8,
}
ADAM_BYTES = 8.0  # Adam keeps two fp32 moments (m and v) per trainable parameter


def _shape(config: Mapping[str, Any] | Any) -> dict[str, Any]:
    get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
    shape = {k: get(k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                 "num_key_value_heads", "vocab_size")}
    missing = [k for k, v in shape.items() if v is None]
    if missing:
        raise ValueError(f"The model shape lacks {missing}; pass a transformers config or a dict like LLAMA_3_1_8B.")
    shape["head_dim"] = get("head_dim") or shape["hidden_size"] // shape["num_attention_heads"]
    shape["tie_word_embeddings"] = bool(get("tie_word_embeddings", False))
    return shape


def linear_shapes(config: Mapping[str, Any] | Any) -> dict[str, tuple[int, int]]:
    """``(in_features, out_features)`` of each linear layer of one llama block."""
    s = _shape(config)
    h, i, q, kv = s["hidden_size"], s["intermediate_size"], s["num_attention_heads"] * s["head_dim"], \
        s["num_key_value_heads"] * s["head_dim"]
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def lora_parameter_count(config: Mapping[str, Any] | Any, r: int, targets: list[str]) -> int:
    """Trainable LoRA parameters: ``r · (in + out)`` per targeted layer, times the number of blocks."""
    _check_hyperparameters(r, 1.0, 0.0)
    shapes = linear_shapes(config)
    unknown = [t for t in targets if t not in shapes]
    if unknown:
        raise ValueError(f"Unknown targets {unknown} for a llama block; choose from {list(shapes)}.")
    per_block = sum(r * (shapes[t][0] + shapes[t][1]) for t in targets)
    return per_block * _shape(config)["num_hidden_layers"]


def base_parameter_count(config: Mapping[str, Any] | Any) -> int:
    """All parameters of a llama model (no biases): embeddings, blocks (linears + 2 norms), final norm, lm_head."""
    s = _shape(config)
    embed = s["vocab_size"] * s["hidden_size"]
    block = sum(a * b for a, b in linear_shapes(s).values()) + 2 * s["hidden_size"]
    head = 0 if s["tie_word_embeddings"] else embed
    return embed + s["num_hidden_layers"] * block + s["hidden_size"] + head


def training_memory(
    config: Mapping[str, Any] | Any, method: str, dtype: str = "bf16", r: int = 16, targets: list[str] = ALL_LINEAR,
) -> dict[str, float]:
    """Bytes for weights, gradients and optimizer state when training with Adam; activations NOT included.

    ``method``: ``"full"`` (every weight trains) or ``"lora"`` (frozen base + fp32 adapters).
    ``dtype``: how the base weights are stored, ``"fp32"``, ``"bf16"`` or ``"4bit"`` (``"lora"`` + ``"4bit"`` is
    QLoRA: the blocks' linear layers in nf4, embeddings, norms and lm_head stay bf16, as bitsandbytes leaves them).
    Full training in bf16 also keeps an fp32 master copy of the weights (mixed precision), counted as optimizer state.
    """
    if dtype not in BYTES_PER_PARAM:
        raise ValueError(f"dtype must be one of {list(BYTES_PER_PARAM)}, got {dtype!r}.")
    if method not in ("full", "lora"):
        raise ValueError(f"method must be 'full' or 'lora', got {method!r}.")
    total = base_parameter_count(config)
    if method == "full":
        if dtype == "4bit":
            raise ValueError("Full fine-tuning cannot update 4-bit weights: use method='lora' (that is QLoRA).")
        bytes_ = BYTES_PER_PARAM[dtype]
        master = 4.0 if dtype != "fp32" else 0.0
        return _with_total({"weights": total * bytes_, "gradients": total * bytes_,
                            "optimizer": total * (ADAM_BYTES + master)})
    adapters = lora_parameter_count(config, r, targets)
    if dtype == "4bit":
        s = _shape(config)
        quantised = s["num_hidden_layers"] * sum(a * b for a, b in linear_shapes(s).values())
        weights = quantised * BYTES_PER_PARAM["4bit"] + (total - quantised) * BYTES_PER_PARAM["bf16"]
    else:
        weights = total * BYTES_PER_PARAM[dtype]
    return _with_total({"weights": weights + adapters * 4.0, "gradients": adapters * 4.0,
                        "optimizer": adapters * ADAM_BYTES})


def _with_total(parts: dict[str, float]) -> dict[str, float]:
    return {**parts, "total": sum(parts.values())}


def plot_trainable_vs_rank(
    models: Mapping[str, Mapping[str, Any] | Any], ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
    targets: list[str] = ALL_LINEAR,
):
    """Figure: LoRA's trainable parameters (as % of the model, log scale) against the rank, one line per model."""
    from course_lib.plots import new_figure

    fig, (ax,) = new_figure()
    for label, config in models.items():
        total = base_parameter_count(config)
        ax.plot(ranks, [100 * lora_parameter_count(config, r, targets) / total for r in ranks], "o-", label=label)
    ax.set(xscale="log", yscale="log", xlabel="rank r", ylabel="trainable parameters (% of model)",
           title=f"LoRA on {'all linear layers' if list(targets) == ALL_LINEAR else ', '.join(targets)}")
    ax.set_xticks(ranks, [str(r) for r in ranks])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig
