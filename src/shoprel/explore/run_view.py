"""What a finished run holds, query by query: the test pairs, each model's scores and metrics.

Reads what the pipeline's stages wrote: ``data/card.json``, ``data/test.parquet`` and
``eval/metrics.json`` (``{"split", "models", "scores": {name: file under the run}}``). Nothing
here trains or scores; the explorer's pages are views of these tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from shoprel.data.readers import DataError
from shoprel.data.schema import GradeScale, get_scale
from shoprel.eval.evaluate import align_scores, read_scores
from shoprel.eval.metrics import ndcg_per_query, pairwise_accuracy
from shoprel.io import read_json

LABEL = "label"
# the columns of the query page, in this order, where the run has them
FEATURED = ("teacher", "student (distilled)", "bm25", "biencoder")
METRICS = ("ndcg@10", "pairwise")


@dataclass(frozen=True)
class QueryRow:
    query_id: str
    query: str
    items: int
    metrics: dict[str, dict[str, float]]  # model -> metric -> value (nan where undefined)


class RunView:
    """The test split of ``run`` with every evaluated model's scores, aligned to its pairs."""

    def __init__(self, run: str | Path) -> None:
        self.run = Path(run).resolve()
        card = _read_json(self.run / "data" / "card.json")
        self.scale: GradeScale = get_scale(card["scale"])
        evaluation = _read_json(self.run / "eval" / "metrics.json")
        self.split: str = evaluation.get("split", "test")
        self.pairs = pd.read_parquet(self.run / "data" / f"{self.split}.parquet")
        self.metrics: dict[str, dict[str, Any]] = evaluation.get("models", {})
        self.scores = pd.DataFrame(
            {name: self._scores(name, file) for name, file in evaluation["scores"].items()},
            index=self.pairs.index,
        )
        self.models: list[str] = list(self.scores.columns)
        self.per_query = self._per_query()

    def _scores(self, name: str, file: str) -> np.ndarray:
        path = self.run / file  # eval records score files relative to the run dir
        found = read_scores(path)
        return align_scores(self.pairs, found, str(path))["score"].to_numpy(dtype=float)

    @property
    def featured(self) -> list[str]:
        """The models the query page shows: teacher, student, BM25, bi-encoder where present."""
        present = [name for name in FEATURED if name in self.models]
        return present or self.models[:4]

    @property
    def student(self) -> str | None:
        return next((m for m in self.models if m.startswith("student")), None)

    def _per_query(self) -> pd.DataFrame:
        """One row per query: its text, item count, and NDCG@10 and pairwise accuracy per model."""
        ids, labels = self.pairs["query_id"].astype(str), self.pairs[LABEL].to_numpy(float)
        first = self.pairs.drop_duplicates("query_id").set_index("query_id")
        first.index = first.index.astype(str)
        table = pd.DataFrame({"query": first["query"]}, index=first.index)  # the split's order
        table["items"] = ids.value_counts().reindex(table.index)
        positions = ids.reset_index(drop=True).groupby(ids.to_numpy()).indices
        rows = [positions[q] for q in table.index]
        for model in self.models:
            scores = self.scores[model].to_numpy()
            ndcg = ndcg_per_query(ids, labels, scores, k=10, gain_offset=self.scale.low)
            table[column(model, "ndcg@10")] = table.index.map(ndcg).astype(float)
            table[column(model, "pairwise")] = [
                pairwise_accuracy(np.zeros(r.size), labels[r], scores[r], self.scale.pair_min_diff)
                for r in rows
            ]
        return table

    def overview(
        self, sort: str | None = None, descending: bool = False, text: str = ""
    ) -> list[QueryRow]:
        """The queries, filtered by ``text`` in the query and sorted by ``sort`` (``query``,
        ``items`` or ``MODEL|METRIC``); unknown sort keys keep the split's order."""
        table = self.per_query
        if text:
            table = table[table["query"].str.contains(text, case=False, regex=False)]
        key = _sort_key(sort, self.models)
        if key is not None:
            table = table.sort_values(
                key, ascending=not descending, kind="stable", na_position="last"
            )
        return [self._row(query_id, row) for query_id, row in table.iterrows()]

    def overview_row(self, query_id: str) -> QueryRow:
        return self._row(query_id, self.per_query.loc[query_id])

    def _row(self, query_id: str, row: pd.Series) -> QueryRow:
        metrics = {m: {name: float(row[column(m, name)]) for name in METRICS} for m in self.models}
        return QueryRow(str(query_id), str(row["query"]), int(row["items"]), metrics)

    def disagreements(self, a: str, b: str, n: int = 10) -> list[tuple[QueryRow, float]]:
        """The queries whose rankings by models ``a`` and ``b`` differ most: 1 - Spearman's rho
        of their scores over the query's items (queries with fewer than 3 items left out)."""
        distance = {}
        for query_id, rows in self.pairs.groupby("query_id").groups.items():
            if len(rows) < 3:
                continue
            rho = spearmanr(self.scores.loc[rows, a], self.scores.loc[rows, b]).statistic
            distance[str(query_id)] = 1.0 - (0.0 if np.isnan(rho) else float(rho))
        worst = sorted(distance.items(), key=lambda kv: -kv[1])[:n]
        return [(self._row(q, self.per_query.loc[q]), d) for q, d in worst]

    def furthest_from_labels(self, model: str, n: int = 10) -> list[QueryRow]:
        """The queries where ``model`` orders the human labels worst (pairwise, then NDCG)."""
        table = self.per_query.dropna(subset=[column(model, "pairwise")])
        table = table.sort_values(
            [column(model, "pairwise"), column(model, "ndcg@10")], kind="stable"
        )
        return [self._row(q, row) for q, row in table.head(n).iterrows()]

    def query(self, query_id: str, columns: list[str]) -> pd.DataFrame:
        """The query's items with their label, and score and rank (1 = top) per model in
        ``columns``; ``KeyError`` for an id not in the split."""
        rows = self.pairs.index[self.pairs["query_id"].astype(str) == query_id]
        if not len(rows):
            raise KeyError(query_id)
        items = self.pairs.loc[rows].copy()
        items["grade"] = [self.scale.grades[g] for g in self.scale.nearest_grade(items[LABEL])]
        items[column("rank", LABEL)] = _ranks(items[LABEL].to_numpy())
        for model in columns:
            scores = self.scores.loc[rows, model].to_numpy()
            items[column("score", model)] = scores
            items[column("rank", model)] = _ranks(scores)
        return items.sort_values(column("rank", LABEL), kind="stable")


def moves(items: pd.DataFrame, a: str, b: str, n: int = 3) -> dict[str, int]:
    """Product id -> rank in ``b`` minus rank in ``a``, for the ``n`` items that move most (ties
    in size by rank in ``a``); items that do not move are left out."""
    shift = items[column("rank", b)] - items[column("rank", a)]
    order = np.lexsort((items[column("rank", a)].to_numpy(), -np.abs(shift.to_numpy())))
    picked = [i for i in order[:n] if shift.iloc[i] != 0]
    return {str(items["product_id"].iloc[i]): int(shift.iloc[i]) for i in picked}


def compare_runs(this: RunView, other: RunView, model: str, metric: str) -> pd.DataFrame:
    """Per query both runs hold: ``model``'s ``metric`` in each and the change (this - other),
    largest change first."""
    for view in (this, other):
        if model not in view.models:
            raise KeyError(f"{view.run.name} has no model {model!r} (it has {view.models})")
    a, b = this.per_query, other.per_query
    shared = a.index.intersection(b.index)
    table = pd.DataFrame(
        {
            "query": a.loc[shared, "query"],
            "this": a.loc[shared, column(model, metric)],
            "other": b.loc[shared, column(model, metric)],
        }
    )
    table["change"] = table["this"] - table["other"]
    return table.dropna(subset=["change"]).sort_values("change", ascending=False, kind="stable")


def column(first: str, second: str) -> str:
    """The flat column name of a (model, metric) or (kind, model) pair: ``first|second``."""
    return f"{first}|{second}"


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based rank of each value, highest first; ties keep input order."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=int)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


def _sort_key(sort: str | None, models: list[str]) -> Any:
    if sort in ("query", "items"):
        return sort
    if sort and "|" in sort:
        model, metric = sort.rsplit("|", 1)
        if model in models and metric in METRICS:
            return sort
    return None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: missing; is this a finished shoprel run dir?")
    return read_json(path)
