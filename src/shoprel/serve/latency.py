"""Rerank latency of several scorers on one query's candidates, for the pipeline's report.

The scorers take turns (one round = every scorer once per list size, on the same draw), so load
from other processes falls on them alike; each round draws a new query and new candidates, so the
figure, the median over the rounds after one warm-up call, spans draws as well as timer noise.
For a full study (p99, the CPU floor, sentence-transformers' ``predict``) use
``benchmarks/serving_latency.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.serve.reranker import Reranker


def candidate_items(pairs: pd.DataFrame, count: int, seed: int = 0) -> list[dict[str, str]]:
    """``count`` items drawn from the split's products (with replacement if it has fewer)."""
    products = pairs.drop_duplicates("product_id")
    sample = products.sample(n=count, replace=len(products) < count, random_state=seed)
    fields = ["title", *(f for f in ("brand", "category") if f in sample.columns)]
    return [
        {"id": str(row.product_id)} | {f: str(getattr(row, f) or "") for f in fields}
        for row in sample.itertuples(index=False)
    ]


def rerank_latency(
    scorers: dict[str, tuple[str | Path, dict[str, Any]]],
    pairs: pd.DataFrame,
    sizes: list[int],
    rounds: int = 5,
) -> dict[str, dict[int, float]]:
    """Median milliseconds to rerank each list size, per scorer: ``{name: {size: ms}}``."""
    rerankers = {name: Reranker.load(path, **opts) for name, (path, opts) in scorers.items()}
    queries = pairs["query"].drop_duplicates()
    times: dict[str, dict[int, list[float]]] = {n: {s: [] for s in sizes} for n in rerankers}
    for reranker in rerankers.values():
        reranker.rerank(str(queries.iat[0]), candidate_items(pairs, max(sizes)))
    for round_ in range(rounds):
        query = str(queries.iat[round_ % len(queries)])
        lists = {size: candidate_items(pairs, size, seed=1000 * round_ + size) for size in sizes}
        for name, reranker in rerankers.items():
            for size, items in lists.items():
                started = time.perf_counter()
                reranker.rerank(query, items)
                times[name][size].append(1000 * (time.perf_counter() - started))
    return {
        name: {size: round(float(np.median(ms)), 2) for size, ms in by_size.items()}
        for name, by_size in times.items()
    }
