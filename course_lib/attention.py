"""Variable-length attention for packed rows: several examples concatenated into one row without padding, each
attending only to itself. ``register_varlen_attention`` adds PyTorch's own variable-length flash attention
(``torch.nn.attention.varlen``, CUDA compute capability 8.0+) to transformers under the name ``VARLEN``; it reads
each example's boundaries from ``cu_seq_lens_q`` (as trl's padding-free collator and ``qlora.packed_loss`` pass
them) or from the restarting position ids. Used by ``train`` (padding-free presets on a GPU) and ``qlora``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

VARLEN = "course_varlen"  # the attn_implementation name register_varlen_attention() adds to transformers


class AttentionSetupError(ValueError):
    """The packed-row attention cannot run as asked; the message says what to change."""


def varlen_available() -> tuple[bool, str]:
    """Whether ``register_varlen_attention`` can be used here, and why: it needs a CUDA GPU of compute capability
    8.0+ (flash attention: Ampere, Hopper; not Colab's T4) and PyTorch 2.10+."""
    if not torch.cuda.is_available():
        return False, "no CUDA GPU: packed rows use sdpa with a block mask (correct, slower on long rows)"
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return False, (f"{torch.cuda.get_device_name()} is compute capability {major}.{minor}; flash attention needs "
                       "8.0+: packed rows use sdpa with a block mask")
    try:
        from torch.nn.attention import varlen  # noqa: F401
    except ImportError:
        return False, f"torch {torch.__version__} has no torch.nn.attention.varlen (2.10+): sdpa instead"
    return True, f"{torch.cuda.get_device_name()}: PyTorch's variable-length flash attention for packed rows"


def boundaries(position_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(cu_seq_lens, longest)`` of a packed row from its position ids (which restart at 0 for each example, as
    trl's padding-free collator and ``packed_loss`` write them): the int32 offsets where each example starts, plus
    the row's end, and the longest example's length."""
    positions = position_ids.reshape(-1)
    if positions.numel() == 0 or int(positions[0]) != 0:
        raise AttentionSetupError("packed position ids must start at 0 (one example per run of 0, 1, 2, ...).")
    starts = torch.nonzero(positions == 0).reshape(-1)
    cu = torch.cat([starts, torch.tensor([positions.numel()], device=starts.device)]).to(torch.int32)
    return cu, int((cu[1:] - cu[:-1]).max())


@functools.cache
def _fewer_kv_heads_work(device: int, causal: tuple) -> bool:
    """Whether ``varlen_attn`` takes keys and values with fewer heads than the queries (grouped-query attention, as
    Llama 3 and TinyLlama have) and gives what copying them to every query head gives, forward and backward. Flash
    attention maps each query head to its key head itself; copying them (``repeat_interleave``) costs a pass over
    K and V and its sum in the backward pass in every layer. Checked once per device on a few rows: on the H100
    with torch 2.11 the outputs and dK, dV are identical and dQ within bf16 rounding; elsewhere the copy stays."""
    from torch.nn.attention.varlen import varlen_attn

    extra, device = dict(causal), torch.device("cuda", device)
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(16, h, 64, device=device, dtype=torch.bfloat16, generator=gen, requires_grad=True)
               for h in (4, 2, 2))
    cu = torch.tensor([0, 5, 16], device=device, dtype=torch.int32)
    try:
        with torch.enable_grad():
            native = varlen_attn(q, k, v, cu, cu, 11, 11, **extra)
            native.float().square().sum().backward()
            grads = [t.grad.clone() for t in (q, k, v)]
            for t in (q, k, v):
                t.grad = None
            copied = varlen_attn(q, *(t.repeat_interleave(2, dim=1) for t in (k, v)), cu, cu, 11, 11, **extra)
            copied.float().square().sum().backward()
    except (RuntimeError, ValueError):
        return False
    return bool(torch.allclose(native, copied, atol=1e-2)) and all(
        torch.allclose(a, t.grad, atol=5e-2) for a, t in zip(grads, (q, k, v)))


def register_varlen_attention() -> str:
    """Add ``attn_implementation="course_varlen"`` to transformers: PyTorch's own variable-length flash attention
    (``torch.nn.attention.varlen``, CUDA only) fed each packed example's boundaries, so no example attends to
    another and no (L x L) mask is built: attention costs the sum of len^2, not (sum of len)^2. With sdpa instead,
    the 8B recipe ran at 2,639 tokens/s against 5,794 (``benchmarks/results/gpu_recipes*.json``)."""
    import inspect

    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError as err:
        raise AttentionSetupError(f"torch {torch.__version__} has no torch.nn.attention.varlen (PyTorch 2.10+): use "
                         "attn_implementation='sdpa' (correct, slower on long packed rows).") from err
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

    accepts = inspect.signature(varlen_attn).parameters
    causal = (("is_causal", True),) if "is_causal" in accepts else (("window_size", (-1, 0)),)
    fewer_kv_heads = torch.cuda.is_available() and _fewer_kv_heads_work(torch.cuda.current_device(), causal)

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        if "cu_seq_lens_q" in kwargs:
            cu, longest = kwargs["cu_seq_lens_q"], kwargs["max_length_q"]
        elif kwargs.get("position_ids") is not None:  # trl's padding-free batches carry only the position ids
            cu, longest = boundaries(kwargs["position_ids"])
        else:
            raise AttentionSetupError("course_varlen attention needs the packed row's boundaries (cu_seq_lens_q or "
                             "position_ids): call the model through qlora.packed_loss, or use attn_implementation='sdpa'.")
        dtype = query.dtype if query.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
        q, k, v = (t[0].transpose(0, 1).to(dtype) for t in (query, key, value))  # (1, heads, T, d) -> (T, heads, d)
        extra: dict[str, Any] = dict(causal)
        if "enable_gqa" not in accepts and k.shape[1] != q.shape[1] and not fewer_kv_heads:
            k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
        if "enable_gqa" in accepts:
            extra["enable_gqa"] = k.shape[1] != q.shape[1]
        return varlen_attn(q, k, v, cu, cu, longest, longest, scale=scaling, **extra)[None], None

    AttentionInterface.register(VARLEN, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(VARLEN, flash_attention_mask)
    return VARLEN


def for_packed_rows(model, padding_free: bool) -> tuple[str, str]:
    """Give ``model`` the attention its training batches need, and say which and why. Padded batches keep the
    model's own (sdpa). Packed (padding-free) rows on a GPU with flash attention get ``VARLEN``: with sdpa the
    packed row's block mask makes attention cost grow with the square of the whole row (``gpu_recipes_sdpa.json``).
    Elsewhere (CPU, a T4) sdpa builds that mask from the restarting position ids: correct, and cheap for short rows.
    Generation needs the model's own attention back afterwards (``restore``): varlen reads the batch as one packed row."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    current = base.config._attn_implementation
    if not padding_free:
        return current, "padded batches: the model's own attention"
    ok, why = varlen_available()
    if not ok:
        return current, why
    base.set_attn_implementation(register_varlen_attention())
    return VARLEN, why


def restore(model, implementation: str) -> None:
    """Put back the attention ``for_packed_rows`` replaced (before generating with the trained model)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if base.config._attn_implementation != implementation:
        base.set_attn_implementation(implementation)
