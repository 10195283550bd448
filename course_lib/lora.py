"""LoRA from scratch: the layer, injecting it into a model, merging, and the parameter and memory arithmetic.

Notebook 03 builds ``LoRALinear`` in front of the learner; this is the tested version, checked against ``peft``
in ``tests/test_lora.py`` (same outputs for the same A and B, same trainable-parameter counts).

A LoRA layer keeps a pretrained ``nn.Linear`` (weight ``W``, shape ``out × in``) frozen and learns a low-rank
update: ``y = W x + (alpha / r) · B A x`` with ``A`` (``r × in``) and ``B`` (``out × r``). ``B`` starts at zero,
so an injected model starts out computing exactly what the base model computes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

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
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]  # the attention projections of a llama block
ALL_LINEAR = ATTENTION + ["gate_proj", "up_proj", "down_proj"]  # ... plus the MLP's three

BYTES_PER_PARAM = {
    "fp32": 4.0,
    "bf16": 2.0,
    # nf4 with double quantisation (QLoRA): 4 bits + one 8-bit scale per 64 weights + one fp32 scale per 256
    # of those blocks = ~4.127 bits per weight.
    "4bit": (4 + 8 / 64 + 32 / (64 * 256)) / 8,
}
ADAM_BYTES = 8.0  # Adam keeps two fp32 moments (m and v) per trainable parameter


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha / r) · B A``."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        _check_hyperparameters(r, alpha, dropout)
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}.")
        self.base = base
        self.base.weight.requires_grad_(False)
        if self.base.bias is not None:
            self.base.bias.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        # Adapters train in fp32 even on a bf16/fp16 base (peft does the same by default): tiny updates to
        # small matrices get lost in half precision.
        dtype = base.weight.dtype if base.weight.dtype == torch.float64 else torch.float32
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=base.weight.device, dtype=dtype)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=base.weight.device, dtype=dtype)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """A like an ``nn.Linear`` (kaiming-uniform, a=√5, as peft does), B = 0: the update starts at zero."""
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) · B @ A`` with the base weight's shape (out × in)."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:  # the update already lives inside base.weight: adding it again would count it twice
            return out
        x = self.dropout(x.to(self.lora_A.weight.dtype))
        # add in the adapter's dtype (fp32) and round once, as peft does: rounding the update to a bf16 base's dtype
        # before adding would round twice
        return (out + self.lora_B(self.lora_A(x)) * self.scaling).to(out.dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight (one matmul per call afterwards, as fast as the base model)."""
        if not self.merged:
            w = self.base.weight
            w.copy_((w.to(self.lora_A.weight.dtype) + self.delta_weight()).to(w.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update back out of the base weight (exact up to floating-point rounding)."""
        if self.merged:
            w = self.base.weight
            w.copy_((w.to(self.lora_A.weight.dtype) - self.delta_weight()).to(w.dtype))
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}, merged={self.merged}"


def _check_hyperparameters(r: int, alpha: float, dropout: float) -> None:
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise ValueError(f"r (the rank) must be a positive integer such as 8 or 16, got {r!r}.")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive (common choices: alpha = r or 2·r), got {alpha!r}.")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout is a probability in [0, 1), got {dropout!r}.")


def matches_target(name: str, targets: Iterable[str]) -> bool:
    """peft's rule for a ``target_modules`` list: the module's name equals a target or ends with ``"." + target``."""
    return any(name == t or name.endswith("." + t) for t in targets)


def linear_layer_names(model: nn.Module) -> list[str]:
    """Names of the plain ``nn.Linear`` modules of a model (those LoRA could wrap)."""
    return [n for n, m in model.named_modules() if type(m) is nn.Linear and not n.endswith((".lora_A", ".lora_B"))]


def inject_lora(model: nn.Module, target_modules: list[str], r: int, alpha: float, dropout: float = 0.0) -> list[str]:
    """Wrap each matching ``nn.Linear`` in a ``LoRALinear`` (in place), freeze everything else; return the names."""
    _check_hyperparameters(r, alpha, dropout)
    if isinstance(target_modules, str) or not target_modules:
        raise ValueError(f"target_modules must be a non-empty list of layer names like {ATTENTION}, "
                         f"got {target_modules!r}.")
    if lora_layers(model):
        raise ValueError("This model already has LoRA layers. Inject once (call merge_lora to fold them in, "
                         "or start again from a freshly loaded model).")
    linear = linear_layer_names(model)
    unmatched = [t for t in target_modules if not any(matches_target(n, [t]) for n in linear)]
    if unmatched:
        suffixes = sorted({n.rsplit(".", 1)[-1] for n in linear})
        raise ValueError(f"target_modules {unmatched} match no nn.Linear layer of this model. Linear layer names "
                         f"end in: {suffixes} (e.g. {linear[:2]}).")
    for param in model.parameters():
        param.requires_grad_(False)
    replaced = [n for n in linear if matches_target(n, target_modules)]
    for name in replaced:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha, dropout=dropout))
    return replaced


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """The model's LoRA layers by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA layer into its base weight; return how many were merged."""
    layers = lora_layers(model).values()
    for layer in layers:
        layer.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Undo ``merge_lora``; return how many layers were unmerged."""
    layers = lora_layers(model).values()
    for layer in layers:
        layer.unmerge()
    return len(layers)


def count_parameters(model: nn.Module) -> dict[str, float]:
    """``{"trainable", "total", "fraction"}``; tied weights (lm_head = embeddings) are counted once, as peft does."""
    params = list(model.parameters())  # de-duplicates shared tensors
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"trainable": trainable, "total": total, "fraction": trainable / total if total else 0.0}


@torch.no_grad()
def copy_from_peft(model: nn.Module, peft_model: nn.Module, adapter_name: str = "default") -> int:
    """Give our LoRA layers the A and B (and scaling) of peft's; return how many layers were copied."""
    ours = lora_layers(model)
    theirs = {n.removeprefix("base_model.model."): m for n, m in peft_model.named_modules()
              if isinstance(getattr(m, "lora_A", None), nn.ModuleDict) and adapter_name in m.lora_A}
    if set(ours) != set(theirs):
        raise ValueError(f"The two models have LoRA on different layers: only ours {sorted(set(ours) - set(theirs))}"
                         f", only peft's {sorted(set(theirs) - set(ours))}. Use the same target_modules.")
    for name, layer in ours.items():
        peft_layer = theirs[name]
        if peft_layer.r[adapter_name] != layer.r:
            raise ValueError(f"{name}: rank {layer.r} here, {peft_layer.r[adapter_name]} in peft. Use the same r.")
        layer.lora_A.weight.copy_(peft_layer.lora_A[adapter_name].weight)
        layer.lora_B.weight.copy_(peft_layer.lora_B[adapter_name].weight)
        layer.scaling = peft_layer.scaling[adapter_name]
    return len(ours)


# ---- arithmetic from a model's shape, without building it ----------------------------------------------------

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


# ---- what the scaling alpha/r does to a training step -------------------------------------------------------

SCALING_RULES = {  # the factor in front of B·A, from alpha and r
    "alpha/r": lambda alpha, r: alpha / r,  # the LoRA paper and peft's default
    "alpha": lambda alpha, r: alpha,  # no division by r
    "alpha/sqrt(r)": lambda alpha, r: alpha / math.sqrt(r),  # rank-stabilised LoRA (peft's use_rslora=True)
}
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def output_change(
    r: int, alpha: float = 16.0, scaling: str = "alpha/r", optimizer: str = "adam", lr: float = 1e-4,
    steps: int = 5, d: int = 576, n: int = 16, seed: int = 0,
) -> float:
    """How far ``steps`` optimizer steps move a fresh ``LoRALinear``'s output: ``‖y_after − y_before‖ / ‖y_before‖``.

    A toy regression: a random ``d × d`` base layer, ``n`` fixed random inputs, and a target that is the base output
    plus a fixed random linear change. The base layer, inputs and target do not depend on ``r``, ``scaling``,
    ``optimizer`` or ``lr``, and A is drawn from the same distribution at every rank (``LoRALinear``'s init, seeded),
    so calls that differ only in those are a fair comparison. ``scaling`` is a key of ``SCALING_RULES``. The global
    random state is left as it was.
    """
    _check_hyperparameters(r, alpha, 0.0)
    if scaling not in SCALING_RULES:
        raise ValueError(f"scaling must be one of {list(SCALING_RULES)}, got {scaling!r}.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer (1 to a few dozen), got {steps!r}.")
    if not lr > 0:
        raise ValueError(f"lr (the learning rate) must be positive, e.g. 1e-4, got {lr!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = nn.Linear(d, d, bias=False)
        x = torch.randn(n, d)
        with torch.no_grad():
            target = base(x) + x @ (0.1 * torch.randn(d, d) / math.sqrt(d)).T
        torch.manual_seed(seed + 1)
        layer = LoRALinear(base, r=r, alpha=alpha)
    layer.scaling = SCALING_RULES[scaling](alpha, r)
    opt = OPTIMIZERS[optimizer]([layer.lora_A.weight, layer.lora_B.weight], lr=lr)
    with torch.no_grad():
        before = layer(x)
    for _ in range(steps):
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        return ((layer(x) - before).norm() / before.norm()).item()


def change_by_rank(
    ranks: Iterable[int] = (4, 8, 16, 32), scalings: Iterable[str] = tuple(SCALING_RULES),
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """``{optimizer: {scaling: [output_change per rank]}}``; ``settings`` maps each optimizer to its
    ``output_change`` keyword arguments (default: Adam at lr 1e-4 and plain SGD at lr 0.1, 5 steps each)."""
    settings = settings or {"adam": {"lr": 1e-4, "steps": 5}, "sgd": {"lr": 0.1, "steps": 5}}
    return {opt: {s: [output_change(r, scaling=s, optimizer=opt, **kwargs) for r in ranks] for s in scalings}
            for opt, kwargs in settings.items()}


def plot_change_by_rank(table: Mapping[str, Mapping[str, list[float]]], ranks: Iterable[int] = (4, 8, 16, 32)):
    """Figure: one panel per optimizer; for each scaling rule, the output change at each rank as a multiple of its
    change at the smallest rank (log scale; a flat line at 1 = the same change at every rank)."""
    from course_lib.plots import new_figure

    ranks = list(ranks)
    fig, axes = new_figure(ncols=len(table))
    ratios = {opt: {s: [v / values[0] for v in values] for s, values in rows.items()} for opt, rows in table.items()}
    everything = [v for rows in ratios.values() for values in rows.values() for v in values]
    low = 2.0 ** math.floor(math.log2(min(everything)))
    high = 2.0 ** math.ceil(math.log2(max(everything)))
    ticks = [2.0 ** k for k in range(round(math.log2(low)), round(math.log2(high)) + 1)]
    for ax, (opt, rows) in zip(axes, ratios.items()):
        ax.axhline(1.0, color="grey", lw=1, ls="--")
        for scaling, values in rows.items():
            ax.plot(ranks, values, "o-", label=f"scaling = {scaling}")
        ax.set(xscale="log", yscale="log", xlabel="rank r", ylim=(low / 1.2, high * 1.2),
               title={"adam": "Adam", "sgd": "plain SGD"}.get(opt, opt))
        ax.set_xticks(ranks, [str(r) for r in ranks])
        ax.set_yticks(ticks, [f"{t:g}" if t >= 1 else f"1/{1 / t:g}" for t in ticks])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"output change / change at r = {ranks[0]}")
    axes[0].legend(fontsize=7)
    fig.suptitle("Same alpha, lr and input: how far a few steps move a LoRA layer's output", fontsize=10)
    fig.tight_layout()
    return fig


# ---- merging in a low-precision dtype ------------------------------------------------------------------------

def _unmerged_lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    layers = lora_layers(model)
    if not layers:
        raise ValueError("This model has no LoRA layers: call inject_lora (and train) before comparing merges.")
    if any(layer.merged for layer in layers.values()):
        raise ValueError("This model's LoRA layers are already merged, so there is nothing left to compare. "
                         "Call unmerge_lora(model) first, or use the model from before merge_lora.")
    return layers


def _lora_copy_in(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of a LoRA model whose base parameters are stored in ``dtype``; the adapters keep their own dtype."""
    import copy

    _unmerged_lora_layers(model)
    clone = copy.deepcopy(model)
    adapters = {id(p) for layer in lora_layers(clone).values() for p in (layer.lora_A.weight, layer.lora_B.weight)}
    for param in clone.parameters():  # shared (tied) parameters appear once
        if id(param) not in adapters:
            param.data = param.data.to(dtype)
    return clone


@torch.no_grad()
def merge_logit_gap(model: nn.Module, input_ids: torch.Tensor, dtype: torch.dtype) -> float:
    """Max |logit| difference, on ``input_ids``, between a LoRA model and the same model merged, when the base weights
    are stored in ``dtype`` (the fp32 adapters are left as they are). ``model`` itself is not changed."""
    clone = _lora_copy_in(model, dtype).eval()
    input_ids = input_ids.to(next(clone.parameters()).device)
    before = clone(input_ids=input_ids).logits.float()
    merge_lora(clone)
    after = clone(input_ids=input_ids).logits.float()
    return (after - before).abs().max().item()


def _sample(t: torch.Tensor, k: int = 20_000) -> torch.Tensor:
    flat = t.flatten()
    return flat[:: max(1, flat.numel() // k)]


@torch.no_grad()
def merge_rounding(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """What storing the merged weight ``W + ΔW`` in ``dtype`` does to the LoRA update ``ΔW``, over all LoRA layers.

    ``median_abs_w`` and ``median_abs_update``: typical sizes of W's and ΔW's entries; ``median_step``: the typical
    gap between neighbouring ``dtype`` numbers at W's entries (rounding moves a number by up to half of it);
    ``lost_share``: the share of ΔW's non-zero entries that vanish (``W + ΔW`` rounds back to ``W``);
    ``update_error``: ``‖(merged − W) − ΔW‖ / ‖ΔW‖``, how much of the update the rounding changed (0 = none).
    Medians come from an evenly spaced sample of each layer's entries.
    """
    layers = _unmerged_lora_layers(model).values()
    eps = torch.finfo(dtype).eps
    lost = nonzero = 0
    err_sq = upd_sq = 0.0
    w_s, step_s, d_s = [], [], []
    for layer in layers:
        w = layer.base.weight.to(dtype).float()  # W as a model stored in dtype holds it
        delta = layer.delta_weight().float()
        stored = (w + delta).to(dtype).float() - w  # the update as the merged dtype weight carries it
        moved = delta != 0
        lost += int(((stored == 0) & moved).sum())
        nonzero += int(moved.sum())
        err_sq += float(((stored - delta) ** 2).sum())
        upd_sq += float((delta ** 2).sum())
        _, exponent = torch.frexp(w)  # w = m · 2**exponent with 0.5 <= |m| < 1
        w_s.append(_sample(w.abs()))
        step_s.append(_sample(eps * torch.pow(2.0, exponent.float() - 1)))
        d_s.append(_sample(delta.abs()))
    return {
        "median_abs_w": torch.cat(w_s).median().item(),
        "median_step": torch.cat(step_s).median().item(),
        "median_abs_update": torch.cat(d_s).median().item(),
        "lost_share": lost / nonzero if nonzero else 0.0,
        "update_error": math.sqrt(err_sq / upd_sq) if upd_sq else 0.0,
    }
