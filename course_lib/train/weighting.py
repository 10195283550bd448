"""Decision weighting: count the answer's decision tokens (category, priority, needs_human: everything before the
reply key) several times in the training loss, so the few tokens that decide the triage are not drowned by the
~40 tokens of the reply. Finds those tokens, builds the per-token weights, and defines the ``SFTTrainer``
subclass whose training loss uses them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from course_lib import data
from course_lib.train.presets import TrainSetupError


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
    for b, (row, lab) in enumerate(zip(input_ids.tolist(), (labels != data.IGNORE_INDEX).tolist())):
        start = 0
        while start < len(lab):
            if not lab[start]:
                start += 1
                continue
            end = start
            while end < len(lab) and lab[end]:
                end += 1  # [start, end): one answer
            reply = next((t for t in range(start, end) if row[t:t + len(key)] == key), None)
            if reply is not None:  # a triage answer: weight its decisions (replay answers have no reply key)
                weights[b, start:reply] = weight
            start = end
    return weights


def _weighted_trainer_class():
    from trl import SFTTrainer

    class DecisionWeightedSFTTrainer(SFTTrainer):
        """``SFTTrainer`` whose training loss weights the decision tokens ``decision_weight`` times (held-out loss
        stays the plain mean, so runs remain comparable)."""

        decision_weight: float = 1.0
        key_ids: list[int] = []
        loss_is_scaled_for_ga = False  # our loss is a per-micro-batch mean: let the Trainer divide by accumulation

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not model.training or self.decision_weight == 1.0:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]
            outputs = model(**{**inputs, "use_cache": False}, fused_lm_head=True)
            # log_probs[:, t] scores labels[:, t + 1] (the head shifts the labels by one)
            weights = decision_weights(inputs["input_ids"], labels, self.key_ids, self.decision_weight)[:, 1:]
            scored = (labels[:, 1:] != data.IGNORE_INDEX).to(weights.dtype)
            loss = -(outputs.log_probs * weights * scored).sum() / (weights * scored).sum().clamp(min=1.0)
            tokens = inputs["position_ids"].size(1) if "position_ids" in inputs else int(inputs["attention_mask"].sum())
            self._total_train_tokens += tokens
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            return (loss, outputs) if return_outputs else loss

    return DecisionWeightedSFTTrainer
