"""The paired query bootstrap: its point estimate, its interval, and its one-sided p-value."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprel.data.schema import SCALES
from shoprel.eval import metrics
from shoprel.eval.significance import paired_bootstrap, ranking_metric_fns

HD = SCALES["homedepot"]


def toy_split(n_queries: int = 60, per_query: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "query_id": np.repeat([f"q{i}" for i in range(n_queries)], per_query),
            "label": rng.choice([1.0, 1.67, 2.33, 3.0], size=n_queries * per_query),
        }
    )


def test_a_clearly_better_model_wins_every_resample() -> None:
    pairs = toy_split()
    rng = np.random.default_rng(1)
    good = pairs["label"].to_numpy() + rng.normal(0, 0.2, len(pairs))
    noise = rng.normal(0, 1, len(pairs))
    for name, metric in ranking_metric_fns(HD).items():
        result = paired_bootstrap(pairs, good, noise, metric, n_resamples=200)
        assert 0 < result["low"] <= result["diff"] <= result["high"], name
        assert result["p_not_better"] == 0.0


def test_the_point_estimate_is_the_plain_difference() -> None:
    pairs = toy_split()
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=len(pairs)), rng.normal(size=len(pairs))
    metric = ranking_metric_fns(HD)["pairwise_accuracy"]
    expected = metrics.pairwise_accuracy(
        pairs["query_id"], pairs["label"], a, HD.pair_min_diff
    ) - metrics.pairwise_accuracy(pairs["query_id"], pairs["label"], b, HD.pair_min_diff)
    result = paired_bootstrap(pairs, a, b, metric, n_resamples=200)
    assert abs(result["diff"] - expected) < 1e-6
    assert result["low"] < 0 < result["high"]  # two random scorers: no clear winner


def test_the_same_model_twice_differs_by_nothing() -> None:
    pairs = toy_split()
    scores = np.random.default_rng(3).normal(size=len(pairs))
    metric = ranking_metric_fns(HD)["auc"]
    result = paired_bootstrap(pairs, scores, scores, metric, n_resamples=50)
    assert result == {"diff": 0.0, "low": 0.0, "high": 0.0, "p_not_better": 1.0}
