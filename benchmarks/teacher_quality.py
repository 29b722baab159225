"""Teacher candidates side by side on one split: judges, cross-encoders, ensembles, baselines.

    python benchmarks/teacher_quality.py --data runs/hd/data --out runs/hd/quality \\
        --model llm=runs/hd/teacher --model ce-minilm=runs/hd/ce-minilm \\
        --model ensemble=runs/hd/ensemble --baseline bm25 --baseline biencoder

Each model (a dir, or an encoder alias such as ``minilm-l6``) scores the split once (cached in
``--out/cache/SPLIT``); an ensemble reuses its members' scores. ``--scores NAME=FILE`` adds a
scores file written by ``shoprel score`` (a judge scored with ``--int8``, say). Prints a table,
then one JSON object (the last line) with each model's metrics, training pairs, training seconds
and scoring pairs/s. ``--compare A:B`` (repeatable) adds the paired bootstrap over queries of A
minus B on pairwise accuracy and AUC (95% interval, 1,000 resamples). ``--plot`` draws each model's
reliability: mean true label against mean predicted label (the grade distribution's expectation,
or a linear map cross-fitted by query) in ten bins.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd
from quickstart_run import artifact, fill
from rich.console import Console

from shoprel.data.splits import read_split
from shoprel.eval.baselines import run_baseline
from shoprel.eval.compare import compare_models
from shoprel.eval.evaluate import align_scores, evaluate_scores, predicted_labels
from shoprel.eval.plots import label_reliability, plot_reliability
from shoprel.eval.significance import paired_bootstrap, ranking_metric_fns
from shoprel.eval.table import metrics_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="prepared data (quick: the quickstart's)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=Path("runs/teacher-quality"))
    parser.add_argument("--model", action="append", default=[], help="NAME=DIR")
    parser.add_argument(
        "--scores",
        action="append",
        default=[],
        help="NAME=FILE, a scores file of the split (`shoprel score`, e.g. with --int8)",
    )
    parser.add_argument("--baseline", action="append", default=[], help="bm25 | biencoder")
    parser.add_argument("--plot", type=Path, help="reliability diagram of the models (PNG)")
    parser.add_argument(
        "--compare", action="append", default=[], help="A:B, paired bootstrap of A minus B"
    )
    parser.add_argument(
        "--quick", action="store_true", help="no models given: the quickstart's teacher members"
    )
    args = parser.parse_args()
    if args.quick and not (args.model or args.baseline):
        args.model = [f"{name}={artifact(name)}" for name in ("judge", "cross_encoder", "teacher")]
        args.baseline = ["bm25"]
        args.compare = args.compare or ["teacher:bm25", "judge:bm25"]
    fill(args, data="data")
    pairs, scale = read_split(args.data, args.split)
    results: dict[str, dict[str, Any]] = {}
    aligned_scores: dict[str, pd.DataFrame] = {}
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
        aligned_scores[name] = scores
    models = dict(item.partition("=")[::2] for item in args.model)
    metrics, scores = compare_models(models, pairs, scale, args.out / "cache" / args.split)
    for name, path in (item.partition("=")[::2] for item in args.scores):
        scores[name] = align_scores(pairs, pd.read_parquet(path), f"{name} ({path})")
        metrics[name] = evaluate_scores(pairs, scores[name], scale)
    aligned_scores |= scores
    for name, aligned in scores.items():
        results[name] = metrics[name]
        predicted, _, _ = predicted_labels(pairs, aligned, scale)
        curves[name] = label_reliability(predicted, pairs["label"].to_numpy(float), scale)
        results[name]["label_calibration_error"] = curves[name]["calibration_error"]
    if args.plot and curves:
        plot_reliability(curves, args.plot, f"reliability on {args.split} ({len(pairs)} pairs)")
    Console(width=160).print(metrics_table(results, title=f"{args.data} / {args.split}"))
    differences = compare_pairs(args.compare, pairs, aligned_scores, scale)
    for key, diff in differences.items():
        print(f"{key}: " + ", ".join(f"{m} {d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
                                     for m, d in diff.items()))  # fmt: skip
    summary = {"split": args.split, "pairs": len(pairs), "models": results}
    print(json.dumps(summary | {"differences": differences}))


def compare_pairs(
    specs: list[str], pairs: pd.DataFrame, scores: dict[str, pd.DataFrame], scale: Any
) -> dict[str, dict[str, dict[str, float]]]:
    """``{"A - B": {metric: paired bootstrap}}`` for each ``A:B`` of ``specs``."""
    out = {}
    for spec in specs:
        a, _, b = spec.partition(":")
        if a not in scores or b not in scores:
            raise SystemExit(f"--compare {spec}: models are {', '.join(scores)}")
        out[f"{a} - {b}"] = {
            metric: paired_bootstrap(
                pairs, scores[a]["score"].to_numpy(), scores[b]["score"].to_numpy(), fn
            )
            for metric, fn in ranking_metric_fns(scale).items()
        }
    return out


if __name__ == "__main__":
    main()
