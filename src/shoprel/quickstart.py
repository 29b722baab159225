"""``shoprel quickstart``: the whole pipeline on the demo shop (``configs/quickstart.yaml``).

    shoprel quickstart --out runs/quickstart

Prepares the demo catalog; scores it with the baselines; trains the teacher (a small LLM judge,
a MiniLM cross-encoder on the labels, the zero-shot bi-encoder, combined on dev); augments the
train queries and has the teacher label the new pairs; distils a MiniLM student with Margin-MSE
(and trains the label-only student for comparison); exports it to ONNX int8; evaluates every
model on the test split and writes ``report.html`` and ``metrics.json``. It ends with the table
and the commands that serve the student and open the explorer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from shoprel.eval.table import metrics_table
from shoprel.io import read_json
from shoprel.pipeline.config import load_pipeline_config
from shoprel.pipeline.runner import run_pipeline
from shoprel.pipeline.stages import STAGES


def run_quickstart(
    out: str | Path = "runs/quickstart",
    seed: int = 0,
    from_stage: str | None = None,
    console: Console | None = None,
) -> dict[str, dict[str, Any]]:
    console = console or Console()
    out = Path(out)
    cfg = load_pipeline_config("quickstart")
    cfg.data.seed = cfg.data.loader.seed = seed
    records = run_pipeline(cfg, out, STAGES, from_stage)
    for name, record in records.items():
        state = "up to date" if record["skipped"] else f"{record['seconds']:.0f} s"
        console.print(f"[bold]{name:>10}[/]: {state}")
    results = read_json(out / "metrics.json")
    console.print(metrics_table(results, title=f"demo shop, test split ({out / 'metrics.json'})"))
    console.print(f"report: {out / 'report.html'}")
    console.print(f"serve the student: shoprel serve --model {out / 'export'} --port 8000")
    console.print(f"explore the rankings: shoprel explore --run {out}")
    return results
