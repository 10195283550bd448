"""How much GPU memory one training step needs, from a model's shape: weights, LoRA adapters, gradients, optimizer
state, activations (counted tensor by tensor for a llama block), logits and a fixed CUDA overhead; whether that fits
a given GPU, a table over models x methods x GPUs, and two figures.

Everything is in bytes unless a name says GiB (1 GiB = 2**30 bytes). Parameter counts and weight bytes come from
``course_lib.lora.arithmetic``. The activation model was checked tensor by tensor against what autograd really keeps
(``torch.autograd.graph.saved_tensors_hooks``) on a small ``LlamaForCausalLM`` (transformers 5, SDPA attention,
peft 0.21): ``tests/test_memory.py`` does that check on every run. The whole peak was checked against
``torch.cuda.max_memory_allocated`` on an H100 for 12 configurations (135M to 8B, LoRA and full, with and without
checkpointing): all within 3.1%, most within 0.3%; the test file keeps those measurements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from course_lib.lora.arithmetic import (BYTES_PER_PARAM, LLAMA_1B, LLAMA_3_1_8B, LLAMA_3_1_70B, LLAMA_3_2_1B,
                                        LLAMA_3_2_3B, SMOLLM2_135M, _shape, base_parameter_count, linear_shapes,
                                        lora_parameter_count, training_memory)
from course_lib.lora.layer import ALL_LINEAR

GIB = 2**30
MODELS = {"SmolLM2-135M": SMOLLM2_135M, "TinyLlama-1.1B": LLAMA_1B, "Llama-3.2-3B": LLAMA_3_2_3B,
          "Llama-3.1-8B": LLAMA_3_1_8B, "Llama-3.1-70B": LLAMA_3_1_70B}

# Usable GiB per card: what the driver reports as total memory (nvidia-smi), rounded down. It is less than the
# label: ECC and the driver keep part of the chip (a T4 shows 15360 MiB of its 16 GiB), an A10 shows 22.5 GiB
# (its row is also the RTX 4090's, 24.0 GiB, so the smaller card decides), an 80 GB H100 shows 79.6 GiB. What
# PyTorch itself costs on top (the CUDA context, cuBLAS workspaces, the caching allocator's fragmentation) is
# ``peak_memory``'s "overhead" part, so it is not subtracted twice. A T4 has no bf16: it trains in fp16, the same bytes.
GPUS = {"T4 (16 GB)": 15.0, "RTX 4090 / A10 (24 GB)": 22.0, "A100/H100 (80 GB)": 79.0}
PARTS = ("weights", "adapters", "gradients", "optimizer", "activations", "logits", "overhead")
OPTIMIZER_STATE_BYTES = {"adamw": None, "adamw_8bit": 2.0, "paged_adamw_8bit": 2.0}  # None: the parameter's dtype
# Bytes per (token, vocab entry) at the loss's worst moment, the backward of log_softmax: its saved fp32 output, the
# gradient coming in and the gradient going out (4 + 4 + 4; the forward's bf16 logits + fp32 copy + output is 10).
LOGITS = {"fp32": 12.0, "bf16": 6.0, "chunked": 4.0}
LOGIT_CHUNK = 1024  # tokens per chunk of a chunked loss (Liger / trl); ~one chunk is alive at a time
METHODS = {"QLoRA": dict(method="lora", weights="4bit"), "LoRA": dict(method="lora", weights="bf16"),
           "full": dict(method="full", weights="bf16")}


def _targets(targets: str | Sequence[str]) -> list[str]:
    if isinstance(targets, str):
        if targets != "all-linear":
            raise ValueError(f"targets must be 'all-linear' or a list of layer names such as ['q_proj', 'v_proj'], "
                             f"got {targets!r}.")
        return list(ALL_LINEAR)
    unknown = [t for t in targets if t not in ALL_LINEAR]
    if unknown:
        raise ValueError(f"Unknown targets {unknown} for a llama block; choose from {ALL_LINEAR} or 'all-linear'.")
    return list(targets)


def _check(method: str, weights: str, r: int) -> None:
    if method not in ("lora", "full"):
        raise ValueError(f"method must be 'lora' or 'full', got {method!r}.")
    if weights not in BYTES_PER_PARAM:
        raise ValueError(f"weights must be one of {list(BYTES_PER_PARAM)}, got {weights!r}.")
    if method == "full" and weights == "4bit":
        raise ValueError("Full fine-tuning cannot update 4-bit weights: use method='lora' with weights='4bit' "
                         "(QLoRA), or weights='bf16' for full fine-tuning.")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"r must be a whole number >= 1 (8 or 16 are common), got {r!r}.")


def block_activations(config: Mapping[str, Any] | Any, method: str = "full", weights: str = "bf16", r: int = 16,
                      targets: str | Sequence[str] = "all-linear") -> dict[str, float]:
    """Bytes that autograd keeps per token in ONE llama decoder block until the backward pass, tensor by tensor.

    With h = hidden, i = intermediate, q = heads·head_dim (= h in llama), kv = kv_heads·head_dim, compute in bf16
    (2 bytes) and a fused SDPA / flash attention kernel (it keeps its output and one fp32 log-sum-exp per head, never
    the seq x seq score matrix), full fine-tuning of a bf16 model keeps, per token and per layer::

        16·h + 4·q + 4·kv + 8·i + 8 + 4·heads  bytes  =  2 x (10·h + 2·kv + 4·i) + 8 + 4·heads  when q = h

    i.e. ``2 bytes x (a·h + b·i)`` with a = 10 + 2·kv/h (10.5 for Llama-3.1-8B) and b = 4. The list below derives
    it. LoRA keeps less inside the frozen block but one extra copy of the input of every adapted layer; on all seven
    linear layers that is 2 x (12·h + 2·kv + 4·i + 7·r) + 8 + 4·heads: more than full fine-tuning keeps.
    """
    _check(method, weights, r)
    s = _shape(config)
    h, i, heads = s["hidden_size"], s["intermediate_size"], s["num_attention_heads"]
    q, kv = heads * s["head_dim"], s["num_key_value_heads"] * s["head_dim"]
    full, fp32 = method == "full", weights == "fp32"
    t: dict[str, float] = {}
    # Derivation (bytes per token; "2x" = bf16, "4x" = fp32):
    # - 2 RMSNorms: transformers upcasts the input to fp32 and keeps that copy (4h) and 1/rms (4) for the backward
    #   of x * rsqrt(mean(x²)); the normalised tensor (2h, 4h when the model is fp32) is kept only when the norm's
    #   weight trains (full FT): norms = 2·(4h + 4) + 2·2h.
    t["RMSNorm inputs in fp32 + 1/rms"] = 2 * (4 * h + 4)
    if full:
        t["RMSNorm normalised outputs"] = 2 * (4 if fp32 else 2) * h
        # - inputs of trained linears: q/k/v share one (2h), gate/up share one (2h). The o_proj input IS the
        #   attention output and the down_proj input IS the SwiGLU product (both counted below). Under bf16
        #   autocast of an fp32 model every linear casts its own bf16 copy: 3 copies for q/k/v, 2 for gate/up.
        t["q/k/v input"] = (3 if fp32 else 1) * 2 * h
        t["gate/up input"] = (2 if fp32 else 1) * 2 * h
    # - attention: rotary q (2q) and the k, v handed to SDPA (2kv each: SDPA's own grouped-query support, no
    #   repeat to q size), its output (2q, also the o_proj input) and the log-sum-exp (4 bytes per head).
    t["attention q, k, v, output"] = 2 * q + 2 * kv + 2 * kv + 2 * q
    t["attention log-sum-exp (fp32)"] = 4 * heads
    # - SwiGLU down(silu(gate(x)) * up(x)): gate output (kept by silu), silu output and up output (kept by the
    #   product), and the product (the down_proj input) when down_proj trains: 2i each, so b = 4 for full FT.
    t["SwiGLU gate, up, silu"] = 3 * 2 * i
    # Full FT, bf16: 2·(4h+4) + 2·2h + 2h + 2h + 4q + 4kv + 4·heads + 8i = 16h + 4q + 4kv + 8i + 8 + 4·heads.
    if full:
        t["SwiGLU product (down_proj input)"] = 2 * i
    else:
        # - LoRA (peft keeps adapters in fp32): each adapted layer casts its input to fp32 for lora_A, and bf16
        #   autocast casts it back, so each keeps its own bf16 copy of its input (2·in) plus A's output (2·r).
        shapes = linear_shapes(s)
        t["LoRA adapter inputs"] = sum(2 * (shapes[name][0] + r) for name in _targets(targets))
    return t


def peak_memory(
    config: Mapping[str, Any] | Any, *, method: str = "lora", weights: str = "bf16", batch_size: int, seq_len: int,
    r: int = 16, targets: str | Sequence[str] = "all-linear", checkpointing: bool = False, padding_free: bool = False,
    optimizer: str = "adamw", master_weights_fp32: bool | None = None, logits: str = "fp32",
    cuda_overhead_gib: float = 0.5, upcast_fp32: bool = False,
) -> dict[str, float]:
    """Peak GPU bytes of a training step (forward, backward, optimizer step) by part, and the peak itself ("total").

    - weights: the base model as stored; ``"4bit"`` puts the blocks' linear layers in nf4 with double quantisation
      (QLoRA), embeddings, norms and lm_head stay bf16. ``"fp32"`` is an fp32 model trained under bf16 autocast
      (HF Trainer ``bf16=True``).
    - adapters: LoRA's A and B in fp32 (peft upcasts them), ``r·(in + out)`` per adapted layer.
    - gradients and optimizer: gradients have the parameter's dtype, and so do torch AdamW's two moments (exp_avg,
      exp_avg_sq). Full FT:
        * weights="fp32": 4 (weights) + 4 (grads) + 8 (moments) = 16 B/param;
        * weights="bf16", master_weights_fp32=True (the default; DeepSpeed/Megatron-style mixed precision):
          2 (bf16 weights) + 2 (bf16 grads) + 4 (fp32 master copy) + 8 (fp32 moments) = 16 B/param;
        * weights="bf16", master_weights_fp32=False (a bf16 model handed to torch.optim.AdamW): 2 + 2 + 4 = 8 B/param
          (bf16 moments; updates smaller than ~1/256 of a weight round away, which is what master weights prevent).
      LoRA: only adapters train: 4 (grads) + 8 (fp32 moments) per adapter parameter; ``master_weights_fp32`` does not
      apply (adapters are already fp32). 8-bit Adam (bitsandbytes, paged or not): 2 B/param of moments instead of 8.
      "adamw" is the fused kernel (HF Trainer's default ``adamw_torch_fused``); plain ``torch.optim.AdamW`` on a GPU
      (foreach) also allocates one moment-sized temporary during ``step()``, which is not counted here.
    - activations: ``block_activations`` per token per layer; with ``checkpointing`` only each block's input is kept
      (2h bytes per token per layer, 4h for an fp32 model) plus one block's full activations while it is recomputed.
      Plus the final norm and lm_head input; for padded batches (``padding_free=False``, batch_size > 1) SDPA's
      boolean batch x seq x seq mask and a bf16 copy of it per layer; for an fp32 model autocast's bf16 copy of
      every linear weight (2 B each).
      ``seq_len``: the longest row when padding, the mean length with padding-free packing (which needs
      flash-attention varlen kernels: sdpa would build a mask over the whole packed row).
    - logits: batch x seq x vocab x 12 B: transformers computes the loss in fp32, and the backward of log_softmax
      holds its saved output, the incoming and the outgoing gradient at once. ``"bf16"`` halves that; ``"chunked"``
      (Liger / trl chunked loss) holds about one chunk of 1024 tokens x vocab in fp32 at a time.
    - ``upcast_fp32`` (LoRA only): every frozen weight that is not 4-bit stored in fp32, as peft's
      ``prepare_model_for_kbit_training`` leaves it (embeddings, norms and lm_head for QLoRA; all of them for bf16
      LoRA). It adds only their 2 extra bytes each: the fp32 activations they then produce are not modelled.
    - overhead: ``cuda_overhead_gib`` for the CUDA context, cuBLAS workspaces and allocator fragmentation.
    - total: weights + adapters + optimizer + overhead + max(activations + logits, gradients), less the smaller of
      (one block, logits) when checkpointing: gradients and activations never peak together (see the code).
    """
    _check(method, weights, r)
    if upcast_fp32 and method != "lora":
        raise ValueError("upcast_fp32 describes a LoRA model's frozen weights; full fine-tuning chooses its dtype "
                         "with weights= (and master_weights_fp32=).")
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
    if optimizer not in OPTIMIZER_STATE_BYTES:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZER_STATE_BYTES)}, got {optimizer!r}.")
    if logits not in LOGITS:
        raise ValueError(f"logits must be one of {list(LOGITS)}, got {logits!r}.")
    if not cuda_overhead_gib >= 0:
        raise ValueError(f"cuda_overhead_gib must be >= 0 (0.5 is typical), got {cuda_overhead_gib!r}.")
    s = _shape(config)
    targets = _targets(targets)
    total_params, param_bytes = base_parameter_count(s), BYTES_PER_PARAM[weights]
    moments = OPTIMIZER_STATE_BYTES[optimizer]
    if weights == "fp32":  # autocast's bf16 copies of the blocks' linears and lm_head, kept for the backward
        linears = s["num_hidden_layers"] * sum(a * b for a, b in linear_shapes(s).values())
        autocast_copies = 2 * (linears + s["vocab_size"] * s["hidden_size"])
    else:
        autocast_copies = 0
    parts = dict.fromkeys(PARTS, 0.0)
    if method == "full":
        master = 4.0 if (master_weights_fp32 is None or master_weights_fp32) and weights == "bf16" else 0.0
        parts["weights"] = total_params * param_bytes
        parts["gradients"] = total_params * param_bytes
        moment_bytes = 2 * (param_bytes if master == 0 else 4.0) if moments is None else moments
        parts["optimizer"] = total_params * (moment_bytes + master)
    else:
        adapters = lora_parameter_count(s, r, targets)
        parts["weights"] = training_memory(s, "lora", weights, r, targets)["weights"] - 4.0 * adapters
        if upcast_fp32 and weights != "fp32":
            quantised = s["num_hidden_layers"] * sum(a * b for a, b in linear_shapes(s).values()) \
                if weights == "4bit" else 0
            parts["weights"] += 2.0 * (total_params - quantised)
        parts["adapters"] = 4.0 * adapters
        parts["gradients"] = 4.0 * adapters
        parts["optimizer"] = adapters * (8.0 if moments is None else moments)
    tokens = batch_size * seq_len
    h = s["hidden_size"]
    block = sum(block_activations(s, method, weights, r, targets).values()) * tokens
    if checkpointing:
        activations = s["num_hidden_layers"] * tokens * h * (4 if weights == "fp32" else 2) + block
    else:
        activations = s["num_hidden_layers"] * block
    head = 4 * h + 4 + ((4 if weights == "fp32" else 2) * h + 2 * h if method == "full" else 0)
    # Padded batches: the boolean mask, and (CUDA, measured) the bf16 additive copy SDPA's memory-efficient kernel
    # makes and keeps in every layer (one layer's when checkpointing).
    mask_layers = 1 if checkpointing else s["num_hidden_layers"]
    mask = batch_size * seq_len**2 * (1 + 2 * mask_layers) if batch_size > 1 and not padding_free else 0
    parts["activations"] = activations + tokens * head + mask + autocast_copies
    logit_tokens = min(tokens, LOGIT_CHUNK) if logits == "chunked" else tokens
    parts["logits"] = logit_tokens * s["vocab_size"] * LOGITS[logits]
    parts["overhead"] = cuda_overhead_gib * GIB
    # The peak: gradients and activations never peak together. The worst moment is the start of the backward (all
    # activations and the loss's logits alive; no gradients: zero_grad freed them) or the optimizer step (all
    # gradients; activations freed). With checkpointing, the recomputed block and the logits are never alive
    # together either. Weights, adapters, optimizer state and overhead stay all along.
    static = sum(parts[k] for k in ("weights", "adapters", "optimizer", "overhead"))
    backward = parts["activations"] + parts["logits"] - (min(block, parts["logits"]) if checkpointing else 0)
    return {**parts, "total": static + max(backward, parts["gradients"])}


def to_gib(parts: Mapping[str, float]) -> dict[str, float]:
    """The same parts in GiB (2**30 bytes)."""
    return {k: v / GIB for k, v in parts.items()}


def fits(config: Mapping[str, Any] | Any, gpu_gib: float, **kwargs: Any) -> tuple[bool, dict[str, float]]:
    """``(total <= gpu_gib GiB, peak_memory(config, **kwargs))``; ``gpu_gib`` as in ``GPUS``."""
    if not gpu_gib > 0:
        raise ValueError(f"gpu_gib is the GPU's usable memory in GiB, e.g. GPUS['T4 (16 GB)'] = 15.0; got {gpu_gib!r}.")
    parts = peak_memory(config, **kwargs)
    return parts["total"] <= gpu_gib * GIB, parts


def fit_table(configs: Mapping[str, Mapping[str, Any] | Any], gpus: Mapping[str, float] = GPUS,
              methods: Mapping[str, Mapping[str, str]] = METHODS, **kwargs: Any) -> list[dict[str, Any]]:
    """One row per (model, method): the parts and total in GiB, and for each GPU name True when it fits.

    ``kwargs`` go to ``peak_memory`` for every row (``batch_size`` and ``seq_len`` are required); ``methods`` maps a
    label to its ``method`` and ``weights`` (default: QLoRA, LoRA in bf16, full fine-tuning in bf16).
    """
    clash = {"method", "weights"} & set(kwargs)
    if clash:
        raise ValueError(f"fit_table sets {sorted(clash)} itself from `methods`; remove them from the arguments.")
    if "batch_size" not in kwargs or "seq_len" not in kwargs:
        raise ValueError("fit_table needs the batch_size and seq_len it assumes, e.g. batch_size=4, seq_len=1024.")
    rows = []
    for model, config in configs.items():
        for label, how in methods.items():
            parts = to_gib(peak_memory(config, **how, **kwargs))
            rows.append({"model": model, "method": label, "batch_size": kwargs["batch_size"],
                         "seq_len": kwargs["seq_len"], **parts,
                         **{gpu: parts["total"] <= gib for gpu, gib in gpus.items()}})
    return rows


def plot_breakdown(rows: Sequence[Mapping[str, Any]], gpus: Mapping[str, float] | None = GPUS):
    """Stacked horizontal bars of what is in memory at the peak: one bar per row (``fit_table`` rows, or dicts with a
    "label", the parts and "total" in GiB), one colour per part, a black tick at the total and a line at each GPU's
    usable memory. A bar holds either activations + logits (peak at the start of the backward) or gradients (peak at
    the optimizer step), whichever is larger; with checkpointing it runs a little past the tick, since the recomputed
    block and the logits are never alive together. Returns the figure."""
    from course_lib.plots import new_figure

    if not rows or any("total" not in row or not ("label" in row or {"model", "method"} <= set(row)) for row in rows):
        raise ValueError("plot_breakdown needs rows like fit_table's, e.g. fit_table(MODELS, batch_size=1, "
                         "seq_len=1024), or dicts with a 'label', the parts and 'total' in GiB.")
    fig, (ax,) = new_figure(width=8.0)
    labels = [row.get("label") or f"{row['model']} · {row['method']}" for row in rows]
    left = [0.0] * len(rows)
    at_step = [row.get("gradients", 0.0) > row.get("activations", 0.0) + row.get("logits", 0.0) for row in rows]
    for part in PARTS:
        absent = {"gradients": [not s for s in at_step], "activations": at_step, "logits": at_step}.get(part)
        values = [0.0 if absent and absent[k] else float(row.get(part, 0.0)) for k, row in enumerate(rows)]
        ax.barh(range(len(rows)), values, left=left, label=part)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.scatter([row["total"] for row in rows], range(len(rows)), marker="|", s=200, color="black", zorder=3,
               label="peak (total)")
    for k, (gpu, gib) in enumerate((gpus or {}).items()):
        ax.axvline(gib, color="black", linestyle=(":", "--", "-.")[k % 3], linewidth=1, label=f"{gpu}: {gib:g} GiB")
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    # a linear axis: on a log axis the stacked parts' lengths would not be proportional to their GiB
    ax.set(xlabel="GiB at the peak of a training step", title="Where training memory goes")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the bars, not over them
    return fig


def plot_predicted_vs_measured(records: Sequence[Mapping[str, Any]]):
    """Scatter of measured against predicted GiB, one labelled point per record (``name``, ``predicted_gib``,
    ``measured_gib``), with the y = x line and a ±15% band around it. Returns the figure."""
    from course_lib.plots import new_figure

    if not records:
        raise ValueError("plot_predicted_vs_measured needs at least one record.")
    for rec in records:
        missing = {"name", "predicted_gib", "measured_gib"} - set(rec)
        if missing:
            raise ValueError(f"Each record needs name, predicted_gib and measured_gib; {rec!r} lacks "
                             f"{sorted(missing)}.")
    fig, (ax,) = new_figure()
    xs = [float(rec["predicted_gib"]) for rec in records]
    ys = [float(rec["measured_gib"]) for rec in records]
    top = 1.2 * max(xs + ys)
    ax.fill_between([0, top], [0, 0.85 * top], [0, 1.15 * top], color="grey", alpha=0.2, label="±15%")
    ax.plot([0, top], [0, top], "k--", linewidth=1, label="measured = predicted")
    ax.scatter(xs, ys, zorder=3)
    for rec, x, y in zip(records, xs, ys, strict=True):
        ax.annotate(str(rec["name"]), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="predicted GiB", ylabel="measured GiB (max_memory_allocated)",
           title="Memory model against measurement")
    ax.legend(fontsize=7, loc="upper left")
    return fig
