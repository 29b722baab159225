"""Teacher labeling: shards, resume after a real SIGKILL, the Ray Data backend, refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from shoprel.data.readers import DataError
from shoprel.labeling import run as label_run
from shoprel.labeling.run import LabelConfig, actor_resources, label_pairs
from shoprel.labeling.shards import LABELS, shard_path
from shoprel.scoring import load_scorer


@pytest.fixture(scope="module")
def pairs_file(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pairs") / "pairs.parquet"
    pairs = pd.read_parquet(demo_data / "train.parquet").head(600)
    pairs.drop(columns=["label", "target"]).assign(source="bm25").to_parquet(out, index=False)
    return out


@pytest.fixture(scope="module")
def reference(tiny_cross_encoder: Path, pairs_file: Path, tmp_path_factory) -> pd.DataFrame:
    """An uninterrupted local run."""
    out = tmp_path_factory.mktemp("reference")
    summary = label_pairs(tiny_cross_encoder, pairs_file, out, LabelConfig(shard_size=50))
    assert summary["pairs"] == 600 and summary["shards_scored_now"] == 12
    return pd.read_parquet(out / LABELS)


def test_labels_are_the_teachers_scores(
    reference: pd.DataFrame, tiny_cross_encoder: Path, pairs_file: Path
) -> None:
    pairs = pd.read_parquet(pairs_file)
    assert sorted(reference["pair_id"]) == sorted(pairs["pair_id"])
    expected = load_scorer(tiny_cross_encoder).predict(pairs).set_index("pair_id")["score"]
    got = reference.set_index("pair_id")["score"]
    assert got.loc[expected.index].to_numpy() == pytest.approx(expected.to_numpy(), abs=1e-5)
    assert reference["teacher"].str.startswith(tiny_cross_encoder.name).all()
    assert {"query", "title", "source"} <= set(reference.columns)


def _label_command(teacher: Path, pairs: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from shoprel.cli import main; main()",
        "label",
        "--teacher",
        str(teacher),
        "--pairs",
        str(pairs),
        "--out",
        str(out),
        "--shard-size",
        "5",
        *extra,
    ]


def test_sigkill_then_rerun_gives_the_uninterrupted_output(
    reference: pd.DataFrame, tiny_cross_encoder: Path, pairs_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    command = _label_command(tiny_cross_encoder, pairs_file, out)
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not shard_path(out, 3).is_file():
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    shards_at_kill = len(list((out / "shards").glob("shard-*.parquet")))
    assert 4 <= shards_at_kill < 120, "the kill must land in the middle of the job"
    assert not (out / LABELS).exists()
    subprocess.run(command, env=env, check=True, stderr=subprocess.DEVNULL)
    labels = pd.read_parquet(out / LABELS)
    assert not labels["pair_id"].duplicated().any()
    merged = reference.merge(labels, on="pair_id", suffixes=("_ref", "_run"))
    assert len(merged) == len(reference) == len(labels)
    assert merged["score_run"].to_numpy() == pytest.approx(merged["score_ref"], abs=1e-5)


def test_a_different_job_in_the_same_dir_is_refused(
    tiny_cross_encoder: Path, pairs_file: Path, tmp_path: Path
) -> None:
    label_pairs(tiny_cross_encoder, pairs_file, tmp_path, LabelConfig(shard_size=300))
    with pytest.raises(DataError, match="another labeling job"):
        label_pairs(tiny_cross_encoder, pairs_file, tmp_path, LabelConfig(shard_size=100))


def test_new_text_under_the_same_pair_ids_is_another_job(
    tiny_cross_encoder: Path, pairs_file: Path, tmp_path: Path
) -> None:
    pairs, out = pd.read_parquet(pairs_file), tmp_path / "labels"
    pairs.to_parquet(tmp_path / "pairs.parquet", index=False)
    label_pairs(tiny_cross_encoder, tmp_path / "pairs.parquet", out, LabelConfig(shard_size=300))
    pairs["title"] = "area rug " + pairs["title"]  # a new catalog, the same ids, the same file
    pairs.to_parquet(tmp_path / "pairs.parquet", index=False)
    with pytest.raises(DataError, match="another labeling job"):
        label_pairs(
            tiny_cross_encoder, tmp_path / "pairs.parquet", out, LabelConfig(shard_size=300)
        )


def test_repeated_pair_ids_are_refused(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    pairs = pd.DataFrame(
        {"pair_id": ["a/1", "a/1"], "query_id": ["a", "a"], "query": ["q", "q"], "title": ["t"] * 2}
    )
    pairs.to_parquet(tmp_path / "pairs.parquet", index=False)
    with pytest.raises(DataError, match="repeated pair ids"):
        label_pairs(tiny_cross_encoder, tmp_path / "pairs.parquet", tmp_path / "out", LabelConfig())


@pytest.mark.slow
def test_ray_backend_resumes_and_matches_local(
    reference: pd.DataFrame, tiny_cross_encoder: Path, pairs_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ray", reason="needs ray[data]")
    out = tmp_path / "ray"
    label_pairs(tiny_cross_encoder, pairs_file, out, LabelConfig(shard_size=50))
    for index in (0, 5, 11):  # as if a job had died before these shards
        shard_path(out, index).unlink()
    (out / LABELS).unlink()
    cfg = LabelConfig(shard_size=50, ray_address="local", workers=2, cpus_per_worker=1)
    try:
        summary = label_pairs(tiny_cross_encoder, pairs_file, out, cfg)
    finally:
        import ray

        ray.shutdown()
    assert summary["shards_scored_now"] == 3 and summary["backend"] == "ray"
    labels = pd.read_parquet(out / LABELS)
    assert labels["pair_id"].tolist() == reference["pair_id"].tolist()
    assert labels["score"].to_numpy() == pytest.approx(reference["score"].to_numpy(), abs=1e-5)


def _labeler_actor_pids() -> list[int]:
    """PIDs of live Ray actor processes running the ShardLabeler (Ray titles them by class)."""
    import psutil

    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if "ShardLabeler" in " ".join(process.info["cmdline"] or []):
            pids.append(process.info["pid"])
    return pids


@pytest.mark.slow
def test_a_ray_actor_killed_mid_job_is_replaced_and_the_output_is_unchanged(
    reference: pd.DataFrame, tiny_cross_encoder: Path, pairs_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ray", reason="needs ray[data]")
    pytest.importorskip("psutil", reason="finds the actor's process")
    import threading

    out, killed = tmp_path / "ray-killed", {}

    def kill_one_actor_mid_job() -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            written = len(list((out / "shards").glob("shard-*.parquet")))
            pids = _labeler_actor_pids()
            if written >= 3 and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.update(pid=pids[0], shards_written=written)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=kill_one_actor_mid_job, daemon=True)
    watcher.start()
    cfg = LabelConfig(shard_size=5, ray_address="local", workers=2, cpus_per_worker=1)
    try:
        summary = label_pairs(tiny_cross_encoder, pairs_file, out, cfg)
    finally:
        import ray

        ray.shutdown()
    watcher.join(timeout=5)
    assert killed, "no actor was killed: the job ended before the watcher found one"
    assert killed["shards_written"] < 100, "the kill must land in the middle of the job"
    assert summary["pairs"] == 600 and summary["shards_scored_now"] == 120
    labels = pd.read_parquet(out / LABELS)
    assert labels["pair_id"].tolist() == reference["pair_id"].tolist()
    assert labels["score"].to_numpy() == pytest.approx(reference["score"].to_numpy(), abs=1e-5)


@pytest.mark.parametrize(
    ("gpus_here", "workers", "asked", "expected"),
    [
        (0, 2, None, 0.0),  # no GPU: the judges stay on the CPU
        (1, 1, None, 1.0),
        (1, 4, None, 0.25),  # four actors share the one GPU
        (4, 2, None, 1.0),  # a judge runs on one GPU
        (1, 1, 0.0, 0.0),  # kept off the GPU on request
        (0, 1, 1.0, 1.0),  # a cluster's GPUs, where the driver has none
    ],
)
def test_ray_actors_share_out_the_gpus(
    gpus_here: int,
    workers: int,
    asked: float | None,
    expected: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(label_run, "local_gpus", lambda: gpus_here)
    cfg = LabelConfig(workers=workers, cpus_per_worker=1, gpus_per_worker=asked)
    assert actor_resources(cfg) == {"num_cpus": 1, "num_gpus": expected}


def test_label_config_refuses_negative_gpus_and_no_workers() -> None:
    with pytest.raises(ValueError, match="gpus_per_worker"):
        LabelConfig(gpus_per_worker=-1)
    with pytest.raises(ValueError, match="workers"):
        LabelConfig(workers=0)
    with pytest.raises(ValueError, match="shard_size: expected >= 1, got 0"):
        LabelConfig(shard_size=0)


def test_an_empty_pairs_file_is_named(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    columns = {"pair_id": [], "query_id": [], "query": [], "title": []}
    pd.DataFrame(columns, dtype=str).to_parquet(tmp_path / "pairs.parquet", index=False)
    with pytest.raises(DataError, match=r"pairs.parquet: no pairs to label"):
        label_pairs(tiny_cross_encoder, tmp_path / "pairs.parquet", tmp_path / "out", LabelConfig())
