"""The ASGI middleware alone: what ``Timing`` counts when a client leaves before its answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoprel.serve.middleware import Guard, Timing


class Counted:
    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests.append((route, status))


async def answer_200(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def crash(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("a fault of the service")


def call(app: Any, messages: list[dict]) -> list[dict]:
    scope = {"type": "http", "method": "POST", "path": "/v1/rerank", "headers": []}
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_a_client_that_leaves_mid_body_counts_as_499_not_500() -> None:
    counted = Counted()
    app = Timing(Guard(answer_200, None, 1000), counted, frozenset({"/v1/rerank"}))
    left = [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}]
    assert call(app, left) == []
    whole = [{"type": "http.request", "body": b"{}", "more_body": False}]
    assert call(app, whole)[0]["status"] == 200
    assert counted.requests == [("/v1/rerank", 499), ("/v1/rerank", 200)]


def test_a_crash_still_counts_as_500() -> None:
    counted = Counted()
    app = Timing(crash, counted, frozenset())
    with pytest.raises(RuntimeError):
        call(app, [])
    assert counted.requests == [("other", 500)]
