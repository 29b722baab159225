"""The whole pipeline on the demo shop with tiny models, and its report in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprel.pipeline.config import PipelineConfig
from shoprel.pipeline.runner import run_pipeline
from shoprel.pipeline.stages import STAGES, evaluation_models
from shoprel.student.data import take_queries
from shoprel.teacher.config import CotConfig, DpoConfig, SelectConfig


@pytest.fixture(scope="module")
def tiny_config(tiny_base: Path, tiny_encoder_dir: Path, tiny_bi_encoder: Path) -> PipelineConfig:
    cfg = PipelineConfig(name="tiny")
    cfg.baselines = ["bm25"]
    cfg.teacher.judge.base = str(tiny_base)
    cfg.teacher.judge.max_train_pairs = 32
    cfg.teacher.judge.max_dev_pairs = 0
    cfg.teacher.judge.peft = {"r": 4}
    cfg.teacher.judge.select = SelectConfig(method="lref", frac=0.5, aux_frac=0.4, aux_max_pairs=16)
    cfg.teacher.judge.cot = CotConfig(
        kinds=["ee", "ra", "dr"], max_pairs=8, eval_pairs=0, max_rationale_tokens=16
    )
    cfg.teacher.judge.dpo = DpoConfig(enabled=True, holdout_frac=0.25, max_pool_pairs=16, top_k=4)
    cfg.teacher.cross_encoders = [str(tiny_encoder_dir)]
    cfg.teacher.cross_encoder.max_train_pairs = 64
    cfg.teacher.cross_encoder.max_dev_pairs = 50
    cfg.teacher.bi_encoders = [str(tiny_bi_encoder)]
    cfg.teacher.label_with_judge = False
    cfg.augment.encoder = str(tiny_bi_encoder)
    cfg.augment.max_queries = 20
    cfg.augment.synthetic_queries = 10
    cfg.label.shard_size = 500
    cfg.student.model.base = str(tiny_encoder_dir)
    cfg.student.model.max_train_pairs = 200
    cfg.student.model.max_dev_pairs = 100
    cfg.student.model.learning_rate = 1e-3
    cfg.student.curve_fracs = [0.5]
    cfg.export.force = True  # a random tiny model need not survive int8; real students must
    cfg.latency_items = [5, 10]
    return cfg


@pytest.fixture(scope="module")
def tiny_run(
    tiny_config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    records = run_pipeline(tiny_config, out, STAGES)
    return out, records


def test_every_stage_ran(tiny_run: tuple[Path, dict]) -> None:
    out, records = tiny_run
    assert [name for name in records] == [s.name for s in STAGES]
    assert not any(r["skipped"] for r in records.values())
    teacher = records["teacher"]["result"]
    assert teacher["labeler"] != teacher["teacher"]  # the judge was left out of the labeler
    train = pd.read_parquet(out / "data" / "train.parquet")
    students_train = take_queries(train, 200, 0)  # student.model.max_train_pairs, seed
    labeled_train = pd.read_parquet(out / "labels-train" / "labels.parquet")
    assert sorted(labeled_train["pair_id"]) == sorted(students_train["pair_id"])
    assert len(labeled_train) < len(train)  # only what the students learn from is labeled
    labels = pd.read_parquet(out / "labels-augment" / "labels.parquet")
    pairs = pd.read_parquet(out / "augment" / "pairs.parquet")
    assert sorted(labels["pair_id"]) == sorted(pairs["pair_id"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"bm25", "teacher", "teacher member: judge"} <= set(metrics)
    lref = {f"teacher member: judge after {stage}" for stage in ("sft", "cot")}
    assert lref <= set(metrics)  # the judge after each LREF stage; the last is the judge
    assert metrics["teacher member: judge after sft"] != metrics["teacher member: judge"]
    students = {"student (distilled)", "student (labels only)", "student int8 (ONNX)"}
    students.add("student (50% of augmented pairs)")  # curve_fracs [0.5]
    assert students <= set(metrics)
    curve = json.loads((out / "eval" / "data_size.json").read_text())
    assert [p["augmented_pairs"] for p in curve["points"]] == sorted(
        p["augmented_pairs"] for p in curve["points"]
    )
    assert len(curve["points"]) == 2 and curve["points"][0]["augmented_pairs"] > 0
    assert {"teacher", "label_only"} <= set(curve)
    latency = json.loads((out / "export" / "latency.json").read_text())
    assert set(latency) == {"torch (sentence-transformers)", "ONNX fp32", "ONNX int8"}
    assert all(ms > 0 for by_size in latency.values() for ms in by_size.values())
    check = json.loads((out / "export" / "calibration_test.json").read_text())
    test = pd.read_parquet(out / "data" / "test.parquet")
    assert check["pairs"] == len(test) and set(check["thresholds"]) <= {
        "precision_0.9",
        "precision_0.95",
    }
    assert "stage report: done" in (out / "log.txt").read_text()


def test_evaluate_can_leave_the_earlier_judges_out(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    every = evaluation_models(out)
    final_only = evaluation_models(out, judge_stages=False)
    earlier = {f"teacher member: judge after {stage}" for stage in ("sft", "cot")}
    assert set(every) - set(final_only) == earlier
    assert final_only["teacher member: judge"] == str(out / "teacher" / "judge")
    assert {"teacher", "student (distilled)"} <= set(final_only)


def test_report_holds_the_table_and_the_plots(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    page = (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    for name in metrics:
        assert f"<td>{name}</td>" in page
    card = json.loads((out / "data" / "card.json").read_text())
    splits = page[page.index('<table id="splits">') :]
    splits = splits[: splits.index("</table>")]
    for split, facts in card["splits"].items():  # a row per split, its pair count beside it
        assert f"<td>{split}</td><td>{facts['pairs']:,}</td>" in splits
    # reliability, scores and confusion of teacher and student, two data-size plots, the
    # calibration check, latency
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 9
    check = json.loads((out / "export" / "calibration_test.json").read_text())
    ece = [check[when]["calibration_error"] for when in ("before", "after")]
    assert f"ECE {ece[0]:.3f} before, {ece[1]:.3f} after calibration" in page
    assert "http://" not in page and "https://" not in page  # opens offline


def test_report_renders_in_headless_chromium(tiny_run: tuple[Path, dict], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    out, _ = tiny_run
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access"]
    url = (out / "report.html").as_uri()
    dom = subprocess.run(
        [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    rows = re.findall(r"<tr>\s*<td>", dom.split('id="metrics"')[1].split("</table>")[0])
    assert len(rows) == len(json.loads((out / "metrics.json").read_text()))
    assert dom.count("<figure") >= 3
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,2400", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 2000 and np.std(pixels) > 0.05  # drawn, not a blank page


def test_an_int8_export_that_fails_the_gate_leaves_the_fp32_export(
    tiny_run: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from shoprel.pipeline import stages
    from shoprel.serve import export

    out = tmp_path / "run"
    shutil.copytree(tiny_run[0], out)

    def failing_gate(*args, **kwargs):
        raise export.GateError("int8 fails the accuracy gate (Spearman 0.9 < 0.99)")

    monkeypatch.setattr(export, "choose_int8", failing_gate)
    cfg = PipelineConfig(name="tiny")
    cfg.export = replace(cfg.export, int8=True, force=False)
    cfg.latency_items = [5]
    result = stages.run_export(cfg, out)
    assert result["default"] == "model.onnx" and "Spearman 0.9 < 0.99" in result["int8_gate_failed"]
    assert not (out / "export" / "model_int8.onnx").exists()
    assert set(result["p50_ms"]) == {"torch (sentence-transformers)", "ONNX fp32"}


def numbers(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Every number in a nested metrics dict, by its dotted key."""
    found = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            found |= numbers(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[f"{prefix}{key}"] = float(value)
    return found


def quality(metrics: dict) -> dict[str, float]:
    """The numbers of ``metrics`` that do not measure time (``*_s``, ``*per_s``, ``*_ms``)."""
    timed = ("_s", "per_s", "_ms", "seconds")
    return {k: v for k, v in numbers(metrics).items() if not k.split(".")[-1].endswith(timed)}


@pytest.mark.slow
def test_a_pipeline_killed_three_times_ends_as_the_uninterrupted_run(
    tiny_config: PipelineConfig, tiny_run: tuple[Path, dict], tmp_path: Path
) -> None:
    """SIGKILL inside three seeded stages, each run a resume of the last; the end is the same
    run as the one never stopped."""
    import sys
    import time

    from shoprel.pipeline.config import config_yaml

    reference, records = tiny_run
    config = tmp_path / "tiny.yaml"
    config.write_text(config_yaml(tiny_config))
    out = tmp_path / "killed"
    shoprel = str(Path(sys.executable).with_name("shoprel"))
    command = [shoprel, "pipeline", "--config", str(config), "--out", str(out)]
    names = [stage.name for stage in STAGES]
    longest = sorted(names[1:], key=lambda n: records[n]["seconds"])[-3:]  # room to be killed in
    targets = sorted(longest, key=names.index)
    rng = np.random.default_rng(0)
    killed_in = []
    for target in targets:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = out / "stages" / f"{names[names.index(target) - 1]}.json"
        deadline = time.monotonic() + 600
        while not before.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # early in the stage: a run faster than the reference one (less load) still stops inside it
        time.sleep(rng.uniform(0.1, 0.3) * records[target]["seconds"])
        if process.poll() is None:
            process.kill()
            process.wait()
            done = {p.stem for p in (out / "stages").glob("*.json")}
            killed_in.append(next(n for n in names if n not in done))
    seconds = {n: records[n]["seconds"] for n in names}
    assert killed_in == targets, (killed_in, seconds)  # killed inside each target stage
    finished = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    want = quality(json.loads((reference / "metrics.json").read_text()))
    got = quality(json.loads((out / "metrics.json").read_text()))
    assert set(got) == set(want)
    differ = {k: (want[k], got[k]) for k in want if abs(want[k] - got[k]) > 1e-3}
    assert not differ, sorted(differ.items())  # tolerance 1e-3 on every metric of every model
    for stage in ("augment", "labels-train", "labels-augment"):
        for name in ("pairs.parquet", "labels.parquet"):
            if (reference / stage / name).is_file():
                a, b = (  # "teacher" names the labeler by its dir, which differs by run
                    pd.read_parquet(run / stage / name).drop(columns="teacher", errors="ignore")
                    for run in (reference, out)
                )
                pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-4)
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial")]
    assert not leftovers, leftovers  # no half-written file stayed behind
