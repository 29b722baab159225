"""Scores cached by model and pairs: a model is scored once, again when it changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shoprel.eval import compare


class CountingScorer:
    calls = 0

    def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        CountingScorer.calls += 1
        return pd.DataFrame({"pair_id": pairs["pair_id"], "score": range(len(pairs))})


def test_a_model_is_scored_once_per_pairs_and_again_once_trained_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def load_scorer(ref: Any) -> CountingScorer:
        return CountingScorer()

    monkeypatch.setattr(compare, "load_scorer", load_scorer)
    model, cache = tmp_path / "model", tmp_path / "cache"
    model.mkdir()
    (model / "model.safetensors").write_text("weights")
    pairs = pd.DataFrame({"pair_id": ["a", "b", "c"]})
    first, speed = compare.model_scores(model, pairs, cache)
    assert CountingScorer.calls == 1 and speed is not None
    again, speed = compare.model_scores(model, pairs, cache)  # a rerun: from the cache
    assert CountingScorer.calls == 1 and speed is None and again.equals(first)
    compare.model_scores(model, pairs.iloc[:2], cache)  # other pairs
    assert CountingScorer.calls == 2
    (model / "model.safetensors").write_text("weights trained again")
    compare.model_scores(model, pairs, cache)
    assert CountingScorer.calls == 3
