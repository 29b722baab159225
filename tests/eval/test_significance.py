"""The paired query bootstrap: its point estimate, its interval, and its one-sided p-value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
    assert result == {"diff": 0.0, "low": 0.0, "high": 0.0, "p_not_better": 1.0, "resamples": 50}


def test_resamples_where_the_metric_is_undefined_count_for_neither_side() -> None:
    pairs = pd.DataFrame(  # one query of five holds the only bad pair: many draws have no AUC
        {"query_id": np.repeat(["q0", "q1", "q2", "q3", "q4"], 2), "label": [1.0] + [3.0] * 9}
    )
    scores = np.arange(10.0)
    result = paired_bootstrap(pairs, scores, scores, ranking_metric_fns(HD)["auc"], 300)
    assert result["p_not_better"] == 1.0 and 100 < result["resamples"] < 300


def test_scores_that_do_not_match_the_pairs_and_a_single_query_are_refused() -> None:
    pairs, metric = toy_split(n_queries=3), ranking_metric_fns(HD)["auc"]
    with pytest.raises(ValueError, match="18 pairs but 17 and 18 scores"):
        paired_bootstrap(pairs, np.zeros(17), np.zeros(18), metric)
    one = toy_split(n_queries=1)
    with pytest.raises(ValueError, match="two or more queries"):
        paired_bootstrap(one, np.zeros(6), np.zeros(6), metric)
