"""The one scoring interface: every model shoprel makes scores pairs the same way.

``predict`` takes canonical pair rows (``pair_id, query, title`` and optional product fields) and
returns ``pair_id, score`` plus, for models with a grade distribution, ``p_<grade>`` columns.
A model dir is recognised by its marker file; the scorer class behind each marker is imported only
when a dir of its kind is loaded, so this module imports no model code.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import pandas as pd

TEACHER_META = "shoprel_teacher.json"
CROSS_ENCODER_META = "shoprel_cross_encoder.json"
ENSEMBLE_META = "shoprel_ensemble.json"
ONNX_META = "shoprel_onnx.json"
SCORERS = {  # marker file -> "module:Class", tried in this order
    ONNX_META: "shoprel.serve.onnx_scorer:OnnxScorer",
    ENSEMBLE_META: "shoprel.teacher.ensemble:EnsembleScorer",
    TEACHER_META: "shoprel.teacher.scorer:TeacherScorer",
    CROSS_ENCODER_META: "shoprel.student.scorer:CrossEncoderScorer",
}
BI_ENCODER = "shoprel.eval.baselines:BiEncoderScorer"


class Scorer(ABC):
    @abstractmethod
    def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        """``pair_id, score`` (and ``p_<grade>`` where known) in the order of ``pairs``."""


def load_scorer(directory: str | Path, **options: Any) -> Scorer:
    """The scorer for any model dir shoprel saved (judge, cross-encoder, ONNX export, ensemble),
    by its meta file; a sentence-transformers encoder (dir or alias such as ``minilm-l6``) scores
    by cosine."""
    directory = Path(directory)
    for marker, target in SCORERS.items():
        if (directory / marker).is_file():
            if marker == CROSS_ENCODER_META and options.pop("int8", False):
                raise ValueError(
                    "--int8 applies to LLM judges; a cross-encoder is quantized on export"
                )
            if marker in (ONNX_META, CROSS_ENCODER_META):
                options.pop("prefix_sharing", None)  # a judge's option
            return _scorer_class(target).load(directory, **options)
    if (directory / "modules.json").is_file() or str(directory) in _encoder_aliases():
        return _scorer_class(BI_ENCODER).load(directory, batch_size=options.get("batch_size", 128))
    raise FileNotFoundError(
        f"{directory}: not a model saved by shoprel nor a sentence-transformers encoder "
        f"(none of {', '.join(SCORERS)})"
    )


def _scorer_class(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _encoder_aliases() -> set[str]:
    from shoprel.models import ALIASES

    return {alias for alias, spec in ALIASES.items() if spec.kind == "encoder"}
