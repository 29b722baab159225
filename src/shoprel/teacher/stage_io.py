"""What every judge stage takes and leaves: its input frames, its ``metrics.json``, its dev
metrics, and the judge dir it publishes.

Each stage (:mod:`~shoprel.teacher.select`, :mod:`~shoprel.teacher.sft`,
:mod:`~shoprel.teacher.cot`, :mod:`~shoprel.teacher.dpo`) is ``run(cfg, data, out, resume)``: the
judge's config, a :class:`StageData`, and the stage dir it writes into and returns."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from shoprel.data.schema import GradeScale
from shoprel.eval import metrics
from shoprel.eval.evaluate import evaluate_scores
from shoprel.io import read_json, write_json

METRICS_FILE = "metrics.json"
SETTINGS_FILE = "stage_settings.json"  # what the stage in a dir was started with


class StageData(NamedTuple):
    """The frames a stage works on, drawn once by the orchestrator from the prepared data."""

    pairs: pd.DataFrame  # the labeled pairs the stage learns from, or selects among, or mines
    dev: pd.DataFrame  # the dev sample every stage is checked on (may be empty)
    scale: GradeScale
    data_dir: Path  # the prepared data (its card; the auxiliary cross-encoders read it)
    start: Path | None = None  # the judge the stage starts from (CoT, DPO)
    spare: pd.DataFrame | None = None  # labeled pairs outside the pool (selection's aux models)


def plain(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


def grade_report(true: np.ndarray, predicted: np.ndarray, scale: GradeScale) -> dict[str, Any]:
    """Per-grade precision, recall, F1 and support, by grade name."""
    table = metrics.per_grade_precision_recall(true, predicted, scale.n_grades)
    return {scale.grades[g]: {k: plain(v) for k, v in row.items()} for g, row in table.items()}


def judge_metrics(scores: pd.DataFrame, pairs: pd.DataFrame, scale: GradeScale) -> dict[str, Any]:
    """Every metric of ``evaluate`` plus per-grade precision and recall (``scores`` aligned)."""
    result = evaluate_scores(pairs, scores, scale)
    probs = scores[[f"p_{g}" for g in scale.grades]].to_numpy(float)
    true = scale.nearest_grade(pairs["label"].to_numpy(float))
    predicted = probs.argmax(axis=1)
    result["per_grade"] = grade_report(true, predicted, scale)
    shares = np.bincount(predicted, minlength=scale.n_grades) / max(len(predicted), 1)
    result["predicted_share"] = {
        grade: round(float(share), 6) for grade, share in zip(scale.grades, shares, strict=True)
    }
    return result


def score_judge(
    directory: str | Path, pairs: pd.DataFrame, mode: str = "direct", **options: Any
) -> pd.DataFrame:
    from shoprel.teacher.scorer import TeacherScorer

    return TeacherScorer.load(directory, mode=mode, **options).predict(pairs, progress=True)


def write_stage_metrics(out: Path, stage: str, seconds: float, **facts: Any) -> dict[str, Any]:
    record = {"stage": stage, "seconds": round(seconds, 1), **facts}
    write_json(record, out / METRICS_FILE)
    return record


def read_stage_metrics(out: Path) -> dict[str, Any] | None:
    path = out / METRICS_FILE
    return read_json(path) if path.is_file() else None


MODEL_FILES = (  # what save_pretrained writes for a model and its tokenizer
    "*.safetensors", "*.safetensors.index.json", "*.bin", "config.json", "generation_config.json",
    "tokenizer*", "vocab*", "merges.txt", "special_tokens_map.json", "added_tokens.json",
    "chat_template.jinja",
)  # fmt: skip


def drop_stale_model_files(out: Path, kept: set[str]) -> None:
    """Remove the model and tokenizer files in ``out`` that are not in ``kept``: those of an
    earlier judge saved there (another base's tokenizer files, shards of a larger model)."""
    for pattern in MODEL_FILES:
        for path in out.glob(pattern):
            if path.is_file() and path.name not in kept:
                path.unlink()


def publish(stage_dir: Path, out: Path) -> None:
    """Make ``out`` a judge dir holding the files of ``stage_dir`` (hard links where possible)."""
    from shoprel.teacher.model import META_FILE

    (out / META_FILE).unlink(missing_ok=True)  # not a judge dir until the meta file is back
    published = set()
    for path in sorted(stage_dir.iterdir()):
        stage_only = path.name in (METRICS_FILE, SETTINGS_FILE)
        stage_only = stage_only or path.suffix in (".jsonl", ".parquet")
        if not path.is_file() or stage_only or path.name == META_FILE:
            continue
        published.add(path.name)
        target, tmp = out / path.name, out / f".{path.name}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copy2(path, tmp)
        os.replace(tmp, target)
    drop_stale_model_files(out, published)
    shutil.copy2(stage_dir / META_FILE, out / f".{META_FILE}.tmp")
    os.replace(out / f".{META_FILE}.tmp", out / META_FILE)


def guard_verdict(
    before: dict[str, Any] | None, after: dict[str, Any] | None, limits: Any
) -> dict[str, Any]:
    """Whether a stage hurt the judge on dev: macro-F1 down by more than ``limits.max_f1_drop``,
    or one grade taking more than ``limits.max_grade_share`` of the predictions (CoT and DPO)."""
    if not before or not after:
        return {"kept_start": False, "reason": "no dev pairs: the guard did not run"}
    drop = before["macro_f1"] - after["macro_f1"]
    grade, share = max(after["predicted_share"].items(), key=lambda item: item[1])
    reasons = []
    if drop > limits.max_f1_drop:
        reasons.append(f"dev macro-F1 fell by {drop:.3f} (> {limits.max_f1_drop})")
    if share > limits.max_grade_share:
        limit = f"{limits.max_grade_share:.0%}"
        reasons.append(f"{share:.0%} of dev predictions are {grade!r} (> {limit})")
    change = after["macro_f1"] - before["macro_f1"]
    summary = f"dev macro-F1 change {change:+.3f}, top grade share {share:.0%}"
    verdict = "; ".join(reasons) or summary
    return {"kept_start": bool(reasons), "reason": verdict, "macro_f1_drop": round(drop, 6)}
