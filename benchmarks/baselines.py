"""Baselines on Home Depot: prepare -> BM25 and bi-encoder on dev and test -> evaluate.

    python benchmarks/baselines.py            # the full data set
    python benchmarks/baselines.py --quick    # the first 8,000 rows

Prints a table, then one JSON object (the last line) with each baseline's test metrics and the
seconds each step took.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console

from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.eval.baselines import BASELINES, run_baseline
from shoprel.eval.evaluate import evaluate
from shoprel.eval.table import metrics_table

DATA = Path(__file__).resolve().parents[1] / "../shared/data/home_depot_search_relevance/train.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the first 8,000 rows")
    parser.add_argument("--data", type=Path, default=DATA, help="Home Depot train.csv")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-baselines"))
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"Home Depot data not found at {args.data}")
    source = args.data
    if args.quick:
        source = args.out / "train.head.csv"
        source.parent.mkdir(parents=True, exist_ok=True)
        lines = args.data.read_bytes().splitlines(keepends=True)[:8001]
        source.write_bytes(b"".join(lines))
    started = time.perf_counter()
    card = prepare(PrepareConfig(source="homedepot", inputs=[source]), args.out / "data")
    timings = {"prepare_s": time.perf_counter() - started}
    results = {}
    for name in BASELINES:
        started = time.perf_counter()
        for split in ("dev", "test"):
            run_baseline(name, args.out / "data", split, args.out / f"{name}.{split}.parquet")
        timings[f"{name}_s"] = time.perf_counter() - started
        results[name] = evaluate(
            args.out / "data",
            "test",
            args.out / f"{name}.test.parquet",
            dev_scores_path=args.out / f"{name}.dev.parquet",
        )
    Console(width=160).print(
        metrics_table(results, title=f"Home Depot test ({card['splits']['test']['pairs']} pairs)")
    )
    summary = {
        "quick": args.quick,
        "test_pairs": card["splits"]["test"]["pairs"],
        "test_queries": card["splits"]["test"]["queries"],
        **{k: round(v, 1) for k, v in timings.items()},
        "baselines": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
