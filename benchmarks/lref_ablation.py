"""LREF ablation: the judge after each LREF stage, beside SFT on all pairs and on random pairs.

    python benchmarks/lref_ablation.py --data runs/hd/data --out runs/hd/lref-ablation \\
        --base smollm2-135m-instruct --aux-base minilm-l6 --max-train-pairs 6000 --select-frac 0.1
    python benchmarks/lref_ablation.py --data runs/hd/data --out runs/hd/lref-ablation --quick
    python benchmarks/lref_ablation.py --quick        # on the quickstart run's data

(with ``HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python`` from the repository root). From one
seeded pool of train pairs (``--max-train-pairs``) it

    1. runs the LREF stages as ``shoprel teacher train --select lref --cot KINDS --dpo`` does
       (OUT/lref/{select,sft,cot,dpo}): ``--select-frac`` of the pool chosen by LREF's rule (IM,
       CI and MS trained on ``--aux-base``), SFT on it, Multi-CoT (``--cot``), then DPO against
       optimistic errors (``--dpo``) on the queries held out of the pool and the unselected pairs;
    2. trains the judge with the same settings on a random sample of the selection's size and on
       the whole pool (less DPO's held-out queries): OUT/{random,all};
    3. scores the same dev sample with each judge (``direct`` mode: the grade distribution).

Prints the selection (size kept, kept by the rule, grade mix), the table of dev metrics with each
row's training seconds, then one JSON object (the last line) with every row. A rerun with the same
OUT reuses finished stages and judges. With

    --pipeline-config configs/homedepot.yaml --data RUN/data --lref-dir RUN/teacher/judge

the judge's settings come from the pipeline config and the LREF stages the pipeline already ran
are reused: only the two comparison judges are trained.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from quickstart_run import fill, fill_sizes
from rich.console import Console

from shoprel.eval.table import metrics_table
from shoprel.io import jsonable, read_json, write_json
from shoprel.pipeline.config import load_pipeline_config
from shoprel.teacher import sft
from shoprel.teacher.select import read_selection
from shoprel.teacher.stage_io import StageData, read_stage_metrics
from shoprel.teacher.train import (
    HEADLINE,
    SUMMARY_FILE,
    TeacherTrainConfig,
    config_for_this_machine,
    lref_splits,
    train_teacher,
)

QUICK_COT = {"eval_pairs": 8}  # dev pairs scored in cot mode (generation is the slow part)
QUICK_DPO = {"max_pool_pairs": 64, "mode": "direct"}
STAGE_ROWS = {"sft": "SFT, LREF-selected pairs", "cot": "+ Multi-CoT", "dpo": "+ DPO"}
SIZES = {"max_train_pairs": 6000, "max_dev_pairs": 1000, "cot_max_pairs": 300}
QUICK_SIZES = {"max_train_pairs": 200, "max_dev_pairs": 80, "cot_max_pairs": 12}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="prepared data dir (quick: the quickstart's)")
    parser.add_argument("--out", type=Path, default=Path("runs/lref-ablation"))
    parser.add_argument("--base", default="smollm2-135m-instruct", help="the judge's base")
    parser.add_argument("--aux-base", default="", help="base of IM/CI/MS ('' = --base)")
    parser.add_argument("--select-frac", type=float, default=0.1)
    parser.add_argument("--aux-frac", type=float, default=0.3)
    parser.add_argument(
        "--max-train-pairs", type=int, default=None, help="the pool (0: all; 6000, quick 200)"
    )
    parser.add_argument("--max-dev-pairs", type=int, default=None, help="1000 (quick: 80)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cot", default="ee,ra,dr", help="Multi-CoT kinds ('' = no CoT stage)")
    parser.add_argument(
        "--cot-max-pairs", type=int, default=None, help="train pairs per CoT kind (300, quick 12)"
    )
    parser.add_argument("--dpo", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pipeline-config",
        type=Path,
        help="take the judge's settings (LREF stages included) from a pipeline config instead",
    )
    parser.add_argument(
        "--lref-dir", type=Path, help="where the LREF stages run or ran (default OUT/lref)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="200-pair pool, 80 dev pairs, 12 CoT pairs a kind (8 scored in cot mode), DPO in "
        "direct mode on 64 pool pairs, MiniLM IM/CI/MS; no --data: the quickstart's data",
    )
    return parser


def baseline_row(
    cfg: TeacherTrainConfig, data: StageData, pairs: pd.DataFrame, out: Path
) -> dict[str, Any]:
    """The judge's SFT stage alone on ``pairs``, with its dev metrics (reused when finished)."""
    done = out / "ablation_row.json"
    if done.is_file():
        return read_json(done)
    started = time.perf_counter()
    sft.run(cfg, data._replace(pairs=pairs), out)
    seconds = round(time.perf_counter() - started, 1)
    metrics = read_stage_metrics(out)["dev"]
    row = {"train_examples": len(pairs), "train_seconds": seconds}
    row |= {k: metrics[k] for k in HEADLINE}
    write_json(row, done)
    return row


def stage_rows(summary: dict[str, Any], lref_dir: Path) -> dict[str, dict[str, Any]]:
    """The LREF stages' dev metrics from ``lref.json``, one row per stage that ran, with what
    each stage trained on (SFT: pairs; Multi-CoT: CoT and direct examples; DPO: pairs)."""
    rows = {}
    for name, label in STAGE_ROWS.items():
        if name not in summary["stages"]:
            continue
        stage = summary["stages"][name]
        rows[label] = {"train_examples": stage_examples(name, read_stage_metrics(lref_dir / name))}
        rows[label] |= {"train_seconds": stage["seconds"]} | stage["dev"]
    return rows


def stage_examples(name: str, record: dict[str, Any]) -> int:
    if name == "cot":
        return sum(p["cot_examples"] + p["direct_examples"] for p in record["phases"])
    return record["pairs"] if name == "dpo" else record["train_pairs"]


def make_config(args: argparse.Namespace) -> TeacherTrainConfig:
    if args.pipeline_config:
        judge = load_pipeline_config(args.pipeline_config).teacher.judge
        if judge.select.method != "lref":
            raise SystemExit(f"{args.pipeline_config}: teacher.judge.select.method is not lref")
        return judge
    kinds = [k for k in args.cot.split(",") if k]
    return TeacherTrainConfig(
        base=args.base,
        sft={
            "args": {
                "num_train_epochs": args.epochs,
                "learning_rate": args.lr,
                "per_device_train_batch_size": args.batch_size,
            }
        },
        max_train_pairs=args.max_train_pairs,
        max_dev_pairs=args.max_dev_pairs,
        seed=args.seed,
        select={
            "method": "lref",
            "frac": args.select_frac,
            "aux_base": args.aux_base,
            "aux_frac": args.aux_frac,
        },
        cot={"kinds": kinds, "max_pairs": args.cot_max_pairs} | (QUICK_COT if args.quick else {}),
        dpo={"enabled": args.dpo} | (QUICK_DPO if args.quick else {}),
    )


def start_afresh_if_changed(out: Path, settings: dict[str, Any]) -> None:
    """Reuse ``out`` only for the settings it was made with (recorded there); else clear it."""
    record = out / "settings.json"
    same = record.is_file() and read_json(record) == jsonable(settings)
    if not same and out.exists():
        shutil.rmtree(out)
    write_json(settings, record)


def main() -> None:
    args = make_parser().parse_args()
    fill_sizes(args, SIZES, QUICK_SIZES)
    if args.quick:
        args.aux_base = args.aux_base or "minilm-l6"
    fill(args, data="data")
    cfg = config_for_this_machine(make_config(args))  # its fp32 keys, as the LREF run has them
    console = Console()
    start_afresh_if_changed(args.out, {"config": asdict(cfg), "data": str(args.data)})
    lref_dir = args.lref_dir or args.out / "lref"
    train_teacher(cfg, args.data, lref_dir, resume=True)
    summary = read_json(lref_dir / SUMMARY_FILE)
    found = read_selection(lref_dir / "select")
    assert found is not None, "the LREF run left no selection"
    report = found[1]
    kept_by = report["kept_by"]
    console.print(
        f"selection: {report['kept']} of {report['pool_pairs']} pairs "
        f"(by the rule {kept_by.get('rule', 0)}, filled {kept_by.get('fill', 0)}); "
        f"grade mix {report['grade_mix']['kept']} (pool {report['grade_mix']['pool']})"
    )
    splits = lref_splits(cfg, args.data)  # as the LREF run drew them
    pool, dev, kept = splits.pool, splits.dev, report["kept"]
    random_pairs = pool.sample(n=kept, random_state=cfg.seed)
    rows = {
        "SFT, all pairs": baseline_row(cfg, splits.data, pool, args.out / "all"),
        "SFT, random pairs": baseline_row(cfg, splits.data, random_pairs, args.out / "random"),
    }
    rows |= stage_rows(summary, lref_dir)
    title = f"judge on dev ({len(dev)} pairs): SFT on all / random / selected pairs, then LREF"
    extra = [("train_examples", "trained on"), ("train_seconds", "train s")]
    console.print(metrics_table(rows, title=title, extra=extra))
    print(json.dumps({"selection": report, "dev_pairs": len(dev), "rows": rows}))


if __name__ == "__main__":
    main()
