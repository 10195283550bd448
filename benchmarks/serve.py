"""``course serve`` timings on this CPU, driven through the official ``openai`` client as a learner would:

- time from creating a fine-tuning job to a usable model (job succeeded and its first chat answer back), for the
  tiny and the embedded model, a stated number of steps on a stated number of GreenLeaf rows;
- chat-completion latency and completion tokens per second for the embedded model, base and tuned adapter,
  greedy, over held-out tickets (after one warm-up request each, so model loading is not counted).

Writes ``benchmarks/results/serve.json`` with the command, the machine (CPU, bf16 flags, load average) and versions.

    .venv/bin/python benchmarks/serve.py [--steps-tiny 10] [--steps-embedded 10] [--requests 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine, versions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "serve.json"
KEY = "sk-benchmark"


def job_to_model(client, model: str, file_id: str, steps: int, ticket: list[dict]) -> dict:
    """Seconds from ``jobs.create`` to the tuned model's first answer, and the job's own numbers."""
    start = time.perf_counter()
    job = client.fine_tuning.jobs.create(model=model, training_file=file_id, hyperparameters={"steps": steps},
                                         suffix="bench", seed=0)
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    trained = time.perf_counter() - start
    if job.status != "succeeded":
        raise RuntimeError(f"{model}: job {job.status}: {job.error}")
    client.chat.completions.create(model=job.fine_tuned_model, messages=ticket, temperature=0, max_tokens=8)
    usable = time.perf_counter() - start
    record = client.models.retrieve(job.fine_tuned_model).model_extra["provenance"]
    return {"model": model, "steps": steps, "job_seconds": round(trained, 1), "seconds_to_first_answer":
            round(usable, 1), "train_seconds": record["metrics"]["train_seconds"],
            "final_train_loss": record["metrics"]["final_train_loss"], "fine_tuned_model": job.fine_tuned_model}


def chat_speed(client, model: str, tickets: list[list[dict]], max_tokens: int) -> dict:
    client.chat.completions.create(model=model, messages=tickets[0], temperature=0, max_tokens=4)  # warm-up: load
    latencies, tokens = [], []
    for messages in tickets:
        start = time.perf_counter()
        reply = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=max_tokens)
        latencies.append(time.perf_counter() - start)
        tokens.append(reply.usage.completion_tokens)
    ordered = sorted(latencies)
    return {"requests": len(tickets), "max_tokens": max_tokens, "latency_mean_s": round(sum(latencies) / len(latencies), 2),
            "latency_p50_s": round(ordered[len(ordered) // 2], 2), "latency_max_s": round(ordered[-1], 2),
            "completion_tokens_mean": sum(tokens) / len(tokens),
            "tokens_per_second": round(sum(tokens) / sum(latencies), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-tiny", type=int, default=10)
    parser.add_argument("--steps-embedded", type=int, default=10)
    parser.add_argument("--rows", type=int, default=64, help="training rows uploaded")
    parser.add_argument("--requests", type=int, default=8, help="held-out tickets per model for the chat timings")
    parser.add_argument("--max-tokens", type=int, default=160)
    args = parser.parse_args()

    import openai

    from course_lib import data, serve

    info = machine()
    rows = data.load_split("train")[: args.rows]
    tickets = [r["messages"][:2] for r in data.load_split("heldout")[: args.requests]]
    folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    running = serve.start_in_thread(folder / "data", KEY)
    try:
        client = openai.OpenAI(base_url=running.base_url, api_key=KEY, max_retries=0, timeout=1800)
        file_id = client.files.create(file=open(path, "rb"), purpose="fine-tune").id
        jobs = [job_to_model(client, "tiny", file_id, args.steps_tiny, tickets[0]),
                job_to_model(client, "embedded", file_id, args.steps_embedded, tickets[0])]
        chat = {"embedded (base)": chat_speed(client, "embedded", tickets, args.max_tokens),
                "embedded + adapter": chat_speed(client, jobs[1]["fine_tuned_model"], tickets, args.max_tokens)}
    finally:
        running.stop()
    info["load_average_1m_at_end"] = os.getloadavg()[0]
    result = {
        "command": "python " + " ".join(["benchmarks/serve.py", *sys.argv[1:]]),
        "machine": info,
        "note": "2 CPU cores shared with other jobs: the load average says how busy the machine was.",
        "versions": versions(("torch", "transformers", "peft", "trl", "fastapi", "uvicorn", "openai")),
        "training_rows": len(rows),
        "job_to_usable_model": jobs,
        "chat_completions": chat,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
