"""Shared set-up of the serving benchmarks: the prepared Home Depot split and an ONNX export."""

from __future__ import annotations

from pathlib import Path

from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.serve.export import ExportConfig, export_onnx
from shoprel.serve.onnx_scorer import INT8_FILE, META_FILE

ROOT = Path(__file__).resolve().parents[1]
HOME_DEPOT = ROOT / "../shared/data/home_depot_search_relevance"


def ensure_data(data: Path) -> Path:
    """``data``, prepared from the shared Home Depot file first if it holds no split yet."""
    if not (data / "dev.parquet").is_file():
        if not HOME_DEPOT.is_dir():
            raise SystemExit(f"no prepared data at {data} and no Home Depot data at {HOME_DEPOT}")
        prepare(PrepareConfig(source="homedepot", inputs=[HOME_DEPOT]), data)
    return data


def ensure_export(export: Path, cross_encoder: Path, data: Path) -> Path:
    """``export``, written from ``cross_encoder`` (with the int8 model, gated on dev) if absent."""
    if not (export / META_FILE).is_file() or not (export / INT8_FILE).is_file():
        export_onnx(cross_encoder, export, ExportConfig(int8=True, data=data))
    return export
