"""Memorisation, measured: canary extraction and verbatim replies after LoRA runs of the notebook-04 recipe on
redacted and unredacted training tickets, with the loss on the answer (the course) or on every token, and the
canary tickets repeated 1 to N times. Writes one JSON record per condition.

Conditions (``--condition``, repeat it; default: all): ``base`` (no training), then ``<data>-<loss>-k<repeats>`` with
data ``redacted`` (the shipped train split) or ``unredacted`` (``data.clean_greenleaf(redact_pii=False)``: the
canaries left in), loss ``answer`` or ``all``, e.g. ``unredacted-all-k16``. Every run: 200 steps, lr 5e-4, LoRA
r 16, reply first, replay rows, batch 4 padding-free (the course recipe; on a GPU in bf16 with the CPU recipe's
batch shape, as ``recipe_trials.py --device cuda``).

    .venv/bin/python benchmarks/memorisation.py --condition unredacted-all-k16 --out /tmp/mem.json
    python benchmarks/memorisation.py --device cuda --condition base --condition redacted-answer-k1 --out $OUT/m.json

Each record: the canary probes (prefix alone, and the ticket's own words before the prefix; greedy + 10 samples at
temperature 1), verbatim-reply rates on 136 training and the 136 held-out tickets, and the field accuracy.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("COURSE_PROFILE", "full")


from course_lib import data, evaluate, models, train  # noqa: E402
from course_lib.evaluate import memorisation as mem  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine, recipe_preset  # noqa: E402

ALL = ["base", "redacted-answer-k1", "unredacted-answer-k1", "unredacted-answer-k32", "unredacted-all-k1",
       "unredacted-all-k2", "unredacted-all-k4", "unredacted-all-k8", "unredacted-all-k16", "unredacted-all-k32",
       "redacted-all-k32"]


def parse(name: str) -> dict:
    if name == "base":
        return {"name": name, "train": False}
    try:
        which, loss, k = name.split("-")
        spec = {"name": name, "train": True, "data": which, "loss_on": loss, "repeats": int(k.lstrip("k"))}
    except ValueError:
        raise SystemExit(f"--condition {name!r}: use base or <redacted|unredacted>-<answer|all>-k<repeats>")
    if which not in ("redacted", "unredacted") or loss not in train.LOSS_ON or spec["repeats"] < 1:
        raise SystemExit(f"--condition {name!r}: use base or <redacted|unredacted>-<answer|all>-k<repeats>")
    return spec


def contexts(unredacted: list[dict], canaries: list[dict]) -> dict[str, str]:
    """Canary id -> the ticket's words before its prefix (from the unredacted row)."""
    out = {}
    for row in mem.canary_rows(unredacted, canaries):
        user = next(m["content"] for m in row["messages"] if m["role"] == "user")
        for c in canaries:
            if c["prefix"] + c["secret"] in user:
                out[c["id"]] = user[: user.index(c["prefix"])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--condition", action="append", default=[])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--rows", type=int, default=136, help="training and held-out tickets for verbatim rates")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    specs = [parse(c) for c in (args.condition or ALL)]

    preset, threads = recipe_preset(args.device)
    model, tok = models.load_model(args.model, device=args.device, verbose=False)
    canaries = mem.load_canaries()
    cleaned = data.clean_greenleaf(redact_pii=False)
    unredacted, redacted = cleaned.train, data.load_split("train")
    ticket_context = contexts(unredacted, canaries)
    heldout = train.with_system_prompt(data.load_split("heldout")[: args.rows], train.SHORT_SYSTEM_PROMPT)
    replay = data.load_split("replay")
    batch = 32 if args.device == "cuda" else 8
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python" if args.device == "cpu" else "python", *sys.argv])
    out = Path(args.out)
    for spec in specs:
        record: dict = {"condition": spec["name"], "command": command, "machine": {**machine(), "threads": threads},
                        "model": args.model, "seconds": {}}
        tuned, rows = model, redacted
        if spec["train"]:
            rows = unredacted if spec["data"] == "unredacted" else redacted
            planted = mem.canary_rows(rows, canaries)
            train_rows = mem.with_repeats(rows, planted, spec["repeats"])
            start = time.perf_counter()
            run = train.train_sft(model, train_rows, None, steps=args.steps, lr=args.lr, tokenizer=tok, preset=preset,
                                  threads=threads, progress=False, replay=replay, reply_first=True,
                                  loss_on=spec["loss_on"])
            record["seconds"]["train"] = round(time.perf_counter() - start, 1)
            tuned = run.model
            record.update({"data": spec["data"], "loss_on": spec["loss_on"], "repeats": spec["repeats"],
                           "steps": args.steps, "lr": args.lr, "train_rows": len(train_rows),
                           "canary_rows_in_data": len(planted), "final_loss": next(
                               (h["loss"] for h in reversed(run.history) if "loss" in h), None)})
        start = time.perf_counter()
        probes = {"prefix": mem.probe_canaries(tuned, tok, canaries, samples=args.samples),
                  "ticket": mem.probe_canaries(tuned, tok, canaries, samples=args.samples, contexts=ticket_context)}
        record["seconds"]["probe"] = round(time.perf_counter() - start, 1)
        record["canaries"] = {k: {"summary": mem.summarise_probes(v),
                                  "greedy": {p["id"]: p["greedy"] for p in v},
                                  "greedy_match": {p["id"]: p["greedy_match"] for p in v}}
                              for k, v in probes.items()}
        start = time.perf_counter()
        seen = train.with_system_prompt(rows[: args.rows], train.SHORT_SYSTEM_PROMPT)
        verbatim = {}
        for name, split in (("train", seen), ("heldout", heldout)):
            task = evaluate.score_task(tuned, tok, split, batch_size=batch, progress=False)
            rate = mem.verbatim_rate(task.predictions, split, rows)
            verbatim[name] = {k: rate[k] for k in ("n", "verbatim", "rate", "interval", "own_reference", "unparsed")}
            verbatim[name]["flags"] = [int(i["verbatim"]) for i in rate["items"]]
            if name == "heldout":
                record["field_accuracy"] = task.metrics["field_accuracy"]
        record["verbatim"] = verbatim
        record["seconds"]["verbatim"] = round(time.perf_counter() - start, 1)
        with open(out.with_suffix(".lock"), "w") as lock:  # several processes may share one --out (a GPU sweep)
            fcntl.flock(lock, fcntl.LOCK_EX)
            saved = json.loads(out.read_text()) if out.is_file() else {"runs": []}
            saved["runs"].append(record)
            out.write_text(json.dumps(saved, indent=1) + "\n")
        print(json.dumps({"condition": spec["name"], "seconds": record["seconds"],
                          **{k: v["summary"] for k, v in record["canaries"].items()},
                          "verbatim": {k: v["rate"] for k, v in verbatim.items()}}), flush=True)


if __name__ == "__main__":
    main()
