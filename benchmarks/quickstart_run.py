"""Where a benchmark finds its models and data when it is not told: the quickstart run that
``make demo`` leaves in ``runs/quickstart`` (``SHOPREL_QUICKSTART_RUN`` names another)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = Path(os.environ.get("SHOPREL_QUICKSTART_RUN", ROOT / "runs/quickstart"))
PATHS = {
    "data": "data",
    "pairs": "augment/pairs.parquet",
    "labels_train": "labels-train",
    "labels_aug": "labels-augment",
    "teacher": "teacher/ensemble",
    "labeler": "teacher/labeler",
    "judge": "teacher/judge",
    "cross_encoder": "teacher/ce-minilm-l6",
    "student": "student",
    "export": "export",
}


def artifact(key: str) -> Path:
    """The quickstart run's ``key`` (see ``PATHS``); a clear stop where the run lacks it."""
    path = RUN / PATHS[key]
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `make demo` (the quickstart run), or give it")
    return path


def fill_sizes(args: argparse.Namespace, full: dict, quick: dict) -> None:
    """Each size in ``args`` still ``None`` set from ``quick`` (with ``--quick``) or ``full``:
    ``--quick`` never overrides a size given on the command line."""
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def fill(args: argparse.Namespace, **keys: str) -> None:
    """Each ``args`` attribute still ``None`` set to the quickstart run's ``keys[attribute]``."""
    for attribute, key in keys.items():
        if getattr(args, attribute) is None:
            setattr(args, attribute, artifact(key))
