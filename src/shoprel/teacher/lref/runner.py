"""The judge in LREF stages: select -> sft -> cot -> dpo, each in its own dir under ``OUT``.

    shoprel teacher train --data run/data --out run/teacher --select lref --cot ee,ra,dr --dpo

    OUT/select/   aux/{im,ci,ms}, selected_pairs.parquet, selection_report.json, metrics.json
    OUT/sft/      the judge trained on the selected pairs (as plain ``teacher train``), metrics.json
    OUT/cot/      the judge after Multi-CoT, rationales.jsonl, metrics.json
    OUT/dpo/      the judge after DPO, dpo_pairs.parquet, metrics.json
    OUT/          the last stage's judge (hard links), lref.json (every stage's seconds and dev
                  metrics)

Stages that are off are skipped. With ``dpo`` on, ``dpo.holdout_frac`` of the train queries are
kept out of every earlier stage; they and the pairs selection left out are DPO's pool. With
``resume``, a stage whose dir is complete is reused and SFT continues from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from shoprel.data.schema import GradeScale
from shoprel.data.splits import dev_sample, read_split, sample_pairs
from shoprel.io import write_json
from shoprel.teacher.lref.common import (
    judge_metrics,
    plain_stage,
    publish,
    read_stage_metrics,
    score_judge,
    write_stage_metrics,
)
from shoprel.teacher.model import META_FILE

logger = logging.getLogger(__name__)
SUMMARY_FILE = "lref.json"
HEADLINE = ("pairwise_accuracy", "auc", "accuracy", "macro_f1", "over_recall", "rmse")


def hold_out_queries(
    pairs: pd.DataFrame, frac: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``pairs`` split by query: the rest, and a seeded ``frac`` of the queries (at least one
    where ``frac`` > 0 and there are two or more queries)."""
    queries = np.sort(pairs["query_id"].unique())
    n = round(frac * len(queries))
    n = max(n, 1) if frac > 0 and len(queries) > 1 else n
    held = set(np.random.default_rng(seed).choice(queries, size=n, replace=False))
    mask = pairs["query_id"].isin(held)
    return pairs[~mask].reset_index(drop=True), pairs[mask].reset_index(drop=True)


def _done(stage_dir: Path, needs_model: bool = True) -> bool:
    has_model = (stage_dir / META_FILE).is_file() or not needs_model
    return has_model and read_stage_metrics(stage_dir) is not None


class LrefSplits(NamedTuple):
    """The seeded pairs the stages draw from."""

    pool: pd.DataFrame  # the judge's train pairs
    held_out: pd.DataFrame  # the queries held out of the pool for DPO
    dev: pd.DataFrame  # the dev sample (empty when ``max_dev_pairs`` is 0)
    scale: GradeScale
    rest: pd.DataFrame  # the train pairs neither in the pool nor of the held-out queries


def lref_splits(cfg: Any, data_dir: str | Path) -> LrefSplits:
    """The splits of ``cfg``'s seeded draw from the train and dev splits in ``data_dir``."""
    train, scale = read_split(data_dir, "train")
    pool = sample_pairs(train, cfg.max_train_pairs, cfg.seed)
    dev = dev_sample(data_dir, cfg.max_dev_pairs, cfg.seed)
    holdout = cfg.dpo.holdout_frac if cfg.dpo.enabled else 0.0
    pool, held_out = hold_out_queries(pool, holdout, cfg.seed)
    taken = train["pair_id"].isin(set(pool["pair_id"]))
    held = train["query_id"].isin(set(held_out["query_id"]))
    rest = train[~taken & ~held].reset_index(drop=True)
    return LrefSplits(pool, held_out, dev, scale, rest)


def train_lref(cfg: Any, data_dir: str | Path, out: str | Path, resume: bool = False) -> Path:
    """Run the stages ``cfg`` switches on; ``out`` ends up holding the final judge."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, held_out, dev, scale, rest = lref_splits(cfg, data_dir)
    selected = _select(cfg, data_dir, train, scale, out / "select", resume, rest)
    last = _sft(cfg, data_dir, selected, dev, scale, out / "sft", resume)
    if cfg.cot.enabled and not (resume and _done(out / "cot")):
        from shoprel.teacher.lref.cot import run_cot

        run_cot(cfg, selected, dev, scale, last, out / "cot")
    last = out / "cot" if cfg.cot.enabled else last
    if cfg.dpo.enabled and not (resume and _done(out / "dpo")):
        from shoprel.teacher.lref.dpo import run_dpo

        unused = train[~train["pair_id"].isin(set(selected["pair_id"]))]
        run_dpo(
            cfg, pd.concat([held_out, unused], ignore_index=True), dev, scale, last, out / "dpo"
        )
    last = out / "dpo" if cfg.dpo.enabled else last
    publish(last, out)
    _write_summary(cfg, out, last, train=len(train), selected=len(selected), held_out=len(held_out))
    return out


def _select(
    cfg: Any,
    data_dir: str | Path,
    train: pd.DataFrame,
    scale: GradeScale,
    out: Path,
    resume: bool,
    learn_from: pd.DataFrame,
) -> pd.DataFrame:
    if not cfg.select.enabled:
        return train
    if resume and _done(out, needs_model=False):
        from shoprel.teacher.lref.selection import read_selection

        found = read_selection(out)
        if found is not None:
            return train[train["pair_id"].isin(set(found[0]["pair_id"]))].reset_index(drop=True)
    from shoprel.teacher.lref.selection import run_select

    return run_select(cfg, data_dir, train, scale, out, learn_from)


def _sft(
    cfg: Any,
    data_dir: str | Path,
    pairs: pd.DataFrame,
    dev: pd.DataFrame,
    scale: GradeScale,
    out: Path,
    resume: bool,
) -> Path:
    """The judge trained on ``pairs`` exactly as plain ``teacher train`` trains it."""
    from shoprel.teacher.sft import run_sft

    if resume and _done(out):
        return out
    started = time.perf_counter()
    sft_cfg = plain_stage(cfg, max_train_pairs=0)
    run_sft(sft_cfg, data_dir, out, resume=resume, pairs=pairs)
    seconds = time.perf_counter() - started
    dev_metrics = judge_metrics(score_judge(out, dev), dev, scale) if not dev.empty else {}
    write_stage_metrics(out, "sft", seconds, train_pairs=len(pairs), dev=dev_metrics)
    return out


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in HEADLINE if k in metrics}


def _write_summary(cfg: Any, out: Path, last: Path, **sizes: int) -> None:
    stages = {}
    for name in ("select", "sft", "cot", "dpo"):
        record = read_stage_metrics(out / name)
        if record is None or (name != "sft" and name not in cfg.lref_stages):
            continue
        dev = record.get("dev") or {}
        if name == "select":  # the dev metrics of the auxiliary models IM and CI
            headline = {aux: _headline(found) for aux, found in dev.items()}
        else:
            headline = _headline(dev)
        stages[name] = {"dir": name, "seconds": record["seconds"], "dev": headline}
    summary = {"stages": stages, "final": last.name, "pairs": sizes}
    write_json(summary, out / SUMMARY_FILE)
    logger.info("LREF stages done: %s", json.dumps({k: v["seconds"] for k, v in stages.items()}))
