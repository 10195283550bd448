"""AdamW that keeps fp32 master weights inside the optimizer, for a model stored in bf16.

Full fine-tuning in mixed precision needs fp32 master weights: an Adam step of lr 5e-5 moves a weight of size ~0.02
by about 0.25% of itself, below bf16's rounding step (about 0.4%), so a bf16 weight updated in place loses many
updates. The course keeps them by storing the model in fp32 and computing in bf16 under autocast; autocast then casts
every weight to bf16 in every forward pass, and every gradient back to fp32, one small kernel per tensor (a profile
of the 1.1B full fine-tune on an H100 put those copies at 15% of its GPU time).

``MasterWeightAdamW`` moves the fp32 copy into the optimizer instead: the model is stored in bf16 (no casts in the
forward or backward pass), and each step casts the bf16 gradients to fp32 in a few batched ``torch._foreach`` calls,
runs PyTorch's AdamW on the fp32 masters, and copies the masters back into the bf16 weights. The updates are the
ones fp32 weights would get; the bf16 weights are the masters rounded. ``tests/test_master_adamw.py`` checks both.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


_FP32_STATE = ("master", "exp_avg", "exp_avg_sq")


class MasterWeightAdamW(torch.optim.Optimizer):
    """AdamW (PyTorch's own kernel: ``torch.optim.adam.adam`` with decoupled weight decay, fused on a GPU) on fp32
    copies of the parameters; the parameters may be of any dtype. The same arguments as ``torch.optim.AdamW``.
    Its state per parameter (``master``, ``exp_avg``, ``exp_avg_sq``, ``step``) is the optimizer's own, so a
    checkpoint of the optimizer restores the masters with the moments."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, fused: bool | None = None) -> None:
        if lr <= 0:
            raise ValueError(f"lr={lr}: the learning rate must be positive.")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused))
        self._grads32: dict[torch.Tensor, torch.Tensor] = {}  # fp32 gradient buffers: reused, never checkpointed

    def load_state_dict(self, state_dict: dict) -> None:
        """As ``torch.optim.Optimizer``'s, but the fp32 state stays fp32 (the base class casts floating state to the
        parameter's dtype, which would round the masters to bf16)."""
        fp32 = {pid: {k: v for k, v in s.items() if k in _FP32_STATE} for pid, s in state_dict["state"].items()}
        super().load_state_dict(state_dict)
        ids = [pid for group in state_dict["param_groups"] for pid in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        for pid, param in zip(ids, params, strict=True):
            for key, value in fp32.get(pid, {}).items():
                self.state[param][key] = value.to(device=param.device, dtype=torch.float32, copy=True)

    @torch.no_grad()
    def step(self, closure=None):
        from torch.optim.adam import adam

        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            fused = group["fused"] if group["fused"] is not None else all(p.is_cuda for p in params)
            for p in params:
                state = self.state[p]
                if "master" not in state:
                    state["master"] = p.detach().float().clone()
                    state["exp_avg"] = torch.zeros_like(state["master"])
                    state["exp_avg_sq"] = torch.zeros_like(state["master"])
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device if fused else "cpu")
            states = [self.state[p] for p in params]
            masters = [s["master"] for s in states]
            grads32 = [self._grads32.setdefault(p, torch.empty_like(s["master"])) for p, s in zip(params, states)]
            torch._foreach_copy_(grads32, [p.grad for p in params])  # bf16 gradients to fp32, batched
            beta1, beta2 = group["betas"]
            adam(masters, grads32, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
                 [s["step"] for s in states], foreach=None if fused else True, fused=fused,
                 decoupled_weight_decay=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
                 weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
            torch._foreach_copy_(params, masters)  # the weights: the masters rounded to the parameters' dtype
        return loss
