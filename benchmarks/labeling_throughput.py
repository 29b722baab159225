"""Labeling throughput: the local backend vs Ray Data with 1 and 2 actors, on the same pairs.

    python benchmarks/labeling_throughput.py --teacher runs/hd/teacher \
        --pairs runs/hd/augment/pairs.parquet
    python benchmarks/labeling_throughput.py --quick     # the quickstart's labeler and pairs

(with ``HF_HUB_OFFLINE=1 .venv/bin/python`` from the repository root). Takes the first ``--n``
pairs of the file (whole queries first, as ``shoprel label`` orders them) and labels them three
times into fresh dirs with ``label_pairs``: the local backend, then Ray with 1 and 2 actors
(each with cores/actors threads). Ray is started once before its runs; that start is reported
apart. What scale-out depends on is measured apart from the core count: one local worker on one
thread (``local1``) against two single-thread Ray actors (``ray2_1thread``); their ratio over 2
is the per-core efficiency (1.0 is perfect), and Ray's fixed cost per shard is ray1's extra
seconds over the local run, per shard. Each figure is pairs / wall seconds of one
``label_pairs`` call, teacher loading included (the local run loads it once, every Ray actor
loads its own). The outputs must agree.
Prints a table, then one JSON object (the last line). With CUDA present it adds the local
backend's pairs per GPU-hour, to size a cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from quickstart_run import fill
from rich.console import Console
from rich.table import Table

from shoprel.labeling.run import LabelConfig, label_pairs
from shoprel.labeling.shards import LABELS, read_pairs


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, help="teacher dir (the quickstart's labeler)")
    parser.add_argument("--pairs", type=Path, help="pairs file (the quickstart's augmented)")
    parser.add_argument("--n", type=int, help="pairs to label per backend (2000; quick: 500)")
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-labeling"))
    parser.add_argument("--quick", action="store_true", help="500 pairs")
    args = parser.parse_args()
    fill(args, teacher="labeler", pairs="pairs")
    if args.n is None:
        args.n = 500 if args.quick else 2000
    return args


def timed_run(args: argparse.Namespace, pairs: Path, name: str, cfg: LabelConfig) -> dict:
    out = args.out / name
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    label_pairs(args.teacher, pairs, out, cfg)
    seconds = time.perf_counter() - started
    labels = pd.read_parquet(out / LABELS)
    return {"seconds": seconds, "pairs_per_s": len(labels) / seconds, "scores": labels["score"]}


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sample = args.out / "pairs.parquet"
    pairs = read_pairs(args.pairs).head(args.n)
    if len(pairs) < args.n:
        print(f"{args.pairs} holds {len(pairs)} pairs, fewer than --n {args.n}: labeling those")
        args.n = len(pairs)
    pairs.to_parquet(sample, index=False)
    import ray
    import sentence_transformers  # noqa: F401  (imported before any timed run, not inside the first)
    import torch

    runs = {"local": timed_run(args, sample, "local", LabelConfig(shard_size=args.shard_size))}

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the local backend scores in this process
    runs["local1"] = timed_run(args, sample, "local1", LabelConfig(shard_size=args.shard_size))
    torch.set_num_threads(threads)

    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - started
    cores = os.cpu_count() or 1
    for workers in (1, 2):
        cfg = LabelConfig(
            shard_size=args.shard_size,
            ray_address="local",
            workers=workers,
            cpus_per_worker=max(1, cores // workers),
        )
        runs[f"ray{workers}"] = timed_run(args, sample, f"ray{workers}", cfg)
    one_thread = LabelConfig(
        shard_size=args.shard_size, ray_address="local", workers=2, cpus_per_worker=1
    )
    runs["ray2_1thread"] = timed_run(args, sample, "ray2_1thread", one_thread)
    ray.shutdown()
    report(args, runs, ray_start_s)


def report(args: argparse.Namespace, runs: dict, ray_start_s: float) -> None:
    local = runs["local"]
    table = Table(title=f"labeling {args.n} pairs with {args.teacher}")
    for column in ("backend", "seconds", "pairs/s", "× local", "max |Δscore| vs local"):
        table.add_column(column)
    result: dict = {"pairs": args.n, "teacher": str(args.teacher), "ray_start_s": ray_start_s}
    for name, run in runs.items():
        diff = float(np.max(np.abs(run["scores"].to_numpy() - local["scores"].to_numpy())))
        ratio = run["pairs_per_s"] / local["pairs_per_s"]
        table.add_row(
            name,
            f"{run['seconds']:.1f}",
            f"{run['pairs_per_s']:.1f}",
            f"{ratio:.2f}",
            f"{diff:.1e}",
        )
        result[f"{name}_pairs_per_s"] = round(run["pairs_per_s"], 2)
        result[f"{name}_max_abs_diff"] = diff
    result["ray1_overhead"] = round(local["pairs_per_s"] / runs["ray1"]["pairs_per_s"], 3)
    shards = -(-args.n // args.shard_size)
    extra = runs["ray1"]["seconds"] - local["seconds"]
    result["ray_overhead_s_per_shard"] = round(extra / shards, 3)
    efficiency = runs["ray2_1thread"]["pairs_per_s"] / runs["local1"]["pairs_per_s"]
    result["ray2_1thread_per_core_efficiency"] = round(efficiency / 2, 3)  # goal >= 0.8
    result["ray2_speedup_over_local"] = round(runs["ray2"]["pairs_per_s"] / local["pairs_per_s"], 3)
    import torch

    if torch.cuda.is_available():
        result["local_pairs_per_gpu_hour"] = round(local["pairs_per_s"] * 3600)
    Console().print(table)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
