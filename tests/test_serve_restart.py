"""A restart in the middle of a job: ``course serve`` runs as its own process, is killed (SIGKILL, no chance to
tidy up) once the job has written a checkpoint, and a new service on the same data folder resumes the job from that
checkpoint to the end. The job never stays ``running``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import openai
import pytest

from course_lib import data, serve

KEY = "sk-restart"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(condition, timeout: float, what: str, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_killed_service_resumes_the_job_from_its_checkpoint(tmp_path):
    port, folder = _free_port(), tmp_path / "service"
    log = open(tmp_path / "serve.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "course_lib.cli", "serve", "--port", str(port), "--data-dir", str(folder),
         "--log-level", "warning"], env={**os.environ, "COURSE_API_KEY": KEY}, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)

        def up():
            try:
                return client.models.list()
            except openai.APIConnectionError:
                return None

        _wait(up, 120, "course serve to answer")
        path = tmp_path / "train.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in data.load_split("train")[:8]))
        uploaded = client.files.create(file=open(path, "rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id,
                                             hyperparameters={"steps": 6}, seed=0)
        _wait(lambda: any(e.message.startswith("Checkpoint saved")
                          for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data), 300,
              "the first checkpoint", every=0.1)  # kill it at once: 6 steps leave time on a fast machine too
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        log.close()
    assert serve.Store(folder).get("jobs", job.id)["status"] == "running"  # as the killed process left it

    running = serve.start_in_thread(folder, KEY)
    try:
        client = openai.OpenAI(base_url=running.base_url, api_key=KEY, max_retries=0)
        assert running.service.recovered[0].startswith(f"{job.id}: The service stopped while this job was "
                                                       "running; it resumes from checkpoint-")
        done = _wait(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in
                     ("succeeded", "failed", "cancelled") and j, 300, "the resumed job")
        assert done.status == "succeeded", done.error
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
        assert any(m.startswith("Fine-tuning job resumed from checkpoint-") for m in messages)
        record = client.models.retrieve(done.fine_tuned_model).model_extra["provenance"]
        assert (record["resumed_from_checkpoint"], record["metrics"]["steps"]) == (True, 6)
        reply = client.chat.completions.create(model=done.fine_tuned_model, temperature=0, max_tokens=4,
                                               messages=[{"role": "user", "content": "My fern is yellow."}])
        assert reply.usage.completion_tokens <= 4
    finally:
        running.stop()
