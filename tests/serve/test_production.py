"""The service in production conditions: SIGTERM drains, a model swaps in under load."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from shoprel.serve.app import ServeSettings
from shoprel.serve.onnx_scorer import FP32_FILE
from shoprel.serve.reranker import Reranker

QUERIES = [f"{word} {i}" for i, word in enumerate(["drill", "paint", "hose", "elbow"] * 3)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen | None = None, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert process is None or process.poll() is None, "the server exited"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not get ready")


def test_sigterm_lets_requests_in_flight_finish_refuses_new_ones_and_exits_0(
    onnx_export: Path, items: list[dict]
) -> None:
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("shoprel")), "serve", "--model", str(onnx_export),
        "--port", str(port), "--threads", "1", "--max-wait-ms", "2000", "--drain-s", "20",
    ]  # fmt: skip  # a request waits 2 s in the batcher: it is in flight when SIGTERM comes
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        body = {"query": "cordless drill", "items": items}
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(httpx.post, f"{url}/v1/rerank", json=body, timeout=30)
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            refused = httpx.post(f"{url}/v1/rerank", json=body, timeout=10)
            not_ready = httpx.get(f"{url}/readyz", timeout=10)
            answered = slow.result()
        assert refused.status_code == 503 and "shutting down" in refused.text
        assert refused.headers["retry-after"] == "1" and not_ready.status_code == 503
        assert answered.status_code == 200, answered.text
        assert len(answered.json()["results"]) == len(items)
        assert process.wait(timeout=30) == 0, process.stdout.read().decode()
    finally:
        if process.poll() is None:
            process.kill()


def test_sigterm_exits_within_the_drain_time_though_a_client_never_finishes_its_body(
    onnx_export: Path,
) -> None:
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("shoprel")), "serve", "--model", str(onnx_export),
        "--port", str(port), "--threads", "1", "--drain-s", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        with socket.create_connection(("127.0.0.1", port)) as trickle:
            head = "POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            trickle.sendall(f'{head}Content-Length: 900000\r\n\r\n{{"query": '.encode())
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert process.wait(timeout=30) == 0, process.stdout.read().decode()
            assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()


def flipped_export(cross_encoder: Path, out: Path) -> Path:
    """The cross-encoder with its classifier negated (every ranking reversed), exported fp32."""
    from transformers import AutoModelForSequenceClassification

    from shoprel.serve.export import ExportConfig, export_onnx

    model_dir = out / "flipped-ce"
    shutil.copytree(cross_encoder, model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(cross_encoder)
    for parameter in model.classifier.parameters():
        parameter.data.neg_()
    model.save_pretrained(model_dir)
    export = out / "flipped"
    export_onnx(model_dir, export, ExportConfig(int8=False))
    return export


def test_a_model_swapped_in_under_load_fails_no_request_and_mixes_no_answer(
    onnx_export: Path,
    serve_cross_encoder: Path,
    items: list[dict],
    tmp_path: Path,
    live_service: Callable,
) -> None:
    flipped = flipped_export(serve_cross_encoder, tmp_path)
    expected = {}  # by model name, each query's (ids, scores) from that model alone
    for directory in (onnx_export, flipped):
        model = Reranker.load(directory, onnx_file=FP32_FILE, threads=1)
        answers = {q: model.rerank(q, items) for q in QUERIES}
        expected[directory.name] = {
            q: ([r.id for r in ranked], [r.score for r in ranked]) for q, ranked in answers.items()
        }
    assert expected[onnx_export.name][QUERIES[0]][0] != expected[flipped.name][QUERIES[0]][0]
    settings = ServeSettings(
        model=onnx_export, onnx_file=FP32_FILE, port=0, threads=1, max_wait_ms=50
    )
    with live_service(settings) as url:
        answered: list[tuple[str, str, list[str], list[float]]] = []

        def ask(query: str) -> None:
            done = httpx.post(f"{url}/v1/rerank", json={"query": query, "items": items}, timeout=30)
            assert done.status_code == 200, done.text
            results = done.json()["results"]
            ids, scores = [r["id"] for r in results], [r["score"] for r in results]
            answered.append((done.json()["model"], query, ids, scores))

        with ThreadPoolExecutor(max_workers=6) as pool:
            before = list(pool.map(ask, QUERIES * 3))
            load = [pool.submit(ask, q) for q in QUERIES * 6]
            swap = httpx.post(
                f"{url}/v1/admin/reload",
                json={"model": str(flipped), "onnx_file": FP32_FILE},
                timeout=60,
            )
            for request in load:
                request.result()
        assert len(before) == 36 and swap.status_code == 200, swap.text
        assert swap.json() == {"status": "swapped", "model": flipped.name}
        ask(QUERIES[0])  # after the swap returned: the new model answers
        assert answered[-1][0] == flipped.name
        assert {name for name, *_ in answered} == {onnx_export.name, flipped.name}
        for name, query, ids, scores in answered:
            want_ids, want_scores = expected[name][query]
            assert ids == want_ids
            np.testing.assert_allclose(scores, want_scores, atol=1e-5)
        bad = httpx.post(f"{url}/v1/admin/reload", json={"model": str(tmp_path / "none")})
        assert bad.status_code == 422 and "not a model to serve" in bad.text
        corrupt = tmp_path / "corrupt"
        shutil.copytree(flipped, corrupt)
        (corrupt / FP32_FILE).write_bytes(b"not an onnx graph")
        bad = httpx.post(
            f"{url}/v1/admin/reload", json={"model": str(corrupt), "onnx_file": FP32_FILE}
        )
        assert bad.status_code == 422 and f"cannot serve {corrupt}" in bad.text, bad.text
        assert httpx.get(f"{url}/readyz").json()["model"] == flipped.name  # still serving


def test_sighup_reloads_the_export_from_disk(
    onnx_export: Path, serve_cross_encoder: Path, tmp_path: Path
) -> None:
    flipped = flipped_export(serve_cross_encoder, tmp_path)
    served = tmp_path / "served"
    shutil.copytree(onnx_export, served)
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("shoprel")), "serve", "--model", str(served),
        "--port", str(port), "--threads", "1", "--onnx-file", FP32_FILE,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    pair = {"pairs": [{"query": "drill", "item": {"title": "cordless drill 18V"}}]}

    def score() -> float:
        return httpx.post(f"{url}/v1/score", json=pair, timeout=10).json()["scores"][0]

    try:
        wait_ready(url, process)
        first = score()
        (served / FP32_FILE).unlink()  # a broken export in place: the reload fails, service stays
        process.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert score() == first
        shutil.copy2(flipped / FP32_FILE, served / FP32_FILE)  # the new export in place
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while score() == first and time.monotonic() < deadline:
            time.sleep(0.1)
        want = Reranker.load(flipped, onnx_file=FP32_FILE, threads=1).score_pairs(
            ["drill"], [{"title": "cordless drill 18V"}]
        )
        assert score() == pytest.approx(float(want[0]), abs=1e-5) and score() != first
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.stdout.read().decode() if process.wait(timeout=30) else ""
        assert process.returncode == 0, output
