"""LREF stages of the judge: data selection, Multi-CoT tuning and DPO de-biasing.

See :mod:`shoprel.teacher.lref.runner` for the stage layout, and ``shoprel teacher train --help``
for the options (``--select``, ``--cot``, ``--dpo``).
"""

from __future__ import annotations

from typing import Any

from shoprel.teacher.lref.config import CotConfig, DpoConfig, OpenAIConfig, SelectConfig

__all__ = ["CotConfig", "DpoConfig", "OpenAIConfig", "SelectConfig", "train_lref"]


def __getattr__(name: str) -> Any:
    if name == "train_lref":
        from shoprel.teacher.lref.runner import train_lref

        return train_lref
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
