"""Preference tuning (DPO): preference pairs, the DPO loss by hand and trl's, training on top of the SFT adapter,
and what a preference model is worth on held-out pairs.

A **preference pair** is one prompt with two answers, ``chosen`` (on-brand) and ``rejected`` (plausible but with a
named flaw). DPO turns pairs into a loss with no reward model: with log-probabilities summed over the answer tokens,

    loss = -logsigmoid(beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)))

where ``pi`` is the model being trained (the policy) and ``ref`` a frozen **reference model** (here the SFT model of
notebook 04). ``beta * (pi - ref)`` is the answer's **implicit reward**; chosen minus rejected is the **reward
margin**. ``dpo_loss`` writes this out; ``trl_dpo_loss`` asks trl's ``DPOTrainer`` for the same number.
Figures live in ``course_lib.preference_plots``.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from course_lib import data, greenleaf, stats, train
from course_lib.data.loading import GREENLEAF_DIR, LoadResult, RowError
from course_lib.paths import cache_dir

Row = dict
PREFERENCES_PATH = GREENLEAF_DIR / "preferences.jsonl"
DEFAULT_BETA = 0.1  # trl's default: how far the policy may move from the reference (smaller = further)
DEFAULT_LR = 1e-4  # LoRA on top of the SFT model; DPO needs a gentler step than SFT's 5e-4


# --- pairs: load, check, split --------------------------------------------------------------------------------


def _pair_problems(row: Row) -> list[tuple[str, str, str]]:
    """What the ``preference`` schema does not check but DPO on GreenLeaf needs: a family (for the split), a prompt
    ending with the user's turn, one assistant message per answer, and two different answers."""
    problems = []
    if not str(row.get("family", "")).strip():
        problems.append(("family", "missing", "add the ticket family (e.g. \"F087\"): pairs are split by family"))
    prompt = row["prompt"]
    if isinstance(prompt, list) and prompt[-1]["role"] != "user":
        problems.append((f"prompt[{len(prompt) - 1}].role", f"the prompt ends with {prompt[-1]['role']!r}",
                         "end the prompt with the user's turn: the answers continue it"))
    for key in ("chosen", "rejected"):
        value = row[key]
        if isinstance(value, list) and (len(value) != 1 or value[0]["role"] != "assistant"):
            problems.append((key, f"has roles {[m['role'] for m in value]}", "give exactly one assistant message"))
    if row["chosen"] == row["rejected"]:
        problems.append(("rejected", "is identical to chosen", "a pair needs two different answers"))
    return problems


def load_pairs(path: str | Path = PREFERENCES_PATH) -> LoadResult:
    """Read and check a preference JSONL file: ``data.load_jsonl(path, fmt="preference")`` (every problem with its
    line number) plus the checks DPO needs (``family``, prompt ending with the user, one assistant message per
    answer, chosen != rejected). Never raises for a bad row; rows with a problem are left out of ``rows`` and
    listed in ``errors``."""
    result = data.load_jsonl(path, fmt="preference")
    rows, lines, errors = [], [], list(result.errors)
    for row, line in zip(result.rows, result.lines):
        problems = _pair_problems(row)
        errors.extend(RowError(line, f, r, fix) for f, r, fix in problems)
        if not problems:
            rows.append(row)
            lines.append(line)
    errors.sort(key=lambda e: e.line)
    return replace(result, rows=rows, lines=lines, errors=errors)


def check_text(text: str) -> LoadResult:
    """``load_pairs`` on JSONL text (e.g. a row you are writing), through a temporary file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pairs.jsonl"
        path.write_text(text, encoding="utf-8")
        return load_pairs(path)


def load_preferences(path: str | Path = PREFERENCES_PATH) -> list[Row]:
    """The valid pairs of ``path``; any bad row raises ``DataError`` listing every problem by line."""
    result = load_pairs(path)
    if result.errors:
        raise data.DataError(f"{path} has rows DPO cannot use; fix them (nothing is dropped silently):\n"
                             f"{result.summary()}")
    return result.rows


def split_pairs(pairs: Sequence[Row], heldout_fraction: float = 0.25, seed: int = 0) -> tuple[list[Row], list[Row]]:
    """Whole ticket families to one side (``data.split_by_group``, seeded): no family is in both halves, so a
    held-out pair never shares its situation with a training pair. Prints the sizes."""
    if not pairs:
        raise ValueError("No pairs to split: load some with load_preferences().")
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction={heldout_fraction}: give a fraction such as 0.25.")
    train_pairs, held = data.split_by_group(list(pairs), "family", heldout_fraction=heldout_fraction, seed=seed,
                                            threshold=None)  # families are the groups; no merging of prompts
    fams = [len({p["family"] for p in side}) for side in (train_pairs, held)]
    print(f"split by family: {len(train_pairs)} pairs ({fams[0]} families) to train on, {len(held)} pairs "
          f"({fams[1]} families) held out; {len({p['family'] for p in train_pairs} & {p['family'] for p in held})} "
          "families in both")
    return train_pairs, held


def policy_rows(pairs: Sequence[Row], system_prompt: str | None = train.SHORT_SYSTEM_PROMPT,
                reply_first: bool = True) -> list[Row]:
    """The pairs as the SFT model is prompted (notebook 04's recipe): the short system prompt, and triage answers
    with the reply written first. An answer that is not triage JSON (the ``broken_json`` flaw) stays as written."""
    out = []
    for row in pairs:
        prompt = [dict(m) for m in row["prompt"]]
        if system_prompt is not None and prompt[0]["role"] == "system":
            prompt[0]["content"] = system_prompt
        answers = {}
        for key in ("chosen", "rejected"):
            text = row[key][0]["content"]
            if reply_first:
                try:
                    text = greenleaf.reply_first(text)
                except ValueError:
                    pass  # not triage JSON: the flaw itself, kept as it is
            answers[key] = [{"role": "assistant", "content": text}]
        out.append({**row, "prompt": prompt, **answers})
    return out


# --- the loss by hand -----------------------------------------------------------------------------------------


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = DEFAULT_BETA) -> dict:
    """DPO's sigmoid loss from four per-pair log-probabilities (each summed over the answer's tokens):
    ``-logsigmoid(beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)))``, averaged over pairs.
    Returns ``{"loss", "losses", "chosen_rewards", "rejected_rewards", "margins"}`` (tensors; rewards are
    ``beta * (policy - ref)``, the implicit rewards)."""
    if beta <= 0:
        raise ValueError(f"beta={beta}: beta must be > 0 (0.1 is usual; smaller lets the policy move further).")
    values = [v if torch.is_tensor(v) else torch.as_tensor(v, dtype=torch.float64)  # lists: float64, exact
              for v in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)]
    values = [v if v.is_floating_point() else v.double() for v in values]
    sizes = [v.numel() for v in values]
    if min(sizes) == 0:
        raise ValueError("dpo_loss got no pairs: pass one log-probability per pair in each of the four arguments.")
    if len(set(sizes)) > 1:
        raise ValueError(f"dpo_loss needs one value per pair in each argument; got lengths {sizes} for policy_chosen, "
                         "policy_rejected, ref_chosen, ref_rejected.")
    pc, pr, rc, rr = (v.reshape(-1) for v in values)
    chosen_rewards, rejected_rewards = beta * (pc - rc), beta * (pr - rr)
    margins = chosen_rewards - rejected_rewards
    losses = -F.logsigmoid(margins)  # beta * ((pc - rc) - (pr - rr)) is the margin
    return {"loss": losses.mean(), "losses": losses, "chosen_rewards": chosen_rewards,
            "rejected_rewards": rejected_rewards, "margins": margins}


def _tokenize_pair(tokenizer, row: Row) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) token ids, split exactly as trl's ``DPOTrainer`` splits them: the prompt with the
    generation prompt, then whatever the chat template writes after it (answer, ``<|im_end|>`` and newline)."""
    def ids(messages, gen=False):
        return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                             add_generation_prompt=gen)["input_ids"]

    prompt = ids(row["prompt"], gen=True)
    full = [ids(row["prompt"] + row[key]) for key in ("chosen", "rejected")]
    n = min(next((i for i, (a, b) in enumerate(zip(prompt, f)) if a != b), min(len(prompt), len(f))) for f in full)
    return prompt[:n], full[0][n:], full[1][n:]


@torch.no_grad()
def answer_logps(model, tokenizer, pairs: Sequence[Row], batch_size: int = 8) -> dict:
    """Per pair, the log-probability ``model`` gives the chosen and the rejected answer after the prompt, summed over
    the answer tokens only (the prompt is given, never scored), and the answers' token counts. Returns
    ``{"chosen", "rejected"}`` (float64 tensors) and ``{"chosen_tokens", "rejected_tokens"}`` (lists)."""
    if not pairs:
        raise ValueError("answer_logps got no pairs.")
    model.eval()
    device = next(model.parameters()).device
    out = {"chosen": [], "rejected": [], "chosen_tokens": [], "rejected_tokens": []}
    seqs = []  # (key, prompt ids, answer ids) in pair order
    for row in pairs:
        prompt, chosen, rejected = _tokenize_pair(tokenizer, row)
        seqs += [("chosen", prompt, chosen), ("rejected", prompt, rejected)]
    for start in range(0, len(seqs), batch_size):
        batch = seqs[start:start + batch_size]
        width = max(len(p) + len(a) for _, p, a in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (_, p, a) in enumerate(batch):  # right padding: a causal model's real tokens never see it
            ids[i, :len(p) + len(a)] = torch.tensor(p + a)
            mask[i, :len(p) + len(a)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(device))[..., 0]
        for i, (key, p, a) in enumerate(batch):  # token t is predicted at position t - 1
            out[key].append(logp[i, len(p) - 1:len(p) + len(a) - 1].double().sum().item())
            out[f"{key}_tokens"].append(len(a))
    return {**out, "chosen": torch.tensor(out["chosen"], dtype=torch.float64),
            "rejected": torch.tensor(out["rejected"], dtype=torch.float64)}


def _dpo_config(output_dir, beta, steps=1, lr=DEFAULT_LR, preset: train.Preset | None = None, progress=False,
                seed=0, logging_steps=1):
    from trl import DPOConfig

    bf16 = preset is not None and preset.dtype == "bf16"
    return DPOConfig(
        output_dir=str(output_dir), beta=beta, loss_type=["sigmoid"], max_steps=steps, learning_rate=lr,
        lr_scheduler_type="cosine", warmup_steps=0.1, max_grad_norm=1.0, weight_decay=0.0,
        per_device_train_batch_size=preset.batch_size if preset else 4, gradient_accumulation_steps=1,
        activation_checkpointing=False,  # a CPU has memory to spare and no time to spare
        bf16=bf16, use_cpu=not torch.cuda.is_available(), max_length=None,  # nothing cut (lengths checked below)
        precompute_ref_log_probs=False, logging_steps=logging_steps, save_strategy="no", report_to="none",
        seed=seed, disable_tqdm=not progress, dataloader_pin_memory=False, dataset_num_proc=None,
    )


def _dataset(pairs: Sequence[Row]):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                              for p in pairs])


def trl_dpo_loss(model, ref_model, tokenizer, pairs: Sequence[Row], beta: float = DEFAULT_BETA) -> float:
    """The loss trl's ``DPOTrainer`` computes on ``pairs`` as one batch (its tokenisation, collator and forward), for
    ``model`` against ``ref_model``: to check ``dpo_loss`` against. In fp32 (no autocast); copies, so the models you
    pass are not patched by trl."""
    from trl import DPOTrainer

    if beta <= 0:
        raise ValueError(f"beta={beta}: beta must be > 0.")
    if not pairs:
        raise ValueError("trl_dpo_loss got no pairs.")
    with tempfile.TemporaryDirectory() as folder:
        trainer = DPOTrainer(model=copy.deepcopy(model), ref_model=copy.deepcopy(ref_model),
                             args=_dpo_config(folder, beta), train_dataset=_dataset(pairs),
                             processing_class=tokenizer)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
        trainer.model.eval()
        with torch.no_grad():
            loss = trainer.compute_loss(trainer.model, trainer._prepare_inputs(batch))
    return float(loss)


# --- training on top of the SFT adapter ------------------------------------------------------------------------


def sft_model(base, adapter: str | Path):
    """The SFT model as plain weights: the adapter merged into an fp32 copy of ``base`` (``base`` is unchanged).
    DPO puts a fresh LoRA on top of it, so trl's reference (the same model with that LoRA switched off) is exactly
    this SFT model, not the raw base model."""
    merged = train.load_adapter(copy.deepcopy(base).float(), adapter).merge_and_unload()
    return merged.eval()


@dataclass
class DPOResult:
    model: object  # peft model: the SFT model + the DPO adapter; with the adapter disabled it is the reference
    reference: object  # the SFT model (merged), frozen: what the implicit rewards are measured against
    history: list[dict]  # trainer.state.log_history: {"step", "loss", "rewards/margins", "rewards/accuracies", ...}
    seconds: float  # wall time of trainer.train()
    steps: int
    pairs: int  # training pairs
    beta: float
    output_dir: Path


def train_dpo(sft, tokenizer, train_pairs: Sequence[Row], steps: int = 60, beta: float = DEFAULT_BETA,
              lr: float = DEFAULT_LR, preset: str | train.Preset | None = None, lora_r: int = 16,
              output_dir: str | Path | None = None, seed: int = 0, progress: bool = True,
              threads: int | None = None, callbacks: Sequence | None = None) -> DPOResult:
    """DPO with trl's ``DPOTrainer`` on ``train_pairs`` (as ``policy_rows`` writes them), starting from ``sft`` (the
    merged SFT model, ``sft_model``). A new LoRA (``train.lora_config``) is trained on a copy; the reference is the
    copy with the LoRA disabled, i.e. the SFT model itself (trl does this for a ``peft_config`` and no
    ``ref_model``: one model in memory, not two). ``sft`` is left as it is."""
    from trl import DPOTrainer

    if steps < 1:
        raise ValueError(f"steps={steps}: train at least one step.")
    if not train_pairs:
        raise ValueError("No training pairs: pass the training half of split_pairs().")
    preset, reason = train.choose_preset(preset)
    print(f"DPO with {preset.describe()}\n  why: {reason}")
    if preset.name == "cpu":
        threads, why = train.cpu_threads(threads)
        print(f"  {threads} CPU thread(s): {why}")
    longest = max(len(p) + max(len(c), len(r)) for p, c, r in (_tokenize_pair(tokenizer, x) for x in train_pairs))
    if longest > preset.max_length:
        raise train.TrainSetupError(f"A pair is {longest} tokens long, over the preset's {preset.max_length}: "
                                    "shorten it or use a preset with a larger max_length (nothing is cut).")
    output_dir = Path(output_dir or cache_dir() / "runs" / f"dpo-{time.strftime('%Y%m%d-%H%M%S')}")
    config = _dpo_config(output_dir, beta, steps, lr, preset, progress, seed, max(1, steps // 20))
    trainer = DPOTrainer(model=copy.deepcopy(sft).train(), args=config, train_dataset=_dataset(train_pairs),
                         processing_class=tokenizer, peft_config=train.lora_config(r=lora_r, lora_alpha=2 * lora_r),
                         callbacks=list(callbacks or []))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    from accelerate.utils import extract_model_from_parallel

    # accelerate wrapped forward in bf16 autocast for training: unwrap it, so scores use the weights as they are
    model = extract_model_from_parallel(trainer.model, keep_fp32_wrapper=False).eval()
    return DPOResult(model, sft, list(trainer.state.log_history), seconds, trainer.state.global_step,
                     len(train_pairs), beta, output_dir)


def merged(model, dtype: torch.dtype | None = None):
    """A plain copy of ``model`` for generation: a peft model's adapter merged in, cast to ``dtype``."""
    from peft import PeftModel

    out = copy.deepcopy(model)
    if isinstance(out, PeftModel):
        out = out.merge_and_unload()
    return (out.to(dtype) if dtype is not None else out).eval()


# --- measuring a preference model -----------------------------------------------------------------------------


def pair_scores(policy, reference, tokenizer, pairs: Sequence[Row], beta: float = DEFAULT_BETA) -> dict:
    """Per held-out pair: the policy's implicit rewards against ``reference`` and whether they prefer the chosen
    answer (``correct``: 1, 0, or 0.5 for a tie, so a model that cannot tell the answers apart scores 0.5), the
    ``margins``, and ``likelihood``: whether the policy alone gives the chosen answer a higher log-probability per
    token than the rejected one (no reference)."""
    pol, ref = answer_logps(policy, tokenizer, pairs), answer_logps(reference, tokenizer, pairs)
    out = dpo_loss(pol["chosen"], pol["rejected"], ref["chosen"], ref["rejected"], beta)
    margins = out["margins"].tolist()
    per_token = [(c / nc) - (r / nr) for c, r, nc, nr in zip(pol["chosen"].tolist(), pol["rejected"].tolist(),
                                                            pol["chosen_tokens"], pol["rejected_tokens"])]
    return {"margins": margins, "correct": [1.0 if m > 0 else 0.0 if m < 0 else 0.5 for m in margins],
            "likelihood": [1.0 if d > 0 else 0.0 if d < 0 else 0.5 for d in per_token],
            "loss": float(out["loss"]), "flaws": [p.get("flaw", "?") for p in pairs]}


def summarise(scores: dict) -> dict:
    """Preference accuracy, mean reward margin and likelihood preference, each with a 95% bootstrap interval."""
    out = {"n": len(scores["correct"])}
    for key, values in (("accuracy", scores["correct"]), ("margin", scores["margins"]),
                        ("likelihood", scores["likelihood"])):
        out[key] = sum(values) / len(values)
        out[f"{key}_interval"] = list(stats.bootstrap_ci(values))
    return out


def _answer_text(row: Row, key: str) -> str:
    return row[key][0]["content"] if isinstance(row[key], list) else row[key]


def _on_brand(text: str) -> int:
    obj = greenleaf.parse_triage(text)
    reply = obj.get("reply") if isinstance(obj, dict) else None
    return int(isinstance(reply, str)) + int(isinstance(reply, str) and reply.strip().endswith(greenleaf.SIGN_OFF))


def text_baselines(train_pairs: Sequence[Row], heldout: Sequence[Row]) -> dict[str, list[float]]:
    """Pickers that read only the two answers' text, per held-out pair (1 right, 0 wrong, 0.5 tie): the trivial
    "prefer the longer answer"; a rule "prefer an answer that parses as JSON with a reply, then one whose reply
    ends with the sign-off"; and the strongest
    simple one, TF-IDF + logistic regression on the difference of the two answers, trained on ``train_pairs``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def pick(a: float, b: float) -> float:
        return 1.0 if a > b else 0.0 if a < b else 0.5

    chosen = [_answer_text(p, "chosen") for p in heldout]
    rejected = [_answer_text(p, "rejected") for p in heldout]
    vec = TfidfVectorizer(ngram_range=(1, 2)).fit([_answer_text(p, k) for p in train_pairs for k in ("chosen", "rejected")])
    diff = (vec.transform([_answer_text(p, "chosen") for p in train_pairs])
            - vec.transform([_answer_text(p, "rejected") for p in train_pairs]))
    from scipy.sparse import vstack

    clf = LogisticRegression(max_iter=1000).fit(vstack([diff, -diff]), [1] * diff.shape[0] + [0] * diff.shape[0])
    scores = clf.decision_function(vec.transform(chosen) - vec.transform(rejected))
    return {"longer answer": [pick(len(c), len(r)) for c, r in zip(chosen, rejected)],
            "JSON + sign-off rule": [pick(_on_brand(c), _on_brand(r)) for c, r in zip(chosen, rejected)],
            "TF-IDF + logistic regression": [pick(s, 0.0) for s in scores]}


def format_preferences(models: dict[str, dict], baselines: dict[str, list[float]]) -> str:
    """One table: each model's ``summarise`` (accuracy, margin, likelihood) and each text baseline's accuracy."""
    lines = [f"{'':42}{'preference accuracy':>22}{'reward margin':>24}{'likelihood prefers chosen':>28}"]
    for name, s in models.items():
        lines.append(f"{name:42}{stats.format_score(s['accuracy'], s['accuracy_interval']):>22}"
                     f"{stats.format_score(s['margin'], s['margin_interval']):>24}"
                     f"{stats.format_score(s['likelihood'], s['likelihood_interval']):>28}")
    for name, correct in baselines.items():
        value = sum(correct) / len(correct)
        lines.append(f"{name + ' (text only)':42}{stats.format_score(value, stats.bootstrap_ci(correct)):>22}"
                     f"{'-':>24}{'-':>28}")
    return "\n".join(lines)
