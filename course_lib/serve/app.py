"""The service: ``create_app`` builds the FastAPI app over a data folder (the routes of ``files``, ``jobs``,
``catalog`` and ``chat``, an API key on every route, errors in the OpenAI shape, the worker started and stopped with
the app); ``start_in_thread`` runs it with uvicorn in a background thread on a free local port, for a notebook or a
test; ``course serve`` (``course_lib.cli``) runs it in the foreground.

Only one service may use a data folder at a time (a lock file, ``service.lock``, released when the service stops
or its process dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import os
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request

from course_lib.serve import catalog, chat, files, jobs
from course_lib.serve.chat import ModelCache
from course_lib.serve.errors import APIError, install_handlers
from course_lib.serve.store import Store
from course_lib.serve.worker import Worker, recover

BASE_MODELS = ("tiny", "embedded")  # course_lib.models names the service trains and answers with
DEFAULT_MAX_UPLOAD_MB = 50.0


class ServiceSetupError(RuntimeError):
    """The service cannot start as asked; the message says why and what to do."""


@dataclass
class Service:
    """What the routes share (``request.app.state.service``)."""

    store: Store
    api_key: str
    base_models: tuple[str, ...] = BASE_MODELS
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 2**20)
    check_target: bool = False
    preset: str | None = None
    threads: int | None = None
    cache: ModelCache = field(default_factory=ModelCache)
    started_at: int = field(default_factory=lambda: int(time.time()))
    worker: Any = None
    recovered: list[str] = field(default_factory=list)
    _lock_file: Any = None

    def preset_batch(self) -> tuple[int, int]:
        """``(batch_size, gradient accumulation)`` of the training preset on this hardware."""
        from course_lib.train import choose_preset

        preset, _ = choose_preset(self.preset)
        return preset.batch_size, preset.grad_accum

    def preset_for(self, batch_size: int):
        """The training preset on this hardware with the job's batch size."""
        from course_lib.train import choose_preset

        preset, _ = choose_preset(self.preset)
        return replace(preset, batch_size=batch_size)


def _lock(root: Path):
    handle = open(root / "service.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        handle.close()
        raise ServiceSetupError(f"Another service is already using the data folder {root}: stop it first, or "
                                "start this one with another --data-dir.") from err
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _check_key(request: Request) -> None:
    expected = request.app.state.service.api_key
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if not header:
        raise APIError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' (the openai "
                       "client does this with OpenAI(api_key=...)).", code="missing_api_key")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        shown = given.strip()[:3] + "..." if given.strip() else "(empty)"
        raise APIError(401, f"Incorrect API key provided: {shown}. Use the key this service was started with "
                       "(course serve --api-key, or COURSE_API_KEY).", code="invalid_api_key")


def create_app(data_dir: str | Path, api_key: str, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               base_models: tuple[str, ...] = BASE_MODELS, check_target: bool = False, preset: str | None = None,
               threads: int | None = None, start_worker: bool = True) -> FastAPI:
    """The FastAPI app of a service on ``data_dir`` (created if missing) that answers requests bearing
    ``api_key``. ``check_target=True`` also checks that every assistant answer of an upload is valid GreenLeaf
    triage JSON. ``preset``/``threads``: passed to ``train.train_sft`` (default: from the hardware)."""
    if not api_key or not api_key.strip():
        raise ServiceSetupError("An API key is required: pass api_key=... (course serve --api-key KEY, or set "
                                "COURSE_API_KEY). Any string works; clients must send the same one.")
    if max_upload_mb <= 0:
        raise ServiceSetupError(f"max_upload_mb={max_upload_mb}: give a positive size in MiB.")
    store = Store(data_dir)
    lock = _lock(store.root)  # here, not at startup: a second service on the same folder fails at once
    service = Service(store=store, api_key=api_key.strip(), base_models=tuple(base_models),
                      max_upload_bytes=int(max_upload_mb * 2**20), check_target=check_target, preset=preset,
                      threads=threads, _lock_file=lock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            service.recovered = recover(store)
            service.worker = Worker(service)
            if start_worker:
                service.worker.start()
            yield
        finally:
            service.worker.stop() if service.worker is not None else None
            service._lock_file.close()

    app = FastAPI(title="course serve: a local OpenAI-compatible fine-tuning service", lifespan=lifespan)
    app.state.service = service
    install_handlers(app)
    auth = [Depends(_check_key)]
    for module in (files, jobs, catalog, chat):
        app.include_router(module.router, dependencies=auth)
    return app


@dataclass
class RunningServer:
    """A service running in a background thread: ``base_url`` for ``openai.OpenAI(base_url=...)``, ``stop()``."""

    url: str
    app: FastAPI
    server: Any
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def service(self) -> Service:
        return self.app.state.service

    def stop(self, timeout: float = 120) -> None:
        """Stop accepting requests, stop the worker (a running job pauses at the end of its step and stays
        ``running`` in the database, as after a crash), and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)


def start_in_thread(data_dir: str | Path, api_key: str, host: str = "127.0.0.1", port: int = 0,
                    timeout: float = 120, **options) -> RunningServer:
    """Start the service with uvicorn in a daemon thread (``port=0``: a free port) and wait until it answers.
    ``options`` go to ``create_app``."""
    import uvicorn

    app = create_app(data_dir, api_key, **options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="course-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServiceSetupError(f"The service on {data_dir} did not start (see the error printed above): is "
                                    "another service using this data folder?")
        time.sleep(0.05)
    return RunningServer(f"http://{host}:{sock.getsockname()[1]}", app, server, thread)
