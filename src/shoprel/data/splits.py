"""Reading a prepared data dir: its card, its splits, seeded samples of pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from shoprel.data.readers import DataError
from shoprel.data.schema import GradeScale, get_scale
from shoprel.io import read_json


def read_card(data_dir: str | Path) -> dict[str, Any]:
    path = Path(data_dir) / "card.json"
    if not path.is_file():
        raise DataError(f"{data_dir}: no card.json; run `shoprel data prepare` first")
    return read_json(path)


def read_split(data_dir: str | Path, split: str) -> tuple[pd.DataFrame, GradeScale]:
    """The pair table of one split and the grade scale of its data set."""
    path = Path(data_dir) / f"{split}.parquet"
    if not path.is_file():
        raise DataError(
            f"{path}: no such split; the data dir has "
            f"{sorted(p.stem for p in Path(data_dir).glob('*.parquet'))}"
        )
    return pd.read_parquet(path), get_scale(read_card(data_dir)["scale"])


def sample_pairs(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """A seeded sample of ``limit`` rows (all rows when ``limit`` is 0 or more than there are)."""
    if limit and len(frame) > limit:
        frame = frame.sample(n=limit, random_state=seed)
    return frame.reset_index(drop=True)


def dev_sample(data_dir: str | Path, limit: int, seed: int) -> pd.DataFrame:
    """The dev pairs a judge is checked on: a seeded sample of ``limit`` pairs (none when
    ``limit`` is 0). SFT, the LREF stages and the auxiliary models all check on this one."""
    dev = read_split(data_dir, "dev")[0]
    return sample_pairs(dev, limit, seed) if limit else dev.iloc[:0].reset_index(drop=True)
