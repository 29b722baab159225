"""Shared set-up of the serving benchmarks: the prepared Home Depot split and an ONNX export.

With ``--quick`` and no paths, the quickstart run's data and student stand in, exported once to
``runs/bench-export`` (int8 kept even where it fails the accuracy gate: these benchmarks time it,
and report how far it is from fp32)."""

from __future__ import annotations

import argparse
from pathlib import Path

from quickstart_run import artifact

from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.io import read_json
from shoprel.serve.export import ExportConfig, export_onnx
from shoprel.serve.onnx_scorer import INT8_FILE, META_FILE

ROOT = Path(__file__).resolve().parents[1]
HOME_DEPOT = ROOT / "../shared/data/home_depot_search_relevance"
DEFAULT_EXPORT = ROOT / "runs/bench-export"  # the benchmarks' own: exported again when stale


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
        args.export = DEFAULT_EXPORT if args.quick else ROOT / "runs/hd/onnx"


def ensure_data(data: Path) -> Path:
    """``data``, prepared from the shared Home Depot file first if the dir does not exist or is
    empty; a dir that holds something other than a finished preparation is refused."""
    if (data / "card.json").is_file():  # written last by ``prepare``
        return data
    if data.is_dir() and any(data.iterdir()):
        raise SystemExit(f"{data}: not a finished `shoprel data prepare` dir (no card.json)")
    if not HOME_DEPOT.is_dir():
        raise SystemExit(f"no prepared data at {data} and no Home Depot data at {HOME_DEPOT}")
    prepare(PrepareConfig(source="homedepot", inputs=[HOME_DEPOT]), data)
    return data


def ensure_export(export: Path, cross_encoder: Path, data: Path, force: bool = False) -> Path:
    """``export``, written from ``cross_encoder`` (with the int8 model, gated on dev unless
    ``force``) if absent, or if it is the benchmarks' own export dir and was made from another
    model or before the model last changed; another dir made from another model is refused."""
    if not (export / META_FILE).is_file() or not (export / INT8_FILE).is_file():
        export_onnx(cross_encoder, export, ExportConfig(int8=True, data=data, force=force))
    elif not exported_from(export, cross_encoder):
        if export.resolve() != DEFAULT_EXPORT.resolve():
            raise SystemExit(
                f"--export {export} was not made from --cross-encoder {cross_encoder} as it is "
                "now: pass the matching pair, or a new --export dir"
            )
        export_onnx(cross_encoder, export, ExportConfig(int8=True, data=data, force=force))
    return export


def exported_from(export: Path, cross_encoder: Path) -> bool:
    """Whether ``export`` was made from ``cross_encoder`` after its files last changed."""
    meta = export / META_FILE
    source = Path(read_json(meta)["source"]["model"])
    files = [p for p in cross_encoder.iterdir() if p.is_file()] if cross_encoder.is_dir() else []
    changed = max((p.stat().st_mtime_ns for p in files), default=0)
    same = cross_encoder.resolve() in {source.resolve(), (ROOT / source).resolve()}  # cwd or root
    return same and changed <= meta.stat().st_mtime_ns
