"""The shard plan of a labeling job: what is done is on disk, what is not is redone.

Pairs are sorted by ``query_id, pair_id`` (items of one query stay together for prefix sharing)
and cut into shards of ``shard_size`` rows. A shard file is written atomically, so after a kill it
either holds every score of its rows or does not exist. ``manifest.json`` pins the pairs, the
teacher and the shard size: a rerun with other inputs is refused instead of mixing two jobs.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from shoprel.data.readers import DataError
from shoprel.io import read_json, write_json, write_parquet

MANIFEST = "manifest.json"
LABELS = "labels.parquet"


@dataclass(frozen=True)
class Manifest:
    pairs_file: str
    pairs_digest: str
    teacher: str
    teacher_digest: str
    shard_size: int
    shards: int
    pairs: int


def digest_pairs(pairs: pd.DataFrame) -> str:
    """A digest of the pairs' ids and text: a catalog with new titles under the same ids is new
    work, not shards to reuse."""
    rows = pd.util.hash_pandas_object(pairs.astype(str), index=False).to_numpy()
    header = "\t".join(map(str, pairs.columns)).encode()
    return hashlib.sha1(header + rows.tobytes()).hexdigest()[:16]


def digest_model(directory: str | Path) -> str:
    """A digest of a model dir's meta and config files (weights are too large to hash)."""
    parts = sorted(p for p in Path(directory).glob("*.json") if p.is_file())
    text = "".join(p.name + p.read_text(errors="replace") for p in parts) or str(directory)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def read_pairs(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such pairs file")
    pairs = pd.read_parquet(path)
    missing = [c for c in ("pair_id", "query_id", "query", "title") if c not in pairs.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")
    if pairs.empty:
        raise DataError(f"{path}: no pairs to label")
    repeated = pairs["pair_id"][pairs["pair_id"].duplicated()]
    if len(repeated):
        raise DataError(f"{path}: {len(repeated)} repeated pair ids, e.g. {repeated.iat[0]!r}")
    return pairs.sort_values(["query_id", "pair_id"]).reset_index(drop=True)


def shard_path(out: Path, index: int) -> Path:
    return out / "shards" / f"shard-{index:05d}.parquet"


def shard_rows(pairs: pd.DataFrame, index: int, shard_size: int) -> pd.DataFrame:
    return pairs.iloc[index * shard_size : (index + 1) * shard_size]


def open_manifest(out: Path, manifest: Manifest, replace: bool = False) -> None:
    """Write the manifest of a new job, or check that ``out`` holds the same job.

    With ``replace``, another job's shards and labels in ``out`` are removed instead.
    """
    path = out / MANIFEST
    if path.is_file():
        found = read_json(path)
        changed = {k: (found.get(k), v) for k, v in asdict(manifest).items() if found.get(k) != v}
        if changed and replace:
            shutil.rmtree(out / "shards", ignore_errors=True)
            (out / LABELS).unlink(missing_ok=True)
        elif changed:
            raise DataError(
                f"{out}: holds another labeling job ({_describe(changed)}); "
                "use a new --out or remove the old one"
            )
        else:
            return
    write_json(asdict(manifest), path)


def _describe(changed: dict[str, tuple]) -> str:
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())


def pending_shards(out: Path, shards: int) -> list[int]:
    return [i for i in range(shards) if not shard_path(out, i).is_file()]


def write_shard(frame: pd.DataFrame, out: Path, index: int) -> None:
    write_parquet(frame, shard_path(out, index))


def merge_shards(out: Path, manifest: Manifest) -> pd.DataFrame:
    """All shards in order as ``labels.parquet``; refuses a gap or a count that does not add up."""
    missing = pending_shards(out, manifest.shards)
    if missing:
        raise DataError(f"{out}: shard(s) {missing[:5]} missing; rerun `shoprel label` to finish")
    frames = [pd.read_parquet(shard_path(out, i)) for i in range(manifest.shards)]
    labels = pd.concat(frames, ignore_index=True)
    if len(labels) != manifest.pairs or labels["pair_id"].duplicated().any():
        raise DataError(f"{out}: shards hold {len(labels)} rows for {manifest.pairs} pairs")
    write_parquet(labels, out / LABELS)
    return labels
