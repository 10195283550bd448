"""Supervised fine-tuning (SFT) recipes with trl: LoRA or full fine-tuning, a preset per kind of hardware.

The recipe, in the order ``train_sft`` runs it:

1. pick a preset (``cpu``, ``t4``, ``h100``) from the hardware, or check that the one asked for can run here;
2. turn chat rows ``{"messages": [system, user, assistant]}`` into prompt-completion rows
   ``{"prompt": [system, user], "completion": [assistant]}``: trl then masks the prompt, so the loss is computed
   on the answer only (the JSON and the ``<|im_end|>`` that ends it);
3. refuse rows longer than the preset's ``max_length`` (cutting them would cut the answer away);
4. train with ``trl.SFTTrainer`` (+ ``peft.LoraConfig`` for LoRA): warmup, gradient clipping, gradient
   accumulation, a held-out loss every ``eval_steps``, a checkpoint every ``save_steps``, resumable.

LoRA was built by hand in notebook 03 (``course_lib.lora``); here we use ``peft``, the library version.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from course_lib import data, models
from course_lib.paths import cache_dir
from course_lib.plots import new_figure

Row = dict[str, Any]

# "Distil the long prompt into the weights": the tuned model learns the task from examples, so it no longer needs
# the 110-token instructions of greenleaf.SYSTEM_PROMPT. Training (and then prompting the tuned model) with this
# short prompt cuts each example from ~230 to ~130 tokens. Evaluate the tuned model with the SAME short prompt.
SHORT_SYSTEM_PROMPT = "GreenLeaf support triage: answer with one line of JSON."


DEFAULT_LR = {"lora": 2e-4, "full": 5e-5}  # full FT moves every weight: a smaller step keeps what the model knew


class TrainSetupError(ValueError):
    """Training cannot start as asked; the message says what is wrong and what to do instead."""


def _check_method(method: str) -> None:
    if method not in DEFAULT_LR:
        raise TrainSetupError(f"method={method!r}: use 'lora' (train small adapters) or 'full' (train every weight).")


@dataclass(frozen=True)
class Preset:
    name: str  # "cpu", "t4" or "h100": the hardware this recipe is sized for
    dtype: str  # compute dtype: "fp32" (CPUs without bf16 instructions), "fp16" (T4), "bf16" (Ampere+, bf16 CPUs)
    batch_size: int  # examples per forward pass (per device)
    grad_accum: int  # forward passes summed per optimiser step: effective batch = batch_size * grad_accum
    max_length: int  # longest example in tokens (prompt + answer); longer rows are an error, never cut
    gradient_checkpointing: bool  # recompute activations during backward: less memory, ~30% more time
    optim: str  # optimiser name as transformers spells it
    padding_free: bool  # concatenate a batch into one row (no pad tokens) instead of padding to its longest row
    needs: str  # what the hardware must offer: "cpu", "cuda" or "cuda+bf16"

    def describe(self) -> str:
        """One line: the numbers that matter."""
        layout = "padding-free" if self.padding_free else "padded"
        return (f"preset {self.name!r}: {self.dtype}, batch {self.batch_size} x accumulation {self.grad_accum}, "
                f"max {self.max_length} tokens, {layout}, gradient checkpointing "
                f"{'on' if self.gradient_checkpointing else 'off'}, {self.optim}")


PRESETS: dict[str, Preset] = {
    # CPU: memory is plentiful and time is scarce: no checkpointing (it costs time to save memory), no pad tokens.
    # choose_preset switches it to bf16 autocast on CPUs with bf16 instructions (2x faster measured).
    "cpu": Preset("cpu", "fp32", batch_size=4, grad_accum=1, max_length=512, gradient_checkpointing=False,
                  optim="adamw_torch", padding_free=True, needs="cpu"),
    # Colab T4 (16 GB, compute capability 7.5): fp16 with loss scaling; checkpointing keeps 1B-3B models in memory.
    "t4": Preset("t4", "fp16", batch_size=4, grad_accum=4, max_length=1024, gradient_checkpointing=True,
                 optim="adamw_torch_fused", padding_free=False, needs="cuda"),
    # H100 (80 GB): bf16, big batches; memory is rarely the limit for models this course trains.
    "h100": Preset("h100", "bf16", batch_size=16, grad_accum=1, max_length=2048, gradient_checkpointing=False,
                   optim="adamw_torch_fused", padding_free=False, needs="cuda+bf16"),
}


def choose_preset(name: str | Preset | None = None) -> tuple[Preset, str]:
    """Pick a preset from the hardware (``name=None``) or check that ``name`` can run here; return it and why."""
    has_cuda = torch.cuda.is_available()
    has_bf16 = has_cuda and torch.cuda.is_bf16_supported()
    gpu = torch.cuda.get_device_name() if has_cuda else None
    if isinstance(name, Preset):
        preset, reason = name, "a preset you built yourself"
    elif name is None:
        if has_bf16:
            preset, reason = PRESETS["h100"], f"{gpu} supports bf16"
        elif has_cuda:
            preset, reason = PRESETS["t4"], f"{gpu} has no bf16, so fp16 with loss scaling"
        else:
            preset, reason = PRESETS["cpu"], "no CUDA GPU"
    elif name in PRESETS:
        preset, reason = PRESETS[name], "asked for by name"
    else:
        raise TrainSetupError(f"Unknown preset {name!r}. Use one of {sorted(PRESETS)}, or preset=None to pick from "
                              "the hardware.")
    if preset is PRESETS["cpu"] and models.cpu_has_native_bf16():
        preset = replace(preset, dtype="bf16")
        reason += "; this CPU has bf16 instructions, so bf16 autocast (fp32 master weights): about 2x faster than fp32"
    elif preset is PRESETS["cpu"]:
        reason += "; this CPU has no bf16 instructions, so fp32"
    if preset.needs.startswith("cuda") and not has_cuda:
        raise TrainSetupError(
            f"Preset {preset.name!r} trains in {preset.dtype} on a CUDA GPU, but PyTorch sees no CUDA GPU on this "
            "machine. Use preset='cpu' here (or preset=None to pick from the hardware), or run on a GPU machine.")
    if preset.needs == "cuda+bf16" and not has_bf16:
        raise TrainSetupError(
            f"Preset {preset.name!r} trains in bf16, which {gpu} does not support (bf16 needs compute capability "
            "8.0+). Use preset='t4' (fp16) on this GPU, or preset=None to pick from the hardware.")
    if preset.dtype == "bf16" and not (models.cpu_has_native_bf16() if preset.needs == "cpu" else has_bf16):
        raise TrainSetupError(f"Preset {preset.name!r} asks for bf16, which this machine cannot train in. Use "
                              "dtype='fp32' on a CPU or 'fp16' on an older GPU.")
    return preset, reason


def cpu_threads(threads: int | None = None) -> tuple[int, str]:
    """Set how many CPU threads PyTorch uses: ``threads``, or the physical cores that other programs leave free,
    from a 0.3 s sample of CPU use taken while this process is idle (the load average would count this notebook's
    own last cell as "other programs"). More threads than free cores is much SLOWER, not a little: the threads wait
    for each other (4x slower measured with 2 threads on a 2-core machine shared with other jobs)."""
    import psutil  # installed with jupyter (ipykernel)

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    if threads is None:
        busy = psutil.cpu_percent(interval=0.3) / 100 * (psutil.cpu_count() or cores)
        threads = max(1, min(cores, round(cores - busy)))
        reason = f"{cores} physical cores, about {min(busy, cores):.1f} of them busy with other programs"
    else:
        reason = "asked for"
    torch.set_num_threads(threads)
    return threads, reason


# ---------------------------------------------------------------------------------------------------------------
# Data: chat rows -> prompt-completion rows, checked


def with_system_prompt(rows: Sequence[Row], system_prompt: str) -> list[Row]:
    """Copies of chat rows whose system message is ``system_prompt`` (added if a row has none)."""
    out = []
    for row in rows:
        messages = [dict(m) for m in row["messages"]]
        if messages and messages[0]["role"] == "system":
            messages[0]["content"] = system_prompt
        else:
            messages.insert(0, {"role": "system", "content": system_prompt})
        out.append({**row, "messages": messages})
    return out


def training_rows(task_rows: Sequence[Row], system_prompt: str | None, replay: Sequence[Row] = ()) -> list[Row]:
    """The rows a run trains on: the task rows with ``system_prompt`` (``None``: their own), then the ``replay`` rows
    untouched (their own system prompt, or none: the chat template's default). The trainer shuffles them."""
    task = list(task_rows) if system_prompt is None else with_system_prompt(task_rows, system_prompt)
    return task + list(replay)


def prompt_completion_rows(rows: Sequence[Row], system_prompt: str | None = None) -> list[Row]:
    """Chat rows -> ``{"prompt": [system, user], "completion": [assistant]}`` (optionally with a new system prompt).

    Every row must end with a non-empty assistant turn: that turn is what the model is trained to write.
    """
    if not rows:
        raise TrainSetupError("No training rows: pass a non-empty list of chat rows ({'messages': [...]}).")
    if system_prompt is not None:
        rows = with_system_prompt(rows, system_prompt)
    out = []
    for i, row in enumerate(rows):
        messages = row.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") != "assistant" or not str(last.get("content", "")).strip():
            roles = [m.get("role") for m in messages]
            raise TrainSetupError(
                f"row {i} (id {row.get('id', '?')!r}) does not end with a non-empty assistant turn (roles: {roles}). "
                "SFT learns the assistant's answer, so each row needs one: add it, or drop the row (and report it).")
        pc = data.to_prompt_completion(row)
        out.append({"prompt": pc["prompt"], "completion": pc["completion"]})
    return out


def check_lengths(pc_rows: Sequence[Row], tokenizer: PreTrainedTokenizerBase, max_length: int,
                  ids: Sequence[str] | None = None) -> list[int]:
    """Token length of each prompt-completion row; raise naming the first row longer than ``max_length``."""
    lengths = []
    for i, row in enumerate(pc_rows):
        n = len(tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True,
                                              return_dict=True)["input_ids"])
        if n > max_length:
            name = f"row {i}" + (f" (id {ids[i]!r})" if ids else "")
            raise TrainSetupError(
                f"{name} is {n} tokens, longer than max_length={max_length}. Cutting it would cut the answer the "
                "model should learn. Shorten or drop that row (and report it), or raise max_length.")
        lengths.append(n)
    return lengths


# ---------------------------------------------------------------------------------------------------------------
# Trainer


def lora_config(r: int = 16, lora_alpha: int = 32, target_modules: str | list[str] = "all-linear",
                lora_dropout: float = 0.0):
    """A ``peft.LoraConfig`` for a causal LM. ``"all-linear"``: every linear layer but the output head."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=target_modules, lora_dropout=lora_dropout,
                      task_type="CAUSAL_LM")


def sft_config(preset: Preset, output_dir: str | Path, steps: int, lr: float, eval_steps: int | None = None,
               save_steps: int | None = None, warmup: float = 0.1, logging_steps: int | None = None,
               seed: int = 0, progress: bool = True):
    """The ``trl.SFTConfig`` of a run: the preset's numbers plus schedule, evaluation and checkpoint cadence."""
    from trl import SFTConfig

    eval_steps = eval_steps or max(1, steps // 4)
    save_steps = save_steps or max(1, steps // 4)
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=steps,  # optimiser steps (each sees batch_size * grad_accum examples)
        learning_rate=lr,
        lr_scheduler_type="cosine",
        warmup_steps=warmup,  # a fraction (< 1) of the steps: ramp the learning rate up from 0, then decay it
        max_grad_norm=1.0,  # gradient clipping: one odd batch cannot throw the weights far
        weight_decay=0.0,
        per_device_train_batch_size=preset.batch_size,
        per_device_eval_batch_size=preset.batch_size,
        gradient_accumulation_steps=preset.grad_accum,
        # trl turns (gradient) checkpointing ON by default: on a CPU it only costs time
        activation_checkpointing=preset.gradient_checkpointing,
        bf16=preset.dtype == "bf16",  # mixed precision: bf16 compute (autocast), fp32 master weights
        fp16=preset.dtype == "fp16",
        use_cpu=preset.needs == "cpu",
        optim=preset.optim,
        padding_free=preset.padding_free,
        max_length=None,  # we checked lengths ourselves (check_lengths): nothing is cut
        completion_only_loss=True,  # prompt-completion rows: loss on the completion only (also trl's default)
        eval_strategy="steps", eval_steps=eval_steps,
        save_strategy="steps", save_steps=save_steps, save_total_limit=2,
        logging_steps=logging_steps or max(1, min(10, steps // 20)),
        report_to="none",
        seed=seed,
        disable_tqdm=not progress,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _cut_after_answer(example: dict, eos_id: int) -> dict:
    """Drop what the chat template writes after the answer's end-of-turn token (SmolLM2: a newline): the model never
    generates past ``<|im_end|>``, so training on it is wasted (and it would count as "answer" tokens)."""
    ids, labels = example["input_ids"], example["labels"]
    last = max((i for i, t in enumerate(ids) if t == eos_id and labels[i] != -100), default=len(ids) - 1)
    return {"input_ids": ids[: last + 1], "labels": labels[: last + 1]}


DECISION_END = ' "reply'  # the answer's decision fields end where its reply key starts


def decision_key_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids of the reply key as it appears inside a target (``..., "reply": ...``): the decision fields
    (category, priority, needs_human) are the answer tokens before it."""
    ids = tokenizer.encode(DECISION_END, add_special_tokens=False)
    probe = tokenizer.encode('{"needs_human": false,' + DECISION_END + ': "x"}', add_special_tokens=False)
    if not any(probe[i:i + len(ids)] == ids for i in range(len(probe))):
        raise TrainSetupError(f"This tokenizer splits {DECISION_END!r} differently inside a JSON answer, so the "
                              "decision tokens cannot be found: train with decision_weight=1.")
    return ids


def decision_weights(input_ids: torch.Tensor, labels: torch.Tensor, key_ids: Sequence[int],
                     weight: float) -> torch.Tensor:
    """Per-token loss weights: ``weight`` on answer tokens before the reply key (the decisions), 1 elsewhere.
    Works on padded and on padding-free batches (each answer is a run of labels that are not ignored)."""
    weights = torch.ones(labels.shape, dtype=torch.float32, device=labels.device)
    key = list(key_ids)
    for b, (row, lab) in enumerate(zip(input_ids.tolist(), (labels != -100).tolist())):
        deciding = False
        for t, scored in enumerate(lab):
            if scored and (t == 0 or not lab[t - 1]):
                deciding = True  # an answer starts here
            if deciding and row[t:t + len(key)] == key:
                deciding = False  # its reply starts here
            if deciding and scored:
                weights[b, t] = weight
    return weights


def _weighted_trainer_class():
    from trl import SFTTrainer

    class DecisionWeightedSFTTrainer(SFTTrainer):
        """``SFTTrainer`` whose training loss weights the decision tokens ``decision_weight`` times (held-out loss
        stays the plain mean, so runs remain comparable)."""

        decision_weight: float = 1.0
        key_ids: list[int] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not model.training or self.decision_weight == 1.0:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]
            outputs = model(**{**inputs, "use_cache": False}, fused_lm_head=True)
            # log_probs[:, t] scores labels[:, t + 1] (the head shifts the labels by one)
            weights = decision_weights(inputs["input_ids"], labels, self.key_ids, self.decision_weight)[:, 1:]
            scored = (labels[:, 1:] != -100).to(weights.dtype)
            loss = -(outputs.log_probs * weights * scored).sum() / (weights * scored).sum().clamp(min=1.0)
            tokens = inputs["position_ids"].size(1) if "position_ids" in inputs else int(inputs["attention_mask"].sum())
            self._total_train_tokens += tokens
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            return (loss, outputs) if return_outputs else loss

    return DecisionWeightedSFTTrainer


def build_trainer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_rows: Sequence[Row],
                  eval_rows: Sequence[Row] | None, config, method: str = "lora", lora=None,
                  system_prompt: str | None = None, max_length: int = 512, callbacks: Sequence | None = None,
                  decision_weight: float = 1.0):
    """An ``SFTTrainer`` over checked prompt-completion rows. ``model`` is trained in place (pass a copy).
    ``decision_weight`` > 1 counts each decision token (category, priority, needs_human) that many times in the
    training loss, so the few tokens that decide the triage are not drowned by the ~40 tokens of the reply."""
    from datasets import Dataset
    from trl import SFTTrainer

    if decision_weight <= 0:
        raise TrainSetupError(f"decision_weight={decision_weight}: use 1 (plain loss) or more (e.g. 5).")

    _check_method(method)
    datasets = {}
    for split, rows in (("train", train_rows), ("eval", eval_rows)):
        if split == "eval" and not rows:
            continue
        pc = prompt_completion_rows(rows, system_prompt)
        check_lengths(pc, tokenizer, max_length, [r.get("id", "?") for r in rows])
        datasets[split] = Dataset.from_list(pc)
    if "eval" not in datasets and config.eval_strategy != "no":
        config = replace(config, eval_strategy="no")  # nothing held out: no held-out loss to track
    trainer_class = SFTTrainer if decision_weight == 1.0 else _weighted_trainer_class()
    trainer = trainer_class(
        model=model, args=config, train_dataset=datasets["train"], eval_dataset=datasets.get("eval"),
        processing_class=tokenizer, peft_config=(lora or lora_config()) if method == "lora" else None,
        callbacks=list(callbacks or []),
    )
    if decision_weight != 1.0:
        trainer.decision_weight, trainer.key_ids = float(decision_weight), decision_key_ids(tokenizer)
    eos = tokenizer.eos_token_id
    cut = dict(function=_cut_after_answer, fn_kwargs={"eos_id": eos}, desc="Ending each example at its answer")
    trainer.train_dataset = trainer.train_dataset.map(**cut)
    if trainer.eval_dataset is not None:
        trainer.eval_dataset = trainer.eval_dataset.map(**cut)
    return trainer


@dataclass
class TrainResult:
    model: PreTrainedModel  # the trained model (a peft PeftModel for LoRA), in eval mode
    history: list[dict]  # trainer.state.log_history: {"step", "loss"} and {"step", "eval_loss"} records
    output_dir: Path  # where the checkpoints are
    trainable_params: int  # parameters the optimiser updated
    seconds: float  # wall time of trainer.train()
    tokens_per_second: float  # real (non-pad) tokens through the model per second of training
    total_params: int = 0  # parameters of the whole model (base + adapters)
    answer_tokens: int = 0  # tokens the loss was computed on (the answers) over the run; from the mean length
    preset: Preset | None = None  # the preset the run used


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; tied weights counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``checkpoint-<step>`` folder with the highest step in ``output_dir``, or ``None``."""
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(folders, key=lambda p: int(p.name.split("-")[-1]), default=None)


def train_sft(
    model_or_name: PreTrainedModel | str,
    train_rows: Sequence[Row],
    eval_rows: Sequence[Row] | None = None,
    method: str = "lora",
    preset: str | Preset | None = None,
    steps: int = 200,
    lr: float | None = None,
    lora_r: int = 16,
    lora_alpha: int = 32,
    target_modules: str | list[str] = "all-linear",
    output_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[TrainerCallback] | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    system_prompt: str | None = SHORT_SYSTEM_PROMPT,
    replay: Sequence[Row] = (),
    eval_steps: int | None = None,
    save_steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
    threads: int | None = None,
    decision_weight: float = 1.0,
) -> TrainResult:
    """Fine-tune with ``trl.SFTTrainer`` on chat rows; LoRA (``peft``) or full. Trains a copy: the model you pass
    stays as it was.

    ``system_prompt`` replaces every row's system message (default: the short prompt; ``None`` keeps the rows'
    own): prompt the tuned model the same way. ``replay``: general chat rows (``data.load_split("replay")``) mixed
    into the training rows as they are, with their own (default) system prompt: they keep the model answering
    general requests normally instead of in the task's format (forgetting; notebook 04 measures it).
    ``lr=None``: 2e-4 for LoRA, 5e-5 for full fine-tuning. (On GreenLeaf, 5e-4 gave +6 points of field
    accuracy but cost 9 points on the regression set instead of 5: ``benchmarks/results/lr_trials.json``.)
    ``resume=True`` continues from the latest checkpoint in ``output_dir``. ``threads``: CPU threads (default:
    the free physical cores, see ``cpu_threads``).
    """
    _check_method(method)
    preset, reason = choose_preset(preset)
    print(f"Training with {preset.describe()}\n  why: {reason}")
    if preset.name == "cpu":
        threads, why = cpu_threads(threads)
        print(f"  {threads} CPU thread(s): {why}")
    if isinstance(model_or_name, str):
        model, tok = models.load_model(model_or_name)
        tokenizer = tokenizer or tok
    else:
        model = copy.deepcopy(model_or_name)
        tokenizer = tokenizer or models.load_tokenizer(model.name_or_path)
    if preset.needs == "cpu" and model.dtype != torch.float32:
        model = model.float()  # fp32 master weights: bf16 compute comes from autocast (bf16=True), not the storage
    model.train()
    lr = lr if lr is not None else DEFAULT_LR[method]
    if output_dir is None:
        if resume:
            raise TrainSetupError("resume=True needs the output_dir of the run to continue.")
        output_dir = cache_dir() / "runs" / f"{method}-{time.strftime('%Y%m%d-%H%M%S')}"
    output_dir = Path(output_dir)
    if resume and latest_checkpoint(output_dir) is None:
        raise TrainSetupError(f"resume=True, but {output_dir} has no checkpoint-* folder to resume from. "
                              "Run once with resume=False (checkpoints are written every save_steps).")
    if not resume and latest_checkpoint(output_dir) is not None:
        raise TrainSetupError(f"{output_dir} already holds checkpoints of an earlier run. Pass resume=True to "
                              "continue it, or another output_dir to start afresh.")
    config = sft_config(preset, output_dir, steps, lr, eval_steps=eval_steps, save_steps=save_steps, seed=seed,
                        progress=progress)
    lora = lora_config(lora_r, lora_alpha, target_modules) if method == "lora" else None
    if replay:
        print(f"  + {len(replay)} replay rows (general requests, the base model's own answers) mixed into "
              f"{len(train_rows)} task rows")
    if system_prompt is not None and eval_rows:
        eval_rows = with_system_prompt(eval_rows, system_prompt)
    trainer = build_trainer(model, tokenizer, training_rows(train_rows, system_prompt, replay), eval_rows, config,
                            method=method, lora=lora, max_length=preset.max_length, callbacks=callbacks,
                            decision_weight=decision_weight)
    trainable, total = count_parameters(trainer.model)
    print(f"  {method}: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.perf_counter() - start
    history = list(trainer.state.log_history)
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    answer_per_step = _answer_tokens_per_example(trainer.train_dataset) * preset.batch_size * preset.grad_accum
    trained = trainer.model.eval()
    if preset.needs == "cpu" and preset.dtype == "bf16":
        trained.to(torch.bfloat16)  # answer in bf16 too: 2.5x faster generation than fp32 on this CPU
    return TrainResult(
        model=trained, history=history, output_dir=output_dir, trainable_params=trainable, seconds=seconds,
        tokens_per_second=tokens / seconds if seconds else 0.0, total_params=total,
        answer_tokens=int(answer_per_step * trainer.state.global_step), preset=preset,
    )


def _answer_tokens_per_example(dataset) -> float:
    labels = dataset["labels"]
    return sum(sum(1 for t in row if t != -100) for row in labels) / max(1, len(labels))


# ---------------------------------------------------------------------------------------------------------------
# Watching the loss


def _loss_points(history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(h["step"], h[key]) for h in history if key in h and h[key] is not None and "step" in h]
    return [p[0] for p in points], [p[1] for p in points]


def plot_history(history: Sequence[dict], title: str = "Training and held-out loss"):
    """Train loss and held-out (eval) loss against the optimiser step, from ``TrainResult.history``."""
    fig, (ax,) = new_figure()
    for key, label, style in (("loss", "train", "-"), ("eval_loss", "held-out", "o-")):
        steps, values = _loss_points(history, key)
        if steps:
            ax.plot(steps, values, style, label=label)
    ax.set(xlabel="optimiser step", ylabel="loss (answer tokens only)", title=title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    return fig


def plot_comparison(runs: dict[str, dict[str, float]], title: str = ""):
    """Small multiples: one panel per measure, one bar per run, e.g.
    ``{"LoRA": {"trainable params": 4.9e6, "minutes": 6}, "full": {...}}``. Returns the Figure."""
    if not runs:
        raise ValueError("Nothing to plot: pass {run name: {measure: value}}.")
    measures = list(next(iter(runs.values())))
    fig, axes = new_figure(ncols=len(measures), width=max(7.0, 2.2 * len(measures)))
    names = list(runs)
    for ax, measure in zip(axes, measures):
        values = [runs[name].get(measure, float("nan")) for name in names]
        bars = ax.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=7)
        ax.set_xticks(range(len(names)), names, fontsize=7, rotation=15)
        ax.set_title(measure, fontsize=9)
        ax.margins(y=0.2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


class LiveLossPlot(TrainerCallback):
    """Redraw train + held-out loss in the notebook each time the trainer logs. Outside a notebook it only records."""

    def __init__(self, title: str = "Training and held-out loss") -> None:
        self.title = title
        self.history: list[dict] = []
        self._handle = None

    def _in_notebook(self) -> bool:
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            return False
        return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.history.append({**logs, "step": state.global_step})
        if not self._in_notebook():
            return
        import io

        from IPython.display import Image, display

        png = io.BytesIO()  # an image, not the Figure object: it shows whatever matplotlib backend is active
        plot_history(self.history, self.title).savefig(png, format="png", dpi=90)
        image = Image(data=png.getvalue(), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)


# ---------------------------------------------------------------------------------------------------------------
# Adapters on disk


def save_adapter(model, path: str | Path) -> Path:
    """Save a peft model's adapter (the LoRA matrices and their config only) to ``path``."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        raise TypeError("save_adapter needs a peft model (the result of method='lora'). A fully fine-tuned model "
                        "is saved whole: model.save_pretrained(path).")
    path = Path(path)
    model.save_pretrained(path)
    return path


def load_adapter(base: PreTrainedModel, path: str | Path):
    """Put the adapter saved at ``path`` on top of ``base`` (changes ``base``: pass a copy to keep it clean)."""
    from peft import PeftModel

    if not (Path(path) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{path} holds no adapter (no adapter_config.json). Save one with save_adapter().")
    # adapters in the base's dtype (peft would upcast them to fp32, and a bf16 base then meets fp32 adapters)
    return PeftModel.from_pretrained(base, str(path), autocast_adapter_dtype=False).to(base.dtype).eval()


def size_on_disk(path: str | Path) -> int:
    """Bytes taken by a file or by every file under a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human_size(n_bytes: float) -> str:
    """``1536000`` -> ``'1.5 MB'``."""
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1000
    return f"{n_bytes:.1f} GB"
