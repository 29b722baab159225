"""LREF data selection ablation: the judge trained on selected pairs vs random pairs vs all pairs.

    python benchmarks/lref_ablation.py --data runs/hd/data --out runs/hd/lref-ablation \\
        --base smollm2-135m-instruct --aux-base minilm-l6 --max-train-pairs 6000 --select-frac 0.1
    python benchmarks/lref_ablation.py --data runs/hd/data --out runs/hd/lref-ablation --quick

(with ``HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python`` from the repository root). From one
seeded pool of train pairs (``--max-train-pairs``) it

    1. selects ``--select-frac`` of the pool with LREF's rule (IM, CI and MS trained on
       ``--aux-base``; written to OUT/select, as ``shoprel teacher train --select lref`` does);
    2. draws a random sample of the same size from the same pool;
    3. trains the judge three times with the same settings: on the selection, on the random
       sample and on the whole pool (OUT/{selected,random,all});
    4. scores the same dev sample with each judge.

Prints the selection (size kept, kept by the rule, grade mix), the table of dev metrics, then one
JSON object (the last line) with each judge's dev metrics, train pairs and train seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from shoprel.eval.evaluate import read_split, sample_pairs
from shoprel.eval.table import metrics_table
from shoprel.teacher.lref.common import judge_metrics, plain_stage, score_judge
from shoprel.teacher.lref.selection import run_select
from shoprel.teacher.train import TeacherTrainConfig, train_teacher


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared data dir")
    parser.add_argument("--out", type=Path, default=Path("runs/lref-ablation"))
    parser.add_argument("--base", default="smollm2-135m-instruct", help="the judge's base")
    parser.add_argument("--aux-base", default="", help="base of IM/CI/MS ('' = --base)")
    parser.add_argument("--select-frac", type=float, default=0.1)
    parser.add_argument("--aux-frac", type=float, default=0.3)
    parser.add_argument("--max-train-pairs", type=int, default=6000, help="the pool (0: all)")
    parser.add_argument("--max-dev-pairs", type=int, default=1000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="600-pair pool, 200 dev pairs")
    return parser


def train_on(cfg: TeacherTrainConfig, data: Path, pairs: pd.DataFrame, out: Path) -> float:
    started = time.perf_counter()
    train_teacher(plain_stage(cfg, max_train_pairs=0, max_dev_pairs=0), data, out, pairs=pairs)
    return round(time.perf_counter() - started, 1)


def main() -> None:
    args = make_parser().parse_args()
    if args.quick:
        args.max_train_pairs, args.max_dev_pairs = 600, 200
    cfg = TeacherTrainConfig(
        base=args.base,
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        max_train_pairs=args.max_train_pairs,
        max_dev_pairs=args.max_dev_pairs,
        seed=args.seed,
        select={
            "method": "lref",
            "frac": args.select_frac,
            "aux_base": args.aux_base,
            "aux_frac": args.aux_frac,
        },
    )
    console = Console()
    pool, scale = read_split(args.data, "train")
    pool = sample_pairs(pool, cfg.max_train_pairs, cfg.seed)
    dev = sample_pairs(read_split(args.data, "dev")[0], cfg.max_dev_pairs, cfg.seed)
    selected = run_select(cfg, args.data, pool, scale, args.out / "select")
    report = json.loads((args.out / "select" / "selection_report.json").read_text())
    kept_by = report["kept_by"]
    console.print(
        f"selection: {report['kept']} of {report['pool_pairs']} pairs "
        f"(by the rule {kept_by.get('rule', 0)}, filled {kept_by.get('fill', 0)}); "
        f"grade mix {report['grade_mix']['kept']} (pool {report['grade_mix']['pool']})"
    )
    variants = {
        "selected": selected,
        "random": pool.sample(n=len(selected), random_state=cfg.seed),
        "all": pool,
    }
    results: dict[str, dict[str, Any]] = {}
    for name, pairs in variants.items():
        seconds = train_on(cfg, args.data, pairs, args.out / name)
        metrics = judge_metrics(score_judge(args.out / name, dev), dev, scale)
        results[name] = {"train_pairs": len(pairs), "train_seconds": seconds, **metrics}
    title = f"judge on dev ({len(dev)} pairs), trained on selected / random / all"
    console.print(metrics_table(results, title=title))
    summary = {"selection": report, "dev_pairs": len(dev), "judges": results}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
