"""Scores people can threshold: P(relevant) and the expected label fitted on dev, stored in the
export, applied by the scorer, the reranker and the service."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from shoprel.data.schema import get_scale
from shoprel.serve.app import ServeSettings, create_app
from shoprel.serve.calibration import (
    Calibration,
    check_calibration,
    fit_calibration,
    unit_reading,
)
from shoprel.serve.onnx_scorer import OnnxScorer
from shoprel.serve.reranker import Reranker

HOME_DEPOT = get_scale("homedepot")


def true_relevance(scores: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-3.0 * (scores - 2.0)))


def sample(seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Scores on 1-3 whose P(label > 1.67) is a known curve; 600 queries of 10 pairs. ``shift``
    moves the scores off that level (as margins-only training does) without changing the order."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(1.0, 3.0, 6000)
    relevant = rng.uniform(size=6000) < true_relevance(scores)
    labels = np.where(relevant, rng.choice([2.33, 2.67, 3.0], 6000), rng.choice([1.0, 1.33], 6000))
    return pd.DataFrame(
        {"query_id": np.repeat(np.arange(600), 10), "score": scores + shift, "label": labels}
    )


@pytest.fixture(scope="module")
def dev() -> pd.DataFrame:
    return sample(seed=0)


@pytest.fixture(scope="module")
def fitted(dev: pd.DataFrame) -> Calibration:
    return fit_calibration(dev["score"], dev["label"], dev["query_id"], HOME_DEPOT)


def test_relevance_follows_the_true_curve(fitted: Calibration) -> None:
    grid = np.linspace(1.2, 2.8, 50)
    relevance = fitted.relevance(grid)
    assert np.abs(relevance - true_relevance(grid)).max() < 0.08
    assert (np.diff(relevance) >= -1e-12).all() and 0 <= relevance.min() <= relevance.max() <= 1
    expected = fitted.expected_label(grid)
    assert (np.diff(expected) >= -1e-12).all() and 1.0 <= expected.min() <= expected.max() <= 3.0
    truth = true_relevance(grid) * np.mean([2.33, 2.67, 3.0]) + (1 - true_relevance(grid)) * 1.165
    assert np.abs(expected - truth).max() < 0.15


def test_the_kept_method_has_the_lower_out_of_fold_ece(fitted: Calibration) -> None:
    ece = fitted.dev["out_of_fold_ece"]
    assert set(ece) == {"isotonic", "platt"} and ece[fitted.method] == min(ece.values())
    assert fitted.dev["ece"] < 0.05


def test_thresholds_reach_their_precision_on_dev(fitted: Calibration, dev: pd.DataFrame) -> None:
    relevant = dev["label"].to_numpy() > HOME_DEPOT.bad_threshold
    relevance = fitted.relevance(dev["score"])
    for target in (0.9, 0.95):
        found = fitted.thresholds[f"precision_{target}"]
        kept = relevance >= found["relevance"]
        assert relevant[kept].mean() >= target
        assert found["recall"] == pytest.approx(relevant[kept].sum() / relevant.sum(), abs=1e-4)
        lower = relevance >= np.nextafter(found["relevance"], 0) - 0.02
        assert relevant[lower].mean() < target or lower.sum() == kept.sum()  # the lowest such cut
    assert (
        fitted.thresholds["precision_0.95"]["recall"]
        <= fitted.thresholds["precision_0.9"]["recall"]
    )


def test_a_stored_calibration_reads_back_the_same(fitted: Calibration) -> None:
    again = Calibration.from_dict(json.loads(json.dumps(fitted.to_dict())))
    grid = np.linspace(0.0, 4.0, 33)
    np.testing.assert_array_equal(again.relevance(grid), fitted.relevance(grid))
    np.testing.assert_array_equal(again.expected_label(grid), fitted.expected_label(grid))


def test_on_held_out_pairs_a_score_off_its_level_is_calibrated_and_the_cuts_hold() -> None:
    dev, held_out = sample(seed=1, shift=-1.2), sample(seed=2, shift=-1.2)
    calibration = fit_calibration(dev["score"], dev["label"], dev["query_id"], HOME_DEPOT)
    check = check_calibration(calibration, held_out["score"], held_out["label"], HOME_DEPOT)
    assert check["pairs"] == 6000 and 0.3 < check["relevant_share"] < 0.7
    assert check["before"]["calibration_error"] > 0.2  # read as 0-1 on the scale, far off
    assert check["after"]["calibration_error"] < 0.03
    assert sum(check["after"]["counts"]) == 6000
    for name, cut in check["thresholds"].items():  # the dev cuts reach their precision here too
        assert cut["precision"] >= float(name.split("_")[1]) - 0.03
        assert cut["relevance"] == calibration.thresholds[name]["relevance"]


def test_the_uncalibrated_reading_follows_how_the_model_scores() -> None:
    scores = np.array([-0.3, 0.4, 1.0, 2.0, 3.5])
    # a distilled student learned the teacher's score on 0-1; a labels model scores on 1-3
    assert unit_reading(scores, HOME_DEPOT, "identity").tolist() == [0.0, 0.4, 1.0, 1.0, 1.0]
    assert unit_reading(scores, HOME_DEPOT, "sigmoid").tolist() == [0.0, 0.0, 0.0, 0.5, 1.0]


def test_dev_on_one_side_of_the_cut_is_refused() -> None:
    with pytest.raises(ValueError, match="all on one side"):
        fit_calibration(np.arange(4.0), np.full(4, 3.0), np.arange(4), HOME_DEPOT)


def test_dev_of_one_query_is_refused_with_a_reason() -> None:
    labels = np.array([1.0, 3.0, 1.0, 3.0])
    with pytest.raises(ValueError, match="from one query"):
        fit_calibration(np.arange(4.0), labels, np.zeros(4), HOME_DEPOT)


def test_the_export_applies_its_calibration(calibrated_export: Path, demo_data: Path) -> None:
    pairs = pd.read_parquet(demo_data / "test.parquet").head(200)
    scores = OnnxScorer.load(calibrated_export, threads=1).predict(pairs)
    order = np.argsort(scores["score"].to_numpy(), kind="stable")
    assert (np.diff(scores["relevance"].to_numpy()[order]) >= -1e-12).all()
    assert scores["relevance"].between(0, 1).all()
    assert scores["expected_label"].between(0, 3).all()  # ESCI's 0-3


def test_rerank_drops_items_below_min_relevance(
    calibrated_export: Path, onnx_export: Path, items: list[dict]
) -> None:
    reranker = Reranker.load(calibrated_export, threads=1)
    every = reranker.rerank("cordless drill", items)
    assert all(hit.relevance is not None for hit in every)
    cut = sorted(hit.relevance for hit in every)[len(every) // 2]
    kept = reranker.rerank("cordless drill", items, min_relevance=cut)
    assert [h.id for h in kept] == [h.id for h in every if h.relevance >= cut]
    assert 0 < len(kept) < len(every) or len({h.relevance for h in every}) == 1
    with pytest.raises(ValueError, match="no calibration"):
        Reranker.load(onnx_export, threads=1).rerank("drill", items, min_relevance=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reranker.rerank("drill", items, min_relevance=1.5)


def ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service did not load its model"
        time.sleep(0.05)


def test_the_service_returns_relevance_and_filters_by_it(
    calibrated_export: Path, onnx_export: Path, items: list[dict]
) -> None:
    body = {"query": "cordless drill", "items": items}
    with TestClient(create_app(ServeSettings(model=calibrated_export, threads=1))) as client:
        ready(client)
        results = client.post("/v1/rerank", json=body).json()["results"]
        relevance = [r["relevance"] for r in results]
        assert all(0 <= p <= 1 for p in relevance)
        cut = sorted(relevance)[len(relevance) // 2]
        kept = client.post("/v1/rerank", json=body | {"min_relevance": cut}).json()["results"]
        assert [r["id"] for r in kept] == [r["id"] for r in results if r["relevance"] >= cut]
        bad = client.post("/v1/rerank", json=body | {"min_relevance": 2})
        assert bad.status_code == 422 and "min_relevance" in bad.json()["error"]["message"]
    with TestClient(create_app(ServeSettings(model=onnx_export, threads=1))) as client:
        ready(client)
        results = client.post("/v1/rerank", json=body).json()["results"]
        assert all(r["relevance"] is None for r in results)
        refused = client.post("/v1/rerank", json=body | {"min_relevance": 0.5})
        assert refused.status_code == 422
        assert "min_relevance" in refused.json()["error"]["message"]
        assert "no calibration" in refused.json()["error"]["message"]


def test_shoprel_score_writes_the_relevance(
    calibrated_export: Path, demo_data: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from shoprel.cli import app

    out = tmp_path / "test.parquet"
    args = ["score", "--model", str(calibrated_export), "--data", str(demo_data), "--out", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    scores = pd.read_parquet(out)
    calibration = Reranker.load(calibrated_export).calibration
    np.testing.assert_allclose(scores["relevance"], calibration.relevance(scores["score"]))
    assert len(scores) == len(pd.read_parquet(demo_data / "test.parquet"))
