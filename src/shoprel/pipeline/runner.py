"""``shoprel pipeline``: every stage in order, each skipped when its inputs have not changed.

A stage's fingerprint hashes its config section, the fingerprints of the stages before it and,
for ``prepare``, the size and content digest of each input file (not its modification time,
which touching the file or a fresh mount changes). ``RUN/stages/NAME.json`` records it when
the stage succeeds; a rerun skips a stage whose record matches, and ``--from`` redoes a stage
and everything after it. A failing stage leaves the outputs of earlier stages as they are and
is reported by name. The log goes to the console and to ``RUN/log.txt``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoprel.io import content_digest, read_json, write_json

if TYPE_CHECKING:
    from shoprel.pipeline.config import PipelineConfig

logger = logging.getLogger("shoprel.pipeline")


class StageError(RuntimeError):
    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(f"stage {stage!r} failed: {type(error).__name__}: {error}")
        self.stage = stage


@dataclass(frozen=True)
class Stage:
    """``outputs``: globs under the run dir holding what the stage trains; ``--from`` removes
    them, so that the stage trains afresh instead of reusing models it finished before."""

    name: str
    run: Callable[[PipelineConfig, Path], dict[str, Any]]
    section: Callable[[PipelineConfig], Any]
    outputs: tuple[str, ...] = ()


def fingerprint(stage: Stage, cfg: PipelineConfig, upstream: str) -> str:
    section = stage.section(cfg)
    payload = {"stage": stage.name, "config": _plain(section), "upstream": upstream}
    if stage.name == "prepare":
        payload["inputs"] = [_file_stamp(Path(p)) for p in cfg.data.inputs]
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _plain(section: Any) -> Any:
    try:
        return asdict(section)
    except TypeError:
        return section


def _file_stamp(path: Path) -> list[Any]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(f), f.stat().st_size, content_digest(f)] for f in files if f.exists()]


def run_pipeline(
    cfg: PipelineConfig, out: str | Path, stages: list[Stage], from_stage: str | None = None
) -> dict[str, Any]:
    """Run ``stages`` in order into ``out``; returns each stage's record."""
    out = Path(out)
    names = [s.name for s in stages]
    if from_stage is not None and from_stage not in names:
        raise ValueError(f"--from: unknown stage {from_stage!r}; expected one of {names}")
    redo_from = names.index(from_stage) if from_stage else len(names)
    for name in names[redo_from:]:  # so that a run cut short redoes them, not skips them
        (out / "stages" / f"{name}.json").unlink(missing_ok=True)
    handler = _log_to(out / "log.txt")
    records: dict[str, Any] = {}
    upstream = ""
    try:
        for index, stage in enumerate(stages):
            upstream = fingerprint(stage, cfg, upstream)
            records[stage.name] = _run_stage(stage, cfg, out, upstream, index >= redo_from)
    finally:
        logging.getLogger("shoprel").removeHandler(handler)
        handler.close()
    return records


def _run_stage(
    stage: Stage, cfg: PipelineConfig, out: Path, print_: str, force: bool
) -> dict[str, Any]:
    record_path = out / "stages" / f"{stage.name}.json"
    if not force and record_path.is_file():
        record = read_json(record_path)
        if record.get("fingerprint") == print_:
            logger.info("stage %s: up to date, skipped", stage.name)
            return record | {"skipped": True}
    record_path.unlink(missing_ok=True)
    if force:
        for path in (p for pattern in stage.outputs for p in sorted(out.glob(pattern))):
            logger.info("stage %s: removing %s to redo it", stage.name, path)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    logger.info("stage %s: running", stage.name)
    started = time.perf_counter()
    try:
        result = stage.run(cfg, out)
    except Exception as error:
        logger.error("stage %s failed: %s", stage.name, error)
        raise StageError(stage.name, error) from error
    record = {
        "stage": stage.name,
        "fingerprint": print_,
        "seconds": round(time.perf_counter() - started, 1),
        "result": result,
    }
    write_json(record, record_path)
    logger.info("stage %s: done in %.0f s", stage.name, record["seconds"])
    return record | {"skipped": False}


def _log_to(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("shoprel")
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    return handler
