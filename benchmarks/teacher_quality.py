"""Teacher candidates side by side on one split: judges, cross-encoders, ensembles, baselines.

    python benchmarks/teacher_quality.py --data runs/hd/data --out runs/hd/quality \\
        --model llm=runs/hd/teacher --model ce-minilm=runs/hd/ce-minilm \\
        --model ensemble=runs/hd/ensemble --baseline bm25 --baseline biencoder

Each model (a dir, or an encoder alias such as ``minilm-l6``) scores the split once (cached in
``--out/cache/SPLIT``); an ensemble reuses its members' scores. Prints a table, then one JSON
object (the last line) with each model's metrics, training pairs, training seconds and scoring
pairs/s. ``--plot`` draws each model's reliability: mean true label against mean predicted label
(the grade distribution's expectation, or a linear map cross-fitted by query) in ten bins.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from shoprel.eval.baselines import run_baseline
from shoprel.eval.compare import compare_models
from shoprel.eval.evaluate import align_scores, evaluate_scores, predicted_labels, read_split
from shoprel.eval.plots import label_reliability, plot_reliability
from shoprel.eval.table import metrics_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=Path("runs/teacher-quality"))
    parser.add_argument("--model", action="append", default=[], help="NAME=DIR")
    parser.add_argument("--baseline", action="append", default=[], help="bm25 | biencoder")
    parser.add_argument("--plot", type=Path, help="reliability diagram of the models (PNG)")
    args = parser.parse_args()
    pairs, scale = read_split(args.data, args.split)
    results: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    for name in args.baseline:
        for split in ("dev", args.split):
            run_baseline(name, args.data, split, args.out / f"{name}.{split}.parquet")
        dev_pairs, _ = read_split(args.data, "dev")
        dev = (
            dev_pairs,
            align_scores(dev_pairs, pd.read_parquet(args.out / f"{name}.dev.parquet"), name),
        )
        scores = align_scores(
            pairs, pd.read_parquet(args.out / f"{name}.{args.split}.parquet"), name
        )
        results[name] = evaluate_scores(pairs, scores, scale, dev)
    models = dict(item.partition("=")[::2] for item in args.model)
    metrics, scores = compare_models(models, pairs, scale, args.out / "cache" / args.split)
    for name, aligned in scores.items():
        results[name] = metrics[name]
        predicted, _, _ = predicted_labels(pairs, aligned, scale)
        curves[name] = label_reliability(predicted, pairs["label"].to_numpy(float), scale)
        results[name]["label_calibration_error"] = curves[name]["calibration_error"]
    if args.plot and curves:
        plot_reliability(curves, args.plot, f"reliability on {args.split} ({len(pairs)} pairs)")
    Console(width=160).print(metrics_table(results, title=f"{args.data} / {args.split}"))
    print(json.dumps({"split": args.split, "pairs": len(pairs), "models": results}))


if __name__ == "__main__":
    main()
