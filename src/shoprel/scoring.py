"""The one scoring interface: every model shoprel makes scores pairs the same way.

``predict`` takes canonical pair rows (``pair_id, query, title`` and optional product fields) and
returns ``pair_id, score`` plus, for models with a grade distribution, ``p_<grade>`` columns.
``rank`` orders one query's products by score.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class RankedItem:
    index: int  # position in the input list
    product_id: str
    score: float


class Scorer(ABC):
    @abstractmethod
    def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        """``pair_id, score`` (and ``p_<grade>`` where known) in the order of ``pairs``."""

    def rank(
        self, query: str, products: list[dict[str, Any]], top_k: int | None = None
    ) -> list[RankedItem]:
        """Products of one query, best first; each product is a dict with ``title`` at least."""
        frame = pd.DataFrame(products)
        if "product_id" not in frame.columns:
            frame["product_id"] = [str(i) for i in range(len(frame))]
        frame["query"] = query
        frame["pair_id"] = frame["product_id"].astype(str)
        scores = self.predict(frame)["score"].to_numpy()
        order = sorted(range(len(frame)), key=lambda i: -scores[i])[:top_k]
        return [RankedItem(i, str(frame["product_id"].iat[i]), float(scores[i])) for i in order]


def load_scorer(directory: str | Path, **options: Any) -> Scorer:
    """The scorer for any model dir shoprel saved (judge, cross-encoder, ONNX export, ensemble),
    by its meta file; a sentence-transformers encoder (dir or alias such as ``minilm-l6``) scores
    by cosine."""
    from shoprel.serve.onnx_scorer import META_FILE as ONNX_META
    from shoprel.student.train import META_FILE as CROSS_ENCODER_META
    from shoprel.teacher.ensemble import META_FILE as ENSEMBLE_META
    from shoprel.teacher.model import META_FILE as TEACHER_META

    directory = Path(directory)
    if (directory / ONNX_META).is_file():
        from shoprel.serve.onnx_scorer import OnnxScorer

        options.pop("prefix_sharing", None)
        return OnnxScorer.load(directory, **options)
    if (directory / ENSEMBLE_META).is_file():
        from shoprel.teacher.ensemble import EnsembleScorer

        return EnsembleScorer.load(directory, **options)
    if (directory / TEACHER_META).is_file():
        from shoprel.teacher.scorer import TeacherScorer

        return TeacherScorer.load(directory, **options)
    if (directory / CROSS_ENCODER_META).is_file():
        from shoprel.student.train import CrossEncoderScorer

        if options.pop("int8", False):
            raise ValueError("--int8 applies to LLM judges; a cross-encoder is quantized on export")
        options.pop("prefix_sharing", None)
        return CrossEncoderScorer.load(directory, **options)
    if (directory / "modules.json").is_file() or str(directory) in _encoder_aliases():
        from shoprel.eval.baselines import BiEncoderScorer

        return BiEncoderScorer.load(directory, batch_size=options.get("batch_size", 128))
    raise FileNotFoundError(
        f"{directory}: not a model saved by shoprel nor a sentence-transformers encoder "
        f"(none of {TEACHER_META}, {CROSS_ENCODER_META}, {ENSEMBLE_META}, {ONNX_META})"
    )


def _encoder_aliases() -> set[str]:
    from shoprel.models import ALIASES

    return {alias for alias, spec in ALIASES.items() if spec.kind == "encoder"}
