"""``/v1/files``: upload a JSONL training file (checked row by row, as the data module checks a file), list,
retrieve, download and delete files.

An upload is read in pieces and refused with 413 as soon as it passes the size limit (before the whole body is in
memory). A file with a bad row is refused with 400 and the data module's report: every problem with its line
number, field, reason and fix; nothing is stored. OpenAI checks a file when a job starts; this service checks it
on upload, so a learner sees the line numbers at once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.requests import Request as StarletteRequest

from course_lib import data
from course_lib.serve.errors import APIError, bad_request, not_found
from course_lib.serve.store import Store, new_id, now, sha256_file

router = APIRouter()
PURPOSES = ("fine-tune",)
MAX_REPORTED = 20  # problems listed in an error message; the count says how many more


def file_object(row: dict) -> dict:
    """A stored file as the API's ``file`` object."""
    return {"id": row["id"], "object": "file", "bytes": row["bytes"], "created_at": row["created_at"],
            "filename": row["filename"], "purpose": row["purpose"], "status": "processed", "expires_at": None,
            "status_details": None}


def get_file(store: Store, file_id: str, param: str | None = None) -> dict:
    row = store.get("files", file_id)
    if row is None:
        raise not_found("file", file_id, param)
    return row


def check_jsonl(path: Path, filename: str, check_target: bool) -> data.LoadResult:
    """Check every row of an uploaded file as ``data.load_jsonl`` does; raise a 400 naming each bad line."""
    try:
        result = data.load_jsonl(path, fmt="chat", check_target=check_target)
    except data.DataError as err:
        raise bad_request(f"{filename}: {err}", param="file", code="invalid_file") from err
    if result.errors:
        shown = result.errors[:MAX_REPORTED]
        lines = [f"line {e.line}: {e.field}: {e.reason}" + (f" (fix: {e.fix})" if e.fix else "") for e in shown]
        more = len(result.errors) - len(shown)
        if more:
            lines.append(f"... and {more} more problems")
        raise bad_request(f"{filename}: {len(result.bad_lines)} of {result.n_lines} rows are invalid; nothing was "
                          "stored. Fix these lines and upload again:\n" + "\n".join(lines),
                          param="file", code="invalid_file")
    return result


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it passes ``limit`` bytes (the Content-Length header is checked
    first, then the bytes as they arrive, for a client that sends none)."""
    declared = request.headers.get("content-length")
    too_big = APIError(413, f"The upload is larger than this service's limit of {limit / 2**20:g} MiB. Split the "
                       "file, or start the service with a larger --max-upload-mb.", param="file",
                       code="file_too_large")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    pieces, total = [], 0
    async for piece in request.stream():
        total += len(piece)
        if total > limit:
            raise too_big
        pieces.append(piece)
    return b"".join(pieces)


@router.post("/v1/files")
async def upload_file(request: Request) -> dict:
    service = request.app.state.service
    body = await _read_body(request, service.max_upload_bytes)

    async def replay():  # the body, once more, for the multipart parser
        return {"type": "http.request", "body": body, "more_body": False}

    form = await StarletteRequest(request.scope, replay).form(max_part_size=service.max_upload_bytes)
    upload, purpose = form.get("file"), form.get("purpose")
    if upload is None or isinstance(upload, str):
        raise bad_request("Missing the 'file' part: send the JSONL file as multipart form data "
                          "(client.files.create(file=open(path, 'rb'), purpose='fine-tune')).", param="file")
    if purpose not in PURPOSES:
        raise bad_request(f"purpose={purpose!r}: this service accepts purpose='fine-tune' only.", param="purpose")
    filename = Path(upload.filename or "upload.jsonl").name
    content = await upload.read()
    store: Store = service.store
    fd, tmp = tempfile.mkstemp(suffix=".jsonl", dir=store.root / "files")
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    try:
        result = check_jsonl(Path(tmp), filename, service.check_target)
    except APIError:
        os.unlink(tmp)
        raise
    file_id = new_id("file")
    path = store.root / "files" / f"{file_id}.jsonl"
    os.replace(tmp, path)
    row = {"id": file_id, "filename": filename, "bytes": len(content), "created_at": now(), "purpose": purpose,
           "sha256": sha256_file(path), "n_rows": len(result.rows), "path": str(path.relative_to(store.root))}
    store.insert("files", row)
    return file_object(row)


@router.get("/v1/files")
def list_files(request: Request, after: str | None = None, limit: int = 10000, purpose: str | None = None,
               order: str = "desc") -> dict:
    store: Store = request.app.state.service.store
    where, params = ("purpose = ?", [purpose]) if purpose else ("1=1", [])
    rows, more = store.page("files", after, max(1, min(limit, 10000)), where, params, newest_first=order != "asc")
    return {"object": "list", "data": [file_object(r) for r in rows], "has_more": more,
            "first_id": rows[0]["id"] if rows else None, "last_id": rows[-1]["id"] if rows else None}


@router.get("/v1/files/{file_id}")
def retrieve_file(request: Request, file_id: str) -> dict:
    return file_object(get_file(request.app.state.service.store, file_id))


@router.get("/v1/files/{file_id}/content")
def file_content(request: Request, file_id: str) -> FileResponse:
    store: Store = request.app.state.service.store
    row = get_file(store, file_id)
    return FileResponse(store.root / row["path"], media_type="application/jsonl", filename=row["filename"])


@router.delete("/v1/files/{file_id}")
def delete_file(request: Request, file_id: str) -> dict:
    store: Store = request.app.state.service.store
    row = get_file(store, file_id)
    users = store.query("SELECT id FROM jobs WHERE (training_file = ? OR validation_file = ?) AND status IN "
                        "('validating_files', 'queued', 'running')", [file_id, file_id])
    if users:
        raise bad_request(f"File {file_id} is used by fine-tuning job {users[0]['id']}, which has not finished: "
                          "cancel the job (or wait for it) before deleting its file.", param="file_id",
                          code="file_in_use")
    store.execute("DELETE FROM files WHERE id = ?", [file_id])
    (store.root / row["path"]).unlink(missing_ok=True)
    return {"id": file_id, "object": "file", "deleted": True}
