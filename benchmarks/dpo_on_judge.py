"""DPO on a trained judge: the start, DPO alone and DPO with TRL's SFT term, on the same dev pairs.

    python benchmarks/dpo_on_judge.py --judge runs/hd/judge-q05-5k --data runs/hd/data \\
        --out runs/hd/dpo
    python benchmarks/dpo_on_judge.py --quick      # the quickstart run's judge and data

(with ``HF_HUB_OFFLINE=1 .venv/bin/python`` from the repository root). The pool is the train
pairs the judge's training did not draw (``max_train_pairs`` and ``seed`` as its
``shoprel_teacher.json`` records them), the dev sample its ``max_dev_pairs`` (at least
``--min-dev-pairs``). Each variant runs the DPO stage (:mod:`shoprel.teacher.dpo`) into
its own dir under ``--out``; a finished variant is reused. Prints a table of dev metrics before and
after each (the tuned judge's, even where the guard kept the start), then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from quickstart_run import fill
from rich.console import Console

from shoprel.config import from_dict
from shoprel.data.splits import dev_sample, read_split, sample_pairs
from shoprel.eval.table import metrics_table
from shoprel.io import jsonable, read_json, write_json
from shoprel.teacher import dpo
from shoprel.teacher.config import DpoConfig, TeacherTrainConfig
from shoprel.teacher.model import META_FILE
from shoprel.teacher.stage_io import StageData, read_stage_metrics

SETTINGS_FILE = "benchmark_settings.json"

VARIANTS: dict[str, dict[str, Any]] = {
    "dpo": {},
    "dpo + sft term": {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]},
}
SHOWN = ("pairwise_accuracy", "auc", "rmse", "macro_f1", "accuracy", "over_recall")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", type=Path, help="judge dir (quick: the quickstart's)")
    parser.add_argument("--data", type=Path, help="prepared data dir (quick: the quickstart's)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-dpo"))
    parser.add_argument("--max-pool-pairs", type=int, default=2000)
    parser.add_argument("--min-dev-pairs", type=int, default=200)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a DPO run with these trl.DPOConfig keywords, and shoprel DpoConfig fields such as "
        'top_k and balance, e.g. gentle=\'{"beta": 0.5, "learning_rate": 5e-6, "top_k": 3}\' '
        "(repeatable; default: DPO alone and with TRL's SFT term at the stage's defaults)",
    )
    parser.add_argument("--quick", action="store_true", help="100 pool pairs, direct mode")
    args = parser.parse_args()
    args.variants = dict(_variant(text, parser) for text in args.variant) or VARIANTS
    fill(args, judge="judge", data="data")
    if args.quick:
        args.max_pool_pairs = min(args.max_pool_pairs, 100)
    return args


def _variant(text: str, parser: argparse.ArgumentParser) -> tuple[str, dict[str, Any]]:
    name, _, keywords = text.partition("=")
    try:
        value = json.loads(keywords)
    except json.JSONDecodeError as error:
        parser.error(f"--variant {text!r}: expected NAME=JSON object ({error})")
    if not name or not isinstance(value, dict):
        parser.error(f"--variant {text!r}: expected NAME=JSON object")
    return name, value


def variant_config(keywords: dict[str, Any], args: argparse.Namespace) -> DpoConfig:
    """The stage's config of one variant: its ``DpoConfig`` fields (``top_k``, ``balance``,
    ``max_pool_pairs``, ...) as given, every other keyword a TRL ``DPOConfig`` one."""
    own = {f.name for f in fields(DpoConfig)} - {"enabled", "args"}
    stage = {"max_pool_pairs": args.max_pool_pairs, "mode": "direct" if args.quick else "auto"}
    stage |= {k: v for k, v in keywords.items() if k in own}  # cot mode: minutes of reasoning
    trl_args = {k: v for k, v in keywords.items() if k not in own}
    return DpoConfig(enabled=True, args=trl_args, **stage)


def judge_config(judge: Path) -> TeacherTrainConfig:
    """The training config a judge records in its meta file (keys of this version only).

    A judge trained before the stage configs composed TRL's keeps what DPO reads from it: the
    base, the pair counts and seed (which fix the pool and dev), the prompt and its LoRA shape."""
    trained = read_json(judge / META_FILE)["train"]
    known = {f.name for f in fields(TeacherTrainConfig)}
    try:
        return from_dict(TeacherTrainConfig, {k: v for k, v in trained.items() if k in known})
    except ValueError:
        kept = ("base", "max_train_pairs", "max_dev_pairs", "seed", "prompt")
        cfg = from_dict(TeacherTrainConfig, {k: trained[k] for k in kept if k in trained})
        old_lora = {"lora_r": "r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout"}
        cfg.peft |= {new: trained[old] for old, new in old_lora.items() if old in trained}
        return cfg


def variant_settings(args: argparse.Namespace, dpo_cfg: DpoConfig, data: StageData) -> Any:
    """What a variant's finished run was made from: the judge (its dir and when its meta was
    written), the data, the variant's DPO settings and the sizes of its pool and dev pairs."""
    meta = args.judge / META_FILE
    return jsonable(
        {
            "judge": str(args.judge.resolve()),
            "judge_meta_mtime_ns": meta.stat().st_mtime_ns,
            "data": str(args.data.resolve()),
            "dpo": asdict(dpo_cfg),
            "pool_pairs": len(data.pairs),
            "dev_pairs": len(data.dev),
        }
    )


def main() -> None:
    args = parse_args()
    cfg = judge_config(args.judge)
    train, scale = read_split(args.data, "train")
    learned = set(sample_pairs(train, cfg.max_train_pairs, cfg.seed)["pair_id"])
    pool = train[~train["pair_id"].isin(learned)].reset_index(drop=True)
    dev = dev_sample(args.data, max(cfg.max_dev_pairs, args.min_dev_pairs), cfg.seed)
    data = StageData(pool, dev, scale, args.data, start=args.judge)
    rows: dict[str, dict[str, Any]] = {}
    facts: dict[str, Any] = {}
    for name, keywords in args.variants.items():
        out = args.out / name.replace(" ", "-").replace("+", "and")
        dpo_cfg = variant_config(keywords, args)
        settings = variant_settings(args, dpo_cfg, data)
        stamp = out / SETTINGS_FILE
        if read_stage_metrics(out) is None or not stamp.is_file() or read_json(stamp) != settings:
            shutil.rmtree(out, ignore_errors=True)  # another judge, data or variant: run again
            dpo.run(replace(cfg, dpo=dpo_cfg), data, out)
            write_json(settings, stamp)
        record = read_stage_metrics(out)
        rows.setdefault("start", {k: record["before"]["direct"][k] for k in SHOWN})
        tuned = record.get("tuned_dev") or record["after"]["direct"]
        rows[name] = {k: tuned[k] for k in SHOWN}
        kept = record.get("guard", {}).get("kept_start", False)
        facts[name] = {
            "pairs": record["pairs"],
            "kinds": record["kinds"],
            "margin_before": record.get("margin_before"),
            "margin_after": record.get("margin_after"),
            "guard_kept_start": kept,
            "seconds": record["seconds"],
        }
    title = f"DPO on {args.judge} ({len(dev)} dev pairs; the tuned judge, guard or not)"
    Console().print(metrics_table(rows, title=title))
    print(json.dumps({"judge": str(args.judge), "dev_pairs": len(dev), "rows": rows} | facts))


if __name__ == "__main__":
    main()
