"""Variable-length attention for packed rows: several examples concatenated into one row without padding, each
attending only to itself. ``register_varlen_attention`` adds PyTorch's own variable-length flash attention
(``torch.nn.attention.varlen``, CUDA compute capability 8.0+) to transformers under the name ``VARLEN``; it reads
each example's boundaries from ``cu_seq_lens_q`` (as trl's padding-free collator and ``qlora.packed_loss`` pass
them) or from the restarting position ids. Used by ``train`` (padding-free presets on a GPU) and ``qlora``.
"""

from __future__ import annotations

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
        if "enable_gqa" not in accepts and k.shape[1] != q.shape[1]:
            k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
        extra: dict[str, Any] = {"is_causal": True} if "is_causal" in accepts else {"window_size": (-1, 0)}
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
