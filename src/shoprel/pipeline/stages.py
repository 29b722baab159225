"""The pipeline's stages, each calling what its own CLI command calls.

Layout of a run dir: ``data/`` (prepare), ``scores/`` (baselines and models on dev and test),
``teacher/`` (judge, cross-encoder members, ensembles), ``augment/``, ``labels-train/`` and
``labels-augment/`` (teacher labels), ``student*/`` (cross-encoders), ``export/`` (ONNX and
latency), ``eval/`` and ``metrics.json``, ``report.html``, ``stages/`` (records), ``log.txt``.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from shoprel.io import files_digest, read_json, trained_with, write_json, write_parquet
from shoprel.labeling.shards import LABELS
from shoprel.pipeline.config import PipelineConfig
from shoprel.pipeline.runner import Stage

logger = logging.getLogger(__name__)
INPUTS_FILE = "pipeline_inputs.json"  # the inputs a cross-encoder dir was trained on
DISTILLED = "student (distilled)"
LABEL_ONLY = "student (labels only)"


def stage_result(out: Path, name: str) -> dict[str, Any]:
    """The result an earlier stage recorded."""
    return read_json(out / "stages" / f"{name}.json")["result"]


def run_prepare(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    from shoprel.data.prepare import prepare

    card = prepare(cfg.data, out / "data")
    return {k: card[k] for k in ("pairs", "queries", "products", "rows_rejected")}


def run_baselines(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    from shoprel.eval.baselines import run_baseline

    files = {}
    for name in cfg.baselines:
        for split in ("dev", "test"):
            path = out / "scores" / f"{name}.{split}.parquet"
            run_baseline(name, out / "data", split, path)
            files[f"{name}.{split}"] = str(path)
    return files


def run_teacher(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    """Train the judge and the cross-encoder members; fit the ensembles that use them."""
    from shoprel.teacher.ensemble import fit_ensemble

    stage = cfg.teacher
    members: dict[str, str] = {}
    if stage.train_judge:
        members["judge"] = _judge(stage.judge, out, out / "teacher" / "judge")
    for base in stage.cross_encoders:
        ce_cfg = replace(stage.cross_encoder, base=base, loss="labels")
        name = f"ce-{Path(base).name}"
        members[name] = _cross_encoder(ce_cfg, out, out / "teacher" / name)
    members |= {f"cosine-{Path(b).name}": b for b in stage.bi_encoders}
    if not members:
        raise ValueError("teacher: no member (train_judge is false and no encoder is listed)")
    teacher = _combine(members, out, "ensemble", fit_ensemble)
    labeler = teacher
    if not stage.label_with_judge and "judge" in members:
        others = {k: v for k, v in members.items() if k != "judge"}
        labeler = _combine(others, out, "labeler", fit_ensemble)
    return {"members": members, "teacher": teacher, "labeler": labeler}


def _judge(judge_cfg: Any, out: Path, model_dir: Path) -> str:
    """Train the judge, or reuse what a stopped run finished with the same settings on the same
    data: each stage decides for itself (``shoprel teacher train --resume``)."""
    from shoprel.teacher.train import train_teacher

    return str(train_teacher(judge_cfg, out / "data", model_dir, resume=True))


def _cross_encoder(ce_cfg: Any, out: Path, model_dir: Path) -> str:
    """Train a cross-encoder, or reuse the one a stopped run finished with the same settings on
    the same data and labels, or continue its checkpoints."""
    from shoprel.student.train import train_or_reuse

    labels = [Path(directory) / LABELS for directory in ce_cfg.labels]  # not their run report
    keep_if_same_inputs(model_dir, [out / "data", *labels])
    return str(train_or_reuse(ce_cfg, out / "data", model_dir))


def keep_if_same_inputs(model_dir: Path, inputs: list[Path]) -> None:
    """Remove ``model_dir`` where it was trained, or begun, on other inputs (or on inputs it does
    not record), so that nothing of another split or labeler is reused; then record ``inputs``."""
    digest, stamp = files_digest(inputs), model_dir / INPUTS_FILE
    if model_dir.exists() and not (stamp.is_file() and stamp.read_text() == digest):
        logger.info("%s was trained on other inputs: training it again", model_dir)
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)


def _combine(members: dict[str, str], out: Path, name: str, fit: Any) -> str:
    if len(members) == 1:
        return next(iter(members.values()))
    fit(out / "data", members, out / "teacher" / name)
    return str(out / "teacher" / name)


def run_augment(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    from shoprel.augment.candidates import augment

    report = augment(cfg.augment, out / "data", out / "augment", None)
    return {k: v for k, v in report.items() if k != "config"}


def run_label(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    """The labeler scores the augmented pairs and the labeled train pairs."""
    from shoprel.labeling.run import label_pairs

    labeler = stage_result(out, "teacher")["labeler"]
    jobs = {
        "labels-augment": out / "augment" / "pairs.parquet",
        "labels-train": students_train_pairs(cfg, out),
    }
    return {
        name: label_pairs(labeler, pairs, out / name, cfg.label, replace=True)
        for name, pairs in jobs.items()
    }


def students_train_pairs(cfg: PipelineConfig, out: Path) -> Path:
    """The train split, or the whole queries the students learn from where
    ``student.model.max_train_pairs`` caps them: the teacher labels nothing that goes unused."""
    from shoprel.student.data import take_queries

    train = out / "data" / "train.parquet"
    model = cfg.student.model
    if not model.max_train_pairs:
        return train
    sample = out / "labels-train-input" / "train.parquet"
    write_parquet(take_queries(pd.read_parquet(train), model.max_train_pairs, model.seed), sample)
    return sample


def run_student(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    """The distilled student; the label-only student and the curve's students where asked."""
    stage = cfg.student
    labels = [str(out / "labels-train"), str(out / "labels-augment")]
    distilled = replace(
        stage.model, labels=labels, loss=stage.loss, pointwise_weight=stage.pointwise_weight
    )
    jobs: dict[str, tuple[Any, Path]] = {DISTILLED: (distilled, out / "student")}
    if stage.label_only:
        label_only = replace(stage.model, labels=[], loss="labels")
        member = same_member(label_only, out)  # the teacher's: taken as it is
        jobs[LABEL_ONLY] = (None, member) if member else (label_only, out / "student-labels")
    for frac in stage.curve_fracs:
        jobs[f"student ({frac:.0%} of augmented pairs)"] = (
            replace(distilled, augment_frac=frac),
            out / f"student-augment-{frac:g}",
        )
    return {
        name: str(d) if c is None else _cross_encoder(c, out, d) for name, (c, d) in jobs.items()
    }


def same_member(cfg: Any, out: Path) -> Path | None:
    """The teacher's cross-encoder member trained with exactly the settings ``cfg`` gives (on the
    same data): the label-only student is that model, so it is not trained twice."""
    from shoprel.student.train import META_FILE, model_settings

    for path in stage_result(out, "teacher")["members"].values():
        if trained_with(Path(path), META_FILE, model_settings(cfg)):
            logger.info("the label-only student is the teacher's member %s", path)
            return Path(path)
    return None


def run_export(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    """ONNX (and int8 behind the dev gate) of the distilled student, calibrated on dev; its rerank
    latency."""
    from shoprel.serve.export import GateError, export_onnx
    from shoprel.serve.latency import rerank_latency

    student = stage_result(out, "student")[DISTILLED]
    export_cfg = replace(cfg.export, data=out / "data")  # the int8 gate and the calibration
    gate = None
    try:
        meta = export_onnx(student, out / "export", export_cfg)
    except GateError as error:  # the gate did its job: serve fp32, say why
        gate = str(error)
        logger.warning("export: %s; the run keeps the fp32 export", gate)
        meta = export_onnx(student, out / "export", replace(export_cfg, int8=False))
    int8 = meta["onnx"]["default"] == "model_int8.onnx"
    scorers = {"torch (sentence-transformers)": (student, {})}
    scorers["ONNX fp32"] = (str(out / "export"), {"onnx_file": "model.onnx"})
    if int8:
        scorers["ONNX int8"] = (str(out / "export"), {"onnx_file": "model_int8.onnx"})
    pairs = pd.read_parquet(out / "data" / "test.parquet")
    latency = rerank_latency(scorers, pairs, cfg.latency_items)
    write_json(latency, out / "export" / "latency.json")
    result = {"export": str(out / "export"), "default": meta["onnx"]["default"], "p50_ms": latency}
    result["test_ece"] = check_export_calibration(out / "export", pairs)
    return result | ({"int8_gate_failed": gate} if gate else {})


def check_export_calibration(export: Path, pairs: pd.DataFrame) -> dict[str, float] | None:
    """The export's calibration checked on ``pairs`` (test), written to ``calibration_test.json``
    beside it for the report; ECE before and after (None where the export is not calibrated)."""
    from shoprel.serve.calibration import CHECK_FILE, check_calibration
    from shoprel.serve.onnx_scorer import OnnxScorer

    scorer = OnnxScorer.load(export)
    if scorer.calibration is None:
        return None
    scores = scorer.predict(pairs)["score"].to_numpy(float)
    check = check_calibration(
        scorer.calibration, scores, pairs["label"], scorer.scale, scorer.activation
    )
    write_json(check, export / CHECK_FILE)
    return {when: check[when]["calibration_error"] for when in ("before", "after")}


def evaluation_models(out: Path, judge_stages: bool = True) -> dict[str, str]:
    """Every trained model of the run by display name: teacher members, teacher, students; with
    ``judge_stages``, the judge after each LREF stage too."""
    teacher = stage_result(out, "teacher")
    models = earlier_judges(teacher["members"].get("judge")) if judge_stages else {}
    models |= {f"teacher member: {k}": v for k, v in teacher["members"].items()}
    if teacher["teacher"] not in teacher["members"].values():
        models["teacher"] = teacher["teacher"]
    if teacher["labeler"] not in (*teacher["members"].values(), teacher["teacher"]):
        models["teacher without judge (labeler)"] = teacher["labeler"]
    models |= stage_result(out, "student")
    export = stage_result(out, "export")
    if export["default"] == "model_int8.onnx":
        models["student int8 (ONNX)"] = export["export"]
    return models


def earlier_judges(judge: str | None) -> dict[str, str]:
    """The judge after each LREF stage before its last (the last is the judge itself)."""
    from shoprel.teacher.train import SUMMARY_FILE

    if judge is None or not (Path(judge) / SUMMARY_FILE).is_file():
        return {}
    summary = read_json(Path(judge) / SUMMARY_FILE)
    earlier = [name for name in summary["stages"] if name not in ("select", summary["final"])]
    return {f"teacher member: judge after {name}": str(Path(judge) / name) for name in earlier}


def data_size_curve(out: Path, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The students' metrics against the augmented pairs they learned from."""
    keys = ("pairwise_accuracy", "auc", "rmse")
    points = []
    for name, path in stage_result(out, "student").items():
        if name != LABEL_ONLY:  # the distilled student and the curve's students
            meta = read_json(Path(path) / "shoprel_cross_encoder.json")
            augmented = meta["train"].get("augmented_pairs")
            points.append({"augmented_pairs": augmented} | {k: results[name][k] for k in keys})
    references = {
        key: {"augmented_pairs": None} | {k: results[name][k] for k in keys}
        for key, name in (("label_only", LABEL_ONLY), ("teacher", "teacher"))
        if name in results
    }
    return {"points": sorted(points, key=lambda p: p["augmented_pairs"] or 0)} | references


def run_evaluate(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    """Every model on the test split; baselines with label maps fitted on their dev scores."""
    from shoprel.data.splits import read_split
    from shoprel.eval.compare import compare_models
    from shoprel.eval.evaluate import evaluate

    pairs, scale = read_split(out / "data", "test")
    results, files = {}, {}
    for name in cfg.baselines:
        files[name] = f"scores/{name}.test.parquet"
        results[name] = evaluate(
            out / "data",
            "test",
            out / files[name],
            dev_scores_path=out / f"scores/{name}.dev.parquet",
        )
    models = evaluation_models(out, cfg.evaluate.judge_stages)
    metrics, scores = compare_models(models, pairs, scale, out / "eval" / "cache")
    for name, frame in scores.items():
        files[name] = f"scores/{_file_name(name)}.test.parquet"
        write_parquet(frame, out / files[name])
    results |= metrics
    write_json(data_size_curve(out, results), out / "eval" / "data_size.json")
    focus = [n for n in ("teacher", DISTILLED) if n in files]
    evaluation = {"split": "test", "models": results, "scores": files, "focus": focus}
    write_json(evaluation, out / "eval" / "metrics.json")
    write_json(results, out / "metrics.json")
    return {
        name: {k: m.get(k) for k in ("pairwise_accuracy", "auc")} for name, m in results.items()
    }


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def run_report(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
    from shoprel.report.html import build_report

    return {"report": str(build_report(out, cfg.name))}


def label_section(cfg: PipelineConfig) -> Any:
    """What the labels depend on: the label settings, and the train queries the students take."""
    return (cfg.label, cfg.student.model.max_train_pairs, cfg.student.model.seed)


STAGES: list[Stage] = [
    Stage("prepare", run_prepare, lambda c: c.data),
    Stage("baselines", run_baselines, lambda c: c.baselines),
    Stage("teacher", run_teacher, lambda c: c.teacher, outputs=("teacher",)),
    Stage("augment", run_augment, lambda c: c.augment),
    Stage("label", run_label, label_section, outputs=("labels-*",)),
    Stage("student", run_student, lambda c: c.student, outputs=("student", "student-*")),
    Stage("export", run_export, lambda c: (c.export, c.latency_items)),
    Stage("evaluate", run_evaluate, lambda c: (c.baselines, c.evaluate)),
    Stage("report", run_report, lambda c: c.name),
]
