"""``shoprel data prepare``: load a dataset, check every row, split by query, write the pair tables.

    shoprel data prepare --source homedepot \
        --input ../shared/data/home_depot_search_relevance --out run/data

Writes ``train/dev/test.parquet`` (or only ``test.parquet`` with ``--test-only``), ``rejects.jsonl``
and ``card.json``. Every row read is either written or rejected with its file, line and reason
(rows dropped on purpose by a filter option, e.g. ESCI's locale, are counted apart).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.loaders import Loaded, LoaderOptions, load
from shoprel.data.readers import FILE, LINE, MALFORMED, DataError, one_line, row_problem
from shoprel.data.schema import (
    PAIR_COLUMNS,
    SPLITS,
    TEXT_FIELDS,
    GradeScale,
    make_pair_id,
    make_query_id,
)
from shoprel.io import write_json, write_jsonl, write_parquet


@dataclass
class PrepareConfig:
    """Args:
    source: loader name (``homedepot``, ``esci``, ``wands``, ``table``, ``demo``).
    inputs: files or directories the loader reads.
    seed: split seed; the same seed gives the same split.
    fractions: train/dev/test shares of the queries.
    test_only: put every pair in the test split.
    strict: any rejected row is an error.
    label_smoothing: mix of the uniform distribution into each soft target.
    loader: loader options.
    """

    source: str = "demo"
    inputs: list[Path] = field(default_factory=list)
    seed: int = 0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    test_only: bool = False
    strict: bool = False
    label_smoothing: float = 0.0
    loader: LoaderOptions = field(default_factory=LoaderOptions)

    def __post_init__(self) -> None:
        if (
            len(self.fractions) != 3
            or min(self.fractions) < 0
            or not np.isclose(sum(self.fractions), 1)
        ):
            raise ValueError(
                f"fractions: expected three shares >= 0 summing to 1, got {self.fractions}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(
                f"label_smoothing: expected a value in [0, 1), got {self.label_smoothing}"
            )


def prepare(cfg: PrepareConfig, out: str | Path) -> dict[str, Any]:
    """Run the whole preparation and return the data card that was written."""
    out = Path(out)
    loaded = load(cfg.source, cfg.inputs, cfg.loader)
    pairs, rejects = validate(loaded.records, loaded.scale)
    shown = "; ".join(f"{r['file']}:{r['line']} {r['reason']}" for r in rejects[:5])
    if cfg.strict and rejects:
        raise DataError(f"--strict: {len(rejects)} row(s) rejected, e.g. {shown}")
    if pairs.empty:
        read = ", ".join(str(path) for path in cfg.inputs) or cfg.source
        why = f"all {len(rejects)} rejected, e.g. {shown}" if rejects else "the input has no rows"
        raise DataError(f"{read}: no pairs to prepare: {why}")
    pairs["target"] = [loaded.scale.soft_target(x, cfg.label_smoothing) for x in pairs["label"]]
    pairs["source"] = "human"
    pairs = pairs[PAIR_COLUMNS]
    splits = {"test": pairs} if cfg.test_only else split_by_query(pairs, cfg.seed, cfg.fractions)
    for name, frame in splits.items():
        write_parquet(frame.reset_index(drop=True), out / f"{name}.parquet")
    for stale in {"train", "dev", "test"} - set(splits):  # of an earlier prepare into ``out``
        (out / f"{stale}.parquet").unlink(missing_ok=True)
    write_jsonl(rejects, out / "rejects.jsonl")
    card = data_card(cfg, loaded, pairs, splits, rejects)
    write_json(card, out / "card.json")
    return card


def validate(records: pd.DataFrame, scale: GradeScale) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Split raw records into good pairs and rejects (file, line, reason, detail)."""
    records = records.copy()
    for column in ["query", "product_id", *TEXT_FIELDS]:
        records[column] = records[column].map(one_line)
    reason = pd.Series([None] * len(records), index=records.index, dtype=object)
    detail = pd.Series([None] * len(records), index=records.index, dtype=object)
    labels = np.full(len(records), np.nan)
    for position, (index, row) in enumerate(records.iterrows()):
        why, note = row_problem(row, ("query", "title", "product_id"))
        if why is None:
            try:
                labels[position] = scale.parse_label(row["label_raw"])
            except ValueError as error:
                why, note = "bad_label", str(error)
        reason[index], detail[index] = why, note
    records["label"] = labels
    records["query_id"] = records["query"].map(lambda q: make_query_id(q) if q else None)
    records["pair_id"] = [
        make_pair_id(q, p) for q, p in zip(records["query_id"], records["product_id"], strict=True)
    ]
    _mark_duplicates(records, reason, detail)
    bad = reason.notna()
    rejects = [
        {
            "file": str(r[FILE]),
            "line": int(r[LINE]),
            "reason": reason[i],
            "detail": detail[i],
            "query": r["query"],
            "product_id": r["product_id"],
            "label": _jsonable(r["label_raw"]),
        }
        for i, r in records[bad].iterrows()
    ]
    return records[~bad].drop(columns=["label_raw", FILE, LINE, MALFORMED]), rejects


def _mark_duplicates(records: pd.DataFrame, reason: pd.Series, detail: pd.Series) -> None:
    """A pair seen twice: one label repeated is a duplicate; differing labels reject every copy."""
    good = records[reason.isna()]
    groups = good.groupby("pair_id")["label"]
    spread = groups.transform("max") - groups.transform("min")
    conflicting = spread > 1e-9
    reason[conflicting[conflicting].index] = "conflicting_labels"
    for index in conflicting[conflicting].index:
        labels = sorted(set(good.loc[good["pair_id"] == good.at[index, "pair_id"], "label"]))
        detail[index] = f"the pair has labels {labels}"
    repeated = good[~conflicting].duplicated("pair_id", keep="first")
    reason[repeated[repeated].index] = "duplicate_pair"
    detail[repeated[repeated].index] = "an earlier row has the same query, product and label"


def split_by_query(
    pairs: pd.DataFrame, seed: int, fractions: tuple[float, float, float]
) -> dict[str, pd.DataFrame]:
    """Each query goes to one split by a seeded hash of its id, whatever else is in the data."""
    bounds = np.cumsum(fractions)
    draws = pairs["query_id"].map(
        lambda q: int(hashlib.sha1(f"{seed}:{q}".encode()).hexdigest()[:12], 16) / 16**12
    )
    which = np.searchsorted(bounds[:-1], draws.to_numpy(), side="right")
    return {name: pairs[which == i] for i, name in enumerate(SPLITS)}


def data_card(
    cfg: PrepareConfig,
    loaded: Loaded,
    pairs: pd.DataFrame,
    splits: dict[str, pd.DataFrame],
    rejects: list[dict[str, Any]],
) -> dict[str, Any]:
    scale = loaded.scale
    return {
        "source": cfg.source,
        "inputs": [str(p) for p in cfg.inputs],
        "scale": scale.name,
        "grades": list(scale.grades),
        "seed": cfg.seed,
        "fractions": list(cfg.fractions),
        "test_only": cfg.test_only,
        "rows_read": loaded.rows_read,
        "rows_written": len(pairs),
        "rows_rejected": len(rejects),
        "rows_filtered": loaded.filtered,
        "rejects_by_reason": dict(Counter(r["reason"] for r in rejects)),
        **_counts(pairs, scale),
        "splits": {name: _counts(frame, scale) for name, frame in splits.items()},
    }


def _counts(frame: pd.DataFrame, scale: GradeScale) -> dict[str, Any]:
    grades = (
        Counter(scale.nearest_grade(frame["label"].to_numpy()).tolist())
        if len(frame)
        else Counter()
    )
    return {
        "pairs": len(frame),
        "queries": int(frame["query_id"].nunique()),
        "products": int(frame["product_id"].nunique()),
        "grade_counts": {scale.grades[i]: grades.get(i, 0) for i in range(scale.n_grades)},
    }


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return None if np.isnan(value) else value
    return str(value)
