"""LREF data selection: the keep rule, head/torso/tail balance, confusion grades, the stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprel.config import load_config
from shoprel.data.schema import SCALES
from shoprel.data.splits import dev_sample
from shoprel.teacher.select import (
    AuxPredictions,
    _warn_if_no_better_than_majority,
    balanced_sample,
    confusion_grades,
    confusion_matrix,
    lref_selection,
    query_buckets,
    run,
    selected,
)
from shoprel.teacher.stage_io import StageData
from shoprel.teacher.train import TeacherTrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def onehot_like(grades: list[int], confidence: list[float], n: int = 3) -> np.ndarray:
    """Rows whose top grade is ``grades[i]`` with probability ``confidence[i]``."""
    rows = np.zeros((len(grades), n))
    for i, (g, c) in enumerate(zip(grades, confidence, strict=True)):
        rows[i] = (1 - c) / (n - 1)
        rows[i, g] = c
    return rows


# p0: IM wrong, CI right (.7), MS not on the label -> rule
# p1: IM wrong, CI right (.6), MS points at the label -> flagged, no rule
# p2: IM right -> no rule; CI .9 on the label
# p3: IM wrong, CI right (.8), MS elsewhere -> rule
# p4: IM wrong, CI wrong (.15 on the label) -> no rule
# p5: IM wrong, CI right (.5), MS elsewhere -> rule
TRUE = np.array([2, 0, 1, 2, 0, 1])
IDS = [f"p{i}" for i in range(6)]
AUX = AuxPredictions(
    im=onehot_like([1, 1, 1, 0, 2, 0], [0.8] * 6),
    ci=onehot_like([2, 0, 1, 2, 2, 1], [0.7, 0.6, 0.9, 0.8, 0.7, 0.5]),
    ms=onehot_like([1, 0, 2, 1, 1, 2], [0.9] * 6),
)


def test_rule_keeps_im_wrong_ci_right_ms_silent_then_fills_by_ci_confidence() -> None:
    kept = lref_selection(IDS, TRUE, AUX, n_keep=4)
    assert kept["pair_id"].tolist() == ["p3", "p0", "p5", "p2"]
    assert kept["reason"].tolist() == ["rule", "rule", "rule", "fill"]
    everything = lref_selection(IDS, TRUE, AUX, n_keep=6)
    assert everything["pair_id"].tolist() == ["p3", "p0", "p5", "p2", "p1", "p4"]


def test_rule_keeping_too_many_keeps_those_ci_is_surest_of() -> None:
    kept = lref_selection(IDS, TRUE, AUX, n_keep=2)
    assert kept["pair_id"].tolist() == ["p3", "p0"]
    assert set(kept["reason"]) == {"rule"}
    with pytest.raises(ValueError, match="differ in length"):
        lref_selection(IDS[:5], TRUE, AUX, n_keep=2)


def test_buckets_by_frequency_or_judged_items() -> None:
    pairs = pd.DataFrame(
        {
            "query_id": ["a"] * 6 + ["b"] * 3 + ["c"] * 2 + ["d"],
            "pair_id": [str(i) for i in range(12)],
        }
    )
    assert query_buckets(pairs).to_dict() == {"a": "head", "b": "torso", "c": "tail", "d": "tail"}
    searched = pairs.assign(
        query_frequency=pairs["query_id"].map({"a": 1, "b": 1, "c": 1, "d": 97})
    )
    buckets = query_buckets(searched)
    assert buckets["d"] == "head" and set(buckets[["a", "b", "c"]]) == {"tail"}


def test_balanced_sample_spreads_over_buckets(demo_data: Path) -> None:
    train = pd.read_parquet(demo_data / "train.parquet")
    bucket = train["query_id"].map(query_buckets(train))
    sample = balanced_sample(train, 300, seed=0)
    counts = sample["query_id"].map(query_buckets(train)).value_counts()
    assert len(sample) == 300 and sample["pair_id"].is_unique
    assert counts.to_dict() == {"head": 100, "torso": 100, "tail": 100}
    assert bucket.value_counts()["tail"] > 100  # a plain sample would not be balanced


def test_confusion_grades_follow_soft_targets_then_im_confusions() -> None:
    true = np.array([1, 1, 0, 2, 1])
    targets = np.array(
        [[0, 0.67, 0.33], [0, 1, 0], [1, 0, 0], [0, 0, 1], [0.2, 0.8, 0]], dtype=float
    )
    im = onehot_like([2, 0, 1, 1, 0], [0.9] * 5)  # IM: grade 1 -> 0 once, -> 2 once
    got = confusion_grades(true, targets, confusion_matrix(true, im, 3))
    assert got.tolist() == [2, 0, 1, 1, 0]
    assert (got != true).all()


def test_random_and_lref_selection_stage(
    demo_data: Path, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    train = pd.read_parquet(demo_data / "train.parquet")
    pool, learn_from = train.head(90), train.iloc[90:190]
    data = StageData(pool, dev_sample(demo_data, 16, 0), SCALES["esci"], demo_data)
    cfg = TeacherTrainConfig(max_dev_pairs=16, select={"method": "random", "frac": 0.2})
    kept = selected(run(cfg, data, tmp_path / "random"), pool)
    assert len(kept) == 18 and set(kept["pair_id"]) <= set(pool["pair_id"])
    select = {"method": "lref", "frac": 0.2, "aux_base": str(tiny_encoder_dir), "aux_frac": 0.3}
    cfg = TeacherTrainConfig(max_dev_pairs=16, select=select)
    out = tmp_path / "lref"
    kept = selected(run(cfg, data._replace(spare=learn_from), out), pool)
    report = json.loads((out / "selection_report.json").read_text())
    assert report["kept"] == len(kept) == 18 and report["aux_pairs"] == 30
    assert report["aux_learn_from"] == "outside the pool"
    for name in ("im", "ci", "ms"):  # the auxiliary models learned pairs outside the pool
        learned = pd.read_parquet(out / "aux" / f"{name}_pairs.parquet")
        assert len(learned) == 30 and set(learned["pair_id"]) <= set(learn_from["pair_id"])
    assert sum(report["grade_mix"]["kept"].values()) == 18
    assert sum(report["kept_by"].values()) == 18
    assert report["rule"]["rule"] <= report["rule"]["im_wrong"]
    for name in ("im", "ci", "ms"):
        assert (out / "aux" / name / "shoprel_cross_encoder.json").is_file()
    ids = pd.read_parquet(out / "selected_pairs.parquet")
    assert set(ids["pair_id"]) == set(kept["pair_id"]) and ids["pair_id"].is_unique
    predictions = pd.read_parquet(out / "predictions.parquet")
    ruled = predictions.loc[predictions["rule"], "pair_id"]
    assert set(ids.loc[ids["reason"] == "rule", "pair_id"]) <= set(ruled)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seconds"] > 0 and set(metrics["dev"]) == {"im", "ci"}


def test_weak_auxiliary_models_are_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="shoprel.teacher.select"):
        _warn_if_no_better_than_majority({"im": 0.46, "ci": 0.52, "majority_grade": 0.46})
    assert "IM no more accurate" in caplog.text and "CI" not in caplog.text.split("accurate")[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="shoprel.teacher.select"):
        _warn_if_no_better_than_majority({"im": 0.5, "ci": 0.52, "majority_grade": 0.46})
    assert caplog.text == ""


def test_stage_config_keys_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "teacher.yaml"
    path.write_text("select:\n  method: lref\n  fracc: 0.1\n")
    with pytest.raises(ValueError, match=r"select: unknown key\(s\) \['fracc'\]"):
        load_config(TeacherTrainConfig, path, {})
    path.write_text("cot:\n  kinds: [ee, xx]\n")
    with pytest.raises(ValueError, match=r"cot\.kinds"):
        load_config(TeacherTrainConfig, path, {})
    path.write_text("cot:\n  kinds: [dr, ee]\n  openai:\n    urll: x\n")
    with pytest.raises(ValueError, match=r"cot.openai: unknown key\(s\) \['urll'\]"):
        load_config(TeacherTrainConfig, path, {})
    path.write_text(
        "select: {method: lref, frac: 0.2}\ncot: {kinds: [dr, ee]}\ndpo: {enabled: true}\n"
    )
    cfg = load_config(TeacherTrainConfig, path, {})
    assert cfg.lref_stages == ["select", "cot", "dpo"] and cfg.cot.kinds == ["ee", "dr"]
    with pytest.raises(ValueError, match=r"dpo\.top_k"):
        TeacherTrainConfig(dpo={"top_k": 1})


def test_a_cross_encoder_near_the_mean_is_read_by_rank_not_by_nearest_grade() -> None:
    """Scores squeezed around the mean (a briefly trained regressor) but ranked right: by
    nearest grade they all say "partial"; by rank they give back the grades they learned."""
    from shoprel.data.schema import SCALES
    from shoprel.teacher.select import by_rank

    hd = SCALES["homedepot"]
    labels = np.array([1.0] * 20 + [2.0] * 40 + [3.0] * 40)
    scores = 2.35 + 0.01 * (labels - 2.0) + np.linspace(0, 0.001, len(labels))  # ranked right
    assert set(hd.nearest_grade(scores)) == {hd.nearest_grade(np.array([2.35]))[0]}
    mapped = by_rank(scores, labels)
    assert (hd.nearest_grade(mapped) == hd.nearest_grade(labels)).mean() >= 0.95
    assert np.array_equal(np.argsort(mapped, kind="stable"), np.argsort(scores, kind="stable"))
