"""``/v1/fine_tuning/jobs``: create a fine-tuning job (checked at once: the base model, the files, the
hyperparameters), list and retrieve jobs, cancel one, and read its events (progress and the training loss) and
checkpoints. The training itself is the worker's (``worker.py``); a job here is a row of the database.

Hyperparameters as OpenAI takes them: ``n_epochs`` (or, this service's addition, ``steps``: optimiser steps),
``learning_rate_multiplier`` (times the course's LoRA rate, ``train.DEFAULT_LR["lora"]``) and ``batch_size``; each
may be ``"auto"`` (1 epoch, multiplier 1, the hardware preset's batch).
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from course_lib.serve.catalog import find_model
from course_lib.serve.errors import APIError, bad_request, not_found
from course_lib.serve.files import get_file
from course_lib.serve.store import Store, new_id, now

router = APIRouter()
ACTIVE = ("validating_files", "queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")
MAX_STEPS = 100_000


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: dict[str, Any] | None = None
    method: dict[str, Any] | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None


def _number(hp: dict, key: str, kind: type, low: float, high: float) -> Any:
    value = hp.get(key, "auto")
    if value in ("auto", None):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise bad_request(f"hyperparameters.{key}={value!r}: give {'an integer' if kind is int else 'a number'} "
                          f"or 'auto'.", param=f"hyperparameters.{key}")
    if not low <= value <= high:
        raise bad_request(f"hyperparameters.{key}={value}: use a value from {low:g} to {high:g}.",
                          param=f"hyperparameters.{key}")
    return kind(value)


def resolve_hyperparameters(hp: dict, n_rows: int, preset_batch: int, grad_accum: int = 1) -> dict:
    """The numbers a job trains with: ``steps`` (given, or ``ceil(rows * epochs / (batch * accumulation))``),
    ``batch_size``, ``learning_rate_multiplier``, ``learning_rate``, and ``n_epochs`` as asked (None when
    ``steps`` was given)."""
    from course_lib.train import DEFAULT_LR

    unknown = set(hp) - {"n_epochs", "steps", "batch_size", "learning_rate_multiplier"}
    if unknown:
        raise bad_request(f"Unknown hyperparameters {sorted(unknown)}: use n_epochs (or steps), batch_size and "
                          "learning_rate_multiplier.", param="hyperparameters")
    epochs = _number(hp, "n_epochs", int, 1, 50)
    steps = _number(hp, "steps", int, 1, MAX_STEPS)
    if epochs is not None and steps is not None:
        raise bad_request("Give hyperparameters.n_epochs or hyperparameters.steps, not both.",
                          param="hyperparameters")
    batch = _number(hp, "batch_size", int, 1, 256)
    multiplier = _number(hp, "learning_rate_multiplier", float, 1e-3, 100.0)
    per_step = (batch or preset_batch) * grad_accum
    if steps is None:
        steps = max(1, math.ceil(n_rows * (epochs or 1) / per_step))
    return {"n_epochs": epochs if epochs is not None else ("auto" if "steps" not in hp else None),
            "steps": steps, "batch_size": batch or preset_batch, "learning_rate_multiplier": multiplier or 1.0,
            "learning_rate": DEFAULT_LR["lora"] * (multiplier or 1.0)}


def job_object(row: dict) -> dict:
    """A stored job as the API's ``fine_tuning.job`` object."""
    hp = row["hyperparameters"]
    return {
        "id": row["id"], "object": "fine_tuning.job", "created_at": row["created_at"], "error": row["error"],
        "fine_tuned_model": row["fine_tuned_model"], "finished_at": row["finished_at"], "hyperparameters": hp,
        "model": row["model"], "organization_id": "org-course", "result_files": [], "seed": row["seed"],
        "status": row["status"], "trained_tokens": row["trained_tokens"], "training_file": row["training_file"],
        "validation_file": row["validation_file"], "estimated_finish": None, "integrations": [],
        "metadata": hp.get("metadata"), "suffix": row["suffix"],
        "method": {"type": "supervised", "supervised": {"hyperparameters": {
            k: hp[k] for k in ("n_epochs", "batch_size", "learning_rate_multiplier")}}},
    }


def add_event(store: Store, job_id: str, message: str, level: str = "info", data: dict | None = None) -> None:
    store.insert("events", {"id": new_id("ftevent"), "job_id": job_id, "created_at": now(), "level": level,
                            "message": message, "type": "metrics" if data and "step" in data else "message",
                            "data": data})


def get_job(store: Store, job_id: str) -> dict:
    row = store.get("jobs", job_id)
    if row is None:
        raise not_found("fine-tuning job", job_id, "fine_tuning_job_id")
    return row


def _hyperparameters_asked(req: JobRequest) -> dict:
    if req.method is None:
        return dict(req.hyperparameters or {})
    kind = req.method.get("type")
    if kind != "supervised":
        raise bad_request(f"method.type={kind!r}: this service runs supervised fine-tuning only (notebook 07 runs "
                          "DPO in the notebook itself).", param="method.type")
    if req.hyperparameters:
        raise bad_request("Give the hyperparameters in method.supervised.hyperparameters or in hyperparameters, "
                          "not both.", param="hyperparameters")
    return dict((req.method.get("supervised") or {}).get("hyperparameters") or {})


@router.post("/v1/fine_tuning/jobs")
def create_job(request: Request, req: JobRequest) -> dict:
    service = request.app.state.service
    store: Store = service.store
    found = find_model(service, req.model)
    if found["adapter_path"] is not None:
        raise bad_request(f"{req.model!r} is a fine-tuned model: start a job from a base model "
                          f"({', '.join(service.base_models)}).", param="model", code="model_not_trainable")
    train = get_file(store, req.training_file, "training_file")
    if req.validation_file:
        get_file(store, req.validation_file, "validation_file")
    if req.suffix is not None and (len(req.suffix) > 64 or ":" in req.suffix or not req.suffix.strip()):
        raise bad_request(f"suffix={req.suffix!r}: up to 64 characters, no ':'.", param="suffix")
    hp = resolve_hyperparameters(_hyperparameters_asked(req), train["n_rows"], *service.preset_batch())
    if req.metadata:
        hp["metadata"] = req.metadata
    row = {"id": new_id("ftjob"), "created_at": now(), "model": req.model, "training_file": req.training_file,
           "validation_file": req.validation_file, "hyperparameters": hp, "suffix": req.suffix,
           "seed": req.seed if req.seed is not None else secrets.randbelow(2**31), "status": "queued"}
    store.insert("jobs", row)
    add_event(store, row["id"], f"Created fine-tuning job {row['id']}: {hp['steps']} steps of batch "
              f"{hp['batch_size']} on {train['n_rows']} rows of {train['filename']}")
    created = job_object(get_job(store, row["id"]))  # as created: the worker may take it the next moment
    service.worker.wake()
    return created


@router.get("/v1/fine_tuning/jobs")
def list_jobs(request: Request, after: str | None = None, limit: int = 20) -> dict:
    rows, more = request.app.state.service.store.page("jobs", after, max(1, min(limit, 100)))
    return {"object": "list", "data": [job_object(r) for r in rows], "has_more": more}


@router.get("/v1/fine_tuning/jobs/{job_id}")
def retrieve_job(request: Request, job_id: str) -> dict:
    return job_object(get_job(request.app.state.service.store, job_id))


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
def cancel_job(request: Request, job_id: str) -> dict:
    """A queued job is cancelled at once; a running one too, and its worker stops at the end of the step it is
    in (no model is made from it)."""
    store: Store = request.app.state.service.store
    row = get_job(store, job_id)
    if row["status"] in FINISHED:
        raise APIError(400, f"Job {job_id} has already {row['status']}: only a queued or running job can be "
                       "cancelled.", param="fine_tuning_job_id", code="job_not_cancellable")
    changed = store.execute("UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ? "
                            "WHERE id = ? AND status IN ('validating_files', 'queued', 'running')", [now(), job_id])
    if changed:
        add_event(store, job_id, "Fine-tuning job cancelled")
    return job_object(get_job(store, job_id))


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
def list_events(request: Request, job_id: str, after: str | None = None, limit: int = 20) -> dict:
    store: Store = request.app.state.service.store
    get_job(store, job_id)
    rows, more = store.page("events", after, max(1, min(limit, 1000)), "job_id = ?", [job_id])
    data = [{"id": r["id"], "object": "fine_tuning.job.event", "created_at": r["created_at"], "level": r["level"],
             "message": r["message"], "data": r["data"], "type": r["type"]} for r in rows]
    return {"object": "list", "data": data, "has_more": more}


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
def list_checkpoints(request: Request, job_id: str, after: str | None = None, limit: int = 10) -> dict:
    store: Store = request.app.state.service.store
    job = get_job(store, job_id)
    rows, more = store.page("checkpoints", after, max(1, min(limit, 100)), "job_id = ?", [job_id])
    base = f"ft:{job['model']}:{job['suffix'] or 'course'}:{job_id}"
    data = [{"id": r["id"], "object": "fine_tuning.job.checkpoint", "created_at": r["created_at"],
             "fine_tuned_model_checkpoint": f"{base}:ckpt-step-{r['step']}", "fine_tuning_job_id": job_id,
             "metrics": r["metrics"], "step_number": r["step"]} for r in rows]
    return {"object": "list", "data": data, "has_more": more}
