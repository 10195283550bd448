"""LoRA from scratch: the layer, injecting it into a model, merging, and the parameter and memory arithmetic.

Notebook 03 builds ``LoRALinear`` in front of the learner; this is the tested version, checked against ``peft``
in ``tests/test_lora.py`` (same outputs for the same A and B, same trainable-parameter counts).

A LoRA layer keeps a pretrained ``nn.Linear`` (weight ``W``, shape ``out × in``) frozen and learns a low-rank
update: ``y = W x + (alpha / r) · B A x`` with ``A`` (``r × in``) and ``B`` (``out × r``). ``B`` starts at zero,
so an injected model starts out computing exactly what the base model computes.

The module that holds each part: ``layer`` (``LoRALinear``, ``inject_lora``, ``merge_lora`` / ``unmerge_lora``,
``count_parameters``), ``from_peft`` (``copy_from_peft``), ``arithmetic`` (parameter and memory counts from a
model's shape), ``scaling`` (what ``alpha / r`` does to a training step) and ``merge_precision`` (merging into
bf16 weights). Imports point one way: ``layer`` ← every other module. Everything is re-exported here:
``from course_lib import lora``.
"""

from course_lib.lora.arithmetic import (ADAM_BYTES, BYTES_PER_PARAM, LLAMA_1B, LLAMA_3_1_8B, LLAMA_3_1_70B,
                                        LLAMA_3_2_1B, LLAMA_3_2_3B, SMOLLM2_135M, _shape, _with_total, base_parameter_count, linear_shapes, lora_parameter_count,
                                        plot_trainable_vs_rank, training_memory)
from course_lib.lora.from_peft import copy_from_peft
from course_lib.lora.layer import (ALL_LINEAR, ATTENTION, LoRALinear, _check_hyperparameters, count_parameters,
                                   inject_lora, linear_layer_names, lora_layers, matches_target, merge_lora,
                                   unmerge_lora)
from course_lib.lora.merge_precision import (_lora_copy_in, _sample, _unmerged_lora_layers, merge_logit_gap,
                                             merge_rounding)
from course_lib.lora.scaling import OPTIMIZERS, SCALING_RULES, change_by_rank, output_change, plot_change_by_rank

__all__ = [
    # layer
    "ATTENTION", "ALL_LINEAR", "LoRALinear", "matches_target", "linear_layer_names", "inject_lora", "lora_layers",
    "merge_lora", "unmerge_lora", "count_parameters",
    # from_peft
    "copy_from_peft",
    # arithmetic
    "SMOLLM2_135M", "LLAMA_1B", "LLAMA_3_2_1B", "LLAMA_3_2_3B", "LLAMA_3_1_8B", "LLAMA_3_1_70B", "BYTES_PER_PARAM", "ADAM_BYTES", "linear_shapes",
    "lora_parameter_count", "base_parameter_count", "training_memory", "plot_trainable_vs_rank",
    # scaling
    "SCALING_RULES", "OPTIMIZERS", "output_change", "change_by_rank", "plot_change_by_rank",
    # merge_precision
    "merge_logit_gap", "merge_rounding",
]
# Private helpers re-exported so ``lora._name`` keeps working: _check_hyperparameters, _shape, _with_total,
# _unmerged_lora_layers, _lora_copy_in, _sample.
