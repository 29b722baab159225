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
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from shoprel.eval.baselines import run_baseline
from shoprel.eval.evaluate import align_scores, evaluate_scores, predicted_labels, read_split
from shoprel.eval.plots import label_reliability, plot_reliability
from shoprel.eval.table import metrics_table
from shoprel.io import write_parquet
from shoprel.scoring import load_scorer
from shoprel.student.train import META_FILE as CROSS_ENCODER_META
from shoprel.teacher.ensemble import META_FILE as ENSEMBLE_META
from shoprel.teacher.ensemble import combine, member_ref
from shoprel.teacher.model import META_FILE as TEACHER_META


def training_facts(directory: Path) -> dict[str, Any]:
    for name in (TEACHER_META, CROSS_ENCODER_META):
        if (directory / name).is_file():
            train = json.loads((directory / name).read_text()).get("train", {})
            return {"train_pairs": train.get("train_pairs"), "train_s": train.get("seconds")}
    return {}


def model_scores(
    directory: Path, pairs: pd.DataFrame, cache: Path
) -> tuple[pd.DataFrame, float | None]:
    """Scores of one model (cached by its resolved path or alias) and the pairs/s of scoring."""
    ref = member_ref(str(directory))
    cached = cache / f"{hashlib.sha1(ref.encode()).hexdigest()[:12]}.parquet"
    directory = Path(ref)
    if cached.is_file():
        return pd.read_parquet(cached), None
    if (directory / ENSEMBLE_META).is_file():
        meta = json.loads((directory / ENSEMBLE_META).read_text())
        member_scores = {
            name: align_scores(pairs, model_scores(Path(path), pairs, cache)[0], path)[
                "score"
            ].to_numpy()
            for name, path in meta["members"].items()
        }
        score = combine(member_scores, meta["weights"], meta["intercept"], meta["scale"])
        frame = pd.DataFrame({"pair_id": pairs["pair_id"], "score": score})
        return frame, None
    started = time.perf_counter()
    frame = load_scorer(ref).predict(pairs, progress=True)
    speed = len(pairs) / (time.perf_counter() - started)
    write_parquet(frame, cached)
    return frame, speed


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
    for item in args.model:
        name, _, path = item.partition("=")
        frame, speed = model_scores(Path(path), pairs, args.out / "cache" / args.split)
        aligned = align_scores(pairs, frame, path)
        metrics = evaluate_scores(pairs, aligned, scale)
        results[name] = metrics | training_facts(Path(path)) | {"score_pairs_per_s": speed}
        predicted, _, _ = predicted_labels(pairs, aligned, scale)
        curves[name] = label_reliability(predicted, pairs["label"].to_numpy(float), scale)
        results[name]["label_calibration_error"] = curves[name]["calibration_error"]
    if args.plot and curves:
        plot_reliability(curves, args.plot, f"reliability on {args.split} ({len(pairs)} pairs)")
    Console(width=160).print(metrics_table(results, title=f"{args.data} / {args.split}"))
    print(json.dumps({"split": args.split, "pairs": len(pairs), "models": results}))


if __name__ == "__main__":
    main()
