"""The cross-encoder trained on labels or distilled from a teacher, on a tiny BERT built here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from shoprel.cli import app
from shoprel.data.schema import get_scale
from shoprel.eval.metrics import pairwise_accuracy
from shoprel.scoring import load_scorer
from shoprel.student.callbacks import BestEpochCallback
from shoprel.student.scorer import CrossEncoderScorer, item_texts
from shoprel.student.train import META_FILE, StudentTrainConfig, train_cross_encoder


def test_item_text_keeps_short_fields_only() -> None:
    pairs = pd.DataFrame(
        {"title": ["Drill"], "brand": ["DEWALT"], "category": [""], "description": ["long text"]}
    )
    assert item_texts(pairs, ["brand", "category"]) == ["Drill | DEWALT"]


@pytest.fixture(scope="module")
def labels_student(
    tiny_bert: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    cfg = StudentTrainConfig(
        base=str(tiny_bert),
        max_train_pairs=256,
        max_dev_pairs=100,
        epochs=2,
        learning_rate=1e-3,
        batch_size=16,
        max_length=48,
    )
    return train_cross_encoder(cfg, demo_data, tmp_path_factory.mktemp("ce") / "labels")


def test_labels_student_scores_on_the_label_scale(labels_student: Path, demo_data: Path) -> None:
    meta = json.loads((labels_student / META_FILE).read_text())
    assert meta["scale"] == "esci" and meta["activation"] == "sigmoid"
    assert 256 <= meta["train"]["train_pairs"] < 300 and meta["train"]["loss"] == "labels"
    epochs = (labels_student / "dev_metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in epochs] == [1.0, 2.0]
    best = json.loads((labels_student / "dev_metrics.json").read_text())
    assert best["epoch"] == meta["train"]["best_epoch"] and 100 <= best["pairs"] < 116
    scorer = load_scorer(labels_student)
    assert isinstance(scorer, CrossEncoderScorer)
    pairs = pd.read_parquet(demo_data / "test.parquet").head(50)
    scores = scorer.predict(pairs)
    assert scores["pair_id"].tolist() == pairs["pair_id"].tolist()
    assert scores["score"].between(0, 3).all() and np.std(scores["score"]) > 0
    with pytest.raises(ValueError, match="--int8 applies to LLM judges"):
        load_scorer(labels_student, int8=True)


def test_activation_in_the_meta_file_decides_the_score(
    labels_student: Path, demo_data: Path, tmp_path: Path
) -> None:
    pairs = pd.read_parquet(demo_data / "test.parquet").head(20)
    sigmoid = load_scorer(labels_student).predict(pairs)["score"].to_numpy()
    meta_path = labels_student / META_FILE
    meta = json.loads(meta_path.read_text())
    try:
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "activation"}))
        assert np.allclose(load_scorer(labels_student).predict(pairs)["score"], sigmoid)
        meta_path.write_text(json.dumps(meta | {"activation": "identity"}))
        logits = load_scorer(labels_student).predict(pairs)["score"].to_numpy()
    finally:
        meta_path.write_text(json.dumps(meta))
    assert np.allclose(3.0 / (1.0 + np.exp(-logits)), sigmoid, atol=1e-5)


def distill_config(tiny_bert: Path, labels: Path) -> StudentTrainConfig:
    """Two epochs of the tiny BERT on the teacher's labels of the train split."""
    return StudentTrainConfig(
        base=str(tiny_bert),
        labels=[str(labels)],
        epochs=2,
        learning_rate=3e-3,
        batch_size=32,
        max_length=48,
        max_dev_pairs=100,
    )


def test_distilled_student_ranks_like_its_teacher(
    tiny_bert: Path,
    demo_data: Path,
    label_dirs: tuple[Path, Path],
    teacher: Callable[[pd.Series], np.ndarray],
    tmp_path: Path,
) -> None:
    from sentence_transformers.cross_encoder import CrossEncoder
    from transformers import set_seed

    cfg = distill_config(tiny_bert, label_dirs[0])
    held_out = pd.read_parquet(demo_data / "dev.parquet")
    teacher_scores = teacher(held_out["title"])

    def agreement(scorer: CrossEncoderScorer) -> float:
        scores = scorer.predict(held_out)["score"]
        return pairwise_accuracy(held_out["query_id"], teacher_scores, scores, min_diff=0.5)

    set_seed(cfg.seed)  # the same initial weights as the trainer's
    untrained = CrossEncoder(str(tiny_bert), num_labels=1, max_length=cfg.max_length)
    scale = get_scale("esci")
    before = agreement(CrossEncoderScorer(untrained, scale, cfg.fields, activation="identity"))
    after = agreement(load_scorer(train_cross_encoder(cfg, demo_data, tmp_path / "student")))
    assert after > max(before + 0.2, 0.8), (before, after)


def test_cli_trains_with_margin_mse_and_score_loads_it(
    tiny_bert: Path, demo_data: Path, label_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    config = tmp_path / "student.yaml"
    config.write_text("max_dev_pairs: 60\nmax_length: 48\n")
    out = tmp_path / "student"
    runner = CliRunner()
    args = ["student", "train", "--data", str(demo_data), "--base", str(tiny_bert)]
    args += ["--labels", str(label_dirs[0]), "--labels", str(label_dirs[1])]
    args += ["--loss", "margin-mse", "--augment-frac", "0.5", "--out", str(out)]
    args += ["--config", str(config), "--epochs", "1", "--batch-size", "16", "--lr", "3e-3"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    meta = json.loads((out / META_FILE).read_text())
    assert meta["activation"] == "identity" and meta["train"]["loss"] == "margin-mse"
    augmented = len(pd.read_parquet(label_dirs[1] / "labels.parquet"))
    assert augmented / 2 <= meta["train"]["augmented_pairs"] < augmented / 2 + 16
    assert meta["train"]["max_dev_pairs"] == 60 and meta["train"]["pairs_per_s"] > 0
    assert json.loads((out / "dev_metrics.json").read_text())["epoch"] == 1.0
    scores_path = tmp_path / "test.parquet"
    done = runner.invoke(
        app,
        ["score", "--model", str(out), "--data", str(demo_data), "--out", str(scores_path)],
    )
    assert done.exit_code == 0, done.output
    scores = pd.read_parquet(scores_path)
    test_pairs = pd.read_parquet(demo_data / "test.parquet")
    assert scores["pair_id"].tolist() == test_pairs["pair_id"].tolist()
    assert np.isfinite(scores["score"]).all() and scores["score"].std() > 0


def test_cli_rejects_a_teacher_loss_without_labels(demo_data: Path, tmp_path: Path) -> None:
    args = ["student", "train", "--data", str(demo_data), "--out", str(tmp_path / "x")]
    done = CliRunner().invoke(app, [*args, "--loss", "mse"])
    assert done.exit_code != 0 and "expected label dirs" in str(done.exception)


class ScriptedScorer:
    """Returns the next scripted scores on each call; holds a one-weight model."""

    def __init__(self, scripted: list[np.ndarray]) -> None:
        self.model, self.scale, self.scripted = torch.nn.Linear(1, 1), get_scale("esci"), scripted

    def predict(self, pairs: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"pair_id": pairs["pair_id"], "score": self.scripted.pop(0)})


def test_best_epoch_weights_are_restored(tmp_path: Path) -> None:
    dev = pd.DataFrame(
        {
            "pair_id": [f"p{i}" for i in range(6)],
            "query_id": ["a", "a", "a", "b", "b", "b"],
            "label": [0.0, 1.0, 3.0, 3.0, 2.0, 0.0],
        }
    )
    labels = dev["label"].to_numpy()
    # epoch 1 ranks in reverse, epoch 2 perfectly, epoch 3 not at all
    scorer = ScriptedScorer([-labels, labels, np.zeros(6)])
    tracker = BestEpochCallback(scorer, dev, tmp_path / "dev.jsonl", pairs_per_epoch=6)  # type: ignore[arg-type]
    args, control = SimpleNamespace(save_strategy="no"), SimpleNamespace(should_save=False)
    for epoch in (1.0, 2.0, 3.0):
        torch.nn.init.constant_(scorer.model.weight, epoch)
        state: Any = SimpleNamespace(epoch=epoch - 1, global_step=int(epoch) * 3)
        tracker.on_epoch_begin(args, state, control)
        state.epoch = epoch
        tracker.on_epoch_end(args, state, control)
        assert not control.should_save  # a run without checkpoints saves none at an epoch's end
    tracker.restore_best()
    assert scorer.model.weight.item() == 2.0
    assert tracker.best is not None and tracker.best["pairwise_accuracy"] == 1.0
    records = [json.loads(line) for line in (tmp_path / "dev.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1.0, 2.0, 3.0]
    assert records[0]["pairwise_accuracy"] == 0.0 and records[2]["pairwise_accuracy"] == 0.5


def test_a_student_keeps_the_first_layers_of_its_base(
    tiny_bert: Path, demo_data: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification

    from shoprel.student.train import keep_first_layers

    full = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=1)
    cut = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=1)
    keep_first_layers(cut, 1)
    assert len(cut.base_model.encoder.layer) == cut.config.num_hidden_layers == 1
    kept, first = cut.base_model.encoder.layer[0], full.base_model.encoder.layer[0]
    for (name, a), (_, b) in zip(kept.named_parameters(), first.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="has 2 layers"):
        keep_first_layers(full, 3)

    config = train_small_student(tiny_bert, demo_data, tmp_path / "one-layer", "--layers", "1")
    assert config["num_hidden_layers"] == 1


def test_a_narrowed_student_keeps_the_units_that_carry_its_output(
    tiny_bert: Path, demo_data: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from shoprel.student.train import keep_widest_ffn

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=1).eval()
    width = model.config.intermediate_size
    silent = torch.arange(0, width, 2)  # every other unit writes nothing to the block's output
    for block in model.base_model.encoder.layer:
        with torch.no_grad():
            block.output.dense.weight[:, silent] = 0.0
    batch = AutoTokenizer.from_pretrained(tiny_bert)(
        ["cordless drill", "garden hose"],
        ["DEWALT 20V drill", "hose reel"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        before = model(**batch).logits
        keep_widest_ffn(model, width // 2)
        after = model(**batch).logits
    assert model.config.intermediate_size == width // 2
    blocks = model.base_model.encoder.layer
    assert all(block.intermediate.dense.out_features == width // 2 for block in blocks)
    torch.testing.assert_close(after, before)  # only the silent units were dropped
    with pytest.raises(ValueError, match=f"blocks are {width // 2} wide"):
        keep_widest_ffn(model, width)

    config = train_small_student(tiny_bert, demo_data, tmp_path / "narrow", "--ffn-width", "8")
    assert config["intermediate_size"] == 8


def test_the_pointwise_term_belongs_to_margin_mse_only() -> None:
    with pytest.raises(ValueError, match="pointwise_weight: adds to the margin-mse loss"):
        StudentTrainConfig(loss="labels", pointwise_weight=0.5)
    with pytest.raises(ValueError, match="pointwise_weight: adds to the margin-mse loss"):
        StudentTrainConfig(loss="mse", labels=["labels-dir"], pointwise_weight=0.5)
    cfg = StudentTrainConfig(labels=["labels-dir"], pointwise_weight=0.5)
    assert cfg.loss == "margin-mse" and cfg.pointwise_weight == 0.5
    for weight in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="pointwise_weight: expected >= 0"):
            StudentTrainConfig(labels=["labels-dir"], pointwise_weight=weight)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_student_trained_on_cuda_scores_alike_on_the_cpu(
    tiny_bert: Path,
    demo_data: Path,
    label_dirs: tuple[Path, Path],
    teacher: Callable[[pd.Series], np.ndarray],
    tmp_path: Path,
) -> None:
    from sentence_transformers.cross_encoder import CrossEncoder

    cfg = distill_config(tiny_bert, label_dirs[0])
    out = train_cross_encoder(cfg, demo_data, tmp_path / "student")
    held_out = pd.read_parquet(demo_data / "dev.parquet")
    inputs = list(zip(held_out["query"], item_texts(held_out, cfg.fields), strict=True))
    scores = {
        device: CrossEncoder(str(out), max_length=48, device=device).predict(inputs)
        for device in ("cuda", "cpu")
    }
    assert np.allclose(scores["cuda"], scores["cpu"], atol=1e-3)
    agreement = pairwise_accuracy(
        held_out["query_id"], teacher(held_out["title"]), scores["cuda"], min_diff=0.5
    )
    assert agreement > 0.8


def train_small_student(tiny_bert: Path, demo_data: Path, out: Path, *options: str) -> dict:
    """``shoprel student train`` with ``options`` on 64 pairs; its config, once it scores test."""
    args = ["student", "train", "--data", str(demo_data), "--base", str(tiny_bert), *options]
    args += ["--max-train-pairs", "64", "--epochs", "1", "--out", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    scores = load_scorer(out).predict(pd.read_parquet(demo_data / "test.parquet").head(20))
    assert np.isfinite(scores["score"]).all()
    return json.loads((out / "config.json").read_text())
