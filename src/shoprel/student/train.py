"""``shoprel student train``: a sentence-transformers ``CrossEncoder`` trained on pair scores.

    shoprel student train --data run/data --base minilm-l6 --out run/ce-labels --loss labels

``labels`` learns the human labels pointwise (binary cross-entropy on the label mapped to [0, 1]):
the no-teacher baseline, and a member of a teacher ensemble. The model's score is the sigmoid of its
logit mapped back to the dataset's label scale. Input text: the query, then the title and the short
fields (brand, category), no description.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.schema import GradeScale, get_scale
from shoprel.eval.evaluate import evaluate_scores, read_split, sample_pairs
from shoprel.io import write_json
from shoprel.models import resolve_model
from shoprel.scoring import Scorer

logger = logging.getLogger(__name__)
META_FILE = "shoprel_cross_encoder.json"
LOSSES = ("labels",)


@dataclass
class StudentTrainConfig:
    """Training a cross-encoder.

    base (str, defaults to ``minilm-l6``): encoder alias, local dir or hub id.
    loss (str, defaults to ``labels``): what the model learns (see module doc).
    fields (list[str], defaults to brand, category): product fields after the title.
    max_train_pairs (int, defaults to 0 = all), max_dev_pairs (int, defaults to 2000; 0 = all).
    epochs (float, 1.0), learning_rate (float, 5e-5), batch_size (int, 32), max_length (int, 96),
    seed (int, 0).
    """

    base: str = "minilm-l6"
    loss: str = "labels"
    fields: list[str] = field(default_factory=lambda: ["brand", "category"])
    max_train_pairs: int = 0
    max_dev_pairs: int = 2000
    epochs: float = 1.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    max_length: int = 96
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {LOSSES}, got {self.loss!r}")


def item_texts(pairs: pd.DataFrame, fields: list[str]) -> list[str]:
    """The title, then each short field that is set (``title | brand | category``)."""
    columns = [pairs["title"].fillna("")] + [pairs[f].fillna("") for f in fields if f in pairs]
    return [" | ".join(part for part in parts if part) for parts in zip(*columns, strict=True)]


def to_unit(labels: np.ndarray, scale: GradeScale) -> np.ndarray:
    return (np.asarray(labels, dtype=float) - scale.low) / (scale.high - scale.low)


class CrossEncoderScorer(Scorer):
    """A cross-encoder saved by shoprel; scores on the dataset's label scale."""

    def __init__(
        self, model: Any, scale: GradeScale, fields: list[str], batch_size: int = 64
    ) -> None:
        self.model, self.scale, self.fields, self.batch_size = model, scale, fields, batch_size

    @classmethod
    def load(cls, directory: str | Path, **options: Any) -> CrossEncoderScorer:
        from sentence_transformers import CrossEncoder

        meta = json.loads((Path(directory) / META_FILE).read_text())
        model = CrossEncoder(str(directory), max_length=meta["max_length"])
        return cls(model, get_scale(meta["scale"]), meta["fields"], **options)

    def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        inputs = list(zip(pairs["query"], item_texts(pairs, self.fields), strict=True))
        unit = self.model.predict(
            inputs,
            batch_size=self.batch_size,
            show_progress_bar=progress,
            activation_fn=_sigmoid(),
            convert_to_numpy=True,
        )
        score = self.scale.low + np.asarray(unit, dtype=float) * (self.scale.high - self.scale.low)
        return pd.DataFrame({"pair_id": pairs["pair_id"].to_numpy(), "score": score})


def _sigmoid() -> Any:
    import torch

    return torch.nn.Sigmoid()


def train_cross_encoder(cfg: StudentTrainConfig, data_dir: str | Path, out: str | Path) -> Path:
    """Train on the train split, report dev metrics, save a CrossEncoder dir into ``out``."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    out = Path(out)
    train, scale = read_split(data_dir, "train")
    dev, _ = read_split(data_dir, "dev")
    train = sample_pairs(train, cfg.max_train_pairs, cfg.seed)
    dev = sample_pairs(dev, cfg.max_dev_pairs, cfg.seed)
    model = CrossEncoder(resolve_model(cfg.base), num_labels=1, max_length=cfg.max_length)
    dataset = Dataset.from_dict(
        {
            "query": train["query"].tolist(),
            "text": item_texts(train, cfg.fields),
            "label": to_unit(train["label"].to_numpy(), scale).tolist(),
        }
    )
    args = CrossEncoderTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=0.1,
        seed=cfg.seed,
        save_strategy="no",
        logging_steps=50,
        report_to=[],
    )
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=dataset, loss=BinaryCrossEntropyLoss(model)
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    model.save_pretrained(str(out))
    meta = {
        "scale": scale.name,
        "fields": cfg.fields,
        "max_length": cfg.max_length,
        "train": asdict(cfg) | {"seconds": round(seconds, 1), "train_pairs": len(train)},
    }
    write_json(meta, out / META_FILE)
    metrics = evaluate_scores(dev, CrossEncoderScorer(model, scale, cfg.fields).predict(dev), scale)
    write_json(metrics, out / "dev_metrics.json")
    logger.info("dev: %s", {k: metrics[k] for k in ("pairwise_accuracy", "auc", "rmse")})
    return out
