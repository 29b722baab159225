"""The student's training pairs: teacher-scored label dirs, sampled by whole query.

A label dir (written by ``shoprel label``) holds ``labels.parquet``: the pair columns of the
canonical table (``pair_id, query_id, query, product_id, title, brand, category, attributes,
description, source``) plus ``score`` (the teacher's score on the dataset's label scale), optional
``p_<grade>`` columns and ``teacher``. ``source`` is ``human`` for pairs of the labeled train split
and ``bm25``, ``dense``, ``random`` or ``synthetic`` for augmented pairs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from shoprel.data.readers import DataError
from shoprel.data.schema import GradeScale, normalize_query

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.parquet"
REQUIRED_COLUMNS = ["pair_id", "query_id", "query", "title", "score", "source"]
OPTIONAL_COLUMNS = ["product_id", "brand", "category", "attributes", "description", "teacher"]
HUMAN = "human"


def read_teacher_labels(dirs: Sequence[str | Path]) -> pd.DataFrame:
    """All label dirs as one table; a repeated pair id (in any dir) is dropped, the first kept."""
    if not dirs:
        raise DataError("no label dirs given; pass --labels DIR (a dir written by `shoprel label`)")
    frame = pd.concat([_read_label_file(Path(d) / LABELS_FILE) for d in dirs], ignore_index=True)
    repeated = frame["pair_id"].duplicated()
    if repeated.any():
        logger.info("labels: %d repeated pair id(s) dropped, first kept", int(repeated.sum()))
    return frame[~repeated].reset_index(drop=True)


def _read_label_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: no such file; a label dir holds {LABELS_FILE} (`shoprel label`)")
    frame = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; a labels file has {REQUIRED_COLUMNS} "
            f"and optionally {OPTIONAL_COLUMNS}"
        )
    score = pd.to_numeric(frame["score"], errors="coerce")
    bad = ~np.isfinite(score.to_numpy(dtype=float))
    if bad.any():
        raise DataError(
            f"{path}: {int(bad.sum())} score(s) are not finite numbers, "
            f"e.g. pair {frame['pair_id'][bad].iloc[0]!r}"
        )
    frame = frame.assign(score=score.astype(float))
    for column in ("pair_id", "query_id", "query", "title"):
        empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            raise DataError(
                f"{path}, row {row + 1}: {int(empty.sum())} pair(s) without a {column}, "
                f"e.g. pair {frame['pair_id'].iloc[row]!r}"
            )
    for column in OPTIONAL_COLUMNS:
        frame[column] = frame[column].fillna("") if column in frame else ""
    return frame[REQUIRED_COLUMNS + OPTIONAL_COLUMNS]


def check_scale(labels: pd.DataFrame, scale: GradeScale) -> None:
    """Log teacher scores outside the data set's label scale (a teacher of another data set?)."""
    outside = ~labels["score"].between(scale.low, scale.high)
    if outside.any():
        logger.warning(
            "labels: %d teacher score(s) outside the %s scale [%s, %s]",
            int(outside.sum()),
            scale.name,
            scale.low,
            scale.high,
        )


def check_heldout(labels: pd.DataFrame, heldout: pd.DataFrame, where: str) -> None:
    """A labeled pair whose query is in the dev or test split is an error (evaluation leak)."""
    heldout_queries = set(heldout["query"].map(normalize_query))
    leaked = labels["query"].map(normalize_query).isin(heldout_queries)
    if leaked.any():
        examples = sorted(set(labels["query"][leaked]))[:3]
        raise DataError(
            f"labels: {int(leaked.sum())} pair(s) have queries of the dev/test split of {where}, "
            f"e.g. {examples}; label only train-split and augmented queries"
        )


def take_queries(frame: pd.DataFrame, n_pairs: int, seed: int) -> pd.DataFrame:
    """Whole queries, in a seeded order, until ``n_pairs`` pairs are reached (the last query may
    pass it). A smaller ``n_pairs`` keeps a subset of what a larger one keeps."""
    if n_pairs >= len(frame):
        return frame.reset_index(drop=True)
    sizes = frame.groupby("query_id", sort=False).size()
    order = sorted(sizes.index, key=lambda q: _seeded_hash(q, seed))
    ordered = sizes.loc[order]
    before = ordered.cumsum() - ordered
    kept = set(before.index[before < n_pairs])
    return frame[frame["query_id"].isin(kept)].reset_index(drop=True)


def training_pairs(
    labels: pd.DataFrame, augment_frac: float, max_human_pairs: int, seed: int
) -> pd.DataFrame:
    """Teacher-scored train-split pairs (all, or about ``max_human_pairs`` by whole query) plus a
    seeded ``augment_frac`` share of the augmented pairs, by whole query."""
    human = labels[labels["source"] == HUMAN]
    augmented = labels[labels["source"] != HUMAN]
    if max_human_pairs:
        human = take_queries(human, max_human_pairs, seed)
    augmented = take_queries(augmented, round(augment_frac * len(augmented)), seed)
    logger.info(
        "training pairs: %d teacher-scored train pairs, %d augmented (%.0f%% of %d)",
        len(human),
        len(augmented),
        100 * augment_frac,
        int((labels["source"] != HUMAN).sum()),
    )
    return pd.concat([human, augmented], ignore_index=True)


def drop_single_items(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pairs of queries with two or more items (a margin needs two)."""
    sizes = pairs.groupby("query_id")["query_id"].transform("size")
    if (sizes < 2).any():
        logger.info("margin-mse: %d query(ies) with one item dropped", int((sizes < 2).sum()))
    return pairs[sizes >= 2].reset_index(drop=True)


def _seeded_hash(key: object, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()
