"""A local fine-tuning service with the OpenAI API's shape, so the hosted workflow (upload a file, create a job,
wait, use the model) runs for real, offline, with the official ``openai`` client pointed at localhost.

- ``app``: ``create_app`` (FastAPI over a data folder, API key, upload limit), ``start_in_thread`` (uvicorn in a
  background thread, for notebooks and tests); ``course serve`` runs it from the command line.
- ``store``: SQLite metadata + files on disk under the data folder; everything survives a restart.
- ``errors``: every error as ``{"error": {"message", "type", "param", "code"}}`` with its HTTP status.
- ``files``: ``/v1/files`` (uploads checked row by row with ``data.load_jsonl``: line-numbered errors).
- ``jobs``: ``/v1/fine_tuning/jobs`` (create, list, retrieve, cancel, events, checkpoints).
- ``worker``: the background thread that runs ``train.train_sft`` on each queued job, one at a time; ``recover``
  resumes a job interrupted by a restart from its checkpoint, or fails it with the reason.
- ``catalog``: ``/v1/models`` (base and fine-tuned models; each fine-tuned one keeps its provenance).
- ``chat``: ``/v1/chat/completions`` from a base model or a tuned adapter.
- ``monitor``: every completion logged (model, latency, tokens, valid triage JSON); summaries and drift per bucket.

Imports point one way: ``store``, ``errors`` ← ``files``, ``catalog`` ← ``jobs``, ``monitor`` ← ``chat``,
``worker`` ← ``app``.
"""

from course_lib.serve.app import (BASE_MODELS, DEFAULT_MAX_UPLOAD_MB, RunningServer, Service, ServiceSetupError,
                                  create_app, start_in_thread)
from course_lib.serve.catalog import model_name
from course_lib.serve.chat import ModelCache, complete
from course_lib.serve.errors import APIError, error_body
from course_lib.serve.jobs import resolve_hyperparameters
from course_lib.serve.monitor import by_bucket, completion_log, format_summary, judge_answer, plot_drift, summary
from course_lib.serve.store import Store, sha256_file
from course_lib.serve.worker import provenance, recover

__all__ = [
    "BASE_MODELS", "DEFAULT_MAX_UPLOAD_MB", "RunningServer", "Service", "ServiceSetupError", "create_app",
    "start_in_thread", "model_name", "ModelCache", "complete", "APIError", "error_body", "resolve_hyperparameters",
    "by_bucket", "completion_log", "format_summary", "judge_answer", "plot_drift", "summary", "Store",
    "sha256_file", "provenance", "recover",
]
