"""A finished run built by hand: the demo data, known scores per model, tiny models to search."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprel.data.schema import get_scale
from shoprel.eval.metrics import ranking_metrics
from shoprel.serve.export import ExportConfig, export_onnx

HOSTILE = "<script>alert(1)</script> & <b>bold</b> drill"


def reversed_query(test: pd.DataFrame) -> str:
    """The first test query with items of at least three grades: the student ranks it backwards."""
    spread = test.groupby("query_id")["label"].nunique()
    return str(spread[spread >= 3].index[0])


def write_run(out: Path, data: Path, scores: dict[str, np.ndarray]) -> Path:
    """``out`` as the pipeline leaves it: data, scores/*.test.parquet, eval/metrics.json."""
    shutil.copytree(data, out / "data", dirs_exist_ok=True)
    test = pd.read_parquet(out / "data" / "test.parquet")
    (out / "scores").mkdir(parents=True, exist_ok=True)
    files, metrics = {}, {}
    for name, values in scores.items():
        file = f"scores/{name.replace(' ', '_')}.test.parquet"
        pd.DataFrame({"pair_id": test["pair_id"], "score": values}).to_parquet(out / file)
        files[name] = file
        metrics[name] = ranking_metrics(test["query_id"], test["label"], values, get_scale("esci"))
    (out / "eval").mkdir(exist_ok=True)
    evaluation = {"split": "test", "models": metrics, "scores": files}
    (out / "eval" / "metrics.json").write_text(json.dumps(evaluation))
    return out


def model_scores(test: pd.DataFrame, seed: int = 0) -> dict[str, np.ndarray]:
    """teacher: the labels plus a little noise; student: the same, except one query backwards;
    bm25: noise; the label-only student: the labels plus more noise."""
    rng = np.random.default_rng(seed)
    labels = test["label"].to_numpy(float)
    teacher = labels + rng.normal(0, 0.3, len(test))
    student = teacher + rng.normal(0, 0.05, len(test))
    backwards = (test["query_id"] == reversed_query(test)).to_numpy()
    student[backwards] = -teacher[backwards]
    noise = rng.normal(size=len(test))
    labels_only = labels + rng.normal(0, 1.0, len(test))  # not featured on the query page
    return {"teacher": teacher, "student (distilled)": student, "bm25": noise,
            "student (labels only)": labels_only}  # fmt: skip


@pytest.fixture(scope="module")
def hostile_data(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data with HTML in the first test product's title."""
    out = tmp_path_factory.mktemp("hostile-data")
    shutil.copytree(demo_data, out, dirs_exist_ok=True)
    test = pd.read_parquet(out / "test.parquet")
    test.loc[0, "title"] = HOSTILE
    test.to_parquet(out / "test.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def explore_run(
    hostile_data: Path, tiny_cross_encoder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("explore-run")
    test = pd.read_parquet(hostile_data / "test.parquet")
    write_run(out, hostile_data, model_scores(test))
    export_onnx(tiny_cross_encoder, out / "export", ExportConfig(data=out / "data"))  # calibrated
    shutil.copytree(tiny_cross_encoder, out / "teacher" / "ensemble")
    return out


@pytest.fixture(scope="session")
def live_app(
    uvicorn_thread: Callable[..., AbstractContextManager[str]],
) -> Callable[[object], AbstractContextManager[str]]:
    """``with live_app(app) as url``: the app on uvicorn in a thread on a free loopback port."""
    import uvicorn

    def serve(app: object) -> AbstractContextManager[str]:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        return uvicorn_thread(uvicorn.Server(config))

    return serve


@pytest.fixture(scope="module")
def backwards(explore_run: Path) -> str:
    """The test query the student ranks backwards."""
    return reversed_query(pd.read_parquet(explore_run / "data" / "test.parquet"))


@pytest.fixture
def run_writer() -> Callable[[Path, Path, dict[str, np.ndarray]], Path]:
    return write_run


@pytest.fixture
def scores_of() -> Callable[[pd.DataFrame], dict[str, np.ndarray]]:
    return model_scores


@pytest.fixture
def hostile_title() -> str:
    return HOSTILE
