"""Several models scored and evaluated on one split, each model scoring each pair once.

Scores are cached under a cache dir by model (resolved dir or alias, and the names, sizes and
times of its files: a model trained again is scored again) and by the pairs scored; an ensemble is
combined from its members' cached scores instead of scoring its members again. A run cut short
keeps what it scored.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from shoprel.data.schema import GradeScale
from shoprel.eval.evaluate import align_scores, evaluate_scores
from shoprel.io import read_json, write_parquet
from shoprel.scoring import load_scorer
from shoprel.teacher.ensemble import META_FILE as ENSEMBLE_META
from shoprel.teacher.ensemble import combine, member_ref, scores_key


def cache_path(model: str | Path, pairs: pd.DataFrame, cache: Path) -> Path:
    return cache / f"{scores_key(model, pairs)}.parquet"


def model_scores(
    model: str | Path, pairs: pd.DataFrame, cache: Path
) -> tuple[pd.DataFrame, float | None]:
    """Scores of one model on ``pairs`` (cached) and its scoring pairs/s (None when cached)."""
    ref = member_ref(str(model))
    cached = cache_path(model, pairs, cache)
    if cached.is_file():
        return pd.read_parquet(cached), None
    if (Path(ref) / ENSEMBLE_META).is_file():
        meta = read_json(Path(ref) / ENSEMBLE_META)
        member_scores = {
            name: align_scores(pairs, model_scores(path, pairs, cache)[0], path)["score"].to_numpy()
            for name, path in meta["members"].items()
        }
        score = combine(member_scores, meta["weights"], meta["intercept"], meta["scale"])
        frame = pd.DataFrame({"pair_id": pairs["pair_id"].to_numpy(), "score": score})
        write_parquet(frame, cached)
        return frame, None
    scorer = load_scorer(ref)
    started = time.perf_counter()  # scoring alone, not loading
    frame = scorer.predict(pairs, progress=True)
    speed = len(pairs) / (time.perf_counter() - started)
    write_parquet(frame, cached)
    return frame, speed


def training_facts(model: str | Path) -> dict[str, Any]:
    """Training pairs and seconds from a saved model's meta file, where it records them."""
    for meta in sorted(Path(member_ref(str(model))).glob("shoprel_*.json")):
        train = read_json(meta).get("train", {})
        if train:
            return {"train_pairs": train.get("train_pairs"), "train_s": train.get("seconds")}
    return {}


def compare_models(
    models: dict[str, str], pairs: pd.DataFrame, scale: GradeScale, cache: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, pd.DataFrame]]:
    """Metrics and aligned scores of each model on ``pairs`` (label maps cross-fitted)."""
    metrics, scores = {}, {}
    for name, model in models.items():
        frame, speed = model_scores(model, pairs, cache)
        scores[name] = align_scores(pairs, frame, f"{name} ({model})")
        metrics[name] = evaluate_scores(pairs, scores[name], scale)
        metrics[name] |= training_facts(model) | {"score_pairs_per_s": speed}
    return metrics, scores
