"""``shoprel quickstart``: the whole job on the embedded demo shop, end to end.

    shoprel quickstart --out runs/quickstart

Prepares the demo catalog; scores dev and test with each baseline; trains a small LLM judge
(``smollm2-135m-instruct``, LoRA, a few hundred pairs) and scores test with it; builds augmented
pairs for a sample of the train queries and has the judge label them; evaluates every model on
test (label maps fitted on dev) and prints the table. ``metrics.json`` holds the numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.eval.baselines import BASELINES, run_baseline
from shoprel.eval.evaluate import evaluate, read_split
from shoprel.eval.table import metrics_table
from shoprel.io import write_json, write_parquet


def run_baselines(out: Path, console: Console) -> dict[str, dict[str, Any]]:
    results = {}
    for name in BASELINES:
        with console.status(f"baseline {name}"):
            for split in ("dev", "test"):
                run_baseline(name, out / "data", split, out / "scores" / f"{name}.{split}.parquet")
            results[name] = evaluate(
                out / "data",
                "test",
                out / "scores" / f"{name}.test.parquet",
                dev_scores_path=out / "scores" / f"{name}.dev.parquet",
            )
    return results


def run_teacher(out: Path, train_pairs: int, console: Console) -> dict[str, Any]:
    from shoprel.teacher.scorer import TeacherScorer
    from shoprel.teacher.train import TeacherTrainConfig, train_teacher

    console.print(f"[bold]teacher[/]: LoRA on {train_pairs} demo pairs")
    cfg = TeacherTrainConfig(
        max_train_pairs=train_pairs,
        max_dev_pairs=0,
        batch_size=8,
        learning_rate=3e-4,
        save_steps=10_000,
    )
    model_dir = train_teacher(cfg, out / "data", out / "teacher")
    pairs, _ = read_split(out / "data", "test")
    scores = TeacherScorer.load(model_dir).predict(pairs, progress=True)
    write_parquet(scores, out / "scores" / "teacher.test.parquet")
    return evaluate(out / "data", "test", out / "scores" / "teacher.test.parquet")


def run_augment_and_label(out: Path, teacher: Path, console: Console) -> dict[str, Any]:
    """Augmented pairs for the train queries, labeled by the teacher."""
    from shoprel.augment.candidates import AugmentConfig, augment
    from shoprel.labeling.run import LabelConfig, label_pairs

    cfg = AugmentConfig(bm25_k=3, dense_k=3, random_k=1, synthetic_queries=60, max_queries=120)
    with console.status("augmenting the train queries"):
        report = augment(cfg, out / "data", out / "augment", None)
    console.print(
        f"[bold]augment[/]: {report['pairs']} pairs for {report['queries']} queries "
        f"{report['pairs_by_source']}"
    )
    summary = label_pairs(
        teacher, out / "augment" / "pairs.parquet", out / "labels-augment", LabelConfig()
    )
    console.print(
        f"[bold]label[/]: {summary['pairs']} pairs in {summary['seconds']} s "
        f"({summary['pairs_per_s']} pairs/s) -> {out / 'labels-augment'}"
    )
    return summary


def run_quickstart(
    out: str | Path = "runs/quickstart",
    seed: int = 0,
    teacher_pairs: int = 240,
    console: Console | None = None,
) -> dict[str, dict[str, Any]]:
    console = console or Console()
    out = Path(out)
    with console.status("preparing the demo catalog"):
        card = prepare(PrepareConfig(source="demo", seed=seed), out / "data")
    console.print(
        f"[bold]data[/]: {card['pairs']} pairs, {card['queries']} queries, "
        f"{card['products']} products -> {out / 'data'}"
    )
    results = run_baselines(out, console)
    if teacher_pairs:
        results["teacher (smollm2-135m)"] = run_teacher(out, teacher_pairs, console)
        run_augment_and_label(out, out / "teacher", console)
    write_json(results, out / "metrics.json")
    console.print(metrics_table(results, title=f"demo shop, test split ({out / 'metrics.json'})"))
    return results
