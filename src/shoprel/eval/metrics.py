"""Evaluation metrics: the one implementation every stage, benchmark and report uses.

All functions take array-likes of equal length, one entry per (query, product) pair. Labels are
on the dataset's own scale (see :class:`~shoprel.data.schema.GradeScale`); grades are integer
indices ``0 .. n_grades - 1``. Metrics that are undefined on the given data return ``nan``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score

from shoprel.data.schema import GradeScale

EPS = 1e-9
"""Slack for comparing labels with thresholds, so that 0.5 and 1.67 on float labels count."""

_MAX_PAIRS_PER_BLOCK = 4_000_000

__all__ = [
    "accuracy",
    "expected_calibration_error",
    "macro_f1",
    "ndcg_at_k",
    "ndcg_per_query",
    "over_recall",
    "pairwise_accuracy",
    "per_grade_precision_recall",
    "ranking_metrics",
    "reliability_curve",
    "reliability_summary",
    "rmse",
    "roc_auc_bad",
]


# --------------------------------------------------------------------------- helpers


def _floats(*arrays: ArrayLike, finite: bool = True) -> list[np.ndarray]:
    """1-d float arrays of one common length; ``ValueError`` on a mismatch or non-finite value."""
    out = [np.asarray(a, dtype=float).reshape(-1) for a in arrays]
    if len({len(a) for a in out}) > 1:
        raise ValueError(f"inputs differ in length: {[len(a) for a in out]}")
    if finite and not all(np.isfinite(a).all() for a in out):
        raise ValueError("inputs contain NaN or infinite values")
    return out


def _ints(*arrays: ArrayLike, n_grades: int | None = None) -> list[np.ndarray]:
    """1-d integer grade arrays of one common length, checked against ``[0, n_grades)``; a grade
    that is not a whole number (NaN, 1.7) is an error, not truncated."""
    out = [np.asarray(a).reshape(-1) for a in arrays]
    if len({len(a) for a in out}) > 1:
        raise ValueError(f"inputs differ in length: {[len(a) for a in out]}")
    for a in out:
        if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):  # False where NaN
            bad = a[~(a == np.round(a))][:3]
            raise ValueError(f"grades must be whole numbers, got {bad.tolist()}")
    out = [a.astype(np.int64) for a in out]
    if n_grades is not None and any(a.size and (a.min() < 0 or a.max() >= n_grades) for a in out):
        raise ValueError(f"grades must lie in [0, {n_grades})")
    return out


def _query_codes(query_ids: ArrayLike, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct query ids (sorted) and each row's index into them."""
    qids = np.asarray(query_ids).reshape(-1)
    if len(qids) != n:
        raise ValueError(f"query_ids has {len(qids)} entries, expected {n}")
    uniques, codes = np.unique(qids, return_inverse=True)
    return uniques, codes.reshape(-1)


def _groups(sorted_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and size of each run of equal codes (codes already sorted)."""
    n = len(sorted_codes)
    is_start = np.ones(n, dtype=bool)
    is_start[1:] = sorted_codes[1:] != sorted_codes[:-1]
    starts = np.flatnonzero(is_start)
    return starts, np.diff(np.r_[starts, n])


def _rank_in_group(sorted_codes: np.ndarray) -> np.ndarray:
    """0-based position of each row within its run of equal codes (codes already sorted)."""
    starts, sizes = _groups(sorted_codes)
    return np.arange(len(sorted_codes)) - np.repeat(starts, sizes)


def _pair_blocks(sorted_codes: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Index arrays ``(i, j)``, ``i < j``, of all row pairs within a group, in bounded blocks."""
    n = len(sorted_codes)
    if n < 2:
        return
    starts, sizes = _groups(sorted_codes)
    partners = np.repeat(starts + sizes, sizes) - np.arange(n) - 1
    cum = np.cumsum(partners)
    cuts = np.searchsorted(cum, np.arange(_MAX_PAIRS_PER_BLOCK, cum[-1], _MAX_PAIRS_PER_BLOCK))
    edges = np.unique(np.r_[0, cuts + 1, n])
    for lo, hi in pairwise(edges):
        counts = partners[lo:hi]
        i = np.repeat(np.arange(lo, hi), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        yield i, i + 1 + (np.arange(len(i)) - first)


# --------------------------------------------------------------------------- regression


def rmse(labels: ArrayLike, preds: ArrayLike) -> float:
    """Root mean squared error of predictions against labels; ``nan`` on empty input."""
    y, p = _floats(labels, preds)
    return float(np.sqrt(np.mean((y - p) ** 2))) if len(y) else float("nan")


# --------------------------------------------------------------------------- ranking


def pairwise_accuracy(
    query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, min_diff: float
) -> float:
    """Share of within-query pairs with labels ``min_diff`` or more apart that scores order right.

    A pair counts when ``|label_a - label_b| >= min_diff - 1e-9`` (so 2.0 vs 2.5 counts at
    ``min_diff=0.5`` and 2.33 vs 2.67 does not). A tie in scores earns 0.5. Pairs never cross
    queries. ``nan`` when no pair qualifies.
    """
    if min_diff <= 0:
        raise ValueError(f"min_diff must be > 0, got {min_diff}")
    y, s = _floats(labels, scores)
    _, codes = _query_codes(query_ids, len(y))
    order = np.argsort(codes, kind="stable")
    y, s = y[order], s[order]
    credit, n_pairs = 0.0, 0
    for i, j in _pair_blocks(codes[order]):
        dy = y[i] - y[j]
        keep = np.abs(dy) >= min_diff - EPS
        dy, ds = dy[keep], s[i][keep] - s[j][keep]
        credit += float(np.sum(np.where(ds == 0, 0.5, (dy * ds) > 0)))
        n_pairs += int(keep.sum())
    return credit / n_pairs if n_pairs else float("nan")


def _ndcg_by_query(
    query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, k: int, gain_offset: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct query ids, their NDCG@k, and which of them have a positive ideal DCG."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y, s = _floats(labels, scores)
    uniques, codes = _query_codes(query_ids, len(y))
    gains = y - gain_offset
    rows = np.arange(len(y))
    by_score = np.lexsort((rows, -s, codes))  # score descending, earlier row first on ties
    by_label = np.lexsort((rows, -gains, codes))
    ranks = _rank_in_group(codes[by_score])  # same group layout under both orders
    discount = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    dcg = np.bincount(codes[by_score], gains[by_score] * discount, minlength=len(uniques))
    idcg = np.bincount(codes[by_label], gains[by_label] * discount, minlength=len(uniques))
    valid = idcg > 0
    ndcg = np.divide(dcg, idcg, out=np.full(len(uniques), np.nan), where=valid)
    return uniques, ndcg, valid


def ndcg_per_query(
    query_ids: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike,
    k: int = 10,
    gain_offset: float = 0.0,
) -> dict[str, float]:
    """NDCG@k of each query (keys ``str(query_id)``), leaving out queries whose ideal DCG is 0.

    Gain is ``label - gain_offset`` (linear, as trec_eval's ``ndcg_cut``), the item at 1-based
    rank ``r`` is discounted by ``log2(r + 1)``. Ties in score are broken by input order: the
    earlier row ranks higher (trec_eval instead breaks them by document id).
    """
    uniques, ndcg, valid = _ndcg_by_query(query_ids, labels, scores, k, gain_offset)
    return {str(q): float(v) for q, v, ok in zip(uniques, ndcg, valid, strict=True) if ok}


def ndcg_at_k(
    query_ids: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike,
    k: int = 10,
    gain_offset: float = 0.0,
) -> float:
    """Mean :func:`ndcg_per_query` over queries with a positive ideal DCG; ``nan`` if none."""
    _, ndcg, valid = _ndcg_by_query(query_ids, labels, scores, k, gain_offset)
    return float(ndcg[valid].mean()) if valid.any() else float("nan")


def roc_auc_bad(labels: ArrayLike, scores: ArrayLike, bad_threshold: float) -> float:
    """ROC-AUC of scores separating good (label > threshold, positives) from bad pairs.

    Higher score means *good*. ``nan`` when only one class is present.
    """
    y, s = _floats(labels, scores)
    good = y > bad_threshold + EPS
    if good.all() or not good.any():
        return float("nan")
    return float(roc_auc_score(good, s))


def ranking_metrics(
    query_ids: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike,
    scale: GradeScale,
    k: int = 10,
) -> dict[str, float]:
    """Pairwise accuracy, NDCG@k (gain ``label - scale.low``) and bad-vs-rest AUC for a scale."""
    return {
        "pairwise_accuracy": pairwise_accuracy(query_ids, labels, scores, scale.pair_min_diff),
        f"ndcg@{k}": ndcg_at_k(query_ids, labels, scores, k=k, gain_offset=scale.low),
        "auc": roc_auc_bad(labels, scores, scale.bad_threshold),
    }


# --------------------------------------------------------------------------- classification


def accuracy(true_grades: ArrayLike, pred_grades: ArrayLike) -> float:
    """Share of exact grade matches; ``nan`` on empty input."""
    t, p = _ints(true_grades, pred_grades)
    return float(np.mean(t == p)) if len(t) else float("nan")


def _confusion_counts(
    true: ArrayLike, pred: ArrayLike, n_grades: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, predicted counts and true counts per grade."""
    t, p = _ints(true, pred, n_grades=n_grades)
    tp = np.bincount(t[t == p], minlength=n_grades).astype(float)
    n_pred = np.bincount(p, minlength=n_grades).astype(float)
    return tp, n_pred, np.bincount(t, minlength=n_grades).astype(float)


def macro_f1(true_grades: ArrayLike, pred_grades: ArrayLike, n_grades: int) -> float:
    """Unweighted mean F1 over the grades present in ``true`` or ``pred``.

    Same as scikit-learn's ``f1_score(average="macro")`` with its default ``labels=None``; a
    present grade that is never predicted correctly contributes 0. ``nan`` on empty input.
    """
    tp, n_pred, n_true = _confusion_counts(true_grades, pred_grades, n_grades)
    present = (n_pred + n_true) > 0
    if not present.any():
        return float("nan")
    f1 = 2 * tp[present] / (n_pred[present] + n_true[present])
    return float(f1.mean())


def per_grade_precision_recall(
    true_grades: ArrayLike, pred_grades: ArrayLike, n_grades: int
) -> dict[int, dict[str, float]]:
    """``{grade: {"precision", "recall", "f1", "support"}}`` for every grade ``0..n_grades-1``.

    Precision is ``nan`` for a grade never predicted, recall ``nan`` for a grade never true,
    F1 ``nan`` when both are.
    """
    tp, n_pred, n_true = _confusion_counts(true_grades, pred_grades, n_grades)
    out: dict[int, dict[str, float]] = {}
    for g in range(n_grades):
        both = n_pred[g] + n_true[g]
        out[g] = {
            "precision": tp[g] / n_pred[g] if n_pred[g] else float("nan"),
            "recall": tp[g] / n_true[g] if n_true[g] else float("nan"),
            "f1": 2 * tp[g] / both if both else float("nan"),
            "support": float(n_true[g]),
        }
    return out


def over_recall(labels: ArrayLike, preds: ArrayLike, bad_threshold: float) -> float:
    """Share of bad pairs (label <= threshold) predicted good (prediction > threshold).

    Both sides use a 1e-9 slack, as :meth:`GradeScale.is_bad`. ``nan`` when no pair is bad.
    """
    y, p = _floats(labels, preds)
    bad = y <= bad_threshold + EPS
    if not bad.any():
        return float("nan")
    return float(np.mean(p[bad] > bad_threshold + EPS))


# --------------------------------------------------------------------------- calibration


def _calibration_bins(
    probs: ArrayLike, outcomes: ArrayLike, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin over [0, 1]: count, sum of probabilities, sum of outcomes.

    Bin ``b`` holds ``b/n <= p < (b+1)/n``; the last bin also holds ``p == 1``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p, o = _floats(probs, outcomes)
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must lie in [0, 1]")
    idx = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(float)
    return counts, np.bincount(idx, p, n_bins), np.bincount(idx, o, n_bins)


def expected_calibration_error(probs: ArrayLike, outcomes: ArrayLike, n_bins: int = 10) -> float:
    """Binary ECE: ``sum_b (n_b / n) * |mean(outcome_b) - mean(prob_b)|``; ``nan`` if empty."""
    counts, p_sum, o_sum = _calibration_bins(probs, outcomes, n_bins)
    n = counts.sum()
    return float(np.abs(o_sum - p_sum).sum() / n) if n else float("nan")


def reliability_curve(
    probs: ArrayLike, outcomes: ArrayLike, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted probability, observed positive rate and count of each bin.

    All three have ``n_bins`` entries; empty bins have ``nan`` means and count 0 (plot the
    first two against each other where the count is positive).
    """
    counts, p_sum, o_sum = _calibration_bins(probs, outcomes, n_bins)
    nonempty = counts > 0
    mean_prob = np.divide(p_sum, counts, out=np.full(n_bins, np.nan), where=nonempty)
    frac_pos = np.divide(o_sum, counts, out=np.full(n_bins, np.nan), where=nonempty)
    return mean_prob, frac_pos, counts.astype(np.int64)


def reliability_summary(
    predicted: ArrayLike, observed: ArrayLike, n_bins: int = 10
) -> dict[str, Any]:
    """The non-empty bins of :func:`reliability_curve` as lists (for JSON and plots), with the
    count-weighted gap between the two (for 0/1 outcomes: the ECE; ``nan`` if empty)."""
    mean_pred, mean_obs, counts = reliability_curve(predicted, observed, n_bins)
    keep = counts > 0
    gap = np.abs(mean_pred[keep] - mean_obs[keep]) * counts[keep]
    error = gap.sum() / counts.sum() if counts.sum() else float("nan")
    return {
        "predicted": mean_pred[keep].round(4).tolist(),
        "observed": mean_obs[keep].round(4).tolist(),
        "counts": counts[keep].tolist(),
        "calibration_error": round(float(error), 4),
    }
