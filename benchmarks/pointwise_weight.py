"""The weight of the pointwise term beside Margin-MSE, chosen on dev and checked on test.

    python benchmarks/pointwise_weight.py --data runs/hd/data --labels-train runs/hd/labels-train \\
        --labels-aug runs/hd/labels-augment --out runs/hd/pointwise-weight --weights 0,0.1,0.3,1
    python benchmarks/pointwise_weight.py --quick   # data and labels of the quickstart run

(with ``HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python`` from the repository root). For each
weight W it distils a student with ``margin-mse`` plus W times the pointwise MSE to the teacher's
score (W = 0: margins alone), on the teacher's scores of the train split and all the augmented
pairs, and scores a seeded sample of whole dev queries. The weight with the highest dev AUC (then
pairwise accuracy) is chosen; it and the margins-only student are then scored on the test split
and compared by a paired bootstrap over whole queries. Points are resumable as in
``distill_scaling.py`` (whose training and scoring this script reuses).

Prints a table per split, then one JSON object (the last line): ``dev`` (per weight:
``pairwise_accuracy, auc, rmse``), ``chosen`` (the weight), ``test`` (``margins_only`` and
``chosen`` with the same keys) and ``test_diff`` (chosen minus margins-only, with intervals).
"""

from __future__ import annotations

import argparse
import json
from copy import copy
from pathlib import Path
from typing import Any

from distill_scaling import (
    add_student_arguments,
    against,
    augmented_pool,
    common_settings,
    parse_sizes,
    run_point,
    student_scores,
    versus_table,
)
from rich.console import Console

from shoprel.data.splits import read_split
from shoprel.eval.evaluate import align_scores, evaluate_scores
from shoprel.eval.table import metrics_table
from shoprel.io import write_json
from shoprel.student.data import take_queries
from shoprel.student.train import StudentTrainConfig

KEYS = ("pairwise_accuracy", "auc", "rmse")
SIZES = {"max_dev_pairs": 2000, "max_train_pairs": 0, "max_aug_pairs": 0, "epochs": 1.0}
SIZES["weights"] = "0,0.1,0.3,1"
QUICK = {"max_dev_pairs": 500, "max_train_pairs": 1000, "max_aug_pairs": 2000, "epochs": 1.0}
QUICK["weights"] = "0,1"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_student_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/pointwise-weight"))
    parser.add_argument("--weights", help="pointwise weights (0,0.1,0.3,1; quick: 0,1)")
    args = parse_sizes(parser, SIZES, QUICK)
    args.weights = sorted({float(w) for w in args.weights.split(",")} | {0.0})
    args.split = "dev"
    return args


def configs(args: argparse.Namespace, pool: Path) -> dict[str, StudentTrainConfig]:
    labels = [str(args.labels_train), str(pool)]
    return {
        name(w): StudentTrainConfig(
            loss="margin-mse", labels=labels, pointwise_weight=w, **common_settings(args)
        )
        for w in args.weights
    }


def name(weight: float) -> str:
    return f"pointwise-{weight:g}"


def on_test(names: list[str], args: argparse.Namespace) -> tuple[dict, dict]:
    """The metrics of ``names`` on the whole test split, and the second minus the first."""
    test_args = copy(args)
    test_args.split = "test"
    pairs, scale = read_split(args.data, "test")
    metrics = {}
    for student in names:
        scores = align_scores(pairs, student_scores(student, test_args, pairs), student)
        metrics[student] = evaluate_scores(pairs, scores, scale)
    return metrics, against(names[1:], names[0], test_args, pairs)


def main() -> None:
    args = parse_args()
    dev, _ = read_split(args.data, "dev")
    sample = take_queries(dev, args.max_dev_pairs, args.seed) if args.max_dev_pairs else dev
    found = {
        n: run_point(n, cfg, args, sample) for n, cfg in configs(args, augmented_pool(args)).items()
    }
    chosen = max(
        args.weights, key=lambda w: (found[name(w)]["auc"], found[name(w)]["pairwise_accuracy"])
    )
    dev_versus = against([name(w) for w in args.weights[1:]], name(0.0), args, sample)
    test, test_versus = on_test([name(0.0), name(chosen)] if chosen else [name(0.0)], args)
    summary: dict[str, Any] = {
        "dev": {f"{w:g}": {k: found[name(w)][k] for k in KEYS} for w in args.weights},
        "chosen": chosen,
        "test": {
            "margins_only": {k: test[name(0.0)][k] for k in KEYS},
            "chosen": {k: test[name(chosen)][k] for k in KEYS},
        },
        "test_diff": test_versus.get(name(chosen)),
    }
    write_json(
        summary | {"dev_diff": dev_versus, "quick": args.quick}, args.out / "pointwise_weight.json"
    )
    console = Console(width=160)
    title = f"{args.data.name} / dev: {len(sample)} pairs, chosen weight {chosen:g}"
    console.print(metrics_table({n: found[n] for n in map(name, args.weights)}, title=title))
    console.print(versus_table(dev_versus, "dev: each weight minus margins only"))
    console.print(metrics_table(test, title=f"{args.data.name} / test"))
    if test_versus:
        console.print(versus_table(test_versus, "test: the chosen weight minus margins only"))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
