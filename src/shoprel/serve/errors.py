"""One error body for every failure: ``{"error": {"status", "message", "details"?}}``.

Bad input never reaches the model: validation errors are 422, an unknown route 404, a wrong method
405, a missing or wrong API key 401, a body over the limit 413, a model still loading 503. Only a
fault of the service itself is a 500, logged with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def printable(text: str) -> str:
    """``text`` as valid UTF-8, lone surrogates (legal in JSON) as backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(
    status: int,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "message": printable(message)}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def validation_details(error: RequestValidationError) -> list[dict[str, Any]]:
    """Where and what, without echoing the input back (it may be large)."""
    return [
        {
            "loc": [printable(str(part)) for part in e.get("loc", ())],
            "msg": printable(str(e.get("msg"))),
            "type": e.get("type"),
        }
        for e in error.errors()
    ]


Respond = Callable[[Request, int, str, dict[str, str] | None], Response]


def json_error(_: Request, status: int, message: str, headers: dict[str, str] | None) -> Response:
    return error_response(status, message, headers=headers)


def install_error_handlers(app: FastAPI, respond: Respond = json_error) -> None:
    """Every error answered by ``respond`` (the JSON error body by default; an app with pages can
    answer those with a page), validation errors always as JSON with their details."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        return respond(request, error.status, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        details = validation_details(error)
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"]) or "body"
        message = f"invalid request: {where}: {first['msg']}"
        if len(details) > 1:
            message += f" (and {len(details) - 1} more)"
        return error_response(422, message, details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 400 and request.method == "POST":
            # FastAPI's answer to a body it cannot parse (not UTF-8, or nested past the parser's
            # recursion limit): malformed JSON, like the rest
            message = "invalid request: the body is not UTF-8 JSON, or is nested too deep to parse"
            return respond(request, 422, message, None)
        return respond(request, error.status_code, str(error.detail), error.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> Response:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return respond(request, 500, "internal error", None)
