"""Reading teacher label dirs, sampling augmented pairs by whole query, and the student config."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from shoprel.data.readers import DataError
from shoprel.io import write_parquet
from shoprel.student.data import (
    LABELS_FILE,
    check_heldout,
    read_teacher_labels,
    take_queries,
    training_pairs,
)
from shoprel.student.train import StudentTrainConfig


def test_reads_and_joins_label_dirs(label_dirs: tuple[Path, Path]) -> None:
    labels = read_teacher_labels(label_dirs)
    assert set(labels["source"]) == {"human", "random"}
    assert labels["pair_id"].is_unique and labels["score"].between(0, 3).all()
    assert {"brand", "category", "teacher"} <= set(labels.columns)


def test_missing_file_or_column_names_the_file(
    label_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(DataError, match=f"{tmp_path / 'none' / LABELS_FILE}: no such file"):
        read_teacher_labels([label_dirs[0], tmp_path / "none"])
    frame = pd.read_parquet(label_dirs[1] / LABELS_FILE).drop(columns=["score"])
    write_parquet(frame, tmp_path / "bad" / LABELS_FILE)
    with pytest.raises(DataError, match=rf"{tmp_path / 'bad' / LABELS_FILE}: missing .*'score'"):
        read_teacher_labels([tmp_path / "bad"])
    write_parquet(frame.assign(score="high"), tmp_path / "text" / LABELS_FILE)
    with pytest.raises(DataError, match=r"labels.parquet: \d+ score\(s\) are not finite"):
        read_teacher_labels([tmp_path / "text"])
    whole = pd.read_parquet(label_dirs[1] / LABELS_FILE)
    whole.loc[2, "query"] = None
    write_parquet(whole, tmp_path / "noquery" / LABELS_FILE)
    with pytest.raises(DataError, match=r"labels.parquet, row 3: 1 pair\(s\) without a query"):
        read_teacher_labels([tmp_path / "noquery"])


def test_repeated_pair_ids_keep_the_first_dir(
    label_dirs: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = pd.read_parquet(label_dirs[1] / LABELS_FILE).head(10)
    write_parquet(first.assign(score=9.0), tmp_path / "again" / LABELS_FILE)
    with caplog.at_level(logging.INFO):
        labels = read_teacher_labels([label_dirs[1], tmp_path / "again"])
    assert len(labels) == len(pd.read_parquet(label_dirs[1] / LABELS_FILE))
    assert not (labels["score"] == 9.0).any()
    assert "10 repeated pair id(s) dropped" in caplog.text


@pytest.mark.parametrize("frac", [0.0, 0.25, 0.5, 1.0])
def test_augment_frac_keeps_whole_queries(label_dirs: tuple[Path, Path], frac: float) -> None:
    labels = read_teacher_labels(label_dirs)
    augmented = labels[labels["source"] != "human"]
    pairs = training_pairs(labels, frac, max_human_pairs=0, seed=3)
    kept = pairs[pairs["source"] != "human"]
    assert (pairs["source"] == "human").sum() == (labels["source"] == "human").sum()
    sizes = augmented.groupby("query_id").size()
    kept_sizes = kept.groupby("query_id").size()
    assert (kept_sizes == sizes[kept_sizes.index]).all(), "a query's augmented pairs were split"
    assert frac * len(augmented) <= len(kept) < frac * len(augmented) + sizes.max() + (frac == 0)


def test_smaller_shares_are_subsets(label_dirs: tuple[Path, Path]) -> None:
    augmented = read_teacher_labels(label_dirs[1:])
    quarter, half = (set(take_queries(augmented, n, seed=1)["pair_id"]) for n in (300, 600))
    assert quarter < half
    assert quarter != set(take_queries(augmented, 300, seed=2)["pair_id"])


def test_a_dev_query_in_the_labels_is_an_error(
    demo_data: Path, label_dirs: tuple[Path, Path]
) -> None:
    labels = read_teacher_labels(label_dirs)
    dev = pd.read_parquet(demo_data / "dev.parquet")
    check_heldout(labels, dev, "demo")
    leaked = pd.concat([labels, dev.head(3).assign(score=1.0)])
    with pytest.raises(DataError, match=r"3 pair.* have queries of the dev/test split of demo"):
        check_heldout(leaked, dev, "demo")


def test_config_picks_the_loss_and_checks_it() -> None:
    assert StudentTrainConfig().loss == "labels"
    assert StudentTrainConfig(labels="run/labels").loss == "margin-mse"
    assert StudentTrainConfig(labels=["a"], loss="mse").activation == "identity"
    assert StudentTrainConfig().activation == "sigmoid"
    with pytest.raises(ValueError, match="learns teacher scores: expected label dirs"):
        StudentTrainConfig(loss="margin-mse")
    with pytest.raises(ValueError, match="drop --labels or choose --loss margin-mse or mse"):
        StudentTrainConfig(loss="labels", labels=["a"])
    with pytest.raises(ValueError, match=r"augment_frac: expected a share in \[0, 1\], got 1.5"):
        StudentTrainConfig(labels=["a"], augment_frac=1.5)
    with pytest.raises(ValueError, match="loss: expected one of"):
        StudentTrainConfig(labels=["a"], loss="listnet")


@pytest.mark.parametrize("loss", ["margin-mse", "mse"])
def test_every_loss_learns_from_the_same_train_queries(
    label_dirs: tuple[Path, Path], demo_data: Path, loss: str
) -> None:
    """The label-only student and a distilled one with the same ``max_train_pairs`` and seed see
    the same whole train queries, so that comparing them compares the targets only."""
    from shoprel.student.train import student_pairs

    dirs = [str(d) for d in label_dirs]
    human, _ = student_pairs(StudentTrainConfig(loss="labels", max_train_pairs=400), demo_data)
    cfg = StudentTrainConfig(loss=loss, labels=dirs, augment_frac=0.0, max_train_pairs=400)
    distilled, _ = student_pairs(cfg, demo_data)
    assert set(human["query_id"]) == set(distilled["query_id"])
    assert len(human) >= 400 and human.groupby("query_id").size().sum() == len(human)
