"""course_lib.serve driven by the official ``openai`` client against a real uvicorn server on localhost: upload,
a fine-tuning job on the tiny model, its events and provenance, chat with base and tuned models (the same greedy
answers as ``models.generate``), bad and oversized uploads, a wrong key, a cancelled job, unknown ids, two jobs.
The restart in the middle of a job is in ``test_serve_restart.py``."""

from __future__ import annotations

import copy
import hashlib
import json
import time

import httpx
import openai
import pytest

import course_lib
from course_lib import data, models, serve
from course_lib.serve import jobs as jobs_module

KEY = "sk-course-test"
MAX_UPLOAD_MB = 0.25  # 262,144 bytes


def wait_for(client: openai.OpenAI, job_id: str, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s (status {job.status})")


def write_rows(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = serve.start_in_thread(tmp_path_factory.mktemp("serve"), KEY, max_upload_mb=MAX_UPLOAD_MB)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_rows(tmp_path_factory.mktemp("upload") / "greenleaf8.jsonl", data.load_split("train")[:8])


@pytest.fixture(scope="module")
def trained(client, train_file):
    """Upload 8 GreenLeaf rows and fine-tune the tiny model on them for 2 steps."""
    uploaded = client.files.create(file=open(train_file, "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id, hyperparameters={"steps": 2},
                                         suffix="greenleaf", seed=0)
    assert job.status == "queued"
    return uploaded, wait_for(client, job.id)


def test_upload_is_listed_and_downloaded_as_sent(client, train_file):
    uploaded = client.files.create(file=open(train_file, "rb"), purpose="fine-tune")
    raw = open(train_file, "rb").read()
    assert (uploaded.object, uploaded.purpose, uploaded.filename, uploaded.bytes) == (
        "file", "fine-tune", "greenleaf8.jsonl", len(raw))
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert uploaded.id in [f.id for f in client.files.list()]
    assert client.files.content(uploaded.id).content == raw
    assert client.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_job_trains_the_tiny_model_and_reports_each_step(client, trained):
    uploaded, job = trained
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tiny:greenleaf:{job.id}"
    assert (job.hyperparameters.model_extra["steps"], job.hyperparameters.batch_size, job.seed) == (2, 4, 0)
    events = list(reversed(client.fine_tuning.jobs.list_events(job.id, limit=100).data))
    losses = [e.data for e in events if e.type == "metrics"]
    assert [d["step"] for d in losses] == [1, 2]
    assert all(d["total_steps"] == 2 and d["train_loss"] > 0 for d in losses)
    assert events[0].message.startswith(f"Created fine-tuning job {job.id}: 2 steps of batch 4 on 8 rows")
    assert events[-1].message.startswith("The job has successfully completed (final training loss")
    steps = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data]
    assert steps == [2, 1]  # newest first, one checkpoint per step (save_steps = steps // 5, at least 1)
    assert job.trained_tokens > 0


def test_provenance_names_the_training_file_and_course_version(client, trained, train_file):
    uploaded, job = trained
    record = client.models.retrieve(job.fine_tuned_model).model_extra["provenance"]
    assert record["training_file_sha256"] == hashlib.sha256(open(train_file, "rb").read()).hexdigest()
    assert record["training_file"] == uploaded.id and record["training_file_rows"] == 8
    assert record["course_version"] == course_lib.__version__
    assert (record["base_model"], record["job_id"], record["seed"]) == ("tiny", job.id, 0)
    assert record["hyperparameters"]["steps"] == 2 and record["metrics"]["steps"] == 2
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    last_loss = next(e.data["train_loss"] for e in events if e.type == "metrics")  # newest first
    assert record["metrics"]["final_train_loss"] == last_loss
    assert record["resumed_from_checkpoint"] is False


def test_chat_answers_equal_the_course_generate(client, trained, server):
    """Greedy answers through the API are the ones ``models.generate`` gives, for the base and the tuned model."""
    from course_lib.train import load_adapter

    _, job = trained
    messages = data.load_split("heldout")[0]["messages"][:2]
    base, tokenizer = models.load_model("tiny", verbose=False)
    tuned = load_adapter(copy.deepcopy(base), server.service.store.root / "jobs" / job.id / "adapter")
    prompt_tokens = len(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                      return_dict=True)["input_ids"])
    for name, model in (("tiny", base), (job.fine_tuned_model, tuned)):
        reply = client.chat.completions.create(model=name, messages=messages, temperature=0, max_tokens=12)
        assert reply.choices[0].message.content == models.generate(model, tokenizer, [messages], max_new_tokens=12)[0]
        assert (reply.model, reply.object, reply.choices[0].message.role) == (name, "chat.completion", "assistant")
        assert reply.usage.prompt_tokens == prompt_tokens
        assert reply.usage.total_tokens == prompt_tokens + reply.usage.completion_tokens
        assert 1 <= reply.usage.completion_tokens <= 12
    logged = serve.completion_log(server.service.store, model=job.fine_tuned_model)
    assert logged[-1]["prompt_tokens"] == prompt_tokens and logged[-1]["latency_s"] > 0


def test_models_list_base_and_tuned(client, trained):
    _, job = trained
    ids = [m.id for m in client.models.list()]
    assert ids[:2] == ["tiny", "embedded"] and job.fine_tuned_model in ids
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.models.delete("tiny")
    assert err.value.code == "model_not_deletable"


def test_bad_upload_names_each_line(client, tmp_path):
    good = data.load_split("train")[0]
    bad_role = copy.deepcopy(good)
    bad_role["messages"][1]["role"] = "customer"
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(good) + '\n{"messages": [\n' + json.dumps(bad_role) + "\n")
    before = len(client.files.list().data)
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=open(path, "rb"), purpose="fine-tune")
    assert (err.value.status_code, err.value.code, err.value.param) == (400, "invalid_file", "file")
    lines = err.value.body["message"].splitlines()
    assert lines[0] == ("broken.jsonl: 2 of 3 rows are invalid; nothing was stored. Fix these lines and upload "
                        "again:")
    assert lines[1].startswith("line 2: (line): invalid JSON: Expecting value at column 15")
    assert lines[2].startswith("line 3: messages[1].role: 'customer' is not one of")
    assert len(client.files.list().data) == before


def test_wrong_or_missing_key_is_401(server):
    wrong = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        wrong.models.list()
    assert (err.value.status_code, err.value.code, err.value.type) == (401, "invalid_api_key",
                                                                       "invalid_request_error")
    response = httpx.get(server.base_url + "/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_oversized_upload_is_413(client, server, tmp_path):
    row = json.dumps(data.load_split("train")[0]) + "\n"
    path = tmp_path / "big.jsonl"
    path.write_text(row * (int(MAX_UPLOAD_MB * 2**20) // len(row) + 1))
    with pytest.raises(openai.APIStatusError) as err:
        client.files.create(file=open(path, "rb"), purpose="fine-tune")
    assert (err.value.status_code, err.value.code) == (413, "file_too_large")

    def chunks():  # no Content-Length: the size is counted as the bytes arrive
        yield b"x" * (int(MAX_UPLOAD_MB * 2**20) + 1)

    response = httpx.post(server.base_url + "/files", content=chunks(), headers={
        "Authorization": f"Bearer {KEY}", "Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"


def test_unknown_ids_are_404_in_the_error_shape(client, trained):
    uploaded, _ = trained
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert (err.value.code, err.value.param) == ("model_not_found", "model")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("ft:tiny:x:ftjob-000")
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-000")
    with pytest.raises(openai.NotFoundError) as err:
        client.fine_tuning.jobs.create(model="no-such-model", training_file=uploaded.id)
    assert err.value.param == "model"
    with pytest.raises(openai.NotFoundError) as err:
        client.fine_tuning.jobs.create(model="tiny", training_file="file-000")
    assert err.value.param == "training_file"


def test_cancelled_job_makes_no_model(client, server, trained):
    uploaded, _ = trained
    job = client.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id, hyperparameters={"steps": 500})
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.cancel(job.id)
    assert err.value.code == "job_not_cancellable"
    deadline = time.monotonic() + 300
    while server.service.worker.current == job.id and time.monotonic() < deadline:
        time.sleep(0.2)  # a job already training stops at the end of its step
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert (job.status, job.fine_tuned_model) == ("cancelled", None)
    assert not [m for m in client.models.list() if job.id in m.id]
    assert "Fine-tuning job cancelled" in [e.message for e in client.fine_tuning.jobs.list_events(job.id).data]


@pytest.mark.slow
def test_two_jobs_train_in_their_own_folders(client, server, trained):
    uploaded, _ = trained
    made = [client.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id, hyperparameters={"steps": 1},
                                           suffix=name, seed=seed) for name, seed in (("first", 1), ("second", 2))]
    done = [wait_for(client, job.id) for job in made]
    assert [j.status for j in done] == ["succeeded", "succeeded"]
    assert [j.fine_tuned_model for j in done] == [f"ft:tiny:first:{made[0].id}", f"ft:tiny:second:{made[1].id}"]
    root = server.service.store.root
    weights = []
    for job in done:
        record = client.models.retrieve(job.fine_tuned_model).model_extra["provenance"]
        assert (record["job_id"], record["seed"]) == (job.id, job.seed)
        assert json.loads((root / "jobs" / job.id / "adapter" / "provenance.json").read_text()) == record
        weights.append((root / "jobs" / job.id / "adapter" / "adapter_model.safetensors").read_bytes())
    assert weights[0] != weights[1]  # different seeds, different adapters: neither overwrote the other
    first_done, second_started = done[0].finished_at, min(
        e.created_at for e in client.fine_tuning.jobs.list_events(made[1].id).data if e.message ==
        "Fine-tuning job started")
    assert second_started >= first_done  # one job at a time
    listed = client.fine_tuning.jobs.list(limit=1)
    assert listed.data[0].id == made[1].id and listed.has_more is True
    assert client.fine_tuning.jobs.list(limit=1, after=made[1].id).data[0].id == made[0].id


def test_delete_a_tuned_model(client, server, trained):
    uploaded, job = trained
    copy_job = job.fine_tuned_model
    assert client.models.delete(copy_job).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=copy_job, messages=[{"role": "user", "content": "hi"}])
    assert not (server.service.store.root / "jobs" / job.id / "adapter").exists()


# ---------------------------------------------------------------------------------------------- units


def test_hyperparameters_resolve_to_steps_and_rate():
    assert jobs_module.resolve_hyperparameters({"n_epochs": 2}, n_rows=16, preset_batch=4) == {
        "n_epochs": 2, "steps": 8, "batch_size": 4, "learning_rate_multiplier": 1.0, "learning_rate": 2e-4}
    got = jobs_module.resolve_hyperparameters({"steps": 3, "batch_size": 2, "learning_rate_multiplier": 0.5}, 16, 4)
    assert got == {"n_epochs": None, "steps": 3, "batch_size": 2, "learning_rate_multiplier": 0.5,
                   "learning_rate": 1e-4}
    assert jobs_module.resolve_hyperparameters({}, n_rows=10, preset_batch=4)["steps"] == 3  # 1 epoch: ceil(10/4)
    for bad in ({"n_epochs": 2, "steps": 3}, {"n_epochs": 0}, {"batch_size": 1.5}, {"warmup": 3}):
        with pytest.raises(serve.APIError) as err:
            jobs_module.resolve_hyperparameters(bad, 16, 4)
        assert err.value.status == 400


def test_recover_resumes_from_a_checkpoint_or_fails_with_the_reason(tmp_path):
    store = serve.Store(tmp_path)
    hp = {"steps": 4, "batch_size": 4, "learning_rate": 2e-4}
    for job_id in ("ftjob-a", "ftjob-b"):
        store.insert("jobs", {"id": job_id, "created_at": 0, "model": "tiny", "training_file": "file-x",
                              "hyperparameters": hp, "seed": 0, "status": "running", "attempts": 1})
    (tmp_path / "jobs" / "ftjob-a" / "run" / "checkpoint-2").mkdir(parents=True)
    notes = serve.recover(store)
    assert notes[0] == ("ftjob-a: The service stopped while this job was running; it resumes from checkpoint-2 "
                        "when the worker takes it again.")
    a, b = store.get("jobs", "ftjob-a"), store.get("jobs", "ftjob-b")
    assert (a["status"], b["status"], b["error"]["code"]) == ("queued", "failed", "interrupted")
    assert b["error"]["message"] == ("The service stopped while this job was running and no checkpoint had been "
                                     "written yet, so there is nothing to resume from. Create the job again.")
    store.execute("UPDATE jobs SET status = 'running', attempts = 3 WHERE id = 'ftjob-a'")
    serve.recover(store)
    assert store.get("jobs", "ftjob-a")["error"]["message"].startswith(
        "The service stopped while this job was running and it was interrupted 3 times")


def test_a_second_service_on_the_same_folder_is_refused(server):
    with pytest.raises(serve.ServiceSetupError, match="Another service is already using the data folder"):
        serve.create_app(server.service.store.root, KEY)


def test_a_key_is_required(tmp_path, monkeypatch, capsys):
    from course_lib import cli

    with pytest.raises(serve.ServiceSetupError, match="An API key is required"):
        serve.create_app(tmp_path, "  ")
    monkeypatch.delenv("COURSE_API_KEY", raising=False)
    assert cli.main(["serve", "--data-dir", str(tmp_path)]) == 2
    assert "An API key is required" in capsys.readouterr().err


def test_monitor_summary_and_buckets():
    log = [{"id": f"c{i}", "model": m, "latency_s": lat, "prompt_tokens": 100, "completion_tokens": out,
            "valid_json": v, "schema_valid": v, "metadata": {"hour": h}}
           for i, (m, lat, out, v, h) in enumerate([("base", 1.0, 10, False, "9"), ("base", 3.0, 30, True, "10"),
                                                    ("ft", 2.0, 20, True, "9"), ("ft", 2.0, 20, True, "10")])]
    table = serve.summary(log)
    assert (table["base"]["n"], table["base"]["valid_json"], table["base"]["latency_mean_s"]) == (2, 0.5, 2.0)
    assert table["base"]["tokens_per_second"] == 10.0 and table["ft"]["valid_json_interval"] == [1.0, 1.0]
    buckets = serve.by_bucket(log, "hour", {"right": [0, 1, 1, 0]})
    assert list(buckets["base"]) == ["9", "10"]  # numeric order, not text order
    assert buckets["base"]["9"] == {"n": 1, "valid_json": 0.0, "right": 0.0}
    assert buckets["ft"]["10"] == {"n": 1, "valid_json": 1.0, "right": 0.0}
    assert serve.judge_answer('Sure: {"category": "billing"}') == (True, False)
    with pytest.raises(ValueError, match="has no metadata 'day'"):
        serve.by_bucket(log, "day")
