"""Atomic writes (a reader never sees half a file, an interrupted job leaves no partial output)
and the digests that tell a rerun whether what it finished before was made from the same inputs."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp files are 0600, outputs get the usual 0666 & ~umask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds,
    its bytes on disk first (a crash of the machine leaves the old file or the whole new one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_UMASK)
        if tmp.is_file():
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``; a file that does not parse (cut short, edited by hand) is named in
    the error, with the line and column."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None


def read_jsonl(path: str | Path) -> list[Any]:
    """The records of a JSON-lines file (blank lines skipped); a line that does not parse is
    named in the error by file and line."""
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
    return records


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON: tuples become lists, paths strings."""
    return json.loads(json.dumps(value, default=str))


def trained_with(model_dir: str | Path, meta_file: str, settings: dict[str, Any]) -> bool:
    """Whether ``model_dir`` holds a finished model (its meta file is written last) whose saved
    ``train`` settings include ``settings``, so that a rerun can reuse it instead of training."""
    meta = Path(model_dir) / meta_file
    if not meta.is_file():
        return False
    saved = read_json(meta).get("train", {})
    return all(saved.get(key) == value for key, value in jsonable(settings).items())


def newest_checkpoint(folder: Path, marker: str) -> Path | None:
    """The ``checkpoint-N`` dir of ``folder`` with the largest N that holds ``marker`` (the file
    the trainer writes last), so that a save cut short is passed over; None where there is none."""
    done = [d for d in folder.glob("checkpoint-*") if (d / marker).is_file()]
    return max(done, key=lambda d: int(d.name.rsplit("-", 1)[1]), default=None)


def content_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha1").hexdigest()


def files_digest(roots: list[Path]) -> str:
    """A digest of the files under ``roots`` (a root that is a file: that file): names relative
    to each root, sizes and contents (so the same files elsewhere give the same digest)."""
    stamps = [
        [root.name, str(f.relative_to(root)), f.stat().st_size, content_digest(f)]
        for root in roots
        for f in ([root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()))
    ]
    return hashlib.sha1(json.dumps(stamps).encode()).hexdigest()
