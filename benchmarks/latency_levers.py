"""Rerank latency levers, one at a time, on one export: graph fusion, dynamic vs static int8,
threads, and what tokenization costs.

    python benchmarks/latency_levers.py --quick      # the quickstart's student, exported
    python benchmarks/latency_levers.py --data /tmp/hd --cross-encoder runs/hd/ce-minilm \\
        --export runs/hd/onnx

(with ``HF_HUB_OFFLINE=1 .venv/bin/python`` from the repository root). From the export's fp32
graph it builds, in ``--out``:

- ``fused``: onnxruntime's transformer optimizer (``model_type="bert"``: attention,
  skip-layer-norm, GELU fused into single operators);
- ``int8 dynamic``: ``quantize_dynamic``, per-channel (what ``shoprel student export`` does);
- ``fused int8 dynamic``: the same on the fused graph;
- ``int8 dynamic, u8 weights`` and ``int8 dynamic, attention too``: the two ways the dynamic int8
  of sentence-transformers' ONNX backend (optimum's CPU configs) differs from shoprel's: unsigned
  weights, and the attention's two activation-by-activation MatMuls quantized as well
  (onnxruntime's ``quantize_dynamic`` leaves them in float: ``MatMulConstBOnly``);
- ``int8 static QDQ``: ``quantize_static`` in QDQ format, activations calibrated on dev pairs;
- ``int8 dynamic, batches of N``: shoprel's int8 graph run in length-sorted batches of N pairs
  instead of the scorer's default 32 (``--batch-sizes``): smaller batches pad less and run more
  often.

Each is timed reranking 100 dev products for a dev query (``--repeats`` draws, the variants
taking turns, after a warm-up) with the export's own scorer (tokenizer, length-sorted batches
padded only to their longest pair), at ``--threads`` and at one thread; the tokenizer alone is
timed on the same draws. Agreement with fp32 is Spearman over the test split's scores, and test
AUC is given for each. Prints a table, then one JSON object (the last line): per variant
``p50_ms``, ``p99_ms``, ``x_fp32`` (p50 ratio to fp32, lower is faster), ``spearman``, ``auc``;
``tokenize_p50_ms``; and the CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from home_depot import add_path_arguments, ensure_data, ensure_export, resolve_paths
from rich.console import Console
from rich.table import Table
from scipy.stats import spearmanr

from shoprel.data.splits import read_split
from shoprel.devices import cpu_name
from shoprel.eval.metrics import roc_auc_bad
from shoprel.serve.onnx_scorer import FP32_FILE, OnnxScorer
from shoprel.student.scorer import item_texts

ITEMS = 100
FIELDS = ["title", "brand", "category"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_path_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-levers"))
    parser.add_argument("--repeats", type=int, default=40, help="draws of 100 items (quick: 8)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: cores)")
    parser.add_argument("--calibration-pairs", type=int, default=512, help="static int8 (dev)")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="*", default=[8, 16], help="int8 dynamic, other batches"
    )
    parser.add_argument("--quick", action="store_true", help="8 draws, 128 calibration pairs")
    args = parser.parse_args()
    resolve_paths(args)
    if args.quick:
        args.repeats, args.calibration_pairs = (
            min(args.repeats, 8),
            min(args.calibration_pairs, 128),
        )
    return args


def build_variants(
    export: Path, out: Path, dev: pd.DataFrame, calibration_pairs: int
) -> dict[str, str]:
    """The variant graphs beside a copy of the export's tokenizer and meta; name -> file."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.transformers import optimizer

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(export, out, ignore=shutil.ignore_patterns("*.onnx"))
    shutil.copy(export / FP32_FILE, out / FP32_FILE)
    fused = optimizer.optimize_model(str(out / FP32_FILE), model_type="bert", opt_level=1)
    fused.save_model_to_file(str(out / "fused.onnx"))
    dynamic = {  # target: source, weight type, MatMulConstBOnly
        "int8_dynamic.onnx": (FP32_FILE, QuantType.QInt8, True),
        "fused_int8_dynamic.onnx": ("fused.onnx", QuantType.QInt8, True),
        "int8_dynamic_u8.onnx": (FP32_FILE, QuantType.QUInt8, True),
        "int8_dynamic_attention.onnx": (FP32_FILE, QuantType.QInt8, False),
    }
    for target, (source, weights, const_b_only) in dynamic.items():
        quantize_dynamic(
            out / source, out / target, per_channel=True, weight_type=weights,
            extra_options={"DefaultTensorType": TensorProto.FLOAT,  # fused ops lack shape info
                           "MatMulConstBOnly": const_b_only},
        )  # fmt: skip
    reader = CalibrationFeeds(
        OnnxScorer.load(out, onnx_file=FP32_FILE), dev.head(calibration_pairs)
    )
    quantize_static(
        out / FP32_FILE, out / "int8_static_qdq.onnx", reader, quant_format=QuantFormat.QDQ,
        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],  # the weights; masks and indices stay float
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )  # fmt: skip
    return {
        "fp32": FP32_FILE,
        "fused": "fused.onnx",
        "int8 dynamic": "int8_dynamic.onnx",
        "fused int8 dynamic": "fused_int8_dynamic.onnx",
        "int8 dynamic, u8 weights": "int8_dynamic_u8.onnx",
        "int8 dynamic, attention too": "int8_dynamic_attention.onnx",
        "int8 static QDQ": "int8_static_qdq.onnx",
    }


class CalibrationFeeds:
    """onnxruntime's CalibrationDataReader: the scorer's own batches of dev pairs."""

    def __init__(self, scorer: OnnxScorer, pairs: pd.DataFrame, batch: int = 32) -> None:
        texts = item_texts(pairs, scorer.fields)
        encodings = scorer.tokenizer.encode_batch(list(zip(pairs["query"], texts, strict=True)))
        self.feeds = iter(
            scorer.feed(encodings[start : start + batch])
            for start in range(0, len(encodings), batch)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def draws(dev: pd.DataFrame, repeats: int) -> list[tuple[str, pd.DataFrame]]:
    rng = np.random.default_rng(0)
    queries = dev["query"].drop_duplicates().to_numpy()
    products = dev.drop_duplicates("product_id")[FIELDS].fillna("").reset_index(drop=True)
    picks = [
        rng.choice(len(products), ITEMS, replace=len(products) < ITEMS) for _ in range(repeats)
    ]
    return [(str(rng.choice(queries)), products.iloc[p].reset_index(drop=True)) for p in picks]


def as_pairs(query: str, items: pd.DataFrame) -> pd.DataFrame:
    return items.assign(query=query, pair_id=[str(i) for i in range(len(items))])


def time_variants(
    scorers: dict[str, OnnxScorer], work: list[tuple[str, pd.DataFrame]]
) -> dict[str, list[float]]:
    for scorer in scorers.values():
        scorer.predict(as_pairs(*work[0]))
    times: dict[str, list[float]] = {name: [] for name in scorers}
    for query, items in work:
        pairs = as_pairs(query, items)
        for name, scorer in scorers.items():
            started = time.perf_counter()
            scorer.predict(pairs)
            times[name].append(1000 * (time.perf_counter() - started))
    return times


def tokenize_ms(scorer: OnnxScorer, work: list[tuple[str, pd.DataFrame]]) -> list[float]:
    out = []
    for query, items in work:
        texts = item_texts(items, scorer.fields)
        started = time.perf_counter()
        scorer.tokenizer.encode_batch([(query, text) for text in texts])
        out.append(1000 * (time.perf_counter() - started))
    return out


def main() -> None:
    args = parse_args()
    data = ensure_data(args.data)
    export = ensure_export(args.export, args.cross_encoder, data, force=args.quick)
    dev, _ = read_split(data, "dev")
    test, scale = read_split(data, "test")
    files = build_variants(
        export, args.out, dev.sample(frac=1.0, random_state=0), args.calibration_pairs
    )
    work = draws(dev, args.repeats)
    scorers = {
        name: OnnxScorer.load(args.out, onnx_file=f, threads=args.threads)
        for name, f in files.items()
    }
    scorers |= {
        f"int8 dynamic, batches of {size}": OnnxScorer.load(
            args.out, onnx_file=files["int8 dynamic"], threads=args.threads, batch_size=size
        )
        for size in args.batch_sizes
    }
    times = time_variants(scorers, work)
    single = {f"{name}, 1 thread": OnnxScorer.load(args.out, onnx_file=files[name], threads=1)
              for name in ("fp32", "int8 dynamic")}  # fmt: skip
    times |= time_variants(single, work)
    reference = scorers["fp32"].predict(test)["score"].to_numpy()
    result: dict[str, Any] = {
        "cpu": cpu_name(),
        "items": ITEMS,
        "draws": len(work),
        "quick": args.quick,
    }
    fp32_p50 = float(np.median(times["fp32"]))
    for name, ms in times.items():
        scores = (scorers.get(name) or single[name]).predict(test)["score"].to_numpy()
        result[name] = {
            "p50_ms": round(float(np.median(ms)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "x_fp32": round(float(np.median(ms)) / fp32_p50, 3),
            "spearman": _finite(spearmanr(reference, scores).statistic),
            "auc": round(roc_auc_bad(test["label"], scores, scale.bad_threshold), 4),
        }
    result["tokenize_p50_ms"] = round(float(np.median(tokenize_ms(scorers["fp32"], work))), 2)
    report(result, list(times))


def _finite(value: float) -> float | None:
    """Rounded, or None where undefined (a graph that returns one constant score)."""
    return round(float(value), 4) if np.isfinite(value) else None


def report(result: dict[str, Any], names: list[str]) -> None:
    table = Table(title=f"rerank {ITEMS} items, {result['draws']} draws ({result['cpu']})")
    for column in ("variant", "p50 ms", "p99 ms", "× fp32", "Spearman vs fp32", "test AUC"):
        table.add_column(column)
    for name in names:
        row = result[name]
        spearman = "-" if row["spearman"] is None else f"{row['spearman']:.4f}"
        table.add_row(name, f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}", f"{row['x_fp32']:.2f}",
                      spearman, f"{row['auc']:.4f}")  # fmt: skip
    table.add_row("tokenizer alone", f"{result['tokenize_p50_ms']:.1f}", "", "", "", "")
    Console().print(table)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
