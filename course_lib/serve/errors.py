"""Errors in the OpenAI API's shape: every failure the service returns is an HTTP status plus the body
``{"error": {"message", "type", "param", "code"}}``, which the official ``openai`` client turns into its exception
classes (``AuthenticationError`` for 401, ``NotFoundError`` for 404, ``BadRequestError`` for 400, ...).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class APIError(Exception):
    """A request the service refuses: ``status`` is the HTTP status, the rest fills the error body."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """The OpenAI error shape."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def not_found(kind: str, ident: str, param: str | None = None) -> APIError:
    """404 for an id that does not exist (``kind``: "file", "fine-tuning job", "model")."""
    code = {"model": "model_not_found"}.get(kind, f"{kind.replace(' ', '_').replace('-', '_')}_not_found")
    return APIError(404, f"No {kind} with id {ident!r} exists on this service. List what exists with GET "
                    f"/v1/{'files' if kind == 'file' else 'models' if kind == 'model' else 'fine_tuning/jobs'}.",
                    param=param, code=code)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def json_error(status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type, param, code), status_code=status)


def install_handlers(app: FastAPI) -> None:
    """Every error leaves in the API's shape: ours, FastAPI's request validation (400, naming the field), unknown
    paths and methods (404/405) and anything unexpected (500, with the exception's text)."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, err: APIError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = err.errors()
        first = problems[0] if problems else {}
        where = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        param = ".".join(where) or None
        text = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
                         for e in problems)
        return json_error(400, f"Invalid request: {text}", param=param, code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        return json_error(err.status_code, str(err.detail), code=code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        return json_error(500, f"{type(err).__name__}: {err}", type="server_error", code="internal_error")
