"""The background worker: takes queued jobs one at a time (oldest first) and runs the course's real recipe on
each, ``course_lib.train.train_sft`` (LoRA with ``trl`` + ``peft``), in the job's own folder ``jobs/<id>/``:
checkpoints in ``run/``, the adapter in ``adapter/`` (``train.save_adapter``) with ``provenance.json`` beside it.
One job at a time, each in its own folder: two jobs never write to the same place.

While a job trains, a ``transformers`` callback turns the trainer's logs into job events (step, training loss,
validation loss), records each checkpoint, and stops at the end of a step when the job was cancelled or the
service is stopping. ``recover`` runs when a service starts on a data folder: a job left ``running`` by a service
that stopped resumes from its latest checkpoint (``train_sft(..., resume=True)``), or is marked ``failed`` with the
reason when no checkpoint was written yet. No job stays ``running`` with no worker behind it.
"""

from __future__ import annotations

import json
import platform
import threading
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from transformers import TrainerCallback

import course_lib
from course_lib import data, models
from course_lib.serve.catalog import model_name
from course_lib.serve.jobs import add_event
from course_lib.serve.store import Store, new_id, now

MAX_ATTEMPTS = 3  # a job interrupted this many times is failed instead of resumed again


class Interrupted(Exception):
    """The service is stopping: leave the job as it is (it resumes when a service starts on this folder)."""


class Cancelled(Exception):
    """The job was cancelled while it trained."""


class _JobCallback(TrainerCallback):
    """Job events from the trainer: loss per logged step, checkpoints, and stopping on cancel or shutdown."""

    def __init__(self, store: Store, job_id: str, steps: int, stopping: threading.Event) -> None:
        self.store, self.job_id, self.steps, self.stopping = store, job_id, steps, stopping

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        step = int(state.global_step)
        if "loss" in logs:
            self._event(f"Step {step}/{self.steps}: training loss={logs['loss']:.4f}",
                        {"step": step, "total_steps": self.steps, "train_loss": float(logs["loss"]),
                         "learning_rate": float(logs.get("learning_rate", 0.0))})
        if "eval_loss" in logs:
            self._event(f"Step {step}/{self.steps}: validation loss={logs['eval_loss']:.4f}",
                        {"step": step, "total_steps": self.steps, "valid_loss": float(logs["eval_loss"])})

    def on_save(self, args, state, control, **kwargs):
        step = int(state.global_step)
        losses = [h["loss"] for h in state.log_history if "loss" in h and h.get("step", 0) <= step]
        metrics = {"step": float(step), "train_loss": float(losses[-1]) if losses else None}
        self.store.insert("checkpoints", {"id": new_id("ftckpt"), "job_id": self.job_id, "created_at": now(),
                                          "step": step, "metrics": metrics})
        self._event(f"Checkpoint saved at step {step}/{self.steps}")

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopping.is_set():
            raise Interrupted()
        status = self.store.query("SELECT status FROM jobs WHERE id = ?", [self.job_id])
        if not status or status[0]["status"] != "running":
            raise Cancelled()

    def _event(self, message: str, data_: dict | None = None) -> None:
        add_event(self.store, self.job_id, message, data=data_)


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "trl"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def provenance(job: dict, files: dict[str, dict], history: list[dict], seconds: float, resumed: bool) -> dict:
    """What made this model: the training (and validation) file's sha256, the course version, the base model,
    the hyperparameters and seed, the final losses, the libraries."""
    losses = [h["loss"] for h in history if "loss" in h]
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    out = {
        "job_id": job["id"], "base_model": job["model"], "base_model_source": models.resolve(job["model"]),
        "course_version": course_lib.__version__, "method": "lora (course_lib.train.train_sft)",
        "hyperparameters": {k: v for k, v in job["hyperparameters"].items() if k != "metadata"},
        "seed": job["seed"], "resumed_from_checkpoint": resumed,
        "metrics": {"final_train_loss": losses[-1] if losses else None, "final_valid_loss": evals[-1] if evals else None,
                    "steps": max((h.get("step", 0) for h in history), default=0), "train_seconds": round(seconds, 2),
                    "trained_tokens": int(tokens)},
        "libraries": _versions(),
    }
    for role, row in files.items():
        out[f"{role}_file"] = row["id"]
        out[f"{role}_file_name"] = row["filename"]
        out[f"{role}_file_sha256"] = row["sha256"]
        out[f"{role}_file_rows"] = row["n_rows"]
    return out


def recover(store: Store) -> list[str]:
    """Jobs a stopped service left ``running`` (or ``validating_files``): queued again to resume from their latest
    checkpoint, or failed with the reason. Returns one line per job touched."""
    from course_lib.train import latest_checkpoint

    notes = []
    for job in store.query("SELECT * FROM jobs WHERE status IN ('running', 'validating_files') ORDER BY seq"):
        checkpoint = latest_checkpoint(store.root / "jobs" / job["id"] / "run")
        if checkpoint is not None and job["attempts"] < MAX_ATTEMPTS:
            store.execute("UPDATE jobs SET status = 'queued' WHERE id = ? AND status IN ('running', "
                          "'validating_files')", [job["id"]])
            note = (f"The service stopped while this job was running; it resumes from {checkpoint.name} when the "
                    "worker takes it again.")
            add_event(store, job["id"], note, level="warn")
        else:
            why = (f"it was interrupted {job['attempts']} times" if checkpoint is not None else
                   "no checkpoint had been written yet, so there is nothing to resume from")
            error = {"code": "interrupted", "param": None,
                     "message": f"The service stopped while this job was running and {why}. Create the job again."}
            store.execute("UPDATE jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ? AND status "
                          "IN ('running', 'validating_files')", [json.dumps(error), now(), job["id"]])
            note = error["message"]
            add_event(store, job["id"], note, level="error")
        notes.append(f"{job['id']}: {note}")
    return notes


class Worker(threading.Thread):
    """One thread that trains the queued jobs, one after another. ``stop()`` ends it at the end of the current
    step (the job then stays ``running`` in the database, and ``recover`` resumes it on the next start)."""

    def __init__(self, service) -> None:
        super().__init__(name="course-serve-worker", daemon=True)
        self.service, self.store = service, service.store
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self.current: str | None = None

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = 60) -> None:
        self.stopping.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                job = self.store.query("SELECT * FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1")
                if not job:
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                self.run_job(job[0])
        finally:
            self.store.close()

    def run_job(self, job: dict) -> None:
        store = self.store
        if not store.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1 WHERE id = ? AND "
                             "status = 'queued'", [job["id"]]):
            return  # cancelled in between
        self.current = job["id"]
        try:
            self._train(job)
        except Interrupted:
            add_event(store, job["id"], "The service is stopping: training paused at the end of a step.", "warn")
        except Cancelled:
            add_event(store, job["id"], "Training stopped: the job was cancelled (no model was made).")
        except Exception as err:  # noqa: BLE001 - any failure becomes the job's error, with its reason
            code = "invalid_training_file" if isinstance(err, data.DataError) else "training_error"
            error = {"code": code, "message": f"{type(err).__name__}: {err}", "param": None}
            store.execute("UPDATE jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ? AND "
                          "status = 'running'", [json.dumps(error), now(), job["id"]])
            add_event(store, job["id"], error["message"], level="error",
                      data={"traceback": traceback.format_exc(limit=5)[-2000:]})
        finally:
            self.current = None

    def _train(self, job: dict) -> None:
        from course_lib.train import TrainSetupError, latest_checkpoint, save_adapter, train_sft

        store, hp = self.store, job["hyperparameters"]
        folder = store.root / "jobs" / job["id"]
        files = {"training": store.get("files", job["training_file"])}
        if job["validation_file"]:
            files["validation"] = store.get("files", job["validation_file"])
        missing = [role for role, row in files.items() if row is None]
        if missing:
            raise TrainSetupError(f"The {missing[0]} file was deleted before the job ran: upload it again.")
        rows = {role: _rows(store.root / row["path"]) for role, row in files.items()}
        resumed = latest_checkpoint(folder / "run") is not None
        add_event(store, job["id"], "Fine-tuning job resumed from " + latest_checkpoint(folder / "run").name
                  if resumed else "Fine-tuning job started")
        steps = hp["steps"]
        preset = self.service.preset_for(hp["batch_size"])
        result = train_sft(
            job["model"], rows["training"], rows.get("validation"), method="lora", preset=preset, steps=steps,
            lr=hp["learning_rate"], output_dir=folder / "run", resume=resumed, seed=job["seed"], progress=False,
            callbacks=[_JobCallback(store, job["id"], steps, self.stopping)], system_prompt=None,
            save_steps=max(1, steps // 5), eval_steps=max(1, steps // 5), threads=self.service.threads)
        adapter = save_adapter(result.model, folder / "adapter")
        record = provenance(job, files, result.history, result.seconds, resumed)
        (adapter / "provenance.json").write_text(json.dumps(record, indent=2))
        name = model_name(job["model"], job["suffix"], job["id"])
        with store.lock:  # the model appears and the job succeeds together, unless it was cancelled meanwhile
            conn = store.connection()
            conn.execute("BEGIN IMMEDIATE")
            changed = conn.execute("UPDATE jobs SET status = 'succeeded', fine_tuned_model = ?, finished_at = ?, "
                                   "trained_tokens = ? WHERE id = ? AND status = 'running'",
                                   [name, now(), record["metrics"]["trained_tokens"], job["id"]]).rowcount
            if changed:
                conn.execute("INSERT INTO models (id, created, base, job_id, adapter_path, provenance) VALUES "
                             "(?, ?, ?, ?, ?, ?)", [name, now(), job["model"], job["id"],
                                                    str(adapter.relative_to(store.root)), json.dumps(record)])
            conn.execute("COMMIT")
        if not changed:
            raise Cancelled()
        loss = record["metrics"]["final_train_loss"]
        add_event(store, job["id"], f"New fine-tuned model created: {name}")
        add_event(store, job["id"], "The job has successfully completed" +
                  (f" (final training loss {loss:.4f})" if loss is not None else ""))


def _rows(path: Path) -> list[dict]:
    result = data.load_jsonl(path, fmt="chat")
    if result.errors:  # checked on upload; a file changed on disk since then is an error, never half-used
        raise data.DataError(f"{path.name} changed since it was uploaded:\n{result.summary()}")
    return result.rows
