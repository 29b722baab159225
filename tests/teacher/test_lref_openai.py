"""The openai rationale generator against a local server that speaks /v1/chat/completions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shoprel.data.schema import SCALES
from shoprel.teacher.config import OpenAIConfig
from shoprel.teacher.lref.openai_generator import EndpointError, OpenAIGenerator
from shoprel.teacher.lref.rationales import RationaleRequest
from shoprel.teacher.lref.rules import RelevanceRules

ITEM = {"title": "DEWALT 20V Cordless Drill", "brand": "DEWALT", "category": "Tools > Drills"}


class ChatServer:
    """Answers chat completions after ``delay`` seconds; the first requests get ``failures``."""

    def __init__(self, failures: list[int] | None = None, delay: float = 0.0) -> None:
        self.failures, self.delay = list(failures or []), delay
        self.requests: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep the test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(
                        {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                    )
                    status = server.failures.pop(0) if server.failures else 200
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(server.delay)
                with server.lock:
                    server.in_flight -= 1
                grade = "partial" if "rules" in body["messages"][1]["content"] else "exact"
                answer = {
                    "choices": [
                        {
                            "message": {
                                "role": "assistant",
                                "content": f"The brand and type match.\nLabel: {grade}",
                            }
                        }
                    ]
                }
                data = json.dumps(answer if status == 200 else {"error": "busy"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def make_generator(tmp_path: Path) -> Iterator[Any]:
    def make(url: str, **options: Any) -> OpenAIGenerator:
        cfg = OpenAIConfig(url=url, model="judge-7b", backoff_s=0.01, **options)
        return OpenAIGenerator(cfg, RelevanceRules.load(), SCALES["homedepot"], tmp_path / "cache")

    yield make


def requests(n: int) -> list[RationaleRequest]:
    kinds = ["ee", "ra", "dr"]
    return [
        RationaleRequest(
            kinds[i % 3], f"cordless drill {i}", ITEM, "exact", "partial" if i % 3 == 2 else ""
        )
        for i in range(n)
    ]


def test_request_shape_and_retries_after_500_and_429(
    make_generator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", "s3cret")
    with ChatServer(failures=[500, 429]) as server:
        gen = make_generator(server.url, max_concurrency=1, api_key_env="JUDGE_KEY")
        (rationale,) = gen.generate(requests(1))
    assert len(server.requests) == 3 and gen.requests_sent == 3
    sent = server.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer s3cret"
    body = sent["body"]
    assert body["model"] == "judge-7b" and body["temperature"] == 0.0 and body["max_tokens"] > 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "Query: cordless drill 0" in body["messages"][1]["content"]
    assert "Product: DEWALT 20V Cordless Drill" in body["messages"][1]["content"]
    assert rationale is not None and rationale.text == "The brand and type match.\nLabel: exact"


def test_ra_takes_the_endpoints_grade_and_dr_names_the_wrong_one(make_generator: Any) -> None:
    with ChatServer() as server:
        ee, ra, dr = make_generator(server.url).generate(requests(3))
    assert ra is not None and ra.grade == "partial"
    # requests run concurrently, so their order at the server varies: match them by content
    assert sum("rules" in r["body"]["messages"][1]["content"] for r in server.requests) == 1
    contents = {r["body"]["messages"][1]["content"] for r in server.requests}
    assert any("graded this pair 'partial'" in c for c in contents)
    assert ee is not None and dr is not None and dr.text.endswith("Label: exact")


def test_concurrency_limit_is_respected(make_generator: Any) -> None:
    with ChatServer(delay=0.15) as server:
        make_generator(server.url, max_concurrency=2).generate(requests(8))
    assert len(server.requests) == 8
    assert server.max_in_flight == 2


def test_cache_makes_a_rerun_send_nothing(make_generator: Any) -> None:
    with ChatServer() as server:
        first = make_generator(server.url).generate(requests(5))
        again = make_generator(server.url)
        second = again.generate(requests(5))
        sent = len(server.requests)
        more = again.generate(requests(6))
    assert sent == 5 and again.requests_sent == 1 and len(server.requests) == 6
    assert [r.text for r in first if r] == [r.text for r in second if r] and more[5] is not None


def test_hopeless_requests_fail_with_the_reason(make_generator: Any) -> None:
    with ChatServer(failures=[400]) as server, pytest.raises(EndpointError, match="HTTP 400"):
        make_generator(server.url).generate(requests(1))
    assert len(server.requests) == 1
    gave_up = "gave up after 3 attempts; last: HTTP 503"
    with ChatServer(failures=[503] * 3) as server, pytest.raises(EndpointError, match=gave_up):
        make_generator(server.url, max_retries=2).generate(requests(1))
    assert len(server.requests) == 3
