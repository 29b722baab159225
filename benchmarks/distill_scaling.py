"""Student quality against the number of teacher-labeled augmented pairs, beside the teacher.

    python benchmarks/distill_scaling.py --data runs/hd/data --labels-train runs/hd/labels/train \\
        --labels-aug runs/hd/labels/augmented --teacher-scores runs/hd/teacher.dev.parquet \\
        --out runs/hd/distill-scaling --base minilm-l6 --fracs 0,0.25,0.5,1
    python benchmarks/distill_scaling.py ... --teacher runs/hd/ensemble --quick
    python benchmarks/distill_scaling.py --quick    # data, labels and teacher of the quickstart run

(with ``HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python`` from the repository root). For each
share in ``--fracs`` it trains a student (``--loss``, margin-mse by default) on the teacher's scores
of the train split plus that share of the augmented pairs, taken by whole query (each share a
subset of the next); it also trains the label-only student (binary cross-entropy on the human
labels). Every model, and the teacher (``--teacher-scores`` FILE or ``--teacher`` DIR), is scored
on the same seeded sample of whole queries of ``--split`` (``--max-dev-pairs``). Pairwise accuracy
and AUC use the scores as they are; RMSE maps each model's scores to the label scale by a line
cross-fitted over two query-disjoint halves of the sample (a teacher's grade distribution is not
used, so all models are treated alike). The trainer picks its best epoch on the dev sample of the
same size and seed.

Each distilled student is compared with the label-only student on pairwise accuracy and AUC by a
paired bootstrap over whole queries (the difference, its 95% interval and the share of resamples
where the distilled student is not ahead), printed as a second table and kept in the JSON file.

Resumable: a point whose ``OUT/points/NAME.json`` holds the same settings is not trained again.
Writes ``OUT/distill_scaling.json`` and ``OUT/distill_scaling.png``; prints a table, then one JSON
object (the last line): ``points`` (one per share: ``augmented_pairs, pairwise_accuracy, auc,
rmse``), ``label_only`` and ``teacher`` with the same keys.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd
from quickstart_run import artifact, fill, fill_sizes
from rich.console import Console
from rich.table import Table

from shoprel.data.splits import read_split
from shoprel.eval.compare import model_scores
from shoprel.eval.evaluate import align_scores, evaluate_scores, read_scores
from shoprel.eval.significance import paired_bootstrap, ranking_metric_fns
from shoprel.eval.table import metrics_table
from shoprel.io import atomic_path, read_json, write_json, write_parquet
from shoprel.student.data import LABELS_FILE, read_teacher_labels, take_queries
from shoprel.student.train import META_FILE, StudentTrainConfig, model_settings, train_or_reuse

KEYS = ("augmented_pairs", "pairwise_accuracy", "auc", "rmse")
SIZES = {"max_dev_pairs": 2000, "max_train_pairs": 0, "max_aug_pairs": 0, "epochs": 1.0}
SIZES["fracs"] = "0,0.25,0.5,1"
QUICK = {"max_dev_pairs": 500, "max_train_pairs": 1000, "max_aug_pairs": 2000, "epochs": 1.0}
QUICK["fracs"] = "0,1"


def add_student_arguments(parser: argparse.ArgumentParser) -> None:
    """The data, labels and training settings of the students (shared with
    ``pointwise_weight.py``)."""
    parser.add_argument("--data", type=Path, help="prepared data dir (quickstart's)")
    parser.add_argument("--labels-train", type=Path, help="teacher labels, train (quickstart's)")
    parser.add_argument("--labels-aug", type=Path, help="teacher labels, augmented (quickstart's)")
    parser.add_argument("--base", default="minilm-l6", help="encoder alias, dir or hub id")
    parser.add_argument("--max-dev-pairs", type=int, help="dev sample, whole queries (0: all)")
    parser.add_argument("--max-train-pairs", type=int, help="train-split pairs (0: all)")
    parser.add_argument("--max-aug-pairs", type=int, help="augmented pool, whole queries (0: all)")
    parser.add_argument("--epochs", type=float, help="passes over the pairs (1)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)


def parse_sizes(parser: argparse.ArgumentParser, sizes: dict, quick: dict) -> argparse.Namespace:
    """The arguments, each size not given taken from ``quick`` or ``sizes``; the data and labels
    not given are the quickstart run's."""
    parser.add_argument("--quick", action="store_true", help=f"sizes not given: {quick}")
    args = parser.parse_args()
    fill_sizes(args, sizes, quick)
    fill(args, data="data", labels_train="labels_train", labels_aug="labels_aug")
    return args


def common_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``StudentTrainConfig`` keywords every student of a run shares."""
    return dict(
        base=args.base,
        max_train_pairs=args.max_train_pairs,
        max_dev_pairs=args.max_dev_pairs,
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_student_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/distill-scaling"))
    teacher = parser.add_mutually_exclusive_group()
    teacher.add_argument("--teacher-scores", type=Path, help="the teacher's scores of --split")
    teacher.add_argument("--teacher", type=Path, help="a model dir shoprel saved, to score --split")
    parser.add_argument("--fracs", help="shares of the augmented pairs (0,0.25,0.5,1; quick: 0,1)")
    parser.add_argument("--loss", default="margin-mse", choices=["margin-mse", "mse"])
    parser.add_argument("--split", default="dev", help="split the models are compared on")
    args = parse_sizes(parser, SIZES, QUICK)
    args.fracs = [float(f) for f in args.fracs.split(",")]
    if args.teacher is None and args.teacher_scores is None:
        args.teacher = artifact("teacher")
    return args


def augmented_pool(args: argparse.Namespace) -> Path:
    """The augmented label dir, or a seeded sample of its whole queries (``--max-aug-pairs``),
    drawn again when the labels it was drawn from change."""
    if not args.max_aug_pairs:
        return args.labels_aug
    pool = args.out / f"labels-aug-{args.max_aug_pairs}-seed{args.seed}"
    source = args.labels_aug / LABELS_FILE
    stamp = pool / "source.json"
    drawn_from = {"labels": str(source.resolve()), "mtime_ns": source.stat().st_mtime_ns}
    if not (pool / LABELS_FILE).is_file() or not stamp.is_file() or read_json(stamp) != drawn_from:
        labels = read_teacher_labels([args.labels_aug])
        write_parquet(take_queries(labels, args.max_aug_pairs, args.seed), pool / LABELS_FILE)
        write_json(drawn_from, stamp)
    return pool


def student_configs(args: argparse.Namespace, pool: Path) -> dict[str, StudentTrainConfig]:
    common = common_settings(args)
    configs = {"label-only": StudentTrainConfig(loss="labels", **common)}
    for frac in args.fracs:
        labels = [str(args.labels_train), str(pool)]
        configs[f"aug-{frac:g}"] = StudentTrainConfig(
            loss=args.loss, labels=labels, augment_frac=frac, **common
        )
    return configs


def run_point(
    name: str, cfg: StudentTrainConfig, args: argparse.Namespace, sample: pd.DataFrame
) -> dict[str, Any]:
    """Train (unless a finished point or model with the same settings exists) and evaluate."""
    done = args.out / "points" / f"{name}.json"
    settings = model_settings(cfg) | {"split": args.split}
    if done.is_file() and read_json(done)["settings"] == settings:
        return read_json(done)
    model_dir = args.out / "students" / name
    train_or_reuse(cfg, args.data, model_dir)
    train = read_json(model_dir / META_FILE)["train"]
    point = evaluate(sample, student_scores(name, args, sample), args) | {
        "augmented_pairs": train["augmented_pairs"],
        "train_pairs": train["train_pairs"],
        "train_seconds": train["seconds"],
        "train_pairs_per_s": train["pairs_per_s"],
        "settings": settings,
    }
    write_json(point, done)
    return point


def student_scores(name: str, args: argparse.Namespace, sample: pd.DataFrame) -> pd.DataFrame:
    """The student's scores of ``sample``, cached by model files and pairs (a student trained
    again, or another sample, is scored again)."""
    return model_scores(args.out / "students" / name, sample, args.out / "scores")[0]


def against(
    names: list[str], baseline: str, args: argparse.Namespace, sample: pd.DataFrame
) -> dict[str, dict[str, Any]]:
    """Each student minus the ``baseline`` student on pairwise accuracy and AUC, with a 95%
    interval from resampling whole queries (paired: both scored on the same draw)."""
    _, scale = read_split(args.data, args.split)
    aligned = {
        name: align_scores(sample, student_scores(name, args, sample), name)["score"].to_numpy()
        for name in [baseline, *names]
    }
    fns = ranking_metric_fns(scale)
    return {
        name: {
            key: paired_bootstrap(sample, aligned[name], aligned[baseline], fn, seed=args.seed)
            for key, fn in fns.items()
        }
        for name in names
    }


def evaluate(
    sample: pd.DataFrame, scores: pd.DataFrame, args: argparse.Namespace
) -> dict[str, Any]:
    _, scale = read_split(args.data, args.split)
    scores = align_scores(sample, scores[["pair_id", "score"]], "scores")
    return evaluate_scores(sample, scores, scale)


def teacher_point(args: argparse.Namespace, sample: pd.DataFrame) -> dict[str, Any]:
    if args.teacher_scores is not None:
        scores = read_scores(args.teacher_scores)
        scores = scores[scores["pair_id"].isin(sample["pair_id"])]
        source = str(args.teacher_scores)
    else:
        scores = model_scores(args.teacher, sample, args.out / "scores")[0]
        source = str(args.teacher)
    aligned = align_scores(sample, scores[["pair_id", "score"]], source)
    return evaluate(sample, aligned, args) | {"augmented_pairs": None}


def versus_table(
    versus: dict[str, dict[str, Any]], title: str = "distilled minus label-only"
) -> Table:
    table = Table(title=f"{title} (95% interval over query resamples)")
    table.add_column("student")
    for key in ("pairwise_accuracy", "auc"):
        table.add_column(f"{key} diff [low, high]", justify="right")
        table.add_column("P(not better)", justify="right")
    for name, by_metric in versus.items():
        cells = []
        for found in by_metric.values():
            cells += [f"{found['diff']:+.4f} [{found['low']:+.4f}, {found['high']:+.4f}]"]
            cells += [f"{found['p_not_better']:.3f}"]
        table.add_row(name, *cells)
    return table


def plot(points: list[dict], label_only: dict, teacher: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("pairwise_accuracy", "pairwise accuracy"), ("auc", "AUC"), ("rmse", "RMSE")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    x = [p["augmented_pairs"] for p in points]
    for ax, (key, label) in zip(axes, metrics, strict=True):
        ax.plot(x, [p[key] for p in points], marker="o", label="student (teacher scores)")
        ax.axhline(teacher[key], color="tab:red", linestyle="--", label="teacher")
        ax.axhline(label_only[key], color="tab:gray", linestyle=":", label="label-only student")
        ax.set_xlabel("augmented pairs")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    dev, _ = read_split(args.data, args.split)
    sample = take_queries(dev, args.max_dev_pairs, args.seed) if args.max_dev_pairs else dev
    pool = augmented_pool(args)
    configs = student_configs(args, pool)
    results = {name: run_point(name, cfg, args, sample) for name, cfg in configs.items()}
    teacher = teacher_point(args, sample)
    label_only = results.pop("label-only")
    points = sorted(results.values(), key=lambda p: p["augmented_pairs"])
    title = f"{args.data.name} / {args.split}: {len(sample)} pairs, student {Path(args.base).name}"
    plot(points, label_only, teacher, args.out / "distill_scaling.png", title)
    summary = {
        "points": [{k: p[k] for k in KEYS} for p in points],
        "label_only": {k: label_only[k] for k in KEYS},
        "teacher": {k: teacher[k] for k in KEYS},
    }
    table = {"teacher": teacher, "label-only": label_only}
    table |= {f"student +{p['augmented_pairs']} aug": p for p in points}
    versus = against(list(results), "label-only", args, sample)
    details = {"details": table, "vs_label_only": versus, "quick": args.quick}
    write_json(summary | details, args.out / "distill_scaling.json")
    console = Console(width=160)
    console.print(metrics_table(table, title=title))
    console.print(versus_table(versus))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
