"""Plain ASGI middleware: request timing; the API key and body size checks before any parsing."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from shoprel.serve.errors import error_response
from shoprel.serve.telemetry import Telemetry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
PROTECTED_PREFIX = "/v1/"


CLIENT_CLOSED = 499  # the client went away before an answer (nginx's code), not a fault here


class Timing:
    """Counts every HTTP response by route and status, with its latency (a crash counts as 500, a
    client that left before the answer as 499)."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry, routes: frozenset[str]) -> None:
        self.app, self.telemetry, self.routes = app, telemetry, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), None

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        route = scope["path"] if scope["path"] in self.routes else "other"
        try:
            await self.app(scope, receive, send_status)
            status = status or CLIENT_CLOSED  # returned without an answer: the client left
        finally:
            self.telemetry.request(route, status or 500, time.perf_counter() - started)


class Guard:
    """401 for paths under ``protected`` without the API key (``Authorization: Bearer KEY``), 413
    for a body over ``max_body_bytes``; both before the body is parsed. The body is read here and
    replayed."""

    def __init__(
        self,
        app: ASGIApp,
        api_key: str | None,
        max_body_bytes: int,
        protected: str | tuple[str, ...] = PROTECTED_PREFIX,
    ) -> None:
        self.app, self.max_body_bytes, self.protected = app, max_body_bytes, protected
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            message = "missing or wrong API key; send the header 'Authorization: Bearer KEY'"
            headers = {"WWW-Authenticate": "Bearer"}
            await error_response(401, message, headers=headers)(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        body = await self._read_body(scope, receive, send)
        if body is not None:
            await self.app(scope, _replay(body, receive), send)

    def _authorized(self, scope: Scope) -> bool:
        if self.expected is None or not scope["path"].startswith(self.protected):
            return True
        return hmac.compare_digest(_header(scope, b"authorization"), self.expected)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None after answering 413 (or if the client went away)."""
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body over {self.max_body_bytes} bytes; send fewer items per request"
        await error_response(413, message)(scope, receive, send)


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return b""


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
