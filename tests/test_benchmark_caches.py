"""What the benchmarks keep between runs is used again only for the inputs it was made from."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, ModuleType]]:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setenv("SHOPREL_QUICKSTART_RUN", str(tmp_path / "no-run"))
    for name in ("quickstart_run", "home_depot", "distill_scaling"):
        sys.modules.pop(name, None)
    import distill_scaling
    import home_depot

    yield {"home_depot": home_depot, "distill_scaling": distill_scaling}
    for name in ("quickstart_run", "home_depot", "distill_scaling"):
        sys.modules.pop(name, None)


def fake_export(export: Path, model: Path) -> None:
    export.mkdir(parents=True)
    (export / "model_int8.onnx").write_bytes(b"onnx")
    (export / "shoprel_onnx.json").write_text(json.dumps({"source": {"model": str(model)}}))


def age(path: Path, seconds: int) -> None:
    """Move the times of ``path`` (a file, or each file of a dir) ``seconds`` into the past."""
    for file in [path] if path.is_file() else path.iterdir():
        stamp = file.stat().st_mtime - seconds
        os.utime(file, (stamp, stamp))


def test_an_export_counts_as_the_models_only_until_the_model_changes(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    home_depot = bench["home_depot"]
    model, other = tmp_path / "student", tmp_path / "other"
    for directory in (model, other):
        directory.mkdir()
        (directory / "model.safetensors").write_bytes(b"weights")
        age(directory, 60)
    export = tmp_path / "export"
    fake_export(export, model)
    assert home_depot.exported_from(export, model)
    assert not home_depot.exported_from(export, other)
    (model / "model.safetensors").write_bytes(b"weights trained again")
    assert not home_depot.exported_from(export, model)


def test_an_export_of_another_model_is_refused_not_timed(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    home_depot = bench["home_depot"]
    (tmp_path / "other").mkdir()
    export = tmp_path / "my-export"
    fake_export(export, tmp_path / "other")
    (tmp_path / "student").mkdir()
    with pytest.raises(SystemExit, match=r"was not made from --cross-encoder"):
        home_depot.ensure_export(export, tmp_path / "student", tmp_path / "data")


def test_a_dir_that_is_not_a_finished_preparation_is_refused(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "dev.parquet").write_bytes(b"cut short")  # a prepare killed before card.json
    with pytest.raises(SystemExit, match=r"not a finished `shoprel data prepare` dir"):
        bench["home_depot"].ensure_data(data)


def test_a_student_trained_again_is_scored_again(
    bench: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shoprel.eval.compare as compare

    scored: list[str] = []

    class Fake:
        def __init__(self, path: str) -> None:
            self.weights = (Path(path) / "model.safetensors").read_text()

        def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
            scored.append(self.weights)
            score = np.full(len(pairs), float(len(self.weights)))
            return pd.DataFrame({"pair_id": pairs["pair_id"], "score": score})

    monkeypatch.setattr(compare, "load_scorer", Fake)
    args = argparse.Namespace(out=tmp_path / "bench")
    student = args.out / "students" / "aug-1"
    student.mkdir(parents=True)
    (student / "model.safetensors").write_text("first")
    sample = pd.DataFrame({"pair_id": ["a", "b"], "query_id": ["q", "q"]})
    student_scores = bench["distill_scaling"].student_scores
    assert student_scores("aug-1", args, sample)["score"].tolist() == [5.0, 5.0]
    assert student_scores("aug-1", args, sample)["score"].tolist() == [5.0, 5.0]
    (student / "model.safetensors").write_text("trained again")
    assert student_scores("aug-1", args, sample)["score"].tolist() == [13.0, 13.0]
    assert student_scores("aug-1", args, sample.iloc[:1])["score"].tolist() == [13.0]
    assert scored == ["first", "trained again", "trained again"]
