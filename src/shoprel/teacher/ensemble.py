"""``shoprel teacher ensemble``: several scorers combined by weights fitted on dev.

    shoprel teacher ensemble --data run/data --out run/teacher-ensemble \\
        --member llm=run/teacher --member mpnet=run/ce-mpnet --member minilm=run/ce-minilm

Each member (an LLM judge, a cross-encoder trained on the labels, or a zero-shot bi-encoder
such as ``minilm-l6``) scores the dev split; the ensemble's score is the least-squares fit of the
dev labels on the members' scores (intercept + Σ wᵢ·sᵢ), clipped to the label scale. A member
that gives every dev pair the same score gets weight 0, with a warning: it is collinear with the
intercept, and least squares would give it an arbitrary (often huge) weight. Member dev scores
are kept in ``OUT/dev_scores`` so that a rerun with the same members does not score again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.schema import get_scale
from shoprel.data.splits import read_split
from shoprel.eval.evaluate import align_scores, evaluate_scores
from shoprel.io import atomic_path, read_json, write_json, write_parquet
from shoprel.scoring import ENSEMBLE_META as META_FILE
from shoprel.scoring import Scorer, load_scorer

logger = logging.getLogger(__name__)


def is_constant(scores: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """Per column of ``scores``: whether it varies by less than ``tolerance`` of its size."""
    return scores.std(axis=0) <= tolerance * (1.0 + np.abs(scores.mean(axis=0)))


def fit_weights(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares weights and intercept of ``labels`` on the columns of ``scores``;
    a constant column gets weight 0."""
    varies = ~is_constant(scores)
    design = np.column_stack([scores[:, varies], np.ones(len(scores))])
    solution, *_ = np.linalg.lstsq(design, labels, rcond=None)
    weights = np.zeros(scores.shape[1])
    weights[varies] = solution[:-1]
    return weights, float(solution[-1])


def combine(
    member_scores: dict[str, np.ndarray], weights: dict[str, float], intercept: float, scale: str
) -> np.ndarray:
    """The ensemble's score: intercept + Σ wᵢ·sᵢ, clipped to the label scale."""
    total = intercept + sum(weights[name] * scores for name, scores in member_scores.items())
    grades = get_scale(scale)
    return np.clip(total, grades.low, grades.high)


class EnsembleScorer(Scorer):
    def __init__(
        self, members: dict[str, Scorer], weights: dict[str, float], intercept: float, scale: str
    ) -> None:
        self.members, self.weights, self.intercept = members, weights, intercept
        self.scale = get_scale(scale)

    @classmethod
    def load(cls, directory: str | Path, **options: Any) -> EnsembleScorer:
        meta = read_json(Path(directory) / META_FILE)
        members = {name: load_scorer(path, **options) for name, path in meta["members"].items()}
        return cls(members, meta["weights"], meta["intercept"], meta["scale"])

    def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        member_scores = {
            name: member.predict(pairs, progress=progress)["score"].to_numpy()
            for name, member in self.members.items()
        }
        score = combine(member_scores, self.weights, self.intercept, self.scale.name)
        return pd.DataFrame({"pair_id": pairs["pair_id"].to_numpy(), "score": score})


def member_ref(path: str) -> str:
    """An existing dir as an absolute path; a model alias (``minilm-l6``) as it is."""
    return str(Path(path).resolve()) if Path(path).exists() else path


def member_dev_scores(name: str, path: str, dev: pd.DataFrame, out: Path) -> np.ndarray:
    """The member's dev scores, cached by :func:`scores_key`."""
    cached = out / "dev_scores" / f"{name}.parquet"
    stamp = out / "dev_scores" / f"{name}.source"
    source = scores_key(path, dev)
    if cached.is_file() and stamp.is_file() and stamp.read_text() == source:
        frame = pd.read_parquet(cached)
    else:
        frame = load_scorer(path).predict(dev, progress=True)
        write_parquet(frame, cached)
        with atomic_path(stamp) as tmp:
            tmp.write_text(source)
    return align_scores(dev, frame, str(cached))["score"].to_numpy()


def scores_key(model: str | Path, pairs: pd.DataFrame) -> str:
    """Which model scored which pairs, for caching its scores: the resolved dir (or alias), the
    names, sizes and times of the dir's files (a model trained again is scored again) and the
    pair ids."""
    ref = member_ref(str(model))
    directory = Path(ref)
    files = sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []
    stats = [(p.name, p.stat()) for p in files]
    stamp = [ref, *((name, st.st_size, st.st_mtime_ns) for name, st in stats)]
    key = json.dumps(stamp) + "\n".join(pairs["pair_id"].astype(str))
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def fit_ensemble(data_dir: str | Path, members: dict[str, str], out: str | Path) -> dict[str, Any]:
    """Score dev with every member, fit the weights, save the ensemble; returns its report."""
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {sorted(members)}")
    out = Path(out)
    dev, scale = read_split(data_dir, "dev")
    columns = {name: member_dev_scores(name, path, dev, out) for name, path in members.items()}
    labels = dev["label"].to_numpy(dtype=float)
    matrix = np.column_stack(list(columns.values()))
    for name, constant in zip(columns, is_constant(matrix), strict=True):
        if constant:
            logger.warning(
                "ensemble member %s gives every dev pair the score %.4g; it gets weight 0",
                name,
                columns[name][0],
            )
    weights, intercept = fit_weights(matrix, labels)
    report: dict[str, Any] = {"dev": {}}
    for name, scores in columns.items():
        frame = pd.DataFrame({"pair_id": dev["pair_id"], "score": scores})
        report["dev"][name] = evaluate_scores(dev, frame, scale)
    named_weights = dict(zip(members, weights.tolist(), strict=True))
    combined = combine(columns, named_weights, intercept, scale.name)
    report["dev"]["ensemble (in-sample)"] = evaluate_scores(
        dev, pd.DataFrame({"pair_id": dev["pair_id"], "score": combined}), scale
    )
    meta = {
        "members": {k: member_ref(v) for k, v in members.items()},
        "weights": named_weights,
        "intercept": intercept,
        "scale": scale.name,
    }
    write_json(report, out / "dev_report.json")
    write_json(meta, out / META_FILE)
    return meta | report
