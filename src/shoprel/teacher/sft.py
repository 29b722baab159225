"""The SFT stage: the judge fine-tuned on soft targets (Walmart's teacher is a classifier on soft
targets; LREF's first stage is SFT on the selected pairs).

    shoprel teacher train --data run/data --base qwen2.5-coder-0.5b --out run/teacher

The loss reads the grade-token distribution at the answer position (:mod:`~shoprel.teacher.
grade_trainer`). Writes the merged judge, ``dev_metrics.jsonl`` (after each epoch),
``checkpoints/`` (for ``--resume``) and ``metrics.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from shoprel.teacher.config import TeacherTrainConfig
from shoprel.teacher.grade_trainer import fit_judge
from shoprel.teacher.stage_io import StageData, write_stage_metrics


def run(cfg: TeacherTrainConfig, data: StageData, out: Path, resume: bool = False) -> Path:
    """Fine-tune ``cfg.base`` on ``data.pairs`` into ``out``; with ``resume``, continue from the
    last checkpoint there."""
    started = time.perf_counter()
    dev = fit_judge(cfg, data.pairs, data.dev, data.scale, out, resume=resume)
    seconds = time.perf_counter() - started
    write_stage_metrics(out, "sft", seconds, train_pairs=len(data.pairs), dev=dev)
    return out
