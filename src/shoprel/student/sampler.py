"""Batches made of whole queries, for losses that compare the items of one query.

``QueryGroupBatchSampler`` is a sentence-transformers batch sampler: pass the class as
``CrossEncoderTrainingArguments(batch_sampler=QueryGroupBatchSampler)``. Each epoch it shuffles the
queries, packs them into batches of at most ``batch_size`` pairs (best fit, largest query first)
and shuffles the batches. A query is never split across batches; a query with more pairs than
``batch_size`` is cut to a seeded sample of ``batch_size`` pairs, drawn anew each epoch. The number
of batches depends only on the query sizes, so ``len()`` is the same in every epoch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from sentence_transformers.base.sampler import DefaultBatchSampler

logger = logging.getLogger(__name__)
GROUP_COLUMN = "query_id"


class QueryGroupBatchSampler(DefaultBatchSampler):
    """Batches of whole query groups (``dataset[group_column]``); ``drop_last`` is ignored."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool = False,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        group_column: str = GROUP_COLUMN,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        if group_column not in _column_names(dataset):
            raise ValueError(
                f"{type(self).__name__} groups rows by the {group_column!r} column, "
                f"but the dataset has only {_column_names(dataset)}"
            )
        self.groups = group_rows(list(dataset[group_column]))
        self.n_batches = len(pack_groups([self._size(g) for g in self.groups], batch_size))
        self.pairs_per_epoch = sum(self._size(g) for g in self.groups)
        cut = sum(len(g) > batch_size for g in self.groups)
        if cut:
            logger.info(
                "%d query(ies) have more than %d pairs: each epoch trains on a seeded sample "
                "of %d of their pairs",
                cut,
                batch_size,
                batch_size,
            )

    def _size(self, rows: np.ndarray) -> int:
        return min(len(rows), self.batch_size)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = [self.groups[k] for k in rng.permutation(len(self.groups))]
        groups = [g if len(g) <= self.batch_size else _cut(g, self.batch_size, rng) for g in groups]
        batches = pack_groups([len(g) for g in groups], self.batch_size)
        for b in rng.permutation(len(batches)):
            yield [int(row) for k in batches[b] for row in groups[k]]


def group_rows(keys: Sequence[Any]) -> list[np.ndarray]:
    """Row indices of each distinct key, in order of first appearance."""
    rows: dict[Any, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        rows[key].append(i)
    return [np.asarray(r, dtype=np.int64) for r in rows.values()]


def pack_groups(sizes: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit-decreasing bin packing: lists of group positions whose sizes sum to <= capacity.

    Ties keep the input order, so shuffling the input shuffles which groups share a batch, while
    the number of batches depends only on the sizes.
    """
    if any(s < 1 or s > capacity for s in sizes):
        raise ValueError(f"group sizes must be in 1..{capacity}, got {sorted(set(sizes))}")
    batches: list[list[int]] = []
    open_by_room: list[list[int]] = [[] for _ in range(capacity + 1)]  # room left -> batches
    for k in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        size = sizes[k]
        room = next((r for r in range(size, capacity + 1) if open_by_room[r]), None)
        if room is None:
            batch, room = len(batches), capacity
            batches.append([])
        else:
            batch = open_by_room[room].pop()
        batches[batch].append(k)
        if room - size:
            open_by_room[room - size].append(batch)
    return batches


def _cut(rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, size=size, replace=False))


def _column_names(dataset: Any) -> list[str]:
    return list(getattr(dataset, "column_names", None) or dataset.keys())
