"""Rerank latency of one query's items, in process: ONNX int8 vs ONNX fp32 vs sentence-transformers.

    python benchmarks/serving_latency.py                      # 20, 50, 100 items, 100 reranks each
    python benchmarks/serving_latency.py --quick              # 5 reranks each
    python benchmarks/serving_latency.py --export runs/hd/onnx --cross-encoder runs/hd/ce-minilm

(with ``HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python`` from the repository root). The items of a
rerank are Home Depot dev products (title, brand, category) drawn at random for a dev query, the
same draws for every method. Methods, all on the same weights:

    (a) int8:        ``Reranker`` on the export's ``model_int8.onnx`` (onnxruntime);
    (b) fp32:        ``Reranker`` on the export's ``model.onnx``;
    (c) st_predict:  sentence-transformers ``CrossEncoder.predict`` on the cross-encoder dir;
    (d) st_onnx_int8: sentence-transformers' own ONNX backend, quantized with its
        ``export_dynamic_quantized_onnx_model`` (the config for this CPU's flags). It needs
        transformers < 4.58, so it runs in its own environment (``make st-onnx-env``) and process
        (``benchmarks/st_onnx_backend.py``), timed there without the pipe. Without that
        environment the row is left out and the JSON says why.

Each method is warmed up first; then the methods take turns (``--rounds``) so that other processes
on the machine slow them alike. The floor: this CPU's int8 matrix-multiply rate (onnxruntime
``MatMulInteger`` on a large GEMM, same threads) and the model's operations per rerank (linear
layers and attention of each pair's own tokens, no padding, all counted at the int8 rate), so
``floor_ms = ops / rate`` is a lower bound no int8 run can beat. Prints a table, then one JSON
object (the last line) with p50/p99 per method and size, the ratios, and the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from home_depot import add_path_arguments, ensure_data, ensure_export, resolve_paths
from rich.console import Console
from rich.table import Table

from shoprel.data.schema import GradeScale
from shoprel.data.splits import read_split
from shoprel.devices import read_cpuinfo
from shoprel.io import read_json
from shoprel.serve.onnx_scorer import FP32_FILE, INT8_FILE, META_FILE, load_session, load_tokenizer
from shoprel.serve.reranker import Reranker
from shoprel.student.scorer import item_texts

FIELDS = ["title", "brand", "category"]
ROOT = Path(__file__).resolve().parents[1]
ST_ONNX_ENV = ROOT / ".venv-st-onnx"  # `make st-onnx-env` marks it `.installed` when complete
Rerank = Callable[[str, list[dict[str, str]]], Any]
METHODS = ("int8", "fp32", "st_predict", "st_onnx_int8")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="at most 5 reranks per cell, 1 round")
    add_path_arguments(parser)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--repeats", type=int, default=100, help="reranks per size and method")
    parser.add_argument("--rounds", type=int, default=5, help="the methods take turns this often")
    parser.add_argument("--threads", type=int, default=0, help="0: one per core")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--st-onnx-python",
        type=Path,
        help="interpreter with sentence-transformers' ONNX backend (default: make st-onnx-env's)",
    )
    args = parser.parse_args()
    resolve_paths(args)
    if args.quick:
        args.repeats, args.rounds = min(args.repeats, 5), 1
    if 100 not in args.sizes:
        parser.error("--sizes must include 100 (the summary reports it)")
    return args


def draws(
    dev: pd.DataFrame, sizes: list[int], repeats: int, seed: int
) -> dict[int, list[tuple[str, list[dict[str, str]]]]]:
    """For each size, ``repeats`` (dev query, that many random dev products) draws."""
    rng = np.random.default_rng(seed)
    queries = dev["query"].drop_duplicates().to_numpy()
    products = dev.drop_duplicates("product_id")[FIELDS].fillna("").to_dict("records")
    out: dict[int, list[tuple[str, list[dict[str, str]]]]] = {}
    for size in sizes:
        picks = [rng.choice(len(products), size, replace=False) for _ in range(repeats)]
        out[size] = [
            (str(rng.choice(queries)), [dict(products[i], id=str(i)) for i in pick])
            for pick in picks
        ]
    return out


def quantization_config(cpuinfo: str) -> str:
    """The dynamic int8 config of ``export_dynamic_quantized_onnx_model`` for a CPU's flags."""
    flags = set(cpuinfo.split())
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    if "asimd" in flags:
        return "arm64"
    return "avx2"


class StOnnxBackend:
    """sentence-transformers' ONNX int8 backend in its own process (``st_onnx_backend.py``): a
    rerank returns the scores in the order of ``items``; ``last_ms`` is its time in that process."""

    def __init__(
        self, python: Path, cross_encoder: Path, out: Path, meta: dict, batch_size: int
    ) -> None:
        self.fields = meta["fields"]
        command = [
            str(python),
            str(Path(__file__).with_name("st_onnx_backend.py")),
            f"--model={cross_encoder}",
            f"--out={out}",
            f"--max-length={meta['max_length']}",
            f"--batch-size={batch_size}",
            f"--activation={meta.get('activation', 'sigmoid')}",
            f"--config={quantization_config(read_cpuinfo())}",
        ]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"{command[1]} exited with {self.process.wait()} before loading")
        loaded = json.loads(line)
        self.file, self.versions = loaded["file"], loaded["versions"]
        self.last_ms = 0.0

    def __call__(self, query: str, items: list[dict[str, str]]) -> np.ndarray:
        texts = item_texts(pd.DataFrame(items), self.fields)
        request = json.dumps({"pairs": [[query, text] for text in texts]})
        self.process.stdin.write(request + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        answer = json.loads(self.process.stdout.readline())  # type: ignore[union-attr]
        self.last_ms = answer["ms"]
        return np.array(answer["scores"])

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(timeout=60)


def st_onnx_backend(args: argparse.Namespace, meta: dict) -> StOnnxBackend | str:
    """The backend, or why it is not measured."""
    python = args.st_onnx_python
    if python is None and (ST_ONNX_ENV / ".installed").is_file():
        python = ST_ONNX_ENV / "bin/python"
    if python is None:
        return f"no {ST_ONNX_ENV}: `make st-onnx-env` builds it"
    out = args.export.parent / f"{args.export.name}-st-onnx"  # its own export, beside shoprel's
    return StOnnxBackend(python, args.cross_encoder, out, meta, args.batch_size)


def load_methods(args: argparse.Namespace) -> dict[str, Rerank]:
    import torch
    from sentence_transformers import CrossEncoder

    options = {"threads": args.threads, "batch_size": args.batch_size}
    int8 = Reranker.load(args.export, onnx_file=INT8_FILE, **options)
    fp32 = Reranker.load(args.export, onnx_file=FP32_FILE, **options)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = read_json(args.export / META_FILE)
    model = CrossEncoder(str(args.cross_encoder), max_length=meta["max_length"])
    sigmoid = meta.get("activation", "sigmoid") == "sigmoid"
    activation = torch.nn.Sigmoid() if sigmoid else torch.nn.Identity()

    def st_predict(query: str, items: list[dict[str, str]]) -> np.ndarray:
        texts = item_texts(pd.DataFrame(items), meta["fields"])
        pairs = [(query, text) for text in texts]
        return model.predict(pairs, batch_size=args.batch_size, activation_fn=activation)

    methods: dict[str, Rerank] = {
        "int8": int8.rerank,
        "fp32": fp32.rerank,
        "st_predict": st_predict,
    }
    backend = st_onnx_backend(args, meta)
    if isinstance(backend, str):
        print(f"st_onnx_int8: not measured: {backend}")
        args.st_onnx_note = backend
    else:
        methods["st_onnx_int8"] = backend
        args.st_onnx_note = f"{backend.file}, {backend.versions}"
    return methods


def time_methods(
    methods: dict[str, Rerank], work: dict[int, list[tuple[str, list[dict]]]], rounds: int
) -> tuple[dict[str, dict[int, list[float]]], dict[str, float]]:
    """Latencies in ms per method and size, the methods taking turns; the highest 1-minute load
    average seen after each method's turns."""
    for method in methods.values():
        for draw in work.values():
            for query, items in draw[:2]:
                method(query, items)
    times = {name: {size: [] for size in work} for name in methods}
    load = dict.fromkeys(methods, 0.0)
    for part in range(rounds):
        for name, method in methods.items():
            for size, draw in work.items():
                for query, items in draw[part::rounds]:
                    started = time.perf_counter()
                    method(query, items)
                    elapsed = (time.perf_counter() - started) * 1000
                    times[name][size].append(getattr(method, "last_ms", elapsed))
            load[name] = max(load[name], os.getloadavg()[0])
    return times, load


def int8_gemm_rate(threads: int, m: int = 2048, k: int = 1024, n: int = 1024) -> float:
    """Operations per second (2 per multiply-add) of onnxruntime's u8 x s8 ``MatMulInteger``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
        "gemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [m, n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"shoprel-gemm-{os.getpid()}.onnx"
    onnx.save(model, path)
    try:
        session = load_session(path, threads=threads)
    finally:
        path.unlink(missing_ok=True)
    feed = {"A": rng.integers(0, 256, (m, k), dtype=np.uint8)}
    for _ in range(3):
        session.run(None, feed)
    best = min(_timed(lambda: session.run(None, feed)) for _ in range(10))
    return 2 * m * k * n / best


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def rerank_ops(
    export: Path, cross_encoder: Path, work: dict[int, list[tuple[str, list[dict]]]]
) -> dict[int, float]:
    """Mean operations (2 per multiply-add) the encoder needs for one rerank of each size."""
    config_dir = export if (export / "config.json").is_file() else cross_encoder
    config = read_json(config_dir / "config.json")
    meta = read_json(export / META_FILE)
    h, inner, layers = (
        config["hidden_size"],
        config["intermediate_size"],
        config["num_hidden_layers"],
    )
    tokenizer, _ = load_tokenizer(export, meta["max_length"])
    out = {}
    for size, draw in work.items():
        per_rerank = []
        for query, items in draw:
            texts = item_texts(pd.DataFrame(items), meta["fields"])
            lengths = np.array(
                [len(e.ids) for e in tokenizer.encode_batch([(query, t) for t in texts])]
            )
            linear = lengths * (4 * h * h + 2 * h * inner)  # Q, K, V, output; the two FFN layers
            attention = 2 * lengths**2 * h  # Q K^T and the weighted sum of V
            per_rerank.append(2 * layers * float(np.sum(linear + attention)))
        out[size] = float(np.mean(per_rerank))
    return out


def percentiles(times: dict[str, dict[int, list[float]]]) -> dict[str, float]:
    out = {}
    for name, by_size in times.items():
        for size, values in by_size.items():
            out[f"{name}_p50_ms_{size}"] = round(float(np.percentile(values, 50)), 3)
            out[f"{name}_p99_ms_{size}"] = round(float(np.percentile(values, 99)), 3)
    return out


def table(summary: dict[str, Any], sizes: list[int], title: str) -> Table:
    out = Table(title=title)
    for column in ("items", "method", "p50 ms", "p99 ms", "× int8 (p50)", "× floor (p50)"):
        out.add_column(column, justify="left" if column == "method" else "right")
    for size in sizes:
        floor = summary[f"floor_ms_{size}"]
        for name in METHODS:
            if f"{name}_p50_ms_{size}" not in summary:
                continue
            p50 = summary[f"{name}_p50_ms_{size}"]
            out.add_row(
                str(size),
                name,
                f"{p50:.1f}",
                f"{summary[f'{name}_p99_ms_{size}']:.1f}",
                f"{p50 / summary[f'int8_p50_ms_{size}']:.2f}",
                f"{p50 / floor:.1f}",
            )
        out.add_row(str(size), "floor", f"{floor:.2f}", "", "", "1.0")
    return out


def agreement(
    methods: dict[str, Rerank],
    query: str,
    items: list[dict],
    scale: GradeScale,
    activation: str,
) -> dict[str, float]:
    """Score agreement on one draw: max differences of fp32 ONNX against sentence-transformers
    (same weights, so about 1e-6; on the unit scale for sigmoid models) and of int8 against fp32;
    the Spearman correlation of each int8 model's order with ``CrossEncoder.predict``'s."""
    from scipy.stats import spearmanr

    scores = {}
    for name in ("int8", "fp32"):
        by_id = {r.id: r.score for r in methods[name](query, items)}
        scores[name] = np.array([by_id[item["id"]] for item in items])
    st = np.asarray(methods["st_predict"](query, items), dtype=float)
    fp32 = scores["fp32"]
    if activation == "sigmoid":  # ST gives sigmoid(logit); the Reranker maps it to the scale
        fp32 = (fp32 - scale.low) / (scale.high - scale.low)
    out = {
        "fp32_vs_st_max_abs_diff": float(np.abs(fp32 - st).max()),
        "int8_vs_fp32_max_abs_diff": float(np.abs(scores["int8"] - scores["fp32"]).max()),
        "int8_spearman_vs_st": round(float(spearmanr(scores["int8"], st)[0]), 4),
    }
    if "st_onnx_int8" in methods:
        st_int8 = np.asarray(methods["st_onnx_int8"](query, items), dtype=float)
        out["st_onnx_int8_vs_st_max_abs_diff"] = float(np.abs(st_int8 - st).max())
        out["st_onnx_int8_spearman_vs_st"] = round(float(spearmanr(st_int8, st)[0]), 4)
    return out


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    data = ensure_data(args.data)
    export = ensure_export(args.export, args.cross_encoder, data, force=args.quick)
    args.export = export
    dev, scale = read_split(data, "dev")
    work = draws(dev, sorted(args.sizes), args.repeats, args.seed)
    methods = load_methods(args)
    load_at_start = os.getloadavg()[0]
    times, load = time_methods(methods, work, args.rounds)
    rate = int8_gemm_rate(args.threads)
    ops = rerank_ops(export, args.cross_encoder, work)
    summary: dict[str, Any] = {"quick": args.quick, **percentiles(times)}
    for size in work:
        summary[f"floor_ms_{size}"] = round(ops[size] / rate * 1000, 3)
        summary[f"int8_vs_floor_{size}"] = round(
            summary[f"int8_p50_ms_{size}"] / summary[f"floor_ms_{size}"], 2
        )
        for name in METHODS[1:]:
            if f"{name}_p50_ms_{size}" not in summary:
                continue
            summary[f"{name}_vs_int8_p50_{size}"] = round(
                summary[f"{name}_p50_ms_{size}"] / summary[f"int8_p50_ms_{size}"], 3
            )
        summary[f"gops_per_rerank_{size}"] = round(ops[size] / 1e9, 3)
    activation = read_json(export / META_FILE).get("activation", "sigmoid")
    summary |= agreement(methods, *work[100][0], scale, activation)
    summary["st_onnx_int8"] = args.st_onnx_note
    summary.setdefault("st_onnx_int8_p50_ms_100", None)
    if isinstance(methods.get("st_onnx_int8"), StOnnxBackend):
        methods["st_onnx_int8"].close()
    title = f"Rerank latency, {export.name}, Home Depot dev items, {args.repeats} reranks per cell"
    Console(width=160).print(table(summary, sorted(work), title))
    summary |= {
        "int8_gemm_gops": round(rate / 1e9, 1),
        "repeats": args.repeats,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "threads": args.threads or len(os.sched_getaffinity(0)),
        "load_avg_1m_at_start": round(load_at_start, 2),
        **{f"{name}_load_1m": round(value, 2) for name, value in load.items()},
        "scale": scale.name,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
