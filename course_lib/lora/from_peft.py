"""The bridge to ``peft``, the library version of LoRA: give our LoRA layers the A and B matrices (and scaling) of a
``peft`` model with LoRA on the same layers, so the two can be checked to compute the same thing.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.lora.layer import lora_layers


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
