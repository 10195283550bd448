"""Where the service keeps things: one data folder holding ``service.db`` (SQLite: the metadata of files, jobs,
their events and checkpoints, models and the completion log) and the bytes on disk (``files/<id>.jsonl``,
``jobs/<id>/`` with the checkpoints and the adapter). Everything survives a restart: a new service on the same
folder sees the same files, jobs and models.

SQLite in WAL mode (readers do not wait for the writer), one connection per thread (a connection must not be
shared between threads), and a busy timeout so two writers queue instead of failing.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from course_lib.paths import sha256_file  # noqa: F401 (files.py and the package use it from here)

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, filename TEXT NOT NULL, bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL, purpose TEXT NOT NULL, sha256 TEXT NOT NULL, n_rows INTEGER NOT NULL,
    path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, created_at INTEGER NOT NULL, model TEXT NOT NULL,
    training_file TEXT NOT NULL, validation_file TEXT, hyperparameters TEXT NOT NULL, suffix TEXT, seed INTEGER NOT NULL,
    status TEXT NOT NULL, fine_tuned_model TEXT, finished_at INTEGER, error TEXT, trained_tokens INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL, created_at INTEGER NOT NULL,
    level TEXT NOT NULL, message TEXT NOT NULL, type TEXT NOT NULL, data TEXT);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL, created_at INTEGER NOT NULL,
    step INTEGER NOT NULL, metrics TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, created INTEGER NOT NULL, base TEXT NOT NULL,
    job_id TEXT NOT NULL, adapter_path TEXT NOT NULL, provenance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS completions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, created_at REAL NOT NULL, model TEXT NOT NULL,
    latency_s REAL NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    finish_reason TEXT NOT NULL, valid_json INTEGER NOT NULL, schema_valid INTEGER NOT NULL, metadata TEXT);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
CREATE INDEX IF NOT EXISTS completions_model ON completions(model, seq);
"""
JSON_COLUMNS = {"hyperparameters", "error", "data", "metrics", "provenance", "metadata"}


def new_id(prefix: str) -> str:
    """``file-1f0c...``: a prefix and 24 random hex digits, as OpenAI's ids look."""
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


class Store:
    """The service's data folder: SQLite metadata (``service.db``) and the files under it."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir).expanduser().resolve()
        for sub in ("files", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "service.db"
        self._local = threading.local()
        self.lock = threading.Lock()  # one writer transaction at a time within this process
        with self.lock:
            conn = self.connection()
            conn.executescript(SCHEMA)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (created on first use): WAL, 30 s busy timeout, rows as ``sqlite3.Row``."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one write; returns the number of rows changed."""
        with self.lock:
            cur = self.connection().execute(sql, [_encode(p) for p in params])
            return cur.rowcount

    def insert(self, table: str, row: dict) -> None:
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", row.values())

    def update(self, table: str, ident: str, **values: Any) -> int:
        sets = ", ".join(f"{k} = ?" for k in values)
        return self.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*values.values(), ident])

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        """Rows as dicts, JSON columns decoded."""
        rows = self.connection().execute(sql, list(params)).fetchall()
        return [_decode(dict(r)) for r in rows]

    def get(self, table: str, ident: str) -> dict | None:
        found = self.query(f"SELECT * FROM {table} WHERE id = ?", [ident])
        return found[0] if found else None

    def page(self, table: str, after: str | None, limit: int, where: str = "1=1", params: Iterable[Any] = (),
             newest_first: bool = True) -> tuple[list[dict], bool]:
        """One page of a list in OpenAI's cursor style: rows after the one with id ``after``, at most ``limit``,
        and whether more follow (``has_more``)."""
        params = list(params)
        order = "DESC" if newest_first else "ASC"
        if after:
            cursor = self.query(f"SELECT seq FROM {table} WHERE id = ?", [after])
            if cursor:
                where += f" AND seq {'<' if newest_first else '>'} ?"
                params.append(cursor[0]["seq"])
        rows = self.query(f"SELECT * FROM {table} WHERE {where} ORDER BY seq {order} LIMIT ?", [*params, limit + 1])
        return rows[:limit], len(rows) > limit


def _encode(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _decode(row: dict) -> dict:
    for key in JSON_COLUMNS & row.keys():
        if isinstance(row[key], str):
            row[key] = json.loads(row[key])
    return row
