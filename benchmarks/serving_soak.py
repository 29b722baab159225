"""The HTTP service held under load for minutes: errors, p50/p99 and the server's memory over time.

    python benchmarks/serving_soak.py                        # 10 one-minute windows, concurrency 16
    python benchmarks/serving_soak.py --quick                # 3 windows of 10 s, on the quickstart

(with ``HF_HUB_OFFLINE=1 .venv/bin/python`` from the repository root). Starts ``shoprel serve``
as ``serving_load.py`` does and posts one fixed ``/v1/rerank`` body back to back from
``--concurrency`` clients (an asyncio ``httpx`` loop in this process, bounded by the window), one
window after another. After each window it reads the server's resident memory (``VmRSS``). Goals:
no error, and RSS after the last window within 10% of RSS after the first. Prints a table of the
windows, then one JSON object (the last line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
from home_depot import add_path_arguments, ensure_data, ensure_export, resolve_paths
from rich.console import Console
from rich.table import Table
from serving_load import free_port, python_load, request_body, start_service, wait_ready


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 windows of 10 s")
    add_path_arguments(parser)
    parser.add_argument("--onnx-file", help="model.onnx or model_int8.onnx (default: export's)")
    parser.add_argument("--items", type=int, default=50, help="items per rerank request")
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--window-s", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--threads", type=int, default=0, help="service's onnxruntime threads")
    args = parser.parse_args()
    resolve_paths(args)
    if args.quick:
        args.windows, args.window_s = min(args.windows, 3), min(args.window_s, 10.0)
    args.max_batch_items, args.max_wait_ms = 256, 2.0  # what start_service passes on
    return args


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    args = parse_args()
    data = ensure_data(args.data)
    ensure_export(args.export, args.cross_encoder, data, force=args.quick)
    workdir = Path(tempfile.mkdtemp(prefix="shoprel-soak-"))
    body = request_body(data, args.items)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "service.log"
    service = start_service(args, port, log)
    windows: list[dict[str, Any]] = []
    try:
        wait_ready(url, service, log, 300)
        httpx.post(f"{url}/v1/rerank", content=body, timeout=60)  # warm-up
        for index in range(args.windows):
            load = python_load(url, body, args.concurrency, args.window_s, args.timeout)
            row = asyncio.run(load)
            windows.append({"window": index + 1, **row, "rss_mb": rss_mb(service.pid)})
    finally:
        service.terminate()
        service.wait(timeout=60)
    report(args, windows)


def report(args: argparse.Namespace, windows: list[dict[str, Any]]) -> None:
    out = Table(title=f"soak: {args.windows} × {args.window_s:.0f} s at concurrency "
                f"{args.concurrency}, {args.items} items, {args.export.name}")  # fmt: skip
    for column in ("window", "requests", "req/s", "p50 ms", "p99 ms", "errors", "RSS MB"):
        out.add_column(column, justify="right")
    for row in windows:
        out.add_row(
            str(row["window"]), str(row["requests"]), f"{row['rps']:.1f}",
            f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}", str(row["non_200"]),
            f"{row['rss_mb']:.0f}",
        )  # fmt: skip
    Console().print(out)
    first, last = windows[0]["rss_mb"], windows[-1]["rss_mb"]
    summary = {
        "quick": args.quick,
        "windows": [{k: round(v, 2) for k, v in row.items()} for row in windows],
        "errors": int(sum(row["non_200"] for row in windows)),
        "rss_growth_after_first": round((last - first) / first, 4),
        "p99_last_over_first": round(windows[-1]["p99_ms"] / windows[0]["p99_ms"], 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
