"""Shared set-up of the serving benchmarks: the prepared Home Depot split and an ONNX export.

With ``--quick`` and no paths, the quickstart run's data and student stand in, exported once to
``runs/bench-export`` (int8 kept even where it fails the accuracy gate: these benchmarks time it,
and report how far it is from fp32)."""

from __future__ import annotations

import argparse
from pathlib import Path

from quickstart_run import artifact

from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.serve.export import ExportConfig, export_onnx
from shoprel.serve.onnx_scorer import INT8_FILE, META_FILE

ROOT = Path(__file__).resolve().parents[1]
HOME_DEPOT = ROOT / "../shared/data/home_depot_search_relevance"


def add_path_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--cross-encoder`` and ``--export``, resolved by :func:`resolve_paths`."""
    parser.add_argument("--data", type=Path, help="prepared data (/tmp/hd; quick: quickstart's)")
    parser.add_argument(
        "--cross-encoder", type=Path, help="exported if need be (runs/hd/ce-minilm; quick: student)"
    )
    parser.add_argument("--export", type=Path, help="ONNX export (runs/hd/onnx)")


def resolve_paths(args: argparse.Namespace) -> None:
    """``--data``, ``--cross-encoder`` and ``--export`` not given: the quickstart's with
    ``--quick``, else the Home Depot run's."""
    if args.data is None:
        args.data = artifact("data") if args.quick else Path("/tmp/hd")
    if args.cross_encoder is None:
        args.cross_encoder = artifact("student") if args.quick else ROOT / "runs/hd/ce-minilm"
    if args.export is None:
        args.export = ROOT / ("runs/bench-export" if args.quick else "runs/hd/onnx")


def ensure_data(data: Path) -> Path:
    """``data``, prepared from the shared Home Depot file first if it holds no split yet."""
    if not (data / "dev.parquet").is_file():
        if not HOME_DEPOT.is_dir():
            raise SystemExit(f"no prepared data at {data} and no Home Depot data at {HOME_DEPOT}")
        prepare(PrepareConfig(source="homedepot", inputs=[HOME_DEPOT]), data)
    return data


def ensure_export(export: Path, cross_encoder: Path, data: Path, force: bool = False) -> Path:
    """``export``, written from ``cross_encoder`` (with the int8 model, gated on dev unless
    ``force``) if absent."""
    if not (export / META_FILE).is_file() or not (export / INT8_FILE).is_file():
        export_onnx(cross_encoder, export, ExportConfig(int8=True, data=data, force=force))
    return export
