"""Running a supervised fine-tuning job: the peft and trl configs of a run, the ``SFTTrainer`` over checked rows
(each example ending at its answer), and ``train_sft``, which picks a preset, trains a copy of the model (LoRA or
full), resumes from checkpoints, and returns a ``TrainResult`` with the history and the throughput.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from course_lib import attention, data, models
from course_lib import lora as lora_module
from course_lib.paths import cache_dir
from course_lib.train.fused_lora import fused_lora
from course_lib.train.master_adamw import MasterWeightAdamW
from course_lib.train.presets import (DEFAULT_LR, Preset, TrainSetupError, _check_method, choose_preset, cpu_threads,
                                     storage_dtype)
from course_lib.train.rows import (reply_first_rows, SHORT_SYSTEM_PROMPT, Row, check_lengths, prompt_completion_rows, training_rows,
                                   with_system_prompt)
from course_lib.train.weighting import _weighted_trainer_class, decision_key_ids


LOSS_ON = ("answer", "all")  # which tokens the training loss is computed on


def lora_config(r: int = 16, lora_alpha: int = 32, target_modules: str | list[str] = "all-linear",
                lora_dropout: float = 0.0):
    """A ``peft.LoraConfig`` for a causal LM. ``"all-linear"``: every linear layer but the output head."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=target_modules, lora_dropout=lora_dropout,
                      task_type="CAUSAL_LM")


def sft_config(preset: Preset, output_dir: str | Path, steps: int, lr: float, eval_steps: int | None = None,
               save_steps: int | None = None, warmup: float = 0.1, logging_steps: int | None = None,
               seed: int = 0, progress: bool = True, loss_on: str = "answer"):
    """The ``trl.SFTConfig`` of a run: the preset's numbers plus schedule, evaluation and checkpoint cadence.
    ``loss_on="all"`` computes the loss on every token, prompt included (see ``train_sft``)."""
    if loss_on not in LOSS_ON:
        raise TrainSetupError(f"loss_on={loss_on!r}: use 'answer' (the course's recipe) or 'all' (prompt too).")
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
        # prompt-completion rows: loss on the completion only (trl's default for them), or on every token
        completion_only_loss=loss_on == "answer",
        eval_strategy="steps", eval_steps=eval_steps,
        save_strategy="steps", save_steps=save_steps, save_total_limit=2,
        logging_steps=logging_steps or max(1, min(10, steps // 20)),
        report_to="none",
        seed=seed,
        disable_tqdm=not progress,
        dataloader_pin_memory=torch.cuda.is_available(),
        # several processes (DDP): every parameter that trains is used in every step (LoRA on all linear layers, or
        # all weights), so DDP need not walk the graph after each backward looking for unused ones
        ddp_find_unused_parameters=False,
    )


def _cut_after_answer(example: dict, eos_id: int) -> dict:
    """Drop what the chat template writes after the answer's end-of-turn token (SmolLM2: a newline): the model never
    generates past ``<|im_end|>``, so training on it is wasted (and it would count as "answer" tokens)."""
    ids, labels = example["input_ids"], example["labels"]
    last = max((i for i, t in enumerate(ids) if t == eos_id and labels[i] != data.IGNORE_INDEX), default=len(ids) - 1)
    return {"input_ids": ids[: last + 1], "labels": labels[: last + 1]}


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
    if decision_weight != 1.0 and any(str(row["messages"][-1].get("content", "")).lstrip().startswith('{"reply"')
                                      for row in train_rows if row.get("messages")):
        raise TrainSetupError("decision_weight weights the decisions written before the reply, but these answers "
                              "write the reply first (reply_first), so their decisions would not be weighted: use "
                              "decision_weight=1 with reply-first answers.")

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


def world_size() -> int:
    """How many training processes run this script together: ``WORLD_SIZE``, which ``torchrun`` and
    ``accelerate launch`` set (1 when started by plain ``python`` or in a notebook)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the process that prints and saves: rank 0 (``RANK``, set by the launchers), or the only one."""
    return int(os.environ.get("RANK", "0")) == 0


def per_process_preset(preset: Preset, processes: int) -> Preset:
    """The preset each of ``processes`` data-parallel processes runs so that an optimiser step still sees
    ``batch_size * grad_accum`` examples in all (the EFFECTIVE batch): the batch is split between the processes,
    so 1-GPU and N-GPU runs take the same steps over the same examples and their loss curves can be compared."""
    if processes == 1:
        return preset
    if preset.batch_size % processes:
        raise TrainSetupError(
            f"Preset {preset.name!r} has batch_size {preset.batch_size}, which {processes} processes cannot split "
            f"evenly (each process takes batch_size / processes examples a step, so that the effective batch stays "
            f"{preset.batch_size * preset.grad_accum}). Launch a number of processes that divides "
            f"{preset.batch_size}, or build a preset whose batch_size it divides (dataclasses.replace(preset, "
            "batch_size=...)).")
    return replace(preset, batch_size=preset.batch_size // processes)


def adapter_input_casts_off(model, preset: Preset, method: str):
    """A context in which peft does not cast each adapter's input to the adapters' fp32 before its A and B matmuls
    (``peft.helpers.disable_input_dtype_casting``), for LoRA under autocast (the bf16 and fp16 presets) only. There
    those matmuls run in 16 bits whatever the input, so the cast only copied every activation to fp32 and back, 154
    times a step for a 1.1B llama: exact (bf16 -> fp32 -> bf16 loses nothing), so the numbers do not change
    (``tests/test_train.py``), and the LoRA steps run faster (``benchmarks/results/gpu_greenleaf.json``). Outside
    training (no autocast) the cast is needed again: a bf16 input cannot meet the fp32 adapters, so it is only a
    context."""
    from peft.helpers import disable_input_dtype_casting

    return disable_input_dtype_casting(model, active=method == "lora" and preset.dtype in ("bf16", "fp16"))


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
    preset: Preset | None = None  # the preset the run used (per process: see processes)
    processes: int = 1  # data-parallel processes (WORLD_SIZE): an optimiser step saw preset.batch_size x this


def masters_in_optimizer(preset: Preset, method: str, model_dtype: torch.dtype, on_gpu: bool, processes: int) -> bool:
    """Full fine-tuning of a bf16 model on one GPU keeps the model in bf16 and its fp32 master weights inside the
    optimizer (``MasterWeightAdamW``) instead of storing it in fp32 under autocast: the same updates, without
    autocast's copy of every weight in every step (1.1B on an H100: 55,150 -> 64,887 tokens/s, 46.1% MFU,
    ``benchmarks/results/gpu_greenleaf_master.json``). Not on a CPU (its recorded runs stay as they are), not for
    LoRA (the adapters are fp32 already), not with several processes (FSDP shards the parameters after this point)."""
    return (method == "full" and preset.dtype == "bf16" and model_dtype == torch.bfloat16 and on_gpu
            and preset.needs != "cpu" and processes == 1)


def master_weight_optimizer(trainer) -> MasterWeightAdamW:
    """``MasterWeightAdamW`` over the trainer's trainable parameters, with the Trainer's own weight-decay groups
    (no decay on biases and norms) and its learning rate, betas and epsilon."""
    decay = set(trainer.get_decay_parameter_names(trainer.model))
    named = [(n, p) for n, p in trainer.model.named_parameters() if p.requires_grad]
    args = trainer.args
    return MasterWeightAdamW(
        [{"params": [p for n, p in named if n in decay], "weight_decay": args.weight_decay},
         {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}],
        lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)


def lora_fused_on_gpu(model, method: str):
    """``fused_lora`` (LoRA's update as one ``addmm``) for LoRA on a GPU, where the element-wise passes it saves cost
    as much as the matrix products; on a CPU a context that changes nothing (its results stay as recorded)."""
    on_gpu = next(model.parameters()).is_cuda
    return fused_lora(model) if method == "lora" and on_gpu else contextlib.nullcontext(0)


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
    reply_first: bool = False,
    loss_on: str = "answer",
    save_to: str | Path | None = None,
    in_place: bool = False,
) -> TrainResult:
    """Fine-tune with ``trl.SFTTrainer`` on chat rows; LoRA (``peft``) or full. Trains a copy: the model you pass
    stays as it was.

    ``system_prompt`` replaces every row's system message (default: the short prompt; ``None`` keeps the rows'
    own): prompt the tuned model the same way. ``replay``: general chat rows (``data.load_split("replay")``) mixed
    into the training rows as they are, with their own (default) system prompt: they keep the model answering
    general requests normally instead of in the task's format (forgetting; notebook 04 measures it).
    ``lr=None``: ``DEFAULT_LR`` (2e-4 for LoRA, 5e-5 for full fine-tuning); notebook 04 passes the rate its recipe
    was chosen with (``benchmarks/results/recipe_trials.json``). ``decision_weight`` > 1 counts the decision tokens
    (before the reply) that many times in the training loss. ``reply_first=True`` trains on answers that write the
    reply before the decisions (``reply_first_rows``), so each decision can use the reply just written.
    ``loss_on="all"`` trains on every token, the ticket included (the "simplified" masking of some tutorials): the
    model then learns to write the tickets too, personal data and all (notebook 06 measures what it memorises).
    ``resume=True`` continues from the latest checkpoint in ``output_dir``. ``threads``: CPU threads (default:
    the free physical cores, see ``cpu_threads``). ``save_to``: a folder for the trained adapters (LoRA) or model
    (full), written by rank 0 only (under FSDP every process takes part: the shards are gathered first).
    ``in_place=True`` trains the model you pass instead of a copy (no second copy in memory: ``launch`` builds a
    model for one run).

    Started by ``torchrun`` or ``accelerate launch`` (``python -m course_lib.train.launch``), each process runs
    this same function: the preset's batch is split between the processes (``per_process_preset``), only rank 0
    prints and saves, and the Trainer wraps the model in DDP or FSDP as the launcher's configuration says.
    """
    _check_method(method)
    if loss_on not in LOSS_ON:
        raise TrainSetupError(f"loss_on={loss_on!r}: use 'answer' (the course's recipe) or 'all' (prompt too).")
    preset, reason = choose_preset(preset)
    say = print if is_main_process() else (lambda *args, **kwargs: None)  # several processes: rank 0 speaks
    say(f"Training with {preset.describe()}\n  why: {reason}")
    processes = world_size()
    if processes > 1:
        preset = per_process_preset(preset, processes)
        say(f"  {processes} processes, data-parallel: {preset.batch_size} examples each a forward pass, so an "
            f"optimiser step still sees {preset.batch_size * processes * preset.grad_accum} (the effective batch)")
        if decision_weight != 1.0:
            say("  note: the decision-weighted loss is a mean per process, so the processes' losses are averaged "
                "with equal weight, not per token as on one process: the runs differ slightly")
    if preset.name == "cpu":
        threads, why = cpu_threads(threads)
        say(f"  {threads} CPU thread(s): {why}")
    if isinstance(model_or_name, str):
        model, tok = models.load_model(model_or_name)
        tokenizer = tokenizer or tok
    else:
        model = model_or_name if in_place else copy.deepcopy(model_or_name)
        tokenizer = tokenizer or models.load_tokenizer(model.name_or_path)
    on_gpu = next(model.parameters()).is_cuda
    masters = masters_in_optimizer(preset, method, model.dtype, on_gpu, processes)
    if masters:
        say("  weights kept in bfloat16, fp32 master weights inside the optimizer (train.MasterWeightAdamW): "
            "no update rounds away, and no fp32-to-bf16 copy of every weight in every step")
    else:
        dtype, why = storage_dtype(preset, method, model.dtype)
        if dtype != model.dtype:
            model = model.to(dtype)  # master weights: 16-bit compute comes from autocast (bf16=/fp16=True)
            say(f"  weights kept in {str(dtype).replace('torch.', '')}: {why}")
    own_attention = model.config._attn_implementation
    used_attention, why = attention.for_packed_rows(model, preset.padding_free)
    if preset.padding_free:
        say(f"  attention {used_attention}: {why}")
    model.train()
    lr = lr if lr is not None else DEFAULT_LR[method]
    if output_dir is None:
        if resume:
            raise TrainSetupError("resume=True needs the output_dir of the run to continue.")
        if processes > 1:
            raise TrainSetupError(f"{processes} processes would each pick their own timestamped output_dir: pass "
                                  "one output_dir (python -m course_lib.train.launch passes one for you).")
        output_dir = cache_dir() / "runs" / f"{method}-{time.strftime('%Y%m%d-%H%M%S')}"
    output_dir = Path(output_dir)
    if resume and latest_checkpoint(output_dir) is None:
        raise TrainSetupError(f"resume=True, but {output_dir} has no checkpoint-* folder to resume from. "
                              "Run once with resume=False (checkpoints are written every save_steps).")
    if not resume and latest_checkpoint(output_dir) is not None:
        raise TrainSetupError(f"{output_dir} already holds checkpoints of an earlier run. Pass resume=True to "
                              "continue it, or another output_dir to start afresh.")
    config = sft_config(preset, output_dir, steps, lr, eval_steps=eval_steps, save_steps=save_steps, seed=seed,
                        progress=progress, loss_on=loss_on)
    lora = lora_config(lora_r, lora_alpha, target_modules) if method == "lora" else None
    if replay:
        say(f"  + {len(replay)} replay rows (general requests, the base model's own answers) mixed into "
            f"{len(train_rows)} task rows")
    if system_prompt is not None and eval_rows:
        eval_rows = with_system_prompt(eval_rows, system_prompt)
    if reply_first:  # the answer's reply first, then the decisions (rows.reply_first_rows); held-out loss alike
        train_rows = reply_first_rows(train_rows)
        eval_rows = reply_first_rows(eval_rows) if eval_rows else eval_rows
    trainer = build_trainer(model, tokenizer, training_rows(train_rows, system_prompt, replay), eval_rows, config,
                            method=method, lora=lora, max_length=preset.max_length, callbacks=callbacks,
                            decision_weight=decision_weight)
    if masters:
        trainer.optimizer = master_weight_optimizer(trainer)
    counts = lora_module.count_parameters(trainer.model)
    trainable, total = int(counts["trainable"]), int(counts["total"])
    say(f"  {method}: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)")
    start = time.perf_counter()
    with adapter_input_casts_off(trainer.model, preset, method), lora_fused_on_gpu(trainer.model, method) as fused:
        if fused:
            say(f"  LoRA update fused into one matrix product in {fused} layers (train.fused_lora)")
        trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.perf_counter() - start
    history = list(trainer.state.log_history)
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    answer_per_step = (_answer_tokens_per_example(trainer.train_dataset) * preset.batch_size * preset.grad_accum
                       * processes)
    trained = trainer.model.eval()
    attention.restore(trained, own_attention)  # generation pads its batches: varlen would read them as one packed row
    if save_to is not None:
        trainer.save_model(str(save_to))  # every process calls it (FSDP gathers its shards); rank 0 writes
    if preset.needs == "cpu" and preset.dtype == "bf16":
        trained.to(torch.bfloat16)  # answer in bf16 too: 2.5x faster generation than fp32 on this CPU
    return TrainResult(
        model=trained, history=history, output_dir=output_dir, trainable_params=trainable, seconds=seconds,
        tokens_per_second=tokens / seconds if seconds else 0.0, total_params=total,
        answer_tokens=int(answer_per_step * trainer.state.global_step), preset=preset, processes=processes,
    )


def _answer_tokens_per_example(dataset) -> float:
    labels = dataset["labels"]
    return sum(sum(1 for t in row if t != data.IGNORE_INDEX) for row in labels) / max(1, len(labels))
