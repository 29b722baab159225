"""``shoprel teacher train``: the judge, through the stages its config switches on.

    shoprel teacher train --data run/data --base smollm2-135m-instruct --out run/teacher
    shoprel teacher train --data run/data --out run/teacher --resume      # continue a killed run
    shoprel teacher train --data run/data --out run/teacher --select lref --cot ee,ra,dr --dpo

With no LREF stage on, this is SFT alone (:mod:`~shoprel.teacher.sft`) into ``OUT``. Otherwise the
stages run in order (select -> sft -> cot -> dpo), each in its own dir:

    OUT/select/   aux/{im,ci,ms}, selected_pairs.parquet, selection_report.json, metrics.json
    OUT/sft/      the judge trained on the selected pairs, metrics.json
    OUT/cot/      the judge after Multi-CoT, rationales.jsonl, metrics.json
    OUT/dpo/      the judge after DPO, dpo_pairs.parquet, metrics.json
    OUT/          the last stage's judge (hard links), lref.json (every stage's seconds and dev
                  metrics)

The splits are drawn here, once: the pool (``max_train_pairs``), the dev sample, and with DPO on,
``dpo.holdout_frac`` of the pool's queries kept out of every earlier stage; they and the pairs
selection left out are DPO's pool. Each stage is ``run(cfg, data, out, resume)`` and none imports
another. With ``resume``, a stage started with the same settings on the same data (the files of the
data dir, which may have moved with its run) is reused where it finished, and SFT continues from
its last checkpoint; a stage started otherwise starts afresh, and so does every stage after it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from shoprel.data.splits import dev_sample, read_split, sample_pairs
from shoprel.io import files_digest, jsonable, read_json, write_json
from shoprel.teacher.config import TeacherTrainConfig
from shoprel.teacher.model import META_FILE
from shoprel.teacher.stage_io import (
    METRICS_FILE,
    SETTINGS_FILE,
    StageData,
    publish,
    read_stage_metrics,
)

__all__ = ["TeacherTrainConfig", "train_teacher"]

logger = logging.getLogger(__name__)
SUMMARY_FILE = "lref.json"
HEADLINE = ("pairwise_accuracy", "auc", "accuracy", "macro_f1", "over_recall", "rmse")
STAGES = ("select", "sft", "cot", "dpo")


def stage_module(name: str) -> Any:
    """The stage's module (``shoprel.teacher.NAME``), imported when training starts."""
    from shoprel.teacher import cot, dpo, select, sft

    return {"select": select, "sft": sft, "cot": cot, "dpo": dpo}[name]


def hold_out_queries(
    pairs: pd.DataFrame, frac: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``pairs`` split by query: the rest, and a seeded ``frac`` of the queries (at least one
    where ``frac`` > 0 and there are two or more queries; never every query, the rest trains)."""
    queries = np.sort(pairs["query_id"].unique())
    n = round(frac * len(queries))
    n = max(n, 1) if frac > 0 and len(queries) > 1 else n
    n = min(n, max(len(queries) - 1, 0))
    held = set(np.random.default_rng(seed).choice(queries, size=n, replace=False))
    mask = pairs["query_id"].isin(held)
    return pairs[~mask].reset_index(drop=True), pairs[mask].reset_index(drop=True)


class LrefSplits(NamedTuple):
    """The seeded pairs the stages draw from."""

    pool: pd.DataFrame  # the judge's train pairs
    held_out: pd.DataFrame  # the queries held out of the pool for DPO
    dev: pd.DataFrame  # the dev sample (empty when ``max_dev_pairs`` is 0)
    data: StageData  # the pool as stage input (dev, scale and data dir with it)


def lref_splits(cfg: TeacherTrainConfig, data_dir: str | Path) -> LrefSplits:
    """The splits of ``cfg``'s seeded draw from the train and dev splits in ``data_dir``."""
    train, scale = read_split(data_dir, "train")
    pool = sample_pairs(train, cfg.max_train_pairs, cfg.seed)
    dev = dev_sample(data_dir, cfg.max_dev_pairs, cfg.seed)
    holdout = cfg.dpo.holdout_frac if cfg.dpo.enabled else 0.0
    pool, held_out = hold_out_queries(pool, holdout, cfg.seed)
    taken = train["pair_id"].isin(set(pool["pair_id"]))
    held = train["query_id"].isin(set(held_out["query_id"]))
    rest = train[~taken & ~held].reset_index(drop=True)
    data = StageData(pool, dev, scale, Path(data_dir), spare=rest)  # spare: the pairs unused
    return LrefSplits(pool, held_out, dev, data)


def _done(stage_dir: Path, needs_model: bool = True) -> bool:
    has_model = (stage_dir / META_FILE).is_file() or not needs_model
    return has_model and read_stage_metrics(stage_dir) is not None


def train_teacher(
    cfg: TeacherTrainConfig, data_dir: str | Path, out: str | Path, resume: bool = False
) -> Path:
    """Train the judge ``cfg`` describes on ``data_dir`` into ``out`` and return ``out``."""
    from shoprel.teacher.judge_io import check_stage_args

    cfg = config_for_this_machine(cfg)
    check_stage_args(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = lref_splits(cfg, data_dir)
    if not cfg.lref_stages:  # SFT alone, into OUT, whose other dirs are left as they are
        return _run_stage(cfg, "sft", splits.data, out, resume, whole=False)
    (out / SETTINGS_FILE).unlink(missing_ok=True)  # OUT holds the last stage's judge, not SFT's
    pool = splits.pool
    if cfg.select.enabled:
        settings = stage_settings(cfg, "select", splits.data)
        if not (same_start(out / "select", settings, resume) and _done(out / "select", False)):
            stage_module("select").run(cfg, splits.data, out / "select")
        pool = stage_module("select").selected(out / "select", splits.pool)
    last = _run_stage(cfg, "sft", splits.data._replace(pairs=pool), out / "sft", resume)
    if cfg.cot.enabled:
        cot_data = splits.data._replace(pairs=pool, start=last)
        last = _run_stage(cfg, "cot", cot_data, out / "cot", resume)
    if cfg.dpo.enabled:
        unused = splits.pool[~splits.pool["pair_id"].isin(set(pool["pair_id"]))]
        mined = pd.concat([splits.held_out, unused], ignore_index=True)
        dpo_data = splits.data._replace(pairs=mined, start=last)
        last = _run_stage(cfg, "dpo", dpo_data, out / "dpo", resume)
    publish(last, out)
    sizes = {"train": len(splits.pool), "selected": len(pool), "held_out": len(splits.held_out)}
    _write_summary(cfg, out, last, **sizes)
    return out


def config_for_this_machine(cfg: TeacherTrainConfig) -> TeacherTrainConfig:
    """``cfg``, with its ``fp32`` keys laid over it where the judge runs in fp32 here."""
    import torch

    from shoprel.devices import pick_device, pick_dtype

    if not cfg.fp32 or pick_dtype(pick_device()) != torch.float32:
        return cfg
    logger.info("the judge runs in fp32 here, so judge.fp32 applies: %s", json.dumps(cfg.fp32))
    return cfg.in_fp32()


def _run_stage(
    cfg: TeacherTrainConfig,
    name: str,
    data: StageData,
    stage_dir: Path,
    resume: bool,
    whole: bool = True,
) -> Path:
    """Run stage ``name`` into ``stage_dir``, or with ``resume`` reuse or continue what it did
    there with the same settings (:func:`same_start`, which ``whole`` is passed to)."""
    resume = same_start(stage_dir, stage_settings(cfg, name, data), resume, whole)
    if resume and _done(stage_dir):
        return stage_dir
    return stage_module(name).run(cfg, data, stage_dir, resume=resume)


def stage_settings(cfg: TeacherTrainConfig, name: str, data: StageData) -> dict[str, Any]:
    """What a stage's judge depends on: the config but later stages' sections and checkpoint
    intervals, the files of the data dir (dev included: it picks the epoch and guards CoT and
    DPO), and the pairs it learns from with their labels (a selection or a DPO hold-out that
    changed changes them)."""
    from shoprel.teacher.select import aux_trains_judges

    values = jsonable(asdict(cfg))
    values.pop("fp32")  # train_teacher has laid it over the config where it applies
    for stage in STAGES:
        values[stage].get("args", {}).pop("save_steps", None)
    later = STAGES[STAGES.index(name) + 1 :]
    if name == "select" and aux_trains_judges(cfg):
        later = tuple(stage for stage in later if stage != "sft")
    rows = data.pairs[["pair_id", "label"]].astype(str).agg("\t".join, axis=1)
    ids = "\n".join(sorted(rows))
    return {k: v for k, v in values.items() if k not in later} | {
        "data": files_digest([Path(data.data_dir)]),
        "pairs": hashlib.sha1(ids.encode()).hexdigest(),
    }  # the judge a stage starts from follows from the earlier sections kept here


def same_start(stage_dir: Path, settings: dict[str, Any], resume: bool, whole: bool = True) -> bool:
    """Whether ``resume`` may reuse or continue what ``stage_dir`` holds: it was started with
    ``settings``. Otherwise the stage starts afresh (its dir, or with ``whole`` False only its
    checkpoints and the marks of a finished judge, removed) and is recorded as started with
    ``settings``."""
    record = stage_dir / SETTINGS_FILE
    same = resume and record.is_file() and read_json(record) == settings
    if not same:
        if resume and stage_dir.is_dir() and any(stage_dir.iterdir()):  # an empty dir held none
            logger.warning("%s was started with other settings or pairs: afresh", stage_dir)
        shutil.rmtree(stage_dir if whole else stage_dir / "checkpoints", ignore_errors=True)
        for finished in () if whole else (META_FILE, METRICS_FILE):  # a killed start: not done
            (stage_dir / finished).unlink(missing_ok=True)
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_json(settings, record)
    return same


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in HEADLINE if k in metrics}


def _write_summary(cfg: TeacherTrainConfig, out: Path, last: Path, **sizes: int) -> None:
    stages = {}
    for name in STAGES:
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
