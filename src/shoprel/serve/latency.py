"""Rerank latency of several scorers on one query's candidates, for the pipeline's report.

The scorers take turns (one round = every scorer once per list size), so load from other
processes falls on them alike; the figure is the median over the rounds, after one warm-up call.
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
    query = str(pairs["query"].iat[0])
    lists = {size: candidate_items(pairs, size, seed=size) for size in sizes}
    times: dict[str, dict[int, list[float]]] = {n: {s: [] for s in sizes} for n in rerankers}
    for reranker in rerankers.values():
        reranker.rerank(query, lists[max(sizes)])
    for _ in range(rounds):
        for name, reranker in rerankers.items():
            for size, items in lists.items():
                started = time.perf_counter()
                reranker.rerank(query, items)
                times[name][size].append(1000 * (time.perf_counter() - started))
    return {
        name: {size: round(float(np.median(ms)), 2) for size, ms in by_size.items()}
        for name, by_size in times.items()
    }
