"""Gradient checkpointing whose saved layer inputs wait in CPU memory instead of on the GPU.

Checkpointing keeps one tensor per decoder layer between the forward and the backward pass: the layer's input,
``tokens x hidden`` in bf16 (Llama-3-8B, 8,192 tokens a step: 32 x 64 MiB = 2 GiB, as much as every other
activation together). With QLoRA that stash is what grows with the batch: the 4-bit weights, the adapters and one
layer's activations do not. ``offload_checkpoints(model)`` copies each layer's input to pinned CPU memory on a side
CUDA stream while the GPU computes the next layers, and copies it back when the backward pass reaches the layer,
which then recomputes its forward as ordinary checkpointing does; while it does, the input of the layer before it
is already on its way back. Freed memory buys longer steps, and longer steps
keep the GPU busier (``benchmarks/results/gpu_recipes_8b_variants.json``). Unsloth popularised the same trade.

It replaces transformers' checkpoint function in every ``GradientCheckpointingLayer`` (layers called with the
hidden states as their only positional argument, as Llama's are; other layers keep ordinary checkpointing). Like
reentrant checkpointing it needs the first layer's input to require a gradient, so it also calls
``enable_input_require_grads``. ``tests/test_offload.py`` checks loss and gradients against a model without
checkpointing.
"""

from __future__ import annotations

import weakref

import torch


class _Stash:
    """One model's side stream and its layers waiting for their backward pass, in forward order (weak references:
    a forward pass without a backward, e.g. under ``no_grad``, leaves nothing behind)."""

    def __init__(self, stream):
        self.stream = stream
        self.waiting: list[weakref.ref] = []


class _OffloadedLayer(torch.autograd.Function):
    """forward: stash the input on the CPU, run the layer without a graph. backward: fetch the input (prefetched
    while the layer after it was busy), start fetching the layer before's, rerun the layer with a graph (under
    the forward's autocast and random state), backpropagate through it."""

    @staticmethod
    def forward(ctx, run, hidden: torch.Tensor, stash: _Stash | None):
        ctx.run, ctx.device, ctx.stash, ctx.fetched = run, hidden.device, stash, None
        ctx.autocast = (torch.is_autocast_enabled(hidden.device.type),
                        torch.get_autocast_dtype(hidden.device.type))
        ctx.rng = torch.get_rng_state(), (torch.cuda.get_rng_state(hidden.device) if hidden.is_cuda else None)
        if hidden.is_cuda:
            host = torch.empty(hidden.shape, dtype=hidden.dtype, pin_memory=True)
            stash.stream.wait_stream(torch.cuda.current_stream(hidden.device))  # the input is computed
            with torch.cuda.stream(stash.stream):
                host.copy_(hidden, non_blocking=True)
            hidden.record_stream(stash.stream)  # its GPU memory is not reused before the copy ends
            stash.waiting.append(weakref.ref(ctx))
        else:
            host = hidden.detach().clone()
        ctx.host = host
        return run(hidden)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        hidden = _fetch(ctx)
        if ctx.stash is not None:
            _prefetch_previous(ctx)
        cpu_rng, cuda_rng = ctx.rng
        devices = [ctx.device] if cuda_rng is not None else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad(), \
                torch.autocast(ctx.device.type, enabled=ctx.autocast[0], dtype=ctx.autocast[1]):
            torch.set_rng_state(cpu_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, ctx.device)
            out = ctx.run(hidden)
        torch.autograd.backward(out, grad_out)
        return None, hidden.grad, None


def _fetch(ctx) -> torch.Tensor:
    """The layer's input back on its device: the prefetched copy once its copy has ended, or a copy now."""
    if ctx.fetched is not None:
        hidden, event = ctx.fetched
        torch.cuda.current_stream(ctx.device).wait_event(event)
        hidden.record_stream(torch.cuda.current_stream(ctx.device))  # used here, allocated on the side stream
    else:
        if ctx.stash is not None:
            torch.cuda.current_stream(ctx.device).wait_stream(ctx.stash.stream)  # the copy to the CPU has ended
        hidden = ctx.host.to(ctx.device, non_blocking=True)
    ctx.host = ctx.fetched = None
    return hidden.detach().requires_grad_(True)


def _prefetch_previous(ctx) -> None:
    """Start copying the input of the layer that ran before this one (whose backward comes next) on the side
    stream, so that the copy overlaps this layer's recomputation."""
    waiting = ctx.stash.waiting
    while waiting and waiting[-1]() in (None, ctx):
        waiting.pop()
    previous = waiting[-1]() if waiting else None
    if previous is None or previous.fetched is not None or previous.host is None:
        return
    stream = ctx.stash.stream
    with torch.cuda.stream(stream):
        hidden = previous.host.to(previous.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record(stream)
    previous.fetched = hidden, event


def offloaded_checkpoint(run, *args, stash=None):
    """A checkpoint function for transformers' layers: ``run(hidden)`` with ``hidden`` stashed on the CPU."""
    from torch.utils.checkpoint import checkpoint

    if len(args) != 1 or not torch.is_tensor(args[0]):  # not a layer this handles: ordinary checkpointing
        return checkpoint(run, *args, use_reentrant=False)
    return _OffloadedLayer.apply(run, args[0], stash if args[0].is_cuda else None)


def offload_checkpoints(model) -> int:
    """Make every checkpointed decoder layer of ``model`` (a transformers or peft model, checkpointing on) stash its
    input in CPU memory; returns how many layers do. Raises if checkpointing is off (nothing would be stashed)."""
    import functools

    from transformers.modeling_layers import GradientCheckpointingLayer

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = [m for m in base.modules() if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing]
    if not layers:
        raise ValueError("offload_checkpoints: no layer of this model is checkpointed. Turn gradient checkpointing "
                         "on first (model.gradient_checkpointing_enable(), or qlora.add_adapters(checkpointing=True)).")
    device = next(base.parameters()).device
    stash = _Stash(torch.cuda.Stream(device)) if device.type == "cuda" else None
    for layer in layers:
        layer._gradient_checkpointing_func = functools.partial(offloaded_checkpoint, stash=stash)
    base.enable_input_require_grads()  # the graph must reach the first layer's Function, as with reentrant
    return len(layers)
