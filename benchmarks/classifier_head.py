"""Contrast: the same small model with a classification head instead of generating JSON.

Puts one linear head (7 categories + 4 priorities + 2 needs_human values = 13 outputs) on SmolLM2-135M-Instruct's
last-token hidden state (``AutoModelForSequenceClassification``), adds LoRA (``peft``, rank 16, every linear layer;
the head is trained in full), and trains it on the ticket text alone with the sum of three cross-entropies, in bf16
autocast on a CPU with bf16 instructions (fp32 otherwise). It writes no reply, so it answers only the decision half
of the task, like the TF-IDF baseline: the question is how much of the generative fine-tune's decision quality
comes from the model and how much from the format. Appends a trial to ``benchmarks/results/recipe_trials.json``.

    .venv/bin/python benchmarks/classifier_head.py --steps 150 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from course_lib import baselines, data, models, train  # noqa: E402

SLICES = {"category": (0, 7), "priority": (7, 11), "needs_human": (11, 13)}


def encode(tok, rows, max_len=128):
    texts = [tok.apply_chat_template([{"role": "system", "content": train.SHORT_SYSTEM_PROMPT},
                                      {"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
             for t in baselines.tickets(rows)]
    return texts


def label_ids(rows):
    out = []
    for t in baselines.targets(rows):
        out.append([baselines.LABELS["category"].index(t["category"]), baselines.LABELS["priority"].index(t["priority"]),
                    baselines.LABELS["needs_human"].index(t["needs_human"])])
    return torch.tensor(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "recipe_trials.json"))
    args = parser.parse_args()

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = train.cpu_threads(args.threads)[0] if device == "cpu" else torch.get_num_threads()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    folder = models.prepare_embedded()
    tok = models.load_tokenizer("embedded")
    tok.padding_side = "left"  # the head reads the last position: left padding puts every ticket's end there
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=13, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="SEQ_CLS"))
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bf16 = device == "cuda" or models.cpu_has_native_bf16()

    train_rows, heldout = data.load_split("train"), data.load_split("heldout")
    texts, labels = encode(tok, train_rows), label_ids(train_rows)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, args.steps // 10)) * max(0.0, 1 - s / args.steps))
    order: list[int] = []
    losses = []
    model.train()
    start = time.perf_counter()
    for step in range(args.steps):
        if len(order) < args.batch_size:
            order += random.sample(range(len(texts)), len(texts))
        batch, order = order[: args.batch_size], order[args.batch_size:]
        enc = tok([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(**enc).logits.float()
        y = labels[batch].to(device)
        loss = sum(torch.nn.functional.cross_entropy(logits[:, a:b], y[:, k])
                   for k, (a, b) in enumerate(SLICES.values()))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(float(loss))
        if step % 25 == 0:
            print(f"step {step} loss {loss:.3f}", flush=True)
    seconds = time.perf_counter() - start

    model.eval()
    predictions = []
    held_texts = encode(tok, heldout)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(held_texts), 32):
            enc = tok(held_texts[i:i + 32], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**enc).logits.float()
            for row in logits:
                predictions.append({f: baselines.LABELS[f][int(row[a:b].argmax())] for f, (a, b) in SLICES.items()})
    eval_seconds = time.perf_counter() - t0
    table = baselines.field_table(baselines.as_answers(predictions), heldout)
    trial = {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python" if device == "cpu" else "python", *sys.argv]),
        "tag": "classification head (LoRA r16 + linear head, ticket only, no reply)", "steps": args.steps,
        "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed, "trainable_params": trainable,
        "machine": {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "threads": threads,
                    "bf16_autocast": bf16},
        "seconds": {"train": round(seconds, 1), "eval_heldout": round(eval_seconds, 1)},
        "loss_first_last": [losses[0], sum(losses[-10:]) / len(losses[-10:])],
        "field_accuracy": {f: table[f]["accuracy"] for f in table},
        "field_interval": {f: table[f]["interval"] for f in table},
        "field_accuracy_mean": table["mean"]["accuracy"],
        "field_correct": {f: table[f]["correct"] for f in table},
    }
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.is_file() else {"trials": []}
    record["trials"].append(trial)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v for k, v in trial.items() if k not in ("field_correct",)}, indent=1))


if __name__ == "__main__":
    main()
