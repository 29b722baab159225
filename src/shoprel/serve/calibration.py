"""Scores people can threshold: the student's score mapped to P(relevant) and to the expected label.

Fitted on dev when a student is exported with ``--data`` and stored in the export's meta, so
``Reranker``, ``shoprel score`` and the service all apply the same map:

- **P(relevant)**, relevant meaning a label above the scale's bad cut (Home Depot: label > 1.67;
  graded scales: above "irrelevant"). Isotonic regression and Platt scaling are both fitted; the
  one with the lower expected calibration error *out of fold* on dev (5 folds of whole queries)
  is kept, then fitted on all of dev.
- **the expected label**: isotonic regression of the label on the score, within the scale.
- **thresholds**: the lowest relevance at which the dev pairs above it are "relevant" with
  precision 0.9 and 0.95 (none where dev never gets there), with the recall each keeps.

:func:`check_calibration` says how the map holds on pairs it was not fitted on (the pipeline
checks it on test): ECE and reliability before and after, and the thresholds' precision there.

Both maps rise with the score (a model whose scores fall with relevance gets the base rate), are
stored as points or two numbers, and are applied with numpy alone (isotonic: linear
interpolation, flat beyond the ends).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from shoprel.data.schema import GradeScale
from shoprel.eval.metrics import expected_calibration_error, reliability_summary

METHODS = ("isotonic", "platt")
CHECK_FILE = "calibration_test.json"  # check_calibration on test, beside a pipeline's export
PRECISIONS = (0.9, 0.95)
FOLDS = 5


@dataclass(frozen=True)
class Calibration:
    method: str  # "isotonic" (points x, y) or "platt" (a, b: sigmoid(a * score + b))
    relevant: dict[str, Any]
    expected: dict[str, list[float]]  # points x, y of the expected label
    thresholds: dict[str, dict[str, float] | None]  # "precision_0.9": {relevance, recall}
    dev: dict[str, Any]  # pairs, queries, out-of-fold ECE per method, share relevant

    def relevance(self, scores: np.ndarray) -> np.ndarray:
        """P(relevant) of each raw score."""
        return _apply(self.method, self.relevant, np.asarray(scores, dtype=float))

    def expected_label(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype=float), self.expected["x"], self.expected["y"])

    def summary(self) -> str:
        cuts = [
            f"{name.replace('_', ' ')} at relevance >= {cut['relevance']:.3f} "
            f"(recall {cut['recall']})"
            for name, cut in self.thresholds.items()
            if cut is not None
        ]
        return (
            f"calibrated on {self.dev['pairs']} dev pairs: {self.method}, out-of-fold ECE "
            f"{self.dev['out_of_fold_ece']}; {'; '.join(cuts) or 'no precision target reached'}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        if data.get("method") not in METHODS:
            raise ValueError(f"calibration: method {data.get('method')!r} is not one of {METHODS}")
        return cls(
            **{key: data[key] for key in ("method", "relevant", "expected", "thresholds", "dev")}
        )


def fit_calibration(
    scores: np.ndarray, labels: np.ndarray, query_ids: np.ndarray, scale: GradeScale
) -> Calibration:
    """The calibration of ``scores`` against dev ``labels`` (see the module's docstring)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    relevant = ~scale.is_bad(labels)
    if relevant.all() or not relevant.any():
        raise ValueError(
            f"calibration: the {len(labels)} dev pairs are all on one side of the scale's bad "
            f"cut ({scale.bad_threshold}); P(relevant) cannot be fitted"
        )
    if len(np.unique(query_ids)) < 2:
        raise ValueError(
            "calibration: the dev pairs come from one query; choosing the method out of fold "
            "needs two or more (give more calibration pairs)"
        )
    ece = {m: _out_of_fold_ece(m, scores, relevant, np.asarray(query_ids)) for m in METHODS}
    method = min(METHODS, key=lambda m: (ece[m], m))
    params = _fit(method, scores, relevant.astype(float))
    probs = _apply(method, params, scores)
    return Calibration(
        method=method,
        relevant=params,
        expected=_isotonic(scores, labels, scale.low, scale.high),
        thresholds={f"precision_{p}": _threshold(probs, relevant, p) for p in PRECISIONS},
        dev={
            "pairs": len(scores),
            "queries": len(np.unique(query_ids)),
            "relevant_share": round(float(relevant.mean()), 4),
            "out_of_fold_ece": {m: round(v, 5) for m, v in ece.items()},
            "ece": round(expected_calibration_error(probs, relevant), 5),
        },
    )


def check_calibration(
    calibration: Calibration,
    scores: np.ndarray,
    labels: np.ndarray,
    scale: GradeScale,
    activation: str = "sigmoid",
) -> dict[str, Any]:
    """P(relevant) on held-out pairs, before and after ``calibration``: reliability bins and ECE,
    and the precision and recall the dev thresholds reach there. "Before" is the score read on
    [0, 1] as a user would without the calibration (:func:`unit_reading`)."""
    scores, relevant = np.asarray(scores, dtype=float), ~scale.is_bad(np.asarray(labels, float))
    before = unit_reading(scores, scale, activation)
    after = calibration.relevance(scores)
    cuts = {
        name: _held_out_cut(after, relevant, cut["relevance"])
        for name, cut in calibration.thresholds.items()
        if cut is not None
    }
    return {
        "pairs": len(scores),
        "relevant_share": round(float(relevant.mean()), 4),
        "before": reliability_summary(before, relevant),
        "after": reliability_summary(after, relevant),
        "thresholds": cuts,
    }


def unit_reading(scores: np.ndarray, scale: GradeScale, activation: str) -> np.ndarray:
    """The raw score on [0, 1]: a ``sigmoid`` model's score is on the label scale, mapped linearly;
    an ``identity`` one (a distilled student) learned the teacher's score already mapped to [0, 1]
    and is clipped there."""
    if activation == "identity":
        return np.clip(scores, 0.0, 1.0)
    return np.clip((scores - scale.low) / (scale.high - scale.low), 0.0, 1.0)


def _held_out_cut(probs: np.ndarray, relevant: np.ndarray, cut: float) -> dict[str, float]:
    kept = probs >= cut
    precision = float(relevant[kept].mean()) if kept.any() else float("nan")
    recall = float(relevant[kept].sum() / max(relevant.sum(), 1))
    return {"relevance": cut, "precision": round(precision, 4), "recall": round(recall, 4)}


def _out_of_fold_ece(
    method: str, scores: np.ndarray, relevant: np.ndarray, groups: np.ndarray
) -> float:
    from sklearn.model_selection import GroupKFold

    folds = min(FOLDS, len(np.unique(groups)))
    probs = np.empty(len(scores))
    for train, held in GroupKFold(folds).split(scores, relevant, groups):
        if relevant[train].all() or not relevant[train].any():
            probs[held] = relevant[train].mean()
            continue
        probs[held] = _apply(
            method, _fit(method, scores[train], relevant[train].astype(float)), scores[held]
        )
    return expected_calibration_error(probs, relevant)


def _fit(method: str, scores: np.ndarray, outcomes: np.ndarray) -> dict[str, Any]:
    if method == "isotonic":
        return _isotonic(scores, outcomes, 0.0, 1.0)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6).fit(scores[:, None], outcomes.astype(int))
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    if a <= 0:  # scores that do not rise with relevance: P(relevant) is the base rate
        share = float(np.clip(outcomes.mean(), 1e-6, 1 - 1e-6))
        a, b = 0.0, float(np.log(share / (1 - share)))
    return {"a": a, "b": b}


def _apply(method: str, params: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    if method == "isotonic":
        return np.interp(scores, params["x"], params["y"])
    return 1.0 / (1.0 + np.exp(-(params["a"] * scores + params["b"])))


def _isotonic(
    scores: np.ndarray, targets: np.ndarray, low: float, high: float
) -> dict[str, list[float]]:
    """The increasing step fit of ``targets`` on ``scores`` as interpolation points."""
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=low, y_max=high, out_of_bounds="clip").fit(scores, targets)
    return {
        "x": [float(v) for v in model.X_thresholds_],
        "y": [float(v) for v in model.y_thresholds_],
    }


def _threshold(
    probs: np.ndarray, relevant: np.ndarray, precision: float
) -> dict[str, float] | None:
    """The lowest relevance whose pairs at or above it reach ``precision``; None if none does."""
    order = np.argsort(-probs, kind="stable")
    hits = np.cumsum(relevant[order])
    kept = np.arange(1, len(order) + 1)
    last_of_value = np.r_[probs[order][1:] != probs[order][:-1], True]  # cut between values only
    ok = (hits / kept >= precision) & last_of_value
    if not ok.any():
        return None
    cut = int(np.flatnonzero(ok)[-1])
    return {
        "relevance": float(probs[order][cut]),  # exact: a rounded cut would move pairs
        "precision": round(float(hits[cut] / kept[cut]), 4),
        "recall": round(float(hits[cut] / relevant.sum()), 4),
    }
