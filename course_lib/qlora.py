"""QLoRA: a model loaded with its linear layers in 4-bit (bitsandbytes nf4), LoRA adapters on top, and the training
step the course measured fastest on a GPU (``benchmarks/gpu_recipes.py``): no fp32 upcast of the frozen weights,
non-reentrant checkpointing, examples packed into one row with variable-length flash attention, and a loss that
never builds the full logits. bitsandbytes' 4-bit layers also run on a CPU (slowly), so every function here runs
in CI on the tiny model; only the varlen attention kernel needs CUDA.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from course_lib import models
from course_lib.attention import (VARLEN, AttentionSetupError, boundaries, register_varlen_attention,  # noqa: F401
                                 varlen_available)
from course_lib.paths import REPO_ROOT
from course_lib.profile import get_profile

RESULTS = REPO_ROOT / "benchmarks" / "results" / "gpu_recipes.json"


class QLoRAError(AttentionSetupError):
    """A QLoRA step cannot run as asked; the message says what to change."""


def quantization_config(device: str | None = None):
    """``(BitsAndBytesConfig, why)``: nf4 with double quantisation, computing in the dtype this device trains best
    in: bf16 on Ampere+ GPUs and on CPUs with bf16 instructions, fp16 on older GPUs such as Colab's T4, fp32 on
    other CPUs."""
    from transformers import BitsAndBytesConfig

    choice = models.choose_device(device)
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=choice.dtype)
    return config, f"nf4 + double quantisation, computing in {str(choice.dtype).replace('torch.', '')}: {choice.reason}"


def load_4bit(name: str | None = None, device: str | None = None, verbose: bool = True,
              attention: str | None = None):
    """``(model, tokenizer)`` with the blocks' linear layers stored in 4-bit; embeddings, norms and the head keep
    the compute dtype (bitsandbytes leaves them as they are). ``attention``: transformers' attention
    implementation (``qlora.register_varlen_attention()`` returns the course's, for packed rows on a GPU)."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise QLoRAError("bitsandbytes is not installed: `pip install bitsandbytes` (it is in the course's "
                         "dependencies; on Colab run the install cell again).") from err
    from transformers import AutoModelForCausalLM

    config, why = quantization_config(device)
    choice = models.choose_device(device)
    name = name or get_profile().model
    source = models.resolve(name)
    start = time.perf_counter()
    tokenizer = models.load_tokenizer(name)
    model = models._from_pretrained(AutoModelForCausalLM, source, quantization_config=config,
                                    dtype=config.bnb_4bit_compute_dtype,
                                    device_map={"": 0 if choice.device.startswith("cuda") else choice.device},
                                    **({"attn_implementation": attention} if attention else {}))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if verbose:
        print(f"Loaded {name!r} in 4-bit in {time.perf_counter() - start:.1f} s on {choice.device}: {why}")
    return model.eval(), tokenizer


def storage_bytes(model: torch.nn.Module) -> dict[str, int]:
    """Bytes the weights really take, by kind: ``4bit`` (packed nf4 data and its quantisation constants: one
    8-bit scale per 64 weights, one fp32 scale per 256 of those, as ``course_lib.memory`` counts them) and
    ``other`` (every other parameter, at its dtype). ``get_memory_footprint()`` leaves the constants out."""
    import bitsandbytes as bnb

    quantised = other = 0
    seen: set[int] = set()  # tied weights (SmolLM2's embedding and head) are one tensor: count it once
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight = module.weight
            quantised += weight.numel() * weight.element_size()
            state = weight.quant_state
            quantised += state.absmax.numel() * state.absmax.element_size()
            if state.state2 is not None:  # double quantisation: the scales of the scales, and their offset
                quantised += state.state2.absmax.numel() * state.state2.absmax.element_size() + 4
            seen.add(id(weight))
        for param in module.parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                other += param.numel() * param.element_size()
    return {"4bit": quantised, "other": other, "total": quantised + other}


def add_adapters(model, r: int = 16, alpha: int = 32, targets: str | list[str] = "all-linear",
                 checkpointing: bool = True, offload: bool = False):
    """LoRA adapters on a (4-bit) model, the course's way: frozen weights keep their dtype (peft's
    ``prepare_model_for_kbit_training`` would cast every non-4-bit weight to fp32: +2 bytes each, 2 GiB on
    Llama-3.1-8B by ``course_lib.memory``) and checkpointing is non-reentrant (no input-gradient trick, works with packed rows).
    ``offload=True``: the checkpointed layer inputs wait in CPU memory (``train.offload_checkpoints``), which frees
    memory for longer steps (8B on an H100: 10,097-10,421 tokens/s at 9.92 GiB, ``gpu_recipes_8b_variants.json``)."""
    from peft import LoraConfig, get_peft_model

    if offload and not checkpointing:
        raise QLoRAError("offload=True stashes the inputs that checkpointing keeps: it needs checkpointing=True.")
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                                             task_type="CAUSAL_LM"))
    if offload:
        from course_lib.train.offload import offload_checkpoints

        offload_checkpoints(model)
    return model


def packed_loss(model, rows: list[torch.Tensor], labels: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Mean next-token loss of ``rows`` (token-id tensors) packed into ONE row without padding: position ids restart
    at each example (and the varlen attention gets the boundaries), the first token of each example is not
    predicted from the previous example, and the loss goes through the head in chunks (Liger's fused kernel when
    installed), so the (tokens x vocabulary) logits never exist at once. ``labels``: per-row targets with -100 where
    no loss is wanted (the prompt); default: every token."""
    if not rows:
        raise QLoRAError("packed_loss got no rows: pass a list of 1-D token-id tensors.")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    device = next(base.parameters()).device
    ids = torch.cat(rows)[None].to(device)
    target = torch.cat(labels if labels is not None else rows)[None].clone().to(device)
    lengths = torch.tensor([len(r) for r in rows])
    starts = torch.nn.functional.pad(lengths.cumsum(0), (1, 0))
    target[0, starts[1:-1]] = -100  # the first token of every example after the first
    positions = torch.cat([torch.arange(n) for n in lengths.tolist()])[None].to(device)
    bounds = {"cu_seq_lens_q": starts.to(device, torch.int32), "max_length_q": int(lengths.max())}
    bounds.update(cu_seq_lens_k=bounds["cu_seq_lens_q"], max_length_k=bounds["max_length_q"])
    # use_cache=False: with a cache transformers ignores the position ids' restarts and attention crosses examples
    hidden = base.model(input_ids=ids, position_ids=positions, use_cache=False, **bounds).last_hidden_state
    return chunked_cross_entropy(hidden[0, :-1], base.lm_head, target[0, 1:])


def chunked_cross_entropy(hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor,
                          chunk: int = 2048) -> torch.Tensor:
    """Mean cross-entropy of ``head(hidden)`` against ``targets`` (-100 ignored) without the full logits: Liger's
    fused linear cross-entropy on a GPU when installed, else chunks of ``chunk`` positions, each recomputed in the
    backward pass (the same number to float rounding: tests compare it with the plain loss)."""
    if not (targets != -100).any():
        raise QLoRAError("every target is -100: nothing to learn from in this batch (check the label mask).")
    if hidden.is_cuda and getattr(head, "bias", None) is None:
        try:
            from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

            return LigerFusedLinearCrossEntropyLoss()(head.weight, hidden, targets)
        except ImportError:
            pass
    total = hidden.new_zeros((), dtype=torch.float32)

    def piece(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(head(x).float(), t, reduction="sum", ignore_index=-100)

    for start in range(0, len(hidden), chunk):
        total = total + torch.utils.checkpoint.checkpoint(piece, hidden[start:start + chunk],
                                                          targets[start:start + chunk], use_reentrant=False)
    return total / (targets != -100).sum()


def next_token_agreement(model_a, model_b, tokenizer, texts: list[str]) -> dict[str, float]:
    """How much two models (bf16 and its 4-bit copy, say) agree on ``texts``: the share of positions where their
    most likely next token is the same, and the mean KL divergence of b's next-token distribution from a's."""
    same = total = 0
    kl = 0.0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt").input_ids
            la = model_a(input_ids=ids.to(model_a.device)).logits[0].float().cpu()
            lb = model_b(input_ids=ids.to(model_b.device)).logits[0].float().cpu()
            same += int((la.argmax(-1) == lb.argmax(-1)).sum())
            total += len(la)
            kl += float(torch.nn.functional.kl_div(lb.log_softmax(-1), la.log_softmax(-1), log_target=True,
                                                   reduction="sum"))
    return {"top1_agreement": same / total, "mean_kl": kl / total, "positions": total}


def train_steps(model, rows: list[dict], tokenizer, steps: int, lr: float = 2e-4, rows_per_step: int = 8,
                max_length: int = 1024, progress: bool = True) -> dict[str, Any]:
    """``steps`` optimiser steps of the course's QLoRA recipe on chat ``rows`` (GreenLeaf format): each step packs
    ``rows_per_step`` conversations into one row, learns only the assistant's answers (``data.labels``), AdamW on
    the adapters. Returns the losses, real tokens per second (after the first step) and the peak GPU memory."""
    from tqdm.auto import tqdm

    from course_lib.data.labels import tokenize_sft

    trainable = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    if not trainable:
        raise QLoRAError("the model has no LoRA adapters to train (a 4-bit weight cannot be trained): call "
                         "qlora.add_adapters(model) first.")
    if steps < 1 or rows_per_step < 1 or not rows:
        raise QLoRAError(f"need steps >= 1, rows_per_step >= 1 and some rows (got {steps}, {rows_per_step}, "
                         f"{len(rows)} rows).")
    encoded = [tokenize_sft(r["messages"], tokenizer, max_length, pad=False, row=str(r.get("id", i)))
               for i, r in enumerate(rows)]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    cuda = next(model.parameters()).is_cuda
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model.train()
    losses, tokens, longest, start = [], 0, 0, time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="bitsandbytes::gemv_4bit: an autograd kernel was not registered")
        # ^ on a CPU, PyTorch warns that it backpropagates through bitsandbytes' 4-bit kernel by its fallback; the
        #   adapters' gradients match those of the same model with dequantised bf16 layers (tests/test_qlora.py)
        for step in tqdm(range(steps), desc="QLoRA steps", disable=not progress):
            batch = [encoded[(step * rows_per_step + k) % len(encoded)] for k in range(rows_per_step)]
            longest = max(longest, sum(len(e["input_ids"]) for e in batch))
            loss = packed_loss(model, [torch.tensor(e["input_ids"]) for e in batch],
                               [torch.tensor(e["labels"]) for e in batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if step == 0:  # the first step pays for warm-up (kernels, allocator): time the others
                start, tokens = time.perf_counter(), 0
            else:
                tokens += sum(len(e["input_ids"]) for e in batch)
    model.eval()
    seconds = time.perf_counter() - start
    return {"losses": losses, "tokens_per_s": tokens / seconds if steps > 1 else None,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None, "longest_packed_row": longest}


def _recorded(path: str | Path) -> dict[str, Any]:
    """A recorded benchmark result (JSON under benchmarks/results), or a clear error when it is missing."""
    if not Path(path).exists():
        raise QLoRAError(f"{path} is missing: it ships with the course (git checkout benchmarks/results).")
    return json.loads(Path(path).read_text())


def recorded_recipes(path: Path = RESULTS) -> dict[str, Any]:
    """The recorded GPU comparison (``benchmarks/gpu_recipes.py``): its runs, and for each shape the course
    recipe's tokens/s and peak memory as ratios of the textbook recipe's, measured in the same process."""
    results = _recorded(path)
    ratios = {}
    for name, run in results["runs"].items():
        if run.get("recipe") == "course" and run.get("method") == "qlora" and run.get("shape") != "tiny":
            naive = results["runs"].get(name.replace("-course", "-naive"))
            if naive and "error" not in naive and "error" not in run:
                ratios[run["shape"]] = {"tokens_per_s": run["tokens_per_s"] / naive["tokens_per_s"],
                                        "peak_memory": run["peak_gib"] / naive["peak_gib"]}
    return {**results, "ratios": ratios}


def recorded_variants(path: Path = RESULTS.parent / "gpu_recipes_8b_variants.json") -> list[dict[str, Any]]:
    """The 8B course recipe's variants measured one after another on one H100 (``gpu_recipes_8b_variants.json``):
    one dict per variant with its label, tokens/s, peak GiB, tokens per step, the exact command and ``repeats``:
    the tokens/s of the same command run again (the same call or another; empty when it ran once)."""
    variants = _recorded(path)["variants"]
    return [{"variant": label, **{k: run[k] for k in ("tokens_per_s", "peak_gib", "tokens_per_step", "device_command")},
             "repeats": run.get("repeats_tokens_per_s", [])} for label, run in variants.items()]


def fastest_within(variants: list[dict[str, Any]], gib: float) -> dict[str, Any]:
    """The fastest of ``recorded_variants()`` whose peak memory is at most ``gib`` GiB."""
    fitting = [v for v in variants if v["peak_gib"] <= gib]
    if not fitting:
        raise QLoRAError(f"no recorded variant peaked at or below {gib} GiB: the smallest peak was "
                         f"{min(v['peak_gib'] for v in variants):.2f} GiB.")
    return max(fitting, key=lambda v: v["tokens_per_s"])


PRESET_RUNS = {  # benchmarks/gpu_greenleaf.py runs: (results file, run before, run with the preset as it is now)
    "h100: 1.1B LoRA": ("gpu_greenleaf.json", "1b-lora-h100-before", "1b-lora-packed-64"),
    "h100: 135M LoRA": ("gpu_greenleaf.json", "135m-lora-h100-before", "135m-lora-packed-64"),
    "t4 code path: 1.1B LoRA": ("gpu_greenleaf_t4.json", "1b-lora-t4-before", "1b-lora-t4-packed-16"),
    "t4 code path: 135M LoRA": ("gpu_greenleaf_t4.json", "135m-lora-t4-before", "135m-lora-t4-packed-16"),
}


def recorded_presets(folder: Path = RESULTS.parent) -> list[dict[str, Any]]:
    """The course's own GreenLeaf recipe (``train.train_sft``) on an H100 with each GPU preset as it was and as it is
    (``benchmarks/gpu_greenleaf.py``, same process): tokens/s, peak GiB and the speed-up, one dict per row."""
    rows = []
    for label, (file, before, after) in PRESET_RUNS.items():
        runs = _recorded(Path(folder) / file)["runs"]
        old, new = runs[before], runs[after]
        rows.append({"run": label, "before": old, "after": new,
                     "speedup": new["tokens_per_s"] / old["tokens_per_s"]})
    return rows


def recorded_large_batches(folder: Path = RESULTS.parent) -> list[dict[str, Any]]:
    """The GreenLeaf recipe on the 1.1B shape with more rows a step than the ``h100`` preset's 64
    (``gpu_greenleaf_large.json``): one dict per measured run (method, rows, tokens/s, peak GiB, MFU of 989 TFLOP/s)
    with its speed-up over the same method with the ``h100`` preset as it was (``gpu_greenleaf.json``)."""
    large = _recorded(Path(folder) / "gpu_greenleaf_large.json")
    before = _recorded(Path(folder) / "gpu_greenleaf.json")["runs"]
    before = {"lora": before["1b-lora-h100-before"], "full": before["1b-full-h100-before"]}
    rows = []
    for call in large["calls"]:
        runs = list(call.get("runs_repeated", {}).items()) + list(call.get("runs", {}).items())
        for name, run in runs:  # a call without "runs" recorded a regression, not the recipe
            if "error" in run:
                continue
            rows.append({"run": name, "method": run["method"], "rows": run["preset"]["batch_size"],
                         "tokens_per_s": run["tokens_per_s"], "peak_gib": run["peak_gib"],
                         "mfu": run["mfu_vs_989_tflops"],
                         "speedup": run["tokens_per_s"] / before[run["method"]]["tokens_per_s"],
                         "before_tokens_per_s": before[run["method"]]["tokens_per_s"]})
    return rows


def plot_recipes(results: dict[str, Any]):
    """Figure: tokens/s against peak memory for each recorded QLoRA run, an arrow from the textbook recipe to the
    course's for each model shape (up and to the left is better)."""
    from course_lib.plots import new_figure

    fig, (ax,) = new_figure()
    runs = results["runs"]
    for shape, ratio in results["ratios"].items():
        naive, course = runs[f"{shape}-qlora-naive"], runs[f"{shape}-qlora-course"]
        ax.annotate("", xy=(course["peak_gib"], course["tokens_per_s"]),
                    xytext=(naive["peak_gib"], naive["tokens_per_s"]), arrowprops={"arrowstyle": "->", "alpha": 0.6})
        ax.scatter([naive["peak_gib"]], [naive["tokens_per_s"]], color="tab:red", marker="o")
        ax.scatter([course["peak_gib"]], [course["tokens_per_s"]], color="tab:green", marker="s")
        ax.annotate(f"{shape}: {ratio['tokens_per_s']:.1f}x faster, {ratio['peak_memory']:.2f}x memory",
                    (course["peak_gib"], course["tokens_per_s"]), textcoords="offset points", xytext=(6, 4))
    ax.scatter([], [], color="tab:red", marker="o", label="textbook QLoRA")
    ax.scatter([], [], color="tab:green", marker="s", label="course recipe")
    ax.set(xscale="log", yscale="log", xlabel="peak GPU memory (GiB)", ylabel="real tokens / s",
           title=f"QLoRA on an {results['machine'].get('gpu', 'GPU')}, random weights of real shapes")
    ax.margins(0.2)  # room for the labels
    ax.legend(loc="lower left")
    return fig
