"""Tests of shoprel.eval.metrics against reference implementations and hand-worked cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import pytrec_eval
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from shoprel.data.schema import SCALES
from shoprel.eval import metrics
from shoprel.eval.metrics import (
    accuracy,
    expected_calibration_error,
    macro_f1,
    ndcg_at_k,
    ndcg_per_query,
    over_recall,
    pairwise_accuracy,
    per_grade_precision_recall,
    ranking_metrics,
    reliability_curve,
    reliability_summary,
    rmse,
    roc_auc_bad,
)

SEEDS = [0, 1, 2, 3, 4]


def _random_run(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Query ids, integer relevances 0..3 (each query has a positive) and tie-free scores."""
    rng = np.random.default_rng(seed)
    qids, labels = [], []
    for q in range(40):
        n = int(rng.integers(1, 31))  # some queries shorter than k, many longer
        rel = rng.integers(0, 4, size=n)
        if rel.max() == 0:
            rel[rng.integers(0, n)] = int(rng.integers(1, 4))
        qids += [f"q{q}"] * n
        labels.append(rel)
    scores = rng.random(len(qids))
    assert len(np.unique(scores)) == len(scores)
    order = rng.permutation(len(qids))  # rows of one query need not be adjacent
    return np.asarray(qids)[order], np.concatenate(labels)[order], scores[order]


def _pytrec_ndcg(
    qids: np.ndarray, labels: np.ndarray, scores: np.ndarray
) -> dict[str, dict[str, float]]:
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for row, (q, rel, s) in enumerate(zip(qids, labels, scores, strict=True)):
        qrels.setdefault(str(q), {})[f"d{row}"] = int(rel)
        run.setdefault(str(q), {})[f"d{row}"] = float(s)
    return pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut"}).evaluate(run)


# --------------------------------------------------------------------------- NDCG


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [10, 5])
def test_ndcg_matches_pytrec_eval(seed: int, k: int) -> None:
    qids, labels, scores = _random_run(seed)
    ref = _pytrec_ndcg(qids, labels, scores)
    ours = ndcg_per_query(qids, labels, scores, k=k)
    assert set(ours) == set(ref)
    for q, measures in ref.items():
        assert ours[q] == pytest.approx(measures[f"ndcg_cut_{k}"], abs=1e-6)
    ref_mean = np.mean([m[f"ndcg_cut_{k}"] for m in ref.values()])
    assert ndcg_at_k(qids, labels, scores, k=k) == pytest.approx(ref_mean, abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_ndcg_gain_offset_shifts_labels(seed: int) -> None:
    # ESCI-like labels 1..4 with offset 1 give the same gains as 0..3 without one.
    qids, labels, scores = _random_run(seed)
    ref = _pytrec_ndcg(qids, labels, scores)
    ours = ndcg_per_query(qids, labels + 1.0, scores, k=10, gain_offset=1.0)
    for q, measures in ref.items():
        assert ours[q] == pytest.approx(measures["ndcg_cut_10"], abs=1e-6)


def test_ndcg_hand_worked_and_ties_by_row_order() -> None:
    # Scores tie; the earlier row ranks first: order (rel 0, rel 1).
    # DCG = 0/log2(2) + 1/log2(3) = 0.6309; IDCG = 1/log2(2) = 1  ->  0.6309.
    got = ndcg_per_query(["a", "a"], [0, 1], [0.5, 0.5], k=10)
    assert got["a"] == pytest.approx(1 / math.log2(3))
    got = ndcg_per_query(["a", "a"], [1, 0], [0.5, 0.5], k=10)
    assert got["a"] == pytest.approx(1.0)


def test_ndcg_leaves_out_queries_without_gain() -> None:
    # Query "z" has only zero labels (ideal DCG 0): left out of the dict and the mean.
    qids = ["a", "a", "z", "z"]
    labels = [2, 0, 0, 0]
    scores = [0.1, 0.9, 0.3, 0.2]
    # "a": DCG = 0 + 2/log2(3); IDCG = 2  ->  1/log2(3)
    assert ndcg_per_query(qids, labels, scores) == {"a": pytest.approx(1 / math.log2(3))}
    assert ndcg_at_k(qids, labels, scores) == pytest.approx(1 / math.log2(3))
    assert math.isnan(ndcg_at_k(["z"], [0], [1.0]))


def test_ndcg_cutoff_ignores_items_below_k() -> None:
    # k=1: only the top item counts. Top has rel 1, ideal top has rel 3  ->  1/3.
    assert ndcg_at_k(["q"] * 3, [1, 3, 0], [0.9, 0.5, 0.1], k=1) == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- pairwise accuracy


def test_pairwise_accuracy_hand_worked_with_tie() -> None:
    labels = [3.0, 2.5, 2.0, 1.0]
    scores = [0.9, 0.9, 0.1, 0.5]
    # Pairs (all differ by >= 0.5):
    #   3.0-2.5 tie in score -> 0.5;  3.0-2.0 right 1;  3.0-1.0 right 1;
    #   2.5-2.0 right 1;  2.5-1.0 right 1;  2.0-1.0 (0.1 < 0.5) wrong 0   ->  4.5 / 6 = 0.75
    assert pairwise_accuracy(["q"] * 4, labels, scores, min_diff=0.5) == pytest.approx(0.75)


def test_pairwise_accuracy_min_diff_home_depot() -> None:
    # 2.33 vs 2.67 differ by 0.34 < 0.5: no pair, so the wrong order there does not count.
    assert math.isnan(pairwise_accuracy(["b", "b"], [2.33, 2.67], [0.9, 0.1], min_diff=0.5))
    # 2.0 vs 2.5 differ by exactly 0.5: a pair, ordered right.
    assert pairwise_accuracy(["c", "c"], [2.0, 2.5], [0.1, 0.9], min_diff=0.5) == 1.0
    assert pairwise_accuracy(["c", "c"], [2.0, 2.5], [0.9, 0.1], min_diff=0.5) == 0.0
    # Together: only c's pair counts  ->  1 / 1.
    got = pairwise_accuracy(["b", "b", "c", "c"], [2.33, 2.67, 2.0, 2.5], [0.9, 0.1, 0.1, 0.9], 0.5)
    assert got == 1.0
    # 1.67 vs 2.33 differ by 0.66 -> a pair; 2.33 vs 2.67 not; 1.67 vs 2.67 a pair.
    # Scores order all three rising  ->  2 / 2 right.
    assert pairwise_accuracy(["q"] * 3, [1.67, 2.33, 2.67], [1, 2, 3], min_diff=0.5) == 1.0
    # ESCI-style min_diff=1: 0 vs 1 counts.
    assert pairwise_accuracy(["q", "q"], [0, 1], [0.2, 0.1], min_diff=1.0) == 0.0


def test_pairwise_accuracy_never_crosses_queries() -> None:
    # Rows interleaved. Within q1: (3 @ 0.0) above (1 @ -1.0) right; within q2: (3 @ 6) above
    # (1 @ 5) right  ->  2 / 2 = 1.0. Cross-query pairs would add q1's 3 @ 0.0 below q2's 1 @ 5
    # (wrong) and q1's 1 @ -1 below q2's 3 @ 6 (right), giving 3 / 4.
    qids = ["q1", "q2", "q1", "q2"]
    labels = [3, 1, 1, 3]
    scores = [0.0, 5.0, -1.0, 6.0]
    assert pairwise_accuracy(qids, labels, scores, min_diff=1.0) == 1.0
    # Integer query ids work the same way.
    assert pairwise_accuracy([1, 2, 1, 2], labels, scores, min_diff=1.0) == 1.0


def _brute_pairwise(qids, labels, scores, min_diff):  # type: ignore[no-untyped-def]
    credit = n = 0.0
    for a, b in itertools.combinations(range(len(qids)), 2):
        if qids[a] != qids[b] or abs(labels[a] - labels[b]) < min_diff - 1e-9:
            continue
        n += 1
        ds, dy = scores[a] - scores[b], labels[a] - labels[b]
        credit += 0.5 if ds == 0 else float(ds * dy > 0)
    return credit / n


@pytest.mark.parametrize("seed", SEEDS)
def test_pairwise_accuracy_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    qids = rng.integers(0, 20, size=n)
    labels = rng.choice([1.0, 1.33, 1.67, 2.0, 2.33, 2.5, 2.67, 3.0], size=n)
    scores = rng.integers(0, 5, size=n).astype(float)  # many ties
    expected = _brute_pairwise(list(qids), list(labels), list(scores), 0.5)
    assert pairwise_accuracy(qids, labels, scores, 0.5) == pytest.approx(expected)


def test_pairwise_accuracy_same_in_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    qids = rng.integers(0, 7, size=120)
    labels = rng.integers(0, 4, size=120).astype(float)
    scores = rng.integers(0, 6, size=120).astype(float)
    whole = pairwise_accuracy(qids, labels, scores, 1.0)
    monkeypatch.setattr(metrics, "_MAX_PAIRS_PER_BLOCK", 7)
    assert pairwise_accuracy(qids, labels, scores, 1.0) == pytest.approx(whole)
    assert whole == pytest.approx(_brute_pairwise(list(qids), list(labels), list(scores), 1.0))


# --------------------------------------------------------------------------- AUC


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_bad_matches_sklearn_and_mann_whitney(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.choice([1.0, 1.33, 1.67, 2.0, 2.33, 2.67, 3.0], size=200)
    scores = labels + rng.normal(0, 1, size=200)
    scores[:20] = np.round(scores[:20])  # some ties
    good = labels > 1.67
    got = roc_auc_bad(labels, scores, bad_threshold=1.67)
    assert got == pytest.approx(roc_auc_score(good, scores))
    pos, neg = scores[good], scores[~good]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert got == pytest.approx(wins / (len(pos) * len(neg)))


def test_roc_auc_bad_threshold_and_single_class() -> None:
    # 1.67 is bad on Home Depot; the score separates perfectly.
    assert roc_auc_bad([1.0, 1.67, 2.0, 3.0], [0.1, 0.2, 0.3, 0.4], 1.67) == 1.0
    # Reversed scores: 0.
    assert roc_auc_bad([1.0, 1.67, 2.0, 3.0], [0.4, 0.3, 0.2, 0.1], 1.67) == 0.0
    assert math.isnan(roc_auc_bad([2.0, 3.0], [0.1, 0.2], 1.67))
    assert math.isnan(roc_auc_bad([0, 0], [0.1, 0.2], 0.0))


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_and_macro_f1_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    true = rng.choice([0, 1, 3], size=150)  # grade 2 never true
    pred = rng.choice([0, 1, 2, 3], size=150, p=[0.4, 0.3, 0.05, 0.25])
    assert accuracy(true, pred) == pytest.approx(accuracy_score(true, pred))
    assert macro_f1(true, pred, n_grades=5) == pytest.approx(
        f1_score(true, pred, average="macro", zero_division=0)
    )


def test_macro_f1_ignores_absent_grades() -> None:
    # Grades present: 0 and 1 (grade 2 absent from both). F1(0) = 2*1/(2+1) = 2/3,
    # F1(1) = 2*1/(1+2) = 2/3  ->  2/3. Averaging in grade 2 as 0 would give 4/9.
    true, pred = [0, 0, 1], [0, 1, 1]
    assert macro_f1(true, pred, n_grades=3) == pytest.approx(2 / 3)
    assert accuracy(true, pred) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        macro_f1([0, 3], [0, 1], n_grades=3)


def test_grades_that_are_not_whole_numbers_are_refused_not_truncated() -> None:
    assert accuracy([0.0, 1.0], [0, 1]) == 1.0  # whole numbers as floats are grades
    for pred in ([0, np.nan], [0, 1.7]):
        with pytest.raises(ValueError, match="grades must be whole numbers"):
            accuracy([0, 1], pred)
        with pytest.raises(ValueError, match="grades must be whole numbers"):
            macro_f1([0, 1], pred, n_grades=3)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_per_grade_precision_recall_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    true = rng.choice([0, 1, 2], size=100)
    pred = rng.choice([0, 1, 3], size=100)
    got = per_grade_precision_recall(true, pred, n_grades=4)
    p, r, f, s = precision_recall_fscore_support(
        true, pred, labels=[0, 1, 2, 3], zero_division=np.nan
    )
    assert sorted(got) == [0, 1, 2, 3]
    for g in range(4):
        np.testing.assert_allclose(
            [got[g]["precision"], got[g]["recall"], got[g]["f1"], got[g]["support"]],
            [p[g], r[g], f[g], s[g]],
            equal_nan=True,
        )
    assert math.isnan(got[2]["precision"])  # 2 never predicted
    assert math.isnan(got[3]["recall"])  # 3 never true


# --------------------------------------------------------------------------- regression


def test_rmse_hand_computed() -> None:
    # errors 0.5, 0, -1  ->  squares 0.25, 0, 1  ->  mean 1.25/3  ->  sqrt = 0.6454972
    assert rmse([1, 2, 3], [1.5, 2, 2]) == pytest.approx(math.sqrt(1.25 / 3))
    assert rmse([1, 2], [1, 2]) == 0.0
    with pytest.raises(ValueError):
        rmse([1, 2], [1])


def test_over_recall_hand_worked() -> None:
    labels = [1.0, 1.33, 1.67, 2.0, 3.0]
    preds = [1.2, 2.0, 1.67, 1.0, 3.0]
    # Bad pairs (label <= 1.67): 1.0, 1.33, 1.67. Their predictions 1.2, 2.0, 1.67:
    # only 2.0 > 1.67  ->  1 / 3. The good pair predicted 1.0 does not matter.
    assert over_recall(labels, preds, 1.67) == pytest.approx(1 / 3)
    # ESCI scale, threshold 0: bad labels 0, 0; predictions 0.0 and 0.4  ->  1 / 2.
    assert over_recall([0, 0, 3], [0.0, 0.4, 0.0], 0.0) == 0.5
    assert math.isnan(over_recall([2.0, 3.0], [1.0, 1.0], 1.67))


# --------------------------------------------------------------------------- calibration


def test_ece_hand_worked() -> None:
    probs = [0.1, 0.1, 0.9, 0.9, 0.75]
    outcomes = [0, 1, 1, 1, 0]
    # 10 bins. Bin 1 holds 0.1, 0.1: |0.5 - 0.1| * 2/5 = 0.16
    #          bin 9 holds 0.9, 0.9: |1.0 - 0.9| * 2/5 = 0.04
    #          bin 7 holds 0.75:    |0.0 - 0.75| * 1/5 = 0.15      ->  ECE = 0.35
    assert expected_calibration_error(probs, outcomes, n_bins=10) == pytest.approx(0.35)
    mean_prob, frac_pos, counts = reliability_curve(probs, outcomes, n_bins=10)
    assert counts.tolist() == [0, 2, 0, 0, 0, 0, 0, 1, 0, 2]
    np.testing.assert_allclose(mean_prob[[1, 7, 9]], [0.1, 0.75, 0.9])
    np.testing.assert_allclose(frac_pos[[1, 7, 9]], [0.5, 0.0, 1.0])
    assert np.isnan(mean_prob[0]) and np.isnan(frac_pos[0])
    # 2 bins: [0, 0.5) holds 0.1, 0.1: |0.5-0.1| * 2/5 = 0.16; [0.5, 1] holds 0.9, 0.9, 0.75:
    # mean p = 2.55/3 = 0.85, mean outcome 2/3: |2/3 - 0.85| * 3/5 = 0.11  ->  0.27
    assert expected_calibration_error(probs, outcomes, n_bins=2) == pytest.approx(0.27)
    summary = reliability_summary(probs, outcomes, n_bins=10)
    assert summary["counts"] == [2, 1, 2] and summary["calibration_error"] == pytest.approx(0.35)


def test_calibration_error_of_nothing_is_undefined_not_perfect() -> None:
    assert np.isnan(expected_calibration_error([], []))
    summary = reliability_summary([], [])
    assert summary["counts"] == [] and np.isnan(summary["calibration_error"])


def test_ece_zero_when_bins_calibrated() -> None:
    probs = [0.25] * 4 + [0.75] * 4 + [1.0] * 2  # 1.0 falls in the last bin
    outcomes = [1, 0, 0, 0, 1, 1, 1, 0, 1, 1]  # 1/4, 3/4, 2/2
    assert expected_calibration_error(probs, outcomes) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        expected_calibration_error([1.2], [1])


# --------------------------------------------------------------------------- bundle


def test_ranking_metrics_uses_scale() -> None:
    qids, labels, scores = _random_run(7)
    scale = SCALES["esci"]
    got = ranking_metrics(qids, labels, scores, scale, k=5)
    assert set(got) == {"pairwise_accuracy", "ndcg@5", "auc"}
    assert got["pairwise_accuracy"] == pairwise_accuracy(qids, labels, scores, 1.0)
    assert got["ndcg@5"] == ndcg_at_k(qids, labels, scores, k=5, gain_offset=0.0)
    assert got["auc"] == roc_auc_bad(labels, scores, 0.0)
    grades = np.minimum(labels, 2)  # 0..2, then on Home Depot's 1..3 scale
    hd = ranking_metrics(qids, grades + 1.0, scores, SCALES["homedepot"])
    assert set(hd) == {"pairwise_accuracy", "ndcg@10", "auc"}
    # Home Depot's gain offset is its low value 1.0, so shifted labels give the same NDCG.
    assert hd["ndcg@10"] == pytest.approx(ndcg_at_k(qids, grades, scores, k=10))
    assert hd["pairwise_accuracy"] == pairwise_accuracy(qids, grades, scores, 0.5)
