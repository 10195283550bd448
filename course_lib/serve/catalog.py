"""``/v1/models``: the models this service answers with, base and fine-tuned, and where each one's weights live.

Base models are the course's names (``course_lib.models.resolve``: ``"tiny"``, ``"embedded"``, ...). A fine-tuned
model is a LoRA adapter a succeeded job saved, named like OpenAI's ``ft:<base>:<suffix>:<job id>``; its record keeps
its provenance (the sha256 of its training file, the course version, base, hyperparameters, final loss).
"""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Request

from course_lib.serve.errors import APIError, not_found
from course_lib.serve.store import Store

router = APIRouter()


def model_name(base: str, suffix: str | None, job_id: str) -> str:
    """``ft:tiny:greenleaf:ftjob-...``: the id a succeeded job's model gets."""
    return f"ft:{base}:{suffix or 'course'}:{job_id}"


def find_model(service, model_id: str, param: str | None = "model") -> dict:
    """``{"id", "base", "adapter_path" (None for a base model), "provenance", ...}``; 404 in the API's shape for an
    id that is neither a base model of this service nor a fine-tuned one (deleted ones included)."""
    if model_id in service.base_models:
        return {"id": model_id, "base": model_id, "adapter_path": None, "created": service.started_at,
                "owned_by": "course", "provenance": None}
    row = service.store.get("models", model_id)
    if row is None:
        raise not_found("model", model_id, param)
    return {**row, "owned_by": "user"}


def model_object(found: dict) -> dict:
    """The API's ``model`` object; fine-tuned models also carry ``provenance`` (extra fields are allowed: the
    ``openai`` client keeps them, e.g. ``client.models.retrieve(id).provenance``)."""
    out = {"id": found["id"], "object": "model", "created": found["created"], "owned_by": found["owned_by"]}
    if found.get("provenance") is not None:
        out["provenance"] = found["provenance"]
    return out


@router.get("/v1/models")
def list_models(request: Request) -> dict:
    service = request.app.state.service
    store: Store = service.store
    tuned = store.query("SELECT * FROM models ORDER BY seq")
    data = [model_object(find_model(service, name)) for name in service.base_models]
    data += [model_object({**row, "owned_by": "user"}) for row in tuned]
    return {"object": "list", "data": data}


@router.get("/v1/models/{model_id:path}")
def retrieve_model(request: Request, model_id: str) -> dict:
    return model_object(find_model(request.app.state.service, model_id))


@router.delete("/v1/models/{model_id:path}")
def delete_model(request: Request, model_id: str) -> dict:
    service = request.app.state.service
    found = find_model(service, model_id)
    if found["adapter_path"] is None:
        raise APIError(403, f"{model_id!r} is a base model of this service: only fine-tuned models can be "
                       "deleted.", param="model", code="model_not_deletable")
    service.store.execute("DELETE FROM models WHERE id = ?", [model_id])
    service.cache.forget(model_id)
    shutil.rmtree(service.store.root / found["adapter_path"], ignore_errors=True)
    return {"id": model_id, "object": "model", "deleted": True}
