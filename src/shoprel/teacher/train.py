"""``shoprel teacher train``: the judge, by SFT alone or through the LREF stages.

    shoprel teacher train --data run/data --base smollm2-135m-instruct --out run/teacher
    shoprel teacher train --data run/data --out run/teacher --resume      # continue a killed run
    shoprel teacher train --data run/data --out run/teacher --select lref --cot ee,ra,dr --dpo

With no LREF stage on, this is SFT (:mod:`shoprel.teacher.sft`). With any of ``select``, ``cot``,
``dpo`` on, the stages run in order, each in its own dir under ``OUT``
(:mod:`shoprel.teacher.lref.runner`), and ``OUT`` ends up holding the last stage's judge.
"""

from __future__ import annotations

from pathlib import Path

from shoprel.teacher.config import TeacherTrainConfig

__all__ = ["TeacherTrainConfig", "train_teacher"]


def train_teacher(
    cfg: TeacherTrainConfig, data_dir: str | Path, out: str | Path, resume: bool = False
) -> Path:
    """Train the judge ``cfg`` describes on ``data_dir`` into ``out`` and return ``out``."""
    if cfg.lref_stages:
        from shoprel.teacher.lref.runner import train_lref

        return train_lref(cfg, data_dir, out, resume=resume)
    from shoprel.teacher.sft import run_sft

    return run_sft(cfg, data_dir, out, resume=resume)
