"""Is model A better than model B on the same pairs? A paired bootstrap over whole queries.

Pairs of one query are not independent, so the resampling unit is the query: each replicate draws
as many queries as the split has, with replacement, and scores both models on the same draw.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from shoprel.data.schema import GradeScale
from shoprel.eval import metrics

# metric(query_ids, labels, scores) -> float
Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def ranking_metric_fns(scale: GradeScale) -> dict[str, Metric]:
    """The two headline ranking metrics of ``evaluate``, on ``scale``."""
    return {
        "pairwise_accuracy": lambda q, y, s: metrics.pairwise_accuracy(
            q, y, s, scale.pair_min_diff
        ),
        "auc": lambda q, y, s: metrics.roc_auc_bad(y, s, scale.bad_threshold),
    }


def paired_bootstrap(
    pairs: pd.DataFrame,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    metric: Metric,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """``metric(A) - metric(B)`` on ``pairs`` (columns ``query_id``, ``label``; scores aligned
    with its rows), its 95% interval over query resamples, and the share of resamples where A
    is not ahead (a one-sided p-value), both over the resamples where the metric is defined
    (``resamples``: how many; a draw without a bad pair has no AUC, for one)."""
    if not len(scores_a) == len(scores_b) == len(pairs):
        raise ValueError(
            f"paired bootstrap: {len(pairs)} pairs but {len(scores_a)} and {len(scores_b)} scores"
        )
    codes, uniques = pd.factorize(pairs["query_id"])
    if len(uniques) < 2 or (codes < 0).any():
        raise ValueError(
            "paired bootstrap: needs two or more queries, and a query id on every pair"
        )
    labels = pairs["label"].to_numpy(float)
    a, b = np.asarray(scores_a, float), np.asarray(scores_b, float)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(uniques))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for r in range(n_resamples):
        drawn = rng.integers(0, len(uniques), len(uniques))
        rows = order[np.concatenate([np.arange(starts[q], starts[q] + sizes[q]) for q in drawn])]
        query = np.repeat(np.arange(len(drawn)), sizes[drawn])  # a query drawn twice counts twice
        diffs[r] = metric(query, labels[rows], a[rows]) - metric(query, labels[rows], b[rows])
    diff = metric(codes, labels, a) - metric(codes, labels, b)
    defined = diffs[np.isfinite(diffs)]
    low, high = np.percentile(defined, [2.5, 97.5]) if len(defined) else (np.nan, np.nan)
    return {
        "diff": round(float(diff), 6),
        "low": round(float(low), 6),
        "high": round(float(high), 6),
        "p_not_better": round(float(np.mean(defined <= 0)), 4) if len(defined) else float("nan"),
        "resamples": len(defined),
    }
