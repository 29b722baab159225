"""The student frontier: rerank latency at 100 items against test AUC, for students of 2 to 6
layers of MiniLM-L6 distilled on the same teacher labels, beside the run's other models.

    python benchmarks/student_frontier.py --quick     # the quickstart run's data and labels
    python benchmarks/student_frontier.py --data runs/hd/data --labels-train runs/hd/labels/train \\
        --labels-aug runs/hd/labels/augmented --models runs/hd/eval/metrics.json \\
        --layers 2,3,4,6,3x768 --out runs/hd/frontier

(with ``HF_HUB_OFFLINE=1 .venv/bin/python`` from the repository root). Each student learns with
Margin-MSE from the teacher's scores of the train split and the augmented pairs
(``StudentTrainConfig.layers`` keeps the first N layers; ``NxW`` in ``--layers`` also narrows each
feed-forward block to its W most important units, ``StudentTrainConfig.ffn_width``), is exported
to ONNX (int8 where it passes
the dev gate, else fp32; calibrated on dev), and is measured on the test split: AUC and pairwise
accuracy of the export's scores, and p50 latency to rerank 100 items (one query's candidates,
median of ``--rounds``, after a warm-up; each round draws a new query and 100 new items, and the
exports and the torch cross-encoders take turns on that draw).
``--model NAME=DIR`` (repeatable) adds a cross-encoder dir or an export, timed and scored on
test like the students. The run's other models (``--models``: the run's ``eval/metrics.json``)
join the figure with their test AUC; those that are cross-encoder dirs (the label-only student,
the teacher's cross-encoder) get a latency too, on torch as ``CrossEncoder.predict`` runs them.

Resumable: a student dir holding the same settings is not trained again. Writes
``OUT/frontier.json`` and ``OUT/frontier.png``; prints a table, then one JSON object (the last
line): ``points`` (``name, layers, ffn_width, p50_ms_100, auc``; ``ffn_width``: units of each
feed-forward block, 0 for models that are not timed here), and ``cpu``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd
from quickstart_run import RUN, fill, fill_sizes
from rich.console import Console
from rich.table import Table

from shoprel.data.splits import read_split
from shoprel.devices import cpu_name
from shoprel.eval import plots
from shoprel.eval.metrics import ranking_metrics
from shoprel.io import read_json, write_json
from shoprel.pipeline.stages import DISTILLED, LABEL_ONLY
from shoprel.serve.export import ExportConfig, GateError, export_onnx
from shoprel.serve.latency import rerank_latency
from shoprel.serve.reranker import Reranker
from shoprel.student.train import StudentTrainConfig, train_or_reuse

ITEMS = 100
MEASURED_MEMBERS = {  # run models that are torch cross-encoder dirs, and where the run keeps them
    LABEL_ONLY: "student-labels",
    "teacher member: ce-minilm-l6": "teacher/ce-minilm-l6",
}


def measured_members(run: Path) -> dict[str, Path]:
    """:data:`MEASURED_MEMBERS` in ``run``; the label-only student where the run's student stage
    recorded it (the teacher's member, where the pipeline took that instead of training it)."""
    found = {name: run / where for name, where in MEASURED_MEMBERS.items()}
    record = run / "stages" / "student.json"
    students = read_json(record)["result"] if record.is_file() else {}
    if LABEL_ONLY in students and DISTILLED in students:
        recorded_run = Path(students[DISTILLED]).parent  # the run dir as the pipeline named it
        found[LABEL_ONLY] = run / Path(students[LABEL_ONLY]).relative_to(recorded_run)
    return found


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="prepared data dir (quickstart's)")
    parser.add_argument("--labels-train", type=Path, help="teacher labels, train (quickstart's)")
    parser.add_argument("--labels-aug", type=Path, help="teacher labels, augmented (quickstart's)")
    parser.add_argument("--models", type=Path, help="the run's eval/metrics.json (quickstart's)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="NAME=DIR, a cross-encoder dir or export to time and score beside the students",
    )
    parser.add_argument(
        "--layers",
        default=None,
        help="comma-separated N or NxW: N layers, feed-forward W wide (2,3,4,6; quick: 2)",
    )
    parser.add_argument("--base", default="minilm-l6")
    parser.add_argument(
        "--max-train-pairs", type=int, default=None, help="train-split pairs (0: all; quick: 2000)"
    )
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=None, help="latency rounds (15; quick: 5)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-frontier"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a 2-layer student on 2,000 train pairs beside the run's own 6-layer export",
    )
    args = parser.parse_args()
    if bad := [item for item in args.model if "=" not in item]:
        parser.error(f"--model: expected NAME=DIR, got {bad[0]!r}")
    args.model = [(name, Path(where)) for name, where in (m.split("=", 1) for m in args.model)]
    fill(args, data="data", labels_train="labels_train", labels_aug="labels_aug")
    if args.models is None:
        args.models = RUN / "eval" / "metrics.json" if args.quick else None
    layers = args.layers or ("2" if args.quick else "2,3,4,6")
    try:
        args.layers = [parse_shape(shape) for shape in layers.split(",")]
    except ValueError:
        parser.error(f"--layers: expected N or NxW, comma-separated, got {layers!r}")
    fill_sizes(args, {"max_train_pairs": 0, "rounds": 15}, {"max_train_pairs": 2000, "rounds": 5})
    return args


def parse_shape(shape: str) -> tuple[int, int]:
    """``"3"`` -> (3, 0): three layers of the base's width; ``"3x768"`` -> (3, 768)."""
    layers, _, width = shape.strip().partition("x")
    return int(layers), int(width or 0)


def shape_name(layers: int, ffn_width: int) -> str:
    return f"{layers}L" + (f", FFN {ffn_width}" if ffn_width else "")


def student(args: argparse.Namespace, layers: int, ffn_width: int) -> Path:
    """The distilled student of this shape, trained unless its dir has these settings."""
    cfg = StudentTrainConfig(
        base=args.base,
        layers=layers,
        ffn_width=ffn_width,
        labels=[str(args.labels_train), str(args.labels_aug)],
        loss="margin-mse",
        max_train_pairs=args.max_train_pairs,
        max_dev_pairs=300 if args.quick else 2000,
        epochs=args.epochs,
    )
    out = args.out / (f"student-{layers}l" + (f"-ffn{ffn_width}" if ffn_width else ""))
    settings = {"layers": layers, "labels": cfg.labels, "max_train_pairs": cfg.max_train_pairs,
                "epochs": cfg.epochs, "base": cfg.base}  # fmt: skip
    if ffn_width:
        settings["ffn_width"] = ffn_width
    return train_or_reuse(cfg, args.data, out, settings)


def export(args: argparse.Namespace, model: Path) -> Path:
    """int8 behind the gate where it passes, else fp32; calibrated on dev either way."""
    out = model.with_name(model.name + "-onnx")
    cfg = ExportConfig(int8=True, data=args.data, gate_pairs=300 if args.quick else 2000)
    try:
        export_onnx(model, out, cfg)
    except GateError as error:
        print(f"{model.name}: {error}; fp32")
        export_onnx(model, out, ExportConfig(data=args.data))
    return out


def model_shape(model: Path) -> dict[str, int]:
    """``layers`` and ``ffn_width`` (feed-forward units) of a cross-encoder dir or export."""
    config = read_json(model / "config.json")
    return {"layers": config["num_hidden_layers"], "ffn_width": config["intermediate_size"]}


def test_metrics(model: Path, test: pd.DataFrame, scale: Any) -> dict[str, float]:
    scores = Reranker.load(model).scorer.predict(test)["score"].to_numpy()
    return ranking_metrics(test["query_id"], test["label"], scores, scale)


def main() -> None:
    args = parse_args()
    test, scale = read_split(args.data, "test")
    timed: dict[str, Path] = {}
    points: dict[str, dict[str, Any]] = {}
    for layers, ffn_width in args.layers:
        exported = export(args, student(args, layers, ffn_width))
        name = f"student {shape_name(layers, ffn_width)} (ONNX)"
        timed[name] = exported
        points[name] = model_shape(exported) | test_metrics(exported, test, scale)
    run = args.models.parents[1] if args.models else None
    extra = dict(args.model)
    if args.quick and run is not None and (run / "export").is_dir():  # its distilled student
        extra[f"student {model_shape(run / 'export')['layers']}L (the run's export)"] = (
            run / "export"
        )
    for name, where in extra.items():
        timed[name] = where
        points[name] = model_shape(where) | test_metrics(where, test, scale)
    known = read_json(args.models)["models"] if args.models else {}
    members = measured_members(run) if run is not None else {}
    for name, found in known.items():
        points[name] = {
            "layers": 0,
            "ffn_width": 0,
            "auc": found["auc"],
            "pairwise_accuracy": found["pairwise_accuracy"],
        }
        where = members.get(name)
        if where is not None and where.is_dir():
            timed[name] = where
    scorers = {name: (str(path), {}) for name, path in timed.items()}
    latency = rerank_latency(scorers, test, [ITEMS], rounds=args.rounds)
    rows = [
        {"name": name, "layers": p["layers"], "ffn_width": p["ffn_width"],
         "p50_ms_100": latency.get(name, {}).get(ITEMS),
         "auc": round(p["auc"], 4), "pairwise_accuracy": round(p["pairwise_accuracy"], 4)}
        for name, p in points.items()
    ]  # fmt: skip
    report(args, rows)


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"student frontier, {ITEMS} items, test split of {args.data}")
    for column in ("model", "layers", "FFN", "p50 ms", "AUC", "pairwise"):
        table.add_column(column)
    for row in sorted(rows, key=lambda r: (r["p50_ms_100"] is None, r["p50_ms_100"] or 0)):
        ms = "-" if row["p50_ms_100"] is None else f"{row['p50_ms_100']:.1f}"
        layers = str(row["layers"] or "-")
        width = str(row["ffn_width"] or "-")
        table.add_row(
            row["name"], layers, width, ms, f"{row['auc']:.3f}", f"{row['pairwise_accuracy']:.3f}"
        )
    Console().print(table)
    result = {"points": rows, "cpu": cpu_name(), "items": ITEMS, "quick": args.quick}
    write_json(result, args.out / "frontier.json")
    drawn = [row for row in rows if row["p50_ms_100"] is not None]
    plots.save_figure(
        plots.frontier_figure(drawn, "latency against AUC"), args.out / "frontier.png"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
