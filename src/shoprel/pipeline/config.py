"""The pipeline's typed config: one section per stage, every key with a default.

An unknown key anywhere is an error that names it (``shoprel.config.from_dict``). Relative paths
in ``data.inputs`` are taken from the working directory, as on the command line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shoprel.augment.candidates import AugmentConfig
from shoprel.config import from_dict, read_yaml
from shoprel.data.prepare import PrepareConfig
from shoprel.labeling.run import LabelConfig
from shoprel.serve.export import ExportConfig
from shoprel.student.train import StudentTrainConfig
from shoprel.teacher.config import TeacherTrainConfig


@dataclass
class TeacherStageConfig:
    """The teacher: an LLM judge, and optionally an ensemble with cross-encoders on the labels.

    judge: the judge's training config; train_judge: False skips the judge (ensemble of the
    other members only). cross_encoders: encoder bases trained on the labels as members, with
    ``cross_encoder`` as their shared training config. bi_encoders: zero-shot members by alias.
    label_with_judge: whether the judge stays in the teacher that labels pairs (an LLM judge is
    the slowest member; drop it where its ensemble weight buys nothing on dev).
    """

    judge: TeacherTrainConfig = field(default_factory=TeacherTrainConfig)
    train_judge: bool = True
    cross_encoders: list[str] = field(default_factory=list)
    cross_encoder: StudentTrainConfig = field(default_factory=StudentTrainConfig)
    bi_encoders: list[str] = field(default_factory=list)
    label_with_judge: bool = True


@dataclass
class StudentStageConfig:
    """The distilled student and its comparisons.

    loss: the distilled student's loss (``margin-mse`` or ``mse``); pointwise_weight: with
    ``margin-mse``, the weight of a pointwise MSE term beside the margins (keeps the scores'
    level); model: the rest of its training config (``labels`` is set by the pipeline).
    label_only: also train the same model on the human labels (the no-teacher baseline).
    curve_fracs: shares of the augmented pairs for extra students that draw the data-size curve
    in the report (``[]``: the distilled student alone, against the teacher and label-only).
    """

    loss: str = "margin-mse"
    pointwise_weight: float = 0.0
    model: StudentTrainConfig = field(default_factory=StudentTrainConfig)
    label_only: bool = True
    curve_fracs: list[float] = field(default_factory=list)


@dataclass
class EvaluateConfig:
    """The test split's evaluation.

    judge_stages: score the judge after each LREF stage as well as the final judge (a row each
    in ``metrics.json``; an LLM judge is the slowest model to score, so a row costs what the
    judge's own row does).
    """

    judge_stages: bool = True


@dataclass
class PipelineConfig:
    name: str = "run"
    data: PrepareConfig = field(default_factory=PrepareConfig)
    baselines: list[str] = field(default_factory=lambda: ["bm25", "biencoder"])
    teacher: TeacherStageConfig = field(default_factory=TeacherStageConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    student: StudentStageConfig = field(default_factory=StudentStageConfig)
    export: ExportConfig = field(default_factory=lambda: ExportConfig(int8=True))
    latency_items: list[int] = field(default_factory=lambda: [20, 50, 100])
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


SHIPPED = Path(__file__).resolve().parents[1] / "configs"


def resolve_config(name: str | Path) -> Path:
    """A config file, or the name of a shipped one (``quickstart``, ``homedepot``, ...)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = SHIPPED / f"{path.stem}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in SHIPPED.glob("*.yaml"))
    raise FileNotFoundError(f"{name}: no such config file (shipped configs: {names})")


def load_pipeline_config(path: str | Path, data: list[str] | None = None) -> PipelineConfig:
    """The config of a YAML file; ``data`` (the CLI's ``--data``) replaces ``data.inputs``."""
    path = resolve_config(path)
    values: dict[str, Any] = read_yaml(path)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of config sections")
    cfg = from_dict(PipelineConfig, values, str(path))
    cfg.data.inputs = [Path(p) for p in (data or cfg.data.inputs)]
    return cfg


def config_yaml(cfg: PipelineConfig) -> str:
    """Every key of ``cfg`` as YAML, in the order the dataclasses declare them."""
    from shoprel.io import jsonable

    return yaml.safe_dump(jsonable(asdict(cfg)), sort_keys=False, allow_unicode=True)
