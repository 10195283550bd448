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

The module that holds each part: ``presets`` (presets, ``choose_preset``, ``cpu_threads``, ``TrainSetupError``),
``rows`` (step 2 and 3), ``weighting`` (the decision-weighted loss), ``trainer`` (step 4: ``build_trainer``,
``train_sft``, the batch split between processes), ``watch`` (loss plots) and ``adapters`` (adapters on disk);
``launch`` runs ``train_sft`` as one of several processes (DDP or FSDP, ``python -m course_lib.train.launch``
under ``torchrun`` or ``accelerate launch``): import it as ``course_lib.train.launch``. Imports point one way:
``presets`` ← ``rows``, ``weighting`` ← ``trainer``; ``watch`` and ``adapters`` stand alone. Everything is
re-exported here: ``from course_lib import train``.
"""

from course_lib import data, models
from course_lib.train.adapters import find_adapter, human_size, load_adapter, save_adapter, size_on_disk
from course_lib.train.presets import (DEFAULT_LR, PRESETS, Preset, TrainSetupError, _check_method, choose_preset,
                                      cpu_threads, storage_dtype)
from course_lib.train.rows import (SHORT_SYSTEM_PROMPT, Row, check_lengths, prompt_completion_rows, reply_first_rows,
                                   training_rows,
                                   with_system_prompt)
from course_lib.train.trainer import (LOSS_ON, TrainResult, _answer_tokens_per_example, _cut_after_answer,
                                      adapter_input_casts_off, build_trainer, is_main_process, master_weight_optimizer,
                                      masters_in_optimizer,
                                      latest_checkpoint, lora_config, per_process_preset, sft_config, train_sft,
                                      world_size)
from course_lib.train.fused_lora import fusable, fused_lora
from course_lib.train.master_adamw import MasterWeightAdamW
from course_lib.train.offload import offload_checkpoints
from course_lib.train.watch import LiveLossPlot, _loss_points, plot_comparison, plot_history
from course_lib.train.weighting import DECISION_END, _weighted_trainer_class, decision_key_ids, decision_weights

__all__ = [
    # modules the recipe uses (tests patch models.cpu_has_native_bf16 as train.models)
    "data", "models",
    # presets
    "DEFAULT_LR", "TrainSetupError", "Preset", "PRESETS", "choose_preset", "cpu_threads", "storage_dtype",
    # rows
    "Row", "SHORT_SYSTEM_PROMPT", "with_system_prompt", "training_rows", "prompt_completion_rows", "check_lengths",
    # weighting
    "DECISION_END", "decision_key_ids", "decision_weights",
    # trainer
    "LOSS_ON", "lora_config", "sft_config", "build_trainer", "TrainResult", "latest_checkpoint", "train_sft",
    "adapter_input_casts_off",
    # fused_lora: LoRA's update as one addmm (train_sft uses it on a GPU)
    "fused_lora", "fusable",
    # master_adamw: fp32 master weights inside the optimizer (full fine-tuning of a bf16 model on a GPU)
    "MasterWeightAdamW", "masters_in_optimizer", "master_weight_optimizer",
    # offload: checkpointed layer inputs in pinned CPU memory (QLoRA's longer steps in less GPU memory)
    "offload_checkpoints",
    # several processes (python -m course_lib.train.launch under torchrun / accelerate launch)
    "world_size", "is_main_process", "per_process_preset",
    # watch
    "plot_history", "plot_comparison", "LiveLossPlot",
    # adapters
    "save_adapter", "load_adapter", "find_adapter", "size_on_disk", "human_size",
]
# Private helpers re-exported for callers that reach into them (benchmarks/cpu_lesson.py, tests):
# _check_method, _cut_after_answer, _weighted_trainer_class, _answer_tokens_per_example, _loss_points.
