"""Live search over a run's catalog: BM25 and the augment stage's dense index retrieve, the
exported student reranks, and the teacher scores the same items when asked.

The catalog is every product of the run's prepared data (as the augment stage reads it). The
indexes and models load on first use, once, under a lock, so the pages come up at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.augment.candidates import (
    ITEM_COLUMNS,
    Bm25Index,
    DenseIndex,
    read_catalog,
    read_splits,
)
from shoprel.scoring import load_scorer
from shoprel.serve.reranker import Reranker

logger = logging.getLogger(__name__)


@dataclass
class SearchConfig:
    """student, teacher: model dirs (default: the run's export, else its student; its teacher
    ensemble). encoder: the dense index's bi-encoder (the augment stage's default). per_source:
    candidates from each of BM25 and the dense index. exact_search_max: as in augment."""

    student: Path | None = None
    teacher: Path | None = None
    encoder: str = "minilm-l6"
    per_source: int = 20
    exact_search_max: int = 100_000


class LiveSearch:
    def __init__(self, run: Path, cfg: SearchConfig) -> None:
        self.run, self.cfg = run, cfg
        self.student_dir = cfg.student or _first_dir(run / "export", run / "student")
        self.teacher_dir = cfg.teacher or recorded_teacher(run)
        self._lock = threading.RLock()  # a part may build on another (indexes on catalog)
        self._parts: dict[str, Any] = {}

    @property
    def catalog(self) -> pd.DataFrame:
        return self._part("catalog", lambda: read_catalog(read_splits(self.run / "data"), None))

    def product(self, product_id: str) -> dict[str, str] | None:
        """The catalog's fields of ``product_id``, or None for an id it does not hold."""
        by_id = self._part("by_id", lambda: self.catalog.set_index("product_id", drop=False))
        if product_id not in by_id.index:
            return None
        return by_id.loc[product_id, ITEM_COLUMNS].to_dict()

    def warm(self) -> None:
        """Build the indexes and load the student now (a large catalog takes minutes to embed)."""
        logger.info("explore: indexing %d catalog products for live search", len(self.catalog))
        self._indexes()
        self._student()
        logger.info("explore: live search ready")

    def search(self, query: str) -> pd.DataFrame:
        """The candidates for ``query`` from each index (``source``: where found first), best
        first by the student (``score``, and ``relevance`` where its export is calibrated)."""
        k = min(self.cfg.per_source, len(self.catalog))
        found = [(name, index.top_k([query], k)[0]) for name, index in self._indexes().items()]
        rows, sources = [], []
        for name, hits in found:
            for row in hits.tolist():
                if row >= 0 and row not in rows:
                    rows.append(row)
                    sources.append(name)
        items = self.catalog.iloc[rows].reset_index(drop=True).assign(source=sources)
        if items.empty:
            return items.assign(score=pd.Series(dtype=float))
        student = self._student()
        scores = student.score(query, items.to_dict("records"))
        if student.calibration is not None:
            items = items.assign(relevance=student.calibration.relevance(scores))
        return items.assign(score=scores).sort_values("score", ascending=False, kind="stable")

    def relevance(self, query: str, items: pd.DataFrame) -> dict[str, float]:
        """P(relevant) of each item by the exported student, where its export is calibrated."""
        student = self._student()
        if student.calibration is None or items.empty:
            return {}
        scores = student.score(query, items[ITEM_COLUMNS].to_dict("records"))
        found = student.calibration.relevance(scores)
        return dict(zip(items["product_id"].astype(str), found.tolist(), strict=True))

    def teacher_scores(self, query: str, product_ids: list[str]) -> dict[str, float]:
        """The teacher's score of each known product for ``query`` (unknown ids left out)."""
        items = self.catalog[self.catalog["product_id"].isin(product_ids)]
        if items.empty:
            return {}
        pairs = items.assign(query=query, pair_id=items["product_id"]).reset_index(drop=True)
        teacher = self._part("teacher", lambda: load_scorer(self.teacher_dir))
        scores = teacher.predict(pairs)
        return dict(
            zip(scores["pair_id"], np.asarray(scores["score"], dtype=float).tolist(), strict=True)
        )

    def _student(self) -> Reranker:
        return self._part("student", lambda: Reranker.load(self.student_dir))

    def _indexes(self) -> dict[str, Any]:
        def build() -> dict[str, Any]:
            indexes: dict[str, Any] = {"bm25": Bm25Index(self.catalog)}
            indexes["dense"] = DenseIndex(self.catalog, self.cfg.encoder, self.cfg.exact_search_max)
            return indexes

        return self._part("indexes", build)

    def _part(self, name: str, build: Any) -> Any:
        with self._lock:
            if name not in self._parts:
                self._parts[name] = build()
            return self._parts[name]


def recorded_teacher(run: Path) -> Path:
    """The teacher the run's teacher stage recorded (an ensemble, or its one member), else the
    ensemble's usual dir."""
    from shoprel.pipeline.stages import stage_result

    if (run / "stages" / "teacher.json").is_file():  # as the pipeline was given it, or in run/
        recorded = Path(stage_result(run, "teacher")["teacher"])
        return recorded if recorded.is_dir() else run / "teacher" / recorded.name
    return _first_dir(run / "teacher" / "ensemble", run / "teacher" / "labeler")


def _first_dir(*candidates: Path) -> Path:
    return next((path for path in candidates if path.is_dir()), candidates[0])
