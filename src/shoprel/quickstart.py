"""``shoprel quickstart``: the whole job on the embedded demo shop, end to end.

    shoprel quickstart --out runs/quickstart

Prepares the demo catalog, scores dev and test with each baseline, evaluates test (label maps fitted
on dev) and prints the table; ``metrics.json`` in the run dir holds the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.eval.baselines import BASELINES, run_baseline
from shoprel.eval.evaluate import evaluate
from shoprel.eval.table import metrics_table
from shoprel.io import write_json


def run_quickstart(
    out: str | Path = "runs/quickstart", seed: int = 0, console: Console | None = None
) -> dict[str, dict[str, Any]]:
    console = console or Console()
    out = Path(out)
    with console.status("preparing the demo catalog"):
        card = prepare(PrepareConfig(source="demo", seed=seed), out / "data")
    console.print(
        f"[bold]data[/]: {card['pairs']} pairs, {card['queries']} queries, "
        f"{card['products']} products -> {out / 'data'}"
    )
    results: dict[str, dict[str, Any]] = {}
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
    write_json(results, out / "metrics.json")
    console.print(metrics_table(results, title=f"demo shop, test split ({out / 'metrics.json'})"))
    return results
