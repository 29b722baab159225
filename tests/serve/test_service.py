"""The HTTP service on the tiny export: answers, limits, API key, readiness, metrics, fuzzing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from shoprel.serve import app as app_module
from shoprel.serve.app import ServeSettings, create_app
from shoprel.serve.batcher import MicroBatcher, QueueFull
from shoprel.serve.onnx_scorer import FP32_FILE
from shoprel.serve.reranker import Reranker

QUERY = "cordless drill"


@pytest.fixture(scope="module")
def reranker(onnx_export: Path) -> Reranker:
    return Reranker.load(onnx_export, threads=1)


@contextmanager
def serving(model: Path, reranker: Reranker | None = None, **settings: Any) -> Iterator[TestClient]:
    app = create_app(ServeSettings(model=model, threads=1, **settings), reranker=reranker)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["status"] == status
    return body["message"]


def test_rerank_and_score(onnx_export: Path, reranker: Reranker, items: list[dict]) -> None:
    with serving(onnx_export, reranker) as client:
        done = client.post("/v1/rerank", json={"query": QUERY, "items": items, "top_k": 3})
        assert done.status_code == 200, done.text
        expected = reranker.rerank(QUERY, items, top_k=3)
        results = done.json()["results"]
        assert [r["id"] for r in results] == [e.id for e in expected]
        assert [r["index"] for r in results] == [e.index for e in expected]
        np.testing.assert_allclose([r["score"] for r in results], [e.score for e in expected])
        assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
        assert done.json()["model"] == onnx_export.name

        queries = ["drill", "paint", "hose", "elbow", "bits", "driver"]
        pairs = [{"query": q, "item": item} for q, item in zip(queries, items, strict=True)]
        done = client.post("/v1/score", json={"pairs": pairs})
        assert done.status_code == 200, done.text
        np.testing.assert_allclose(done.json()["scores"], reranker.score_pairs(queries, items))


def test_limits(onnx_export: Path, reranker: Reranker) -> None:
    limits = {"max_items": 5, "max_field_chars": 100, "max_body_bytes": 2048}
    with serving(onnx_export, reranker, **limits) as client:
        big = {"query": QUERY, "items": [{"title": "x" * 90}] * 30}
        message = error_of(client.post("/v1/rerank", json=big), 413)
        assert "over 2048 bytes" in message

        def chunks() -> Iterator[bytes]:  # no Content-Length: the size is counted as it streams
            yield b'{"query": "drill", "items": ['
            yield b'{"title": "drill"},' * 200
            yield b'{"title": "drill"}]}'

        error_of(client.post("/v1/rerank", content=chunks()), 413)

        six = {"query": QUERY, "items": [{"title": "drill"}] * 6}
        assert "items: List should have at most 5 items" in error_of(
            client.post("/v1/rerank", json=six), 422
        )
        long_title = {"query": QUERY, "items": [{"title": "y" * 101}]}
        assert "at most 100 characters" in error_of(client.post("/v1/rerank", json=long_title), 422)
        many_tokens = {"query": QUERY, "items": [{"title": "drill " * 16}]}  # over 32 tokens
        assert client.post("/v1/rerank", json=many_tokens).status_code == 200


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"query": "drill", "items": [{"title": "x"}', "json_invalid"),
        (b'{"query": "drill", "items": [{"id": "1"}]}', "items.0.title"),
        (b'{"items": [{"title": "x"}]}', "body.query"),
        (b'{"query": "drill", "items": []}', "body.items"),
        (b'{"query": "drill", "items": [{"title": "x"}], "top_k": 0}', "body.top_k"),
        (b'{"query": "drill", "items": [{"title": "x"}], "top_k": "ten"}', "body.top_k"),
        (b'["drill", "x"]', "body"),
        (b"\xff\xfe not utf-8", "json_invalid"),
        (b'{"query": "\xe9"}', "not UTF-8 JSON"),
    ],
)
def test_malformed_requests_are_422(
    onnx_export: Path, reranker: Reranker, body: bytes, where: str
) -> None:
    with serving(onnx_export, reranker) as client:
        headers = {"content-type": "application/json"}
        done = client.post("/v1/rerank", content=body, headers=headers)
        error_of(done, 422)
        assert where in json.dumps(done.json()["error"])


def test_unknown_routes_and_methods(onnx_export: Path, reranker: Reranker) -> None:
    with serving(onnx_export, reranker) as client:
        error_of(client.get("/v1/rerank"), 405)
        error_of(client.get("/v2/nothing"), 404)


def test_api_key(onnx_export: Path, reranker: Reranker) -> None:
    body = {"query": QUERY, "items": [{"title": "drill"}]}
    with serving(onnx_export, reranker, api_key="s3cret") as client:
        missing = client.post("/v1/rerank", json=body)
        assert "missing or wrong API key" in error_of(missing, 401)
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer guess"}
        error_of(client.post("/v1/rerank", json=body, headers=wrong), 401)
        error_of(client.post("/v1/score", content=b"{", headers=wrong), 401)  # before parsing
        right = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/rerank", json=body, headers=right).status_code == 200
        assert client.get("/healthz").status_code == 200
        schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
        assert schemes["HTTPBearer"]["scheme"] == "bearer"


def test_reload_beyond_loopback_needs_an_api_key(onnx_export: Path, reranker: Reranker) -> None:
    with serving(onnx_export, reranker, host="0.0.0.0") as client:
        refused = client.post("/v1/admin/reload", json={"model": "/etc"})
        assert "needs an API key" in error_of(refused, 403)
        assert client.get("/readyz").json()["model"] == reranker.name
    with serving(onnx_export, reranker, host="::1") as client:  # loopback: allowed as before
        assert client.post("/v1/admin/reload", json={}).status_code == 200


def test_a_path_that_is_not_utf8_is_echoed_in_the_error_as_an_escape_not_a_500(
    onnx_export: Path, reranker: Reranker
) -> None:
    body = b'{"model": "\\ud800/x"}'  # a lone surrogate: legal in JSON, not in UTF-8
    with serving(onnx_export, reranker) as client:
        missing = client.post(
            "/v1/admin/reload", content=body, headers={"content-type": "application/json"}
        )
        assert "\\ud800/x" in error_of(missing, 422)
        assert client.get("/readyz").json()["model"] == reranker.name


def test_a_reload_starts_from_the_model_in_service(
    onnx_export: Path, serve_cross_encoder: Path
) -> None:
    with serving(onnx_export, onnx_file=FP32_FILE) as client:
        wait_ready(client)
        swapped = client.post("/v1/admin/reload", json={"model": str(serve_cross_encoder)})
        assert swapped.status_code == 200, swapped.text  # a torch dir: no --onnx-file carried
        again = client.post("/v1/admin/reload", json={})
        assert again.json()["model"] == serve_cross_encoder.name  # the one in service, reread
        back = client.post("/v1/admin/reload", json={"model": str(onnx_export)})
        assert back.json()["model"] == onnx_export.name
        int8 = client.post("/v1/admin/reload", json={"onnx_file": None})
        assert int8.status_code == 200, int8.text  # null clears a setting
        assert client.get("/readyz").json()["model"] == onnx_export.name


def test_overload_is_429(
    onnx_export: Path, reranker: Reranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def full(*_: Any) -> None:
        raise QueueFull("40000 pairs are waiting to be scored; retry later")

    with serving(onnx_export, reranker) as client:
        monkeypatch.setattr(MicroBatcher, "submit", full)
        done = client.post("/v1/rerank", json={"query": QUERY, "items": [{"title": "drill"}]})
        assert error_of(done, 429).startswith("overloaded: 40000 pairs are waiting")
        assert done.headers["retry-after"] == "1"


def test_readyz_waits_for_the_model(
    onnx_export: Path, reranker: Reranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def slow_load(_: ServeSettings) -> Reranker:
        assert release.wait(30)
        return reranker

    monkeypatch.setattr(app_module, "load_reranker", slow_load)
    body = {"query": QUERY, "items": [{"title": "drill"}]}
    with serving(onnx_export) as client:
        assert client.get("/healthz").status_code == 200
        assert error_of(client.get("/readyz"), 503) == "model loading"
        early = client.post("/v1/rerank", json=body)
        error_of(early, 503)
        assert early.headers["retry-after"] == "1"
        release.set()
        assert wait_ready(client).json() == {"status": "ready", "model": reranker.name}
        assert client.post("/v1/rerank", json=body).status_code == 200


def test_readyz_reports_a_failed_load(onnx_export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_: ServeSettings) -> Reranker:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app_module, "load_reranker", broken)
    with serving(onnx_export) as client:
        deadline = time.monotonic() + 10
        while "failed" not in (message := error_of(client.get("/readyz"), 503)):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert message == "model failed to load: RuntimeError: disk on fire"


def wait_ready(client: TestClient | httpx.Client, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while (response := client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.02)
    return response


def test_metrics(onnx_export: Path, reranker: Reranker, items: list[dict]) -> None:
    with serving(onnx_export, reranker) as client:
        for _ in range(2):
            client.post("/v1/rerank", json={"query": QUERY, "items": items})
        client.post("/v1/rerank", json={"query": QUERY})
        client.get("/nowhere")
        text = client.get("/metrics").text
    lines = set(text.splitlines())
    assert 'shoprel_requests_total{route="/v1/rerank",status="200"} 2' in lines
    assert 'shoprel_requests_total{route="/v1/rerank",status="422"} 1' in lines
    assert 'shoprel_requests_total{route="other",status="404"} 1' in lines
    assert 'shoprel_request_duration_seconds_bucket{route="/v1/rerank",le="+Inf"} 3' in lines
    assert "shoprel_batch_pairs_count 2" in lines
    assert f"shoprel_batch_pairs_sum {2 * len(items)}" in lines
    assert "shoprel_model_ready 1" in lines


def test_openapi_states_the_limits(onnx_export: Path, reranker: Reranker) -> None:
    with serving(onnx_export, reranker, max_items=7, max_field_chars=50) as client:
        schema = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    request = schema["components"]["schemas"]["RerankRequest"]["properties"]
    assert request["items"]["maxItems"] == 7
    assert request["query"]["maxLength"] == 50


@pytest.fixture(scope="module")
def live_server(onnx_export: Path, live_service: Callable) -> Iterator[str]:
    """The app on uvicorn, on a free loopback port, in a thread."""
    settings = ServeSettings(  # fp32: its scores do not depend on the batch
        model=onnx_export,
        onnx_file=FP32_FILE,
        port=0,
        threads=1,
        max_items=20,
        max_field_chars=1000,
        max_wait_ms=5,
    )
    with live_service(settings) as url:
        yield url


def test_concurrent_http_requests_get_their_own_answers(
    live_server: str, onnx_export: Path, items: list[dict]
) -> None:
    reranker = Reranker.load(onnx_export, onnx_file=FP32_FILE, threads=1)
    queries = [f"{word} {i}" for i, word in enumerate(["drill", "paint", "hose", "elbow"] * 4)]

    def ask(query: str) -> list[dict]:
        with httpx.Client(base_url=live_server, timeout=30) as client:
            done = client.post("/v1/rerank", json={"query": query, "items": items})
            assert done.status_code == 200, done.text
            return done.json()["results"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, queries))
    for query, results in zip(queries, answers, strict=True):
        expected = reranker.rerank(query, items)
        assert [r["id"] for r in results] == [e.id for e in expected]
        np.testing.assert_allclose(
            [r["score"] for r in results], [e.score for e in expected], atol=1e-5
        )


def test_fuzzing_the_schema_finds_no_server_error(live_server: str) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    cases = st.one_of(*(schema.as_strategy(generation_mode=mode) for mode in modes))
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    statuses: set[int] = set()

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def call(case: Any) -> None:
        response = case.call(base_url=live_server, timeout=30)
        statuses.add(response.status_code)
        case.validate_response(response, checks=checks)

    call()
    assert 500 not in statuses and {200, 422} <= statuses


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


NESTED = b'{"query": "drill", "items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
HOSTILE = [  # valid JSON (or nearly), at the service's default limits
    ("10,000 items", {"query": QUERY, "items": [{"title": "d"}] * 10_000}, 422, "items"),
    ("a 1 MB title", {"query": QUERY, "items": [{"title": "x" * (1 << 20)}]}, 413, "bytes"),
    ("a 100 kB title", {"query": QUERY, "items": [{"title": "x" * 100_000}]}, 422, "title"),
    ("deep nesting", NESTED, 422, "nested too deep"),
    (
        "nesting under the recursion limit",
        NESTED[:28] + b"[" * 500 + b"]" * 500 + b"}",
        422,
        "items",
    ),
    ("NaN query", b'{"query": NaN, "items": [{"title": "x"}]}', 422, "query"),
    (
        "infinite top_k",
        b'{"query": "x", "items": [{"title": "x"}], "top_k": Infinity}',
        422,
        "top_k",
    ),
    ("NaN title", b'{"query": "x", "items": [{"title": NaN}]}', 422, "title"),
    ("empty query", {"query": "", "items": [{"title": "x"}]}, 422, "query"),
    ("blank query", {"query": "   ", "items": [{"title": "x"}]}, 422, "query"),
    (
        "invalid UTF-8 in a string",
        b'{"query": "dr\xffill", "items": [{"title": "x"}]}',
        422,
        "UTF-8",
    ),
]


@pytest.mark.parametrize(("body", "status", "field"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])  # fmt: skip
def test_hostile_but_parseable_requests_get_4xx_naming_the_field(
    onnx_export: Path, reranker: Reranker, body: Any, status: int, field: str
) -> None:
    with serving(onnx_export, reranker) as client:
        before = _rss_bytes()
        for _ in range(3):
            if isinstance(body, bytes):
                headers = {"content-type": "application/json"}
                done = client.post("/v1/rerank", content=body, headers=headers)
            else:
                done = client.post("/v1/rerank", json=body)
            error_of(done, status)
            assert field in json.dumps(done.json()["error"])
        # the rejected bodies are not kept: three of them leave memory where it was
        assert _rss_bytes() - before < 64 << 20


def test_duplicate_item_ids_are_kept_apart_by_position(
    onnx_export: Path, reranker: Reranker
) -> None:
    """Ids are the client's: two items with one id are both scored, told apart by ``index``."""
    items = [{"id": "7", "title": "cordless drill"}, {"id": "7", "title": "garden hose"}]
    with serving(onnx_export, reranker) as client:
        done = client.post("/v1/rerank", json={"query": QUERY, "items": items})
    assert done.status_code == 200
    results = done.json()["results"]
    assert sorted(r["index"] for r in results) == [0, 1] and {r["id"] for r in results} == {"7"}


class CountingSession:
    """An onnxruntime session that counts its runs."""

    def __init__(self, session: Any) -> None:
        self.session, self.runs = session, 0

    def run(self, *args: Any) -> Any:
        self.runs += 1
        return self.session.run(*args)


def test_cli_serve_batch_size_sets_the_runs_per_call(
    onnx_export: Path, items: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from shoprel.cli import app as cli

    loaded: list[Reranker] = []
    monkeypatch.setattr(app_module, "serve", lambda s: loaded.append(app_module.load_reranker(s)))
    args = ["serve", "--model", str(onnx_export), "--onnx-file", FP32_FILE, "--batch-size", "2"]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    (reranker,) = loaded
    counting = reranker.scorer.session = CountingSession(reranker.scorer.session)
    scores = reranker.score("cordless drill", items)
    assert counting.runs == 3  # six items, two a run
    reference = Reranker.load(onnx_export, onnx_file=FP32_FILE).score("cordless drill", items)
    np.testing.assert_allclose(scores, reference, atol=1e-5)  # fp32: batches change nothing
    refused = CliRunner().invoke(cli, ["serve", "--model", str(onnx_export), "--batch-size", "0"])
    assert refused.exit_code == 2 and "--batch-size" in refused.output
