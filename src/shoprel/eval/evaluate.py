"""``shoprel evaluate``: the same metrics for any scorer's scores on a prepared split.

    shoprel evaluate --data run/data --split test --scores run/bm25.test.parquet --out run/bm25.json

A scores file (Parquet, CSV or JSONL) has ``pair_id, score`` and, for models that give one, the
grade distribution as ``p_<grade>`` columns. Ranking metrics (pairwise accuracy, NDCG@10, AUC) use
the score as it is. Metrics on the label scale (RMSE, accuracy, macro-F1, over-recall) use the
expected label of the grade distribution where there is one; otherwise a linear map of the score to
the label scale, fitted on dev scores when given, else cross-fitted over two query-disjoint halves
of the split (no query's map sees its own labels; a split whose queries all fall in one half
is mapped by a line fitted on itself). ECE needs a grade distribution.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.readers import LINE, MALFORMED, DataError, read_records
from shoprel.data.schema import GradeScale
from shoprel.data.splits import read_split
from shoprel.eval import metrics
from shoprel.io import write_json


def read_scores(path: str | Path) -> pd.DataFrame:
    """A scores file (pair_id, score); a row that is malformed or whose score is not a finite
    number is an error naming its line (the row for Parquet): every pair's score counts."""
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else read_records(path)
    for column in ("pair_id", "score"):
        if column not in frame.columns:
            raise DataError(f"{path}: missing column {column!r} (a scores file has pair_id, score)")
    scores = pd.to_numeric(frame["score"], errors="coerce").astype(float)
    malformed = frame[MALFORMED] if MALFORMED in frame.columns else pd.Series(None, frame.index)
    bad = np.flatnonzero(malformed.notna().to_numpy() | ~np.isfinite(scores.to_numpy()))
    if len(bad):
        first = frame.iloc[bad[0]]
        line = first[LINE] if LINE in frame.columns else bad[0] + 1
        problem = malformed.iat[bad[0]]
        if not isinstance(problem, str):
            problem = f"score {str(first['score'])!r} is not a finite number"
        raise DataError(f"{path}:{line}: {problem} ({len(bad)} bad row(s))")
    frame = frame[[c for c in frame.columns if not c.startswith("_")]]
    frame["score"] = scores.to_numpy()
    return frame


def align_scores(pairs: pd.DataFrame, scores: pd.DataFrame, source: str) -> pd.DataFrame:
    """Scores in the order of ``pairs``; missing, unknown or repeated pair ids are an error."""
    repeated = scores["pair_id"][scores["pair_id"].duplicated()]
    missing = pairs["pair_id"][~pairs["pair_id"].isin(scores["pair_id"])]
    unknown = scores["pair_id"][~scores["pair_id"].isin(pairs["pair_id"])]
    for name, ids in (("repeated", repeated), ("missing", missing), ("unknown", unknown)):
        if len(ids):
            raise DataError(
                f"{source}: {len(ids)} {name} pair id(s), e.g. {list(ids[:3])}; "
                f"the scores must cover the split's {len(pairs)} pairs exactly once"
            )
    return scores.set_index("pair_id").loc[pairs["pair_id"]].reset_index()


def grade_probabilities(scores: pd.DataFrame, scale: GradeScale) -> np.ndarray | None:
    columns = [f"p_{grade}" for grade in scale.grades]
    if not all(c in scores.columns for c in columns):
        return None
    return scores[columns].to_numpy(dtype=float)


def fit_linear_map(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept from scores to labels (slope 0 if scores are constant)."""
    if len(scores) == 0:
        return 0.0, float("nan")
    if np.ptp(scores) == 0:
        return 0.0, float(np.mean(labels))
    slope, intercept = np.polyfit(scores, labels, deg=1)
    return float(slope), float(intercept)


def cross_fitted_labels(
    query_ids: np.ndarray, scores: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Each half's scores mapped by the line fitted on the other half (halves split by query)."""
    half = np.array([int(hashlib.md5(str(q).encode()).hexdigest(), 16) % 2 for q in query_ids])
    mapped = np.empty_like(scores, dtype=float)
    for side in (0, 1):
        fit_on = half != side if (half != side).any() else np.ones_like(half, dtype=bool)
        slope, intercept = fit_linear_map(scores[fit_on], labels[fit_on])
        mapped[half == side] = slope * scores[half == side] + intercept
    return mapped


def predicted_labels(
    pairs: pd.DataFrame,
    scores: pd.DataFrame,
    scale: GradeScale,
    dev: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Each pair's predicted label, its grade distribution (if any) and how the label was made.

    The expected label of the grade distribution where the scores have one; otherwise a linear
    map of the score fitted on ``dev`` (pairs, aligned scores) or cross-fitted by query.
    """
    probs = grade_probabilities(scores, scale)
    if probs is not None:
        return probs @ np.asarray(scale.values), probs, "grade distribution"
    raw = scores["score"].to_numpy(dtype=float)
    if dev is not None:
        slope, intercept = fit_linear_map(
            dev[1]["score"].to_numpy(float), dev[0]["label"].to_numpy(float)
        )
        predicted, how = slope * raw + intercept, "linear, fitted on dev"
    else:
        labels = pairs["label"].to_numpy(dtype=float)
        predicted = cross_fitted_labels(pairs["query_id"].to_numpy(), raw, labels)
        how = "linear, cross-fitted by query"
    return np.clip(predicted, scale.low, scale.high), None, how


def evaluate_scores(
    pairs: pd.DataFrame,
    scores: pd.DataFrame,
    scale: GradeScale,
    dev: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """All metrics for scores already aligned with ``pairs`` (see ``align_scores``)."""
    labels = pairs["label"].to_numpy(dtype=float)
    raw = scores["score"].to_numpy(dtype=float)
    query_ids = pairs["query_id"].to_numpy()
    result: dict[str, Any] = {"pairs": len(pairs), "queries": int(pairs["query_id"].nunique())}
    result |= metrics.ranking_metrics(query_ids, labels, raw, scale)
    predicted, probs, result["label_map"] = predicted_labels(pairs, scores, scale, dev)
    if probs is not None:
        predicted_grade = probs.argmax(axis=1)
        good = probs[:, ~scale.is_bad(np.asarray(scale.values))].sum(axis=1)
        good = np.clip(good, 0.0, 1.0)  # float32 grade probabilities may sum to 1 + 1e-7
        result["ece"] = metrics.expected_calibration_error(good, ~scale.is_bad(labels))
    else:
        predicted_grade = scale.nearest_grade(predicted)
        result["ece"] = None
    true_grade = scale.nearest_grade(labels)
    result["rmse"] = metrics.rmse(labels, predicted)
    result["accuracy"] = metrics.accuracy(true_grade, predicted_grade)
    result["macro_f1"] = metrics.macro_f1(true_grade, predicted_grade, scale.n_grades)
    result["over_recall"] = metrics.over_recall(
        labels, np.asarray(scale.values)[predicted_grade], scale.bad_threshold
    )
    return {k: _plain(v) for k, v in result.items()}


def evaluate(
    data_dir: str | Path,
    split: str,
    scores_path: str | Path,
    dev_scores_path: str | Path | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    pairs, scale = read_split(data_dir, split)
    if pairs.empty:
        raise DataError(f"{data_dir}: the {split} split has no pairs to evaluate")
    scores = align_scores(pairs, read_scores(scores_path), str(scores_path))
    dev = None
    if dev_scores_path is not None:
        dev_pairs, _ = read_split(data_dir, "dev")
        if dev_pairs.empty:
            raise DataError(f"{data_dir}: the dev split is empty; evaluate without dev scores")
        dev = (
            dev_pairs,
            align_scores(dev_pairs, read_scores(dev_scores_path), str(dev_scores_path)),
        )
    result = {
        "split": split,
        "scores": str(scores_path),
        **evaluate_scores(pairs, scores, scale, dev),
    }
    if out is not None:
        write_json(result, out)
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return value
