"""sentence-transformers' ONNX int8 backend, which ``benchmarks/serving_latency.py`` times against
shoprel's export, run in its own environment (``make st-onnx-env``)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from shoprel.student.scorer import item_texts

ROOT = Path(__file__).parents[2]
ST_ONNX_ENV = ROOT / ".venv-st-onnx"


@pytest.fixture
def benchmarks(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``benchmarks/`` on the path; yields ``serving_latency`` as a module."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import serving_latency

    yield serving_latency
    sys.modules.pop("serving_latency", None)


@pytest.mark.parametrize(
    ("flags", "config"),
    [
        ({"avx2", "avx512f", "avx512_vnni", "amx_int8"}, "avx512_vnni"),
        ({"avx2", "avx512f", "avx512bw"}, "avx512"),
        ({"avx2", "fma"}, "avx2"),
        ({"fp", "asimd", "asimddp"}, "arm64"),
    ],
)
def test_the_quantization_config_is_the_one_for_the_cpu(
    benchmarks: ModuleType, flags: set[str], config: str
) -> None:
    cpuinfo = f"model name\t: a CPU\nflags\t\t: {' '.join(sorted(flags))}\n"
    assert benchmarks.quantization_config(cpuinfo) == config


def test_without_its_environment_the_backend_is_left_out_saying_how_to_build_it(
    benchmarks: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import argparse

    monkeypatch.setattr(benchmarks, "ST_ONNX_ENV", tmp_path / "no-env")
    args = argparse.Namespace(st_onnx_python=None)
    note = benchmarks.st_onnx_backend(args, {"fields": [], "max_length": 32})
    assert isinstance(note, str) and "make st-onnx-env" in note


@pytest.mark.skipif(
    not (ST_ONNX_ENV / ".installed").is_file(), reason="no .venv-st-onnx: `make st-onnx-env`"
)
def test_the_backend_ranks_as_the_cross_encoder_and_exports_again_for_new_weights(
    benchmarks: ModuleType, serve_cross_encoder: Path, items: list[dict[str, str]], tmp_path: Path
) -> None:
    import torch
    from scipy.stats import spearmanr
    from sentence_transformers import CrossEncoder

    model_dir = tmp_path / "ce"
    shutil.copytree(serve_cross_encoder, model_dir)
    meta = json.loads((model_dir / "shoprel_cross_encoder.json").read_text())
    out, query = tmp_path / "st-onnx", "cordless drill"
    texts = item_texts(pd.DataFrame(items), meta["fields"])
    model = CrossEncoder(str(model_dir), max_length=meta["max_length"])
    expected = model.predict([(query, t) for t in texts], activation_fn=torch.nn.Sigmoid())

    def rerank() -> tuple[np.ndarray, int]:
        backend = benchmarks.StOnnxBackend(ST_ONNX_ENV / "bin/python", model_dir, out, meta, 8)
        try:
            scores = backend(query, items)
            assert backend.last_ms > 0 and "int8" in backend.file
        finally:
            backend.close()
        return scores, (out / backend.file).stat().st_mtime_ns

    scores, written = rerank()
    assert spearmanr(scores, expected)[0] >= 0.9
    assert np.abs(scores - expected).max() < 0.05
    assert rerank()[1] == written  # the same weights: the export is kept
    weights = model_dir / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert rerank()[1] != written  # newer weights: exported again
