"""``Reranker``: one small interface that reranks a query's items with a model dir shoprel saved.

    from shoprel import Reranker

    reranker = Reranker.load("runs/hd/onnx")  # an ONNX export, or a cross-encoder dir
    items = [{"id": "p1", "title": "18V cordless drill", "brand": "DEWALT"}, {"id": "p2", ...}]
    for hit in reranker.rerank("cordless drill", items, top_k=10):
        print(hit.id, hit.score)

An item is a dict with a ``title`` and optionally an ``id`` (default: its position) and the short
product fields (``brand``, ``category``, ...); the model reads the fields it was trained on.
Scores are on the label scale of the model's data set, higher is more relevant. An export
calibrated on dev (``shoprel student export --data``) also gives each item ``relevance``, its
P(relevant), which can be cut at a threshold: ``rerank(..., min_relevance=0.8)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.schema import TEXT_FIELDS
from shoprel.scoring import Scorer, load_scorer
from shoprel.serve.calibration import Calibration

Item = Mapping[str, Any]


@dataclass(frozen=True)
class RerankedItem:
    id: str
    index: int  # position in the input list
    score: float
    relevance: float | None = None  # P(relevant), where the export is calibrated


class Reranker:
    """Scores (query, item) pairs with any :class:`~shoprel.scoring.Scorer` and ranks items."""

    def __init__(self, scorer: Scorer, name: str = "model") -> None:
        self.scorer, self.name = scorer, name

    @classmethod
    def load(cls, directory: str | Path, **options: Any) -> Reranker:
        """The model in ``directory`` (ONNX export or cross-encoder); ``options`` go to its
        scorer (``batch_size``, and for ONNX ``int8``, ``onnx_file``, ``threads``)."""
        return cls(load_scorer(directory, **options), name=Path(directory).name)

    @property
    def calibration(self) -> Calibration | None:
        """The dev calibration of an export made with ``--data`` (else None)."""
        return getattr(self.scorer, "calibration", None)

    def relevance(self, scores: np.ndarray) -> np.ndarray | None:
        """P(relevant) of each score where the export is calibrated, else None."""
        return self.calibration.relevance(scores) if self.calibration else None

    def score_pairs(self, queries: Sequence[str], items: Sequence[Item]) -> np.ndarray:
        """One score per (query, item) pair, in order."""
        if len(queries) != len(items):
            raise ValueError(
                f"got {len(queries)} queries for {len(items)} items; expected one each"
            )
        if not items:
            return np.empty(0)
        frame = pair_frame(queries, items)
        return self.scorer.predict(frame)["score"].to_numpy(dtype=np.float64)

    def score(self, query: str, items: Sequence[Item]) -> np.ndarray:
        """The score of each item for ``query``, in the order of ``items``."""
        return self.score_pairs([query] * len(items), items)

    def rerank(
        self,
        query: str,
        items: Sequence[Item],
        top_k: int | None = None,
        min_relevance: float | None = None,
    ) -> list[RerankedItem]:
        """``items`` best first (ties keep their input order), the first ``top_k`` of them; with
        ``min_relevance``, only those whose calibrated P(relevant) reaches it."""
        check_top_k(top_k)
        check_min_relevance(min_relevance, self.calibration)
        scores = self.score(query, items)
        relevance = self.relevance(scores)
        return rank(items, scores, top_k, relevance, min_relevance)


def check_top_k(top_k: int | None) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k: expected None or an int >= 1, got {top_k!r}")


def check_min_relevance(min_relevance: float | None, calibration: Calibration | None) -> None:
    if min_relevance is None:
        return
    if not 0.0 <= min_relevance <= 1.0:
        raise ValueError(f"min_relevance: expected a probability in [0, 1], got {min_relevance!r}")
    if calibration is None:
        raise ValueError(
            "min_relevance: this model has no calibration; export it with --data to fit one"
        )


def rank(
    items: Sequence[Item],
    scores: np.ndarray,
    top_k: int | None = None,
    relevance: np.ndarray | None = None,
    min_relevance: float | None = None,
) -> list[RerankedItem]:
    """Best first, ties in input order; items below ``min_relevance`` left out, then ``top_k``."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    if relevance is not None and min_relevance is not None:
        order = order[relevance[order] >= min_relevance]

    def result(i: int) -> RerankedItem:
        p = None if relevance is None else float(relevance[i])
        return RerankedItem(item_id(items[i], i), i, float(scores[i]), p)

    return [result(int(i)) for i in order[:top_k]]


def item_id(item: Item, index: int) -> str:
    value = item.get("id")
    return str(index) if value is None else clean_text(str(value))


def clean_text(text: str) -> str:
    """``text`` as valid UTF-8: lone surrogates (legal in JSON, not in UTF-8) become ``?``."""
    return text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text


def pair_frame(queries: Sequence[str], items: Sequence[Item]) -> pd.DataFrame:
    """The canonical pair columns the scorers read: ``pair_id, query, title`` and product fields."""
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("title"), str):
            got = sorted(item) if isinstance(item, Mapping) else type(item).__name__
            raise ValueError(f"items[{i}]: expected a dict with a 'title' string, got {got}")
    columns: dict[str, list[str]] = {
        "pair_id": [str(i) for i in range(len(items))],
        "query": [clean_text(str(query)) for query in queries],
    }
    for field in TEXT_FIELDS:
        if any(item.get(field) is not None for item in items):
            columns[field] = [_text(item.get(field)) for item in items]
    return pd.DataFrame(columns)


def _text(value: Any) -> str:
    return "" if value is None else clean_text(str(value))
