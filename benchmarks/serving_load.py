"""The HTTP service under load on loopback: requests/s, p50 and p99 at concurrency 1, 8 and 32.

    python benchmarks/serving_load.py                          # 20 s per concurrency, 50 items
    python benchmarks/serving_load.py --quick                  # 3 s per concurrency
    python benchmarks/serving_load.py --export runs/hd/onnx --items 100 --onnx-file model.onnx

(with ``HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python`` from the repository root). Prepares the
data and exports ``--cross-encoder`` (int8, gated on dev) where they are missing. Starts
``shoprel serve`` on a free loopback port in a subprocess, waits for ``/readyz``, then sends
``POST /v1/rerank`` with one fixed body (a Home Depot dev query and ``--items`` dev products) at
each concurrency for ``--duration`` seconds. The load generator is ``wrk`` (``apt-get install
wrk``); without it, an asyncio ``httpx`` client in this process, which costs far more CPU per
request (the summary names the generator). Either shares the cores with the service. ``non_200``
counts non-2xx answers plus requests that failed (timeouts, resets). From the service's
``/metrics`` it also reports how many requests and pairs each model call merged. Prints a table,
then one JSON object (the last line) with, per concurrency (``c1``, ``c8``, ``c32``): ``rps``,
``p50_ms``, ``p99_ms``, ``non_200``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from home_depot import add_path_arguments, ensure_data, ensure_export, resolve_paths
from rich.console import Console
from rich.table import Table

from shoprel.data.splits import read_split

CONCURRENCY = (1, 8, 32)
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per concurrency")
    add_path_arguments(parser)
    parser.add_argument("--onnx-file", help="model.onnx or model_int8.onnx (default: export's)")
    parser.add_argument("--items", type=int, default=50, help="items per rerank request")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--max-batch-items", type=int, default=256)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=0, help="service's onnxruntime threads")
    parser.add_argument("--python-client", action="store_true", help="skip wrk even if present")
    args = parser.parse_args()
    resolve_paths(args)
    if args.quick:
        args.duration = min(args.duration, 3.0)
    return args


def request_body(data: Path, n_items: int) -> bytes:
    """The first dev query with ``n_items`` dev products (its own first, then others)."""
    dev, _ = read_split(data, "dev")
    query = str(dev["query"].iat[0])
    ranked = dev.assign(own=dev["query"] == query).sort_values("own", ascending=False)
    products = ranked.drop_duplicates("product_id").head(n_items)
    items = [
        {
            "id": str(row.product_id),
            "title": row.title,
            "brand": row.brand,
            "category": row.category,
        }
        for row in products.itertuples()
    ]
    return json.dumps({"query": query, "items": items}).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_service(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "shoprel.cli", "serve", "--model", str(args.export)]
    command += ["--port", str(port), "--threads", str(args.threads)]
    command += ["--max-batch-items", str(args.max_batch_items)]
    command += ["--max-wait-ms", str(args.max_wait_ms), "--max-items", str(max(args.items, 1))]
    if args.onnx_file:
        command += ["--onnx-file", args.onnx_file]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, service: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise SystemExit(f"the service exited ({service.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the service was not ready after {seconds:.0f} s:\n{log.read_text()}")


def run_wrk(url: str, body: Path, concurrency: int, args: argparse.Namespace) -> dict[str, float]:
    script = body.with_suffix(".lua")
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
    )
    command = ["wrk", "-t", str(min(concurrency, 2)), "-c", str(concurrency)]
    command += ["-d", f"{args.duration:.0f}s", "--timeout", f"{args.timeout:.0f}s", "--latency"]
    command += ["-s", str(script), f"{url}/v1/rerank"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


def parse_wrk(text: str) -> dict[str, float]:
    def duration(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
        return float(match.group(1)) * UNITS[match.group(2)] if match else float("nan")

    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    total = re.search(r"(\d+) requests in", text)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": duration("50%"),
        "p99_ms": duration("99%"),
        "non_200": (int(non_2xx.group(1)) if non_2xx else 0)
        + (sum(int(n) for n in errors.groups()) if errors else 0),
        "requests": int(total.group(1)) if total else 0,
    }


async def python_load(
    url: str, body: bytes, concurrency: int, seconds: float, timeout: float
) -> dict[str, float]:
    """``concurrency`` clients posting ``body`` back to back for ``seconds``."""
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/rerank", content=body, headers=headers)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                failures += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "non_200": failures,
        "requests": len(latencies),
    }


def batch_stats(url: str) -> dict[str, float]:
    """Running sums and counts of the service's batch histograms."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    stats = {}
    for name in ("batch_pairs", "batch_requests"):
        for part in ("sum", "count"):
            match = re.search(rf"^shoprel_{name}_{part} ([\d.e+]+)$", text, re.MULTILINE)
            stats[f"{name}_{part}"] = float(match.group(1)) if match else 0.0
    return stats


def merged(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    calls = after["batch_pairs_count"] - before["batch_pairs_count"]
    if not calls:
        return {"model_calls": 0, "requests_per_call": float("nan"), "pairs_per_call": float("nan")}
    return {
        "model_calls": int(calls),
        "requests_per_call": (after["batch_requests_sum"] - before["batch_requests_sum"]) / calls,
        "pairs_per_call": (after["batch_pairs_sum"] - before["batch_pairs_sum"]) / calls,
    }


def table(results: dict[str, dict[str, Any]], title: str) -> Table:
    out = Table(title=title)
    columns = ("concurrency", "requests", "req/s", "p50 ms", "p99 ms", "non-200", "req/call")
    for column in columns:
        out.add_column(column, justify="right")
    for key, row in results.items():
        out.add_row(
            key[1:],
            str(row["requests"]),
            f"{row['rps']:.2f}",
            f"{row['p50_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
            str(row["non_200"]),
            f"{row['requests_per_call']:.2f}",
        )
    return out


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    generator = "wrk" if shutil.which("wrk") and not args.python_client else "python-httpx"
    workdir = Path(tempfile.mkdtemp(prefix="shoprel-load-"))
    body = workdir / "body.json"
    data = ensure_data(args.data)
    ensure_export(args.export, args.cross_encoder, data, force=args.quick)
    body.write_bytes(request_body(data, args.items))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "service.log"
    service = start_service(args, port, log)
    results: dict[str, dict[str, Any]] = {}
    try:
        wait_ready(url, service, log, seconds=300)
        httpx.post(f"{url}/v1/rerank", content=body.read_bytes(), timeout=args.timeout)  # warm-up
        load_at_start = os.getloadavg()[0]
        for concurrency in args.concurrency:
            before = batch_stats(url)
            if generator == "wrk":
                row = run_wrk(url, body, concurrency, args)
            else:
                load = python_load(url, body.read_bytes(), concurrency, args.duration, args.timeout)
                row = asyncio.run(load)
            results[f"c{concurrency}"] = row | merged(before, batch_stats(url))
            results[f"c{concurrency}"]["load_1m"] = os.getloadavg()[0]
    finally:
        service.terminate()
        try:
            service.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    title = f"POST /v1/rerank, {args.items} items, {args.export.name}, {generator}, loopback"
    Console(width=160).print(table(results, title))
    summary: dict[str, Any] = {
        key: {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
        for key, row in results.items()
    }
    summary |= {
        "quick": args.quick,
        "generator": generator,
        "items": args.items,
        "duration_s": args.duration,
        "onnx_file": args.onnx_file or "default",
        "max_batch_items": args.max_batch_items,
        "max_wait_ms": args.max_wait_ms,
        "cores": len(os.sched_getaffinity(0)),
        "load_avg_1m_at_start": round(load_at_start, 2),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
