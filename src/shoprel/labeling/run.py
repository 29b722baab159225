"""``shoprel label``: the teacher scores pairs shard by shard, here or on a Ray cluster.

    shoprel label --teacher run/teacher --pairs run/augment/pairs.parquet --out run/labels
    shoprel label ... --ray-address local --workers 2      # Ray Data actors on this machine

Both backends score the same shards (:mod:`shoprel.labeling.shards`) and write each one
atomically, so a killed job resumes where it stopped and gives the output an uninterrupted run
gives. With Ray, each actor loads the teacher once and writes its shards itself: on a cluster,
``--out`` must be storage that every node sees. The result, ``OUT/labels.parquet``, has the pair
columns, ``score``, the grade distribution where the teacher has one, and ``teacher``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.io import write_json
from shoprel.labeling.shards import (
    LABELS,
    Manifest,
    digest_model,
    digest_pairs,
    merge_shards,
    open_manifest,
    pending_shards,
    read_pairs,
    shard_rows,
    write_shard,
)
from shoprel.progress import progress_bar

logger = logging.getLogger(__name__)


@dataclass
class LabelConfig:
    """shard_size: pairs per shard (the unit of resume). int8: dynamic int8 LLM judges.
    ray_address: None (this process), ``local`` (start Ray here) or a cluster address.
    workers: Ray actors, each with ``cpus_per_worker`` cores and ``gpus_per_worker`` GPUs
    (defaults: this machine's cores and GPUs shared out, at most one GPU an actor; 0 GPUs keeps
    the judges on the CPU). Ray hides the GPUs from an actor that asks for none."""

    shard_size: int = 2000
    int8: bool = False
    batch_size: int = 32
    ray_address: str | None = None
    workers: int = 1
    cpus_per_worker: float = 0.0
    gpus_per_worker: float | None = None

    def __post_init__(self) -> None:
        for name in ("workers", "shard_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker: expected >= 0, got {self.gpus_per_worker}")


def local_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def actor_resources(cfg: LabelConfig) -> dict[str, float]:
    """Ray's ``num_cpus`` and ``num_gpus`` of one labeling actor."""
    cpus = cfg.cpus_per_worker or max(1.0, (os.cpu_count() or 1) / cfg.workers)
    gpus = cfg.gpus_per_worker
    if gpus is None:
        gpus = min(1.0, local_gpus() / cfg.workers)
    return {"num_cpus": cpus, "num_gpus": gpus}


def score_shard(scorer: Any, rows: pd.DataFrame, teacher: str) -> pd.DataFrame:
    """The rows with the teacher's ``score`` (and grade distribution) and its name."""
    scores = scorer.predict(rows).drop(columns="pair_id")
    labeled = pd.concat([rows.reset_index(drop=True), scores.reset_index(drop=True)], axis=1)
    return labeled.assign(teacher=teacher)


def label_shard(
    scorer: Any, teacher: str, pairs: pd.DataFrame, out: Path, index: int, shard_size: int
) -> int:
    """Score shard ``index`` of ``pairs`` and write it atomically; returns its pair count."""
    rows = shard_rows(pairs, index, shard_size)
    write_shard(score_shard(scorer, rows, teacher), out, index)
    return len(rows)


def load_teacher(teacher: str | Path, cfg: LabelConfig) -> Any:
    from shoprel.scoring import load_scorer

    options: dict[str, Any] = {"batch_size": cfg.batch_size}
    if cfg.int8:
        options["int8"] = True
    return load_scorer(teacher, **options)


def label_pairs(
    teacher: str | Path,
    pairs_file: str | Path,
    out: str | Path,
    cfg: LabelConfig,
    replace: bool = False,
) -> dict[str, Any]:
    """Score every pair not yet scored, then merge the shards; returns a summary.

    ``out`` holding another job (other pairs, teacher or shard size) is an error, or with
    ``replace`` that job's outputs are removed first.
    """
    out = Path(out)
    pairs = read_pairs(pairs_file)
    shards = -(-len(pairs) // cfg.shard_size)
    manifest = Manifest(
        pairs_file=str(Path(pairs_file).resolve()),
        pairs_digest=digest_pairs(pairs),
        teacher=str(teacher),
        teacher_digest=digest_model(teacher),
        shard_size=cfg.shard_size,
        shards=shards,
        pairs=len(pairs),
    )
    open_manifest(out, manifest, replace)
    todo = pending_shards(out, shards)
    scored_now = sum(len(shard_rows(pairs, i, cfg.shard_size)) for i in todo)
    started = time.perf_counter()
    with progress_bar(len(pairs), "labeling") as bar:
        bar.update(len(pairs) - scored_now)
        if todo and cfg.ray_address:
            _label_with_ray(teacher, pairs_file, out, todo, cfg, bar)
        elif todo:
            _label_here(teacher, pairs, out, todo, cfg, bar)
    seconds = time.perf_counter() - started
    labels = merge_shards(out, manifest)
    summary = _summary(labels, len(todo), scored_now, cfg, seconds)
    write_json(summary, out / "label_report.json")
    return summary


def teacher_name(teacher: str | Path) -> str:
    return f"{Path(teacher).name}@{digest_model(teacher)[:8]}"


def _label_here(
    teacher: str | Path,
    pairs: pd.DataFrame,
    out: Path,
    todo: list[int],
    cfg: LabelConfig,
    bar: Any,
) -> None:
    scorer, name = load_teacher(teacher, cfg), teacher_name(teacher)
    for index in todo:
        bar.update(label_shard(scorer, name, pairs, out, index, cfg.shard_size))


class ShardLabeler:
    """A Ray Data actor: loads the teacher once, scores and writes whole shards."""

    def __init__(self, teacher: str, pairs_file: str, out: str, cfg: LabelConfig) -> None:
        import torch

        threads = int(cfg.cpus_per_worker) or max(1, (os.cpu_count() or 1) // cfg.workers)
        torch.set_num_threads(threads)
        self.scorer, self.name = load_teacher(teacher, cfg), teacher_name(teacher)
        self.pairs, self.out, self.shard_size = read_pairs(pairs_file), Path(out), cfg.shard_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        counts = [
            label_shard(self.scorer, self.name, self.pairs, self.out, index, self.shard_size)
            for index in batch["shard"].tolist()
        ]
        return {"shard": batch["shard"], "pairs": np.asarray(counts)}


def _label_with_ray(
    teacher: str | Path,
    pairs_file: str | Path,
    out: Path,
    todo: list[int],
    cfg: LabelConfig,
    bar: Any,
) -> None:
    import ray

    if not ray.is_initialized():
        address = None if cfg.ray_address == "local" else cfg.ray_address
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    tasks = ray.data.from_items([{"shard": i} for i in todo], override_num_blocks=len(todo))
    done = tasks.map_batches(
        ShardLabeler,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=cfg.workers),
        **actor_resources(cfg),
        fn_constructor_kwargs={
            "teacher": str(Path(teacher).resolve()),
            "pairs_file": str(Path(pairs_file).resolve()),
            "out": str(out.resolve()),
            "cfg": cfg,
        },
    )
    for row in done.iter_rows():
        bar.update(int(row["pairs"]))


def _summary(
    labels: pd.DataFrame, shards_now: int, scored_now: int, cfg: LabelConfig, seconds: float
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "pairs": len(labels),
        "labels": LABELS,
        "teacher": labels["teacher"].iat[0] if len(labels) else None,
        "shards_scored_now": shards_now,
        "seconds": round(seconds, 1),
        "pairs_per_s": round(scored_now / seconds, 2) if seconds > 0 else None,
        "backend": "ray" if cfg.ray_address else "local",
    }
    if "source" in labels.columns:
        summary["score_histogram_by_source"] = score_histograms(labels)
    return summary


def score_histograms(labels: pd.DataFrame, bins: int = 10) -> dict[str, Any]:
    """Per source: counts of teacher scores in equal bins over the scores' overall range."""
    edges = np.linspace(labels["score"].min(), labels["score"].max(), bins + 1)
    result: dict[str, Any] = {"edges": [round(float(e), 4) for e in edges]}
    for source, group in labels.groupby("source"):
        counts, _ = np.histogram(group["score"], bins=edges)
        result[str(source)] = {
            "counts": counts.tolist(),
            "mean": round(float(group["score"].mean()), 4),
        }
    return result
