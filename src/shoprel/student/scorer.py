"""A cross-encoder saved by shoprel, as a scorer; the item text and score mapping its ONNX export
shares (:mod:`shoprel.serve.onnx_scorer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.schema import GradeScale, get_scale
from shoprel.io import read_json
from shoprel.scoring import CROSS_ENCODER_META, Scorer

ACTIVATIONS = ("sigmoid", "identity")


def check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")


def item_texts(pairs: pd.DataFrame, fields: list[str]) -> list[str]:
    """The title, then each short field that is set (``title | brand | category``)."""
    columns = [pairs["title"].fillna("")] + [pairs[f].fillna("") for f in fields if f in pairs]
    return [" | ".join(part for part in parts if part) for parts in zip(*columns, strict=True)]


def to_scores(logits: np.ndarray, scale: GradeScale, activation: str = "sigmoid") -> np.ndarray:
    """Scores as the torch scorer gives them: ``sigmoid`` maps the logit to the label scale,
    ``low + sigmoid(logit) * (high - low)``; ``identity`` (distilled students) keeps the logit."""
    check_activation(activation)
    logits = np.asarray(logits, dtype=np.float64)
    if activation == "identity":
        return logits
    return scale.low + (scale.high - scale.low) / (1.0 + np.exp(-logits))


class CrossEncoderScorer(Scorer):
    """A cross-encoder saved by shoprel: the sigmoid of the logit on the label scale, or the raw
    logit (``activation="identity"``, distilled students)."""

    def __init__(
        self,
        model: Any,
        scale: GradeScale,
        fields: list[str],
        batch_size: int = 64,
        activation: str = "sigmoid",
    ) -> None:
        check_activation(activation)
        self.model, self.scale, self.fields = model, scale, fields
        self.batch_size, self.activation = batch_size, activation

    @classmethod
    def load(cls, directory: str | Path, **options: Any) -> CrossEncoderScorer:
        from sentence_transformers import CrossEncoder

        meta = read_json(Path(directory) / CROSS_ENCODER_META)
        model = CrossEncoder(str(directory), max_length=meta["max_length"])
        activation = meta.get("activation", "sigmoid")  # dirs saved before distillation
        scale = get_scale(meta["scale"])
        return cls(model, scale, meta["fields"], activation=activation, **options)

    def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        import torch

        inputs = list(zip(pairs["query"], item_texts(pairs, self.fields), strict=True))
        was_training = self.model.training
        logits = self.model.predict(
            inputs,
            batch_size=self.batch_size,
            show_progress_bar=progress,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
        )
        self.model.train(was_training)
        score = to_scores(np.reshape(logits, -1), self.scale, self.activation)
        return pd.DataFrame({"pair_id": pairs["pair_id"].to_numpy(), "score": score})
