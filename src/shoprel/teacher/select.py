"""Data selection before SFT: keep the train pairs that teach the judge something.

    shoprel teacher train --data run/data --out run/teacher --select lref --select-frac 0.1

Three auxiliary models score every candidate pair (``lref``). They learn from the train pairs
outside the candidate pool where there are any (the pool is capped for the judge's sake; the
auxiliary models are cheap and need the data), else from the pool itself:

- **IM** learns a random sample;
- **CI** learns a sample balanced over head, torso and tail queries (by how often a query is
  searched, else by its number of judged items);
- **MS** learns the grade a rater would most likely confuse with the true one: the neighbouring
  grade the soft target leans to, else the one IM confuses that grade with most.

A pair is kept when IM is wrong, CI is right and MS does not point at its label as a confusion;
where that keeps fewer pairs than ``frac`` asks, the pairs CI is surest of (its probability of
the label) fill up; where it keeps more, those CI is surest of stay. ``random`` keeps a seeded
sample of the same size. Writes ``selected_pairs.parquet`` (``pair_id, reason``),
``predictions.parquet``, ``selection_report.json``, ``metrics.json`` and ``aux/{im,ci,ms}``.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.schema import GradeScale
from shoprel.io import read_json, write_json, write_parquet
from shoprel.teacher.config import TeacherTrainConfig
from shoprel.teacher.stage_io import StageData, write_stage_metrics

logger = logging.getLogger(__name__)
BUCKETS = ("head", "torso", "tail")
SELECTED_FILE = "selected_pairs.parquet"
REPORT_FILE = "selection_report.json"


# --------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class AuxPredictions:
    """Grade probabilities ``(n_pairs, n_grades)`` of the three auxiliary models."""

    im: np.ndarray
    ci: np.ndarray
    ms: np.ndarray


def lref_rule(true: np.ndarray, aux: AuxPredictions) -> dict[str, np.ndarray]:
    """Per pair: IM wrong, CI right, MS flags the label, and kept by the rule."""
    true = np.asarray(true)
    im_wrong = aux.im.argmax(axis=1) != true
    ci_right = aux.ci.argmax(axis=1) == true
    ms_flags = aux.ms.argmax(axis=1) == true
    return {
        "im_wrong": im_wrong,
        "ci_right": ci_right,
        "ms_flags": ms_flags,
        "rule": im_wrong & ci_right & ~ms_flags,
    }


def lref_selection(
    pair_ids: Any, true: np.ndarray, aux: AuxPredictions, n_keep: int
) -> pd.DataFrame:
    """``n_keep`` pairs (``pair_id, reason``): the rule's first, then a fill-up, each by CI's
    probability of the label (highest first, input order on ties)."""
    pair_ids, true = np.asarray(pair_ids), np.asarray(true)
    if not len(pair_ids) == len(true) == len(aux.im) == len(aux.ci) == len(aux.ms):
        raise ValueError("lref_selection: pair ids, grades and predictions differ in length")
    rows = np.arange(len(true))
    kept_by_rule = lref_rule(true, aux)["rule"]
    order = np.lexsort((rows, -aux.ci[rows, true]))
    ruled = [i for i in order if kept_by_rule[i]][:n_keep]
    filled = [i for i in order if not kept_by_rule[i]][: max(n_keep - len(ruled), 0)]
    return pd.DataFrame(
        {
            "pair_id": pair_ids[ruled + filled],
            "reason": ["rule"] * len(ruled) + ["fill"] * len(filled),
        }
    )


# --------------------------------------------------------------------------- samples


def query_buckets(pairs: pd.DataFrame, frequency_column: str = "query_frequency") -> pd.Series:
    """``head``/``torso``/``tail`` of each query id: the queries making up the first, second and
    last third of all searches (or of all judged items, where no frequency is known)."""
    if frequency_column in pairs.columns:
        freq = pairs.groupby("query_id")[frequency_column].max().astype(float)
    else:
        freq = pairs.groupby("query_id").size().astype(float)
    table = (
        freq.rename("freq").reset_index().sort_values(["freq", "query_id"], ascending=[False, True])
    )
    before = (table["freq"].cumsum() - table["freq"]) / table["freq"].sum()
    index = np.minimum((before.to_numpy() * 3).astype(int), 2)
    return pd.Series(np.asarray(BUCKETS)[index], index=table["query_id"].to_numpy())


def _quotas(sizes: list[int], n: int) -> list[int]:
    """``n`` split as evenly as the sizes allow."""
    quotas, remaining = [0] * len(sizes), min(n, sum(sizes))
    while remaining:
        open_ = [i for i, size in enumerate(sizes) if quotas[i] < size]
        share = max(remaining // len(open_), 1)
        for i in open_:
            take = min(share, sizes[i] - quotas[i], remaining)
            quotas[i], remaining = quotas[i] + take, remaining - take
    return quotas


def balanced_sample(
    pairs: pd.DataFrame, n: int, seed: int, frequency_column: str = "query_frequency"
) -> pd.DataFrame:
    """``n`` pairs spread evenly over head, torso and tail queries (seeded)."""
    bucket = pairs["query_id"].map(query_buckets(pairs, frequency_column))
    groups = [pairs[bucket == name] for name in BUCKETS]
    parts = [
        group.sample(n=quota, random_state=seed)
        for group, quota in zip(groups, _quotas([len(g) for g in groups], n), strict=True)
    ]
    return pd.concat(parts).reset_index(drop=True)


def confusion_matrix(true: np.ndarray, probs: np.ndarray, n_grades: int) -> np.ndarray:
    """Counts ``[true grade, predicted grade]`` of a model's grade probabilities."""
    counts = np.zeros((n_grades, n_grades))
    np.add.at(counts, (np.asarray(true), probs.argmax(axis=1)), 1)
    return counts


def confusion_grades(true: np.ndarray, targets: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """The neighbouring grade a rater would most likely give instead of the true one.

    Where the soft target puts weight on another grade, the heaviest such grade; else the
    neighbour of the true grade that IM predicts most often for pairs of that grade
    (``confusion``, from :func:`confusion_matrix`; the lower one on a tie)."""
    true = np.asarray(true)
    n_grades = targets.shape[1]
    out = np.empty(len(true), dtype=np.int64)
    for i, grade in enumerate(true):
        others = targets[i].copy()
        others[grade] = 0
        if others.max() > 1e-6:
            out[i] = int(others.argmax())
            continue
        neighbours = [g for g in (grade - 1, grade + 1) if 0 <= g < n_grades]
        out[i] = max(neighbours, key=lambda g: (confusion[grade, g], -g))
    return out


def sample_size(n_pairs: int, frac: float, cap: int = 0) -> int:
    size = max(round(n_pairs * frac), 1)
    return min(size, cap) if cap else size


# --------------------------------------------------------------------------- aux models


def is_causal_lm(base: str) -> bool:
    """Whether a base (alias, dir or hub id) is a causal LM, trained as a judge; else an encoder."""
    from transformers import AutoConfig

    from shoprel.models import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(base))
    return any(
        a.endswith(("ForCausalLM", "ForConditionalGeneration")) for a in config.architectures or []
    )


def aux_trains_judges(cfg: TeacherTrainConfig) -> bool:
    """Whether LREF selection's auxiliary models are causal-LM judges (trained with SFT's
    settings), not cross-encoders."""
    return cfg.select.method == "lref" and is_causal_lm(cfg.select.aux_base or cfg.base)


def train_aux(
    cfg: TeacherTrainConfig, data: StageData, pairs: pd.DataFrame, out: Path, seed: int
) -> Path:
    """One auxiliary model on ``pairs``: a LoRA judge or a cross-encoder, by its base. The pairs
    it learns (ids and labels, MS's relabelled) are recorded beside it in ``NAME_pairs.parquet``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(pairs[["pair_id", "label"]], out.with_name(f"{out.name}_pairs.parquet"))
    select = cfg.select
    base = select.aux_base or cfg.base
    if aux_trains_judges(cfg):
        from shoprel.teacher.grade_trainer import fit_judge

        schedule = {"num_train_epochs": select.aux_epochs}
        if select.aux_learning_rate:
            schedule["learning_rate"] = select.aux_learning_rate
        sft = replace(cfg.sft, args=cfg.sft.args | schedule)
        aux_cfg = replace(cfg, base=base, sft=sft, max_train_pairs=0, max_dev_pairs=0, seed=seed)
        fit_judge(aux_cfg, pairs, data.dev.iloc[:0], data.scale, out)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # never resumed
        return out
    from shoprel.student.train import StudentTrainConfig, train_cross_encoder

    encoder_cfg = StudentTrainConfig(
        base=base,
        loss="labels",
        epochs=select.aux_epochs,
        learning_rate=select.aux_learning_rate or 5e-5,
        max_dev_pairs=min(cfg.max_dev_pairs or 200, 200),
        seed=seed,
    )
    return train_cross_encoder(encoder_cfg, data.data_dir, out, pairs=pairs)


def aux_probabilities(
    model_dir: Path, pairs: pd.DataFrame, scale: GradeScale, learned_labels: np.ndarray
) -> np.ndarray:
    """Grade probabilities of a saved model: a judge's own, or a cross-encoder's score put on
    the label scale by rank (``by_rank`` against the labels it learned) and spread over its two
    neighbouring grades."""
    from shoprel.scoring import load_scorer

    scores = load_scorer(model_dir).predict(pairs, progress=True)
    columns = [f"p_{g}" for g in scale.grades]
    if all(c in scores.columns for c in columns):
        return scores[columns].to_numpy(float)
    values = by_rank(scores["score"].to_numpy(float), learned_labels)  # within the labels' range
    return np.array([scale.soft_target(float(v)) for v in values])


def by_rank(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each score replaced by the quantile of ``labels`` at the score's own percentile.

    A cross-encoder trained briefly on labels regresses to their mean: read by nearest grade,
    it predicts the middle grade for nearly every pair, and LREF's rule sees a model that is
    right exactly where that grade is true. Mapped by rank, its predictions keep its ranking and
    follow the grade mix it learned from."""
    from scipy.stats import rankdata

    percentiles = (rankdata(scores) - 0.5) / len(scores)
    return np.quantile(np.asarray(labels, dtype=float), percentiles)


# --------------------------------------------------------------------------- the stage


def grade_mix(grades: np.ndarray, scale: GradeScale) -> dict[str, int]:
    counts = np.bincount(np.asarray(grades, dtype=int), minlength=scale.n_grades)
    return {g: int(c) for g, c in zip(scale.grades, counts, strict=True)}


def run(cfg: TeacherTrainConfig, data: StageData, out: Path, resume: bool = False) -> Path:
    """Select among ``data.pairs`` (the candidate train pairs) as ``cfg.select`` says; the kept
    ids go to ``out/selected_pairs.parquet`` (read them with :func:`selected`).

    The auxiliary models learn from ``data.spare`` where it has pairs, else from the pool. A
    finished selection is skipped by the orchestrator on ``resume``; a broken one starts over."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pool, scale = data.pairs, data.scale
    n_keep = sample_size(len(pool), cfg.select.frac)
    true = scale.nearest_grade(pool["label"].to_numpy(float))
    report: dict[str, Any] = {"method": cfg.select.method, "pool_pairs": len(pool)}
    if cfg.select.method == "random":
        chosen = pool.sample(n=n_keep, random_state=cfg.seed)
        kept = pd.DataFrame({"pair_id": chosen["pair_id"].to_numpy(), "reason": "random"})
        aux_metrics: dict[str, Any] = {}
    else:
        spare = data.spare
        learn_from = pool if spare is None or spare.empty else spare
        kept, aux_report, aux_metrics = _lref(cfg, data, learn_from, true, n_keep, out)
        report |= aux_report
    write_parquet(kept, out / SELECTED_FILE)
    chosen_grades = true[pool["pair_id"].isin(set(kept["pair_id"])).to_numpy()]
    report |= {
        "target": n_keep,
        "kept": len(kept),
        "kept_by": kept["reason"].value_counts().to_dict(),
        "grade_mix": {"pool": grade_mix(true, scale), "kept": grade_mix(chosen_grades, scale)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(report, out / REPORT_FILE)
    write_stage_metrics(out, "select", report["seconds"], kept=len(kept), dev=aux_metrics)
    logger.info("select (%s): kept %d of %d pairs", cfg.select.method, len(kept), len(pool))
    return out


def selected(out: Path, pool: pd.DataFrame) -> pd.DataFrame:
    """The pairs of ``pool`` that the finished selection in ``out`` kept."""
    found = read_selection(out)
    if found is None:
        raise FileNotFoundError(f"{out}: no finished selection ({SELECTED_FILE}, {REPORT_FILE})")
    return pool[pool["pair_id"].isin(set(found[0]["pair_id"]))].reset_index(drop=True)


def _lref(
    cfg: TeacherTrainConfig,
    data: StageData,
    learn_from: pd.DataFrame,
    true: np.ndarray,
    n_keep: int,
    out: Path,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """IM and CI, then MS on the grades IM confuses, each learning a sample of ``learn_from``;
    the rule over their predictions on the pool. Returns the kept ids, the report's facts and
    the dev metrics of IM and CI."""
    select, pool, scale = cfg.select, data.pairs, data.scale
    n_aux = sample_size(len(learn_from), select.aux_frac, select.aux_max_pairs)
    samples = {
        "im": learn_from.sample(n=n_aux, random_state=cfg.seed),
        "ci": balanced_sample(learn_from, n_aux, cfg.seed + 1, select.frequency_column),
    }
    probs = {}
    for seed, (name, sample) in enumerate(samples.items(), start=cfg.seed):
        model_dir = train_aux(cfg, data, sample, out / "aux" / name, seed)
        probs[name] = aux_probabilities(model_dir, pool, scale, sample["label"].to_numpy())
    im_confusion = confusion_matrix(true, probs["im"], scale.n_grades)
    confused = confusion_grades(true, _targets(pool), im_confusion)
    ms_pairs = learn_from.sample(n=n_aux, random_state=cfg.seed + 2)
    ms_grades = confusion_grades(
        scale.nearest_grade(ms_pairs["label"].to_numpy(float)), _targets(ms_pairs), im_confusion
    )
    ms_pairs = _relabelled(ms_pairs, ms_grades, scale)
    ms_dir = train_aux(cfg, data, ms_pairs, out / "aux" / "ms", cfg.seed + 2)
    probs["ms"] = aux_probabilities(ms_dir, pool, scale, ms_pairs["label"].to_numpy())
    aux = AuxPredictions(**probs)
    kept = lref_selection(pool["pair_id"], true, aux, n_keep)
    flags = lref_rule(true, aux)
    _write_predictions(pool, true, confused, aux, flags, select.frequency_column, out)
    accuracy = {
        "im": float(np.mean(aux.im.argmax(1) == true)),
        "ci": float(np.mean(aux.ci.argmax(1) == true)),
        "majority_grade": float(np.bincount(true).max() / len(true)),
        "ms_on_confusion": float(np.mean(aux.ms.argmax(1) == confused)),
    }
    _warn_if_no_better_than_majority(accuracy)
    report = {
        "aux_pairs": n_aux,
        "aux_learn_from": "pool" if learn_from is pool else "outside the pool",
        "aux_base": select.aux_base or cfg.base,
        "rule": {name: int(flag.sum()) for name, flag in flags.items()},
        "aux_accuracy": accuracy,
        "bucket_mix": _bucket_mix(pool, kept, select.frequency_column),
    }
    return kept, report, _aux_dev_metrics(out / "aux", data)


def _targets(pairs: pd.DataFrame) -> np.ndarray:
    return np.stack(pairs["target"].to_numpy()).astype(float)


def _warn_if_no_better_than_majority(accuracy: dict[str, float]) -> None:
    weak = [name for name in ("im", "ci") if accuracy[name] <= accuracy["majority_grade"]]
    if weak:
        logger.warning(
            "select: %s no more accurate on the pool than always the majority grade (%.3f); "
            "the rule's picks are close to chance: give them more pairs (select.aux_max_pairs, "
            "select.aux_frac) or epochs (select.aux_epochs)",
            " and ".join(name.upper() for name in weak),
            accuracy["majority_grade"],
        )


def _relabelled(pool: pd.DataFrame, grades: np.ndarray, scale: GradeScale) -> pd.DataFrame:
    """``pool`` with each label and target set to ``grades`` (MS's training targets)."""
    onehot = np.eye(scale.n_grades)[grades]
    return pool.assign(
        label=np.asarray(scale.values, dtype=float)[grades], target=list(onehot.tolist())
    )


def _bucket_mix(pool: pd.DataFrame, kept: pd.DataFrame, column: str) -> dict[str, dict[str, int]]:
    bucket = pool["query_id"].map(query_buckets(pool, column))
    chosen = pool["pair_id"].isin(set(kept["pair_id"]))
    return {
        "pool": {b: int((bucket == b).sum()) for b in BUCKETS},
        "kept": {b: int(((bucket == b) & chosen).sum()) for b in BUCKETS},
    }


def _write_predictions(
    pool: pd.DataFrame,
    true: np.ndarray,
    confused: np.ndarray,
    aux: AuxPredictions,
    flags: dict[str, np.ndarray],
    column: str,
    out: Path,
) -> None:
    frame = pd.DataFrame(
        {
            "pair_id": pool["pair_id"].to_numpy(),
            "grade": true,
            "confusion": confused,
            "bucket": pool["query_id"].map(query_buckets(pool, column)).to_numpy(),
            **{f"{name}_grade": getattr(aux, name).argmax(1) for name in ("im", "ci", "ms")},
            "ci_confidence": aux.ci[np.arange(len(true)), true],
            **flags,
        }
    )
    write_parquet(frame, out / "predictions.parquet")


def _aux_dev_metrics(aux_dir: Path, data: StageData) -> dict[str, Any]:
    from shoprel.eval.evaluate import evaluate_scores
    from shoprel.scoring import load_scorer

    if data.dev.empty:
        return {}
    result = {}
    for name in ("im", "ci"):
        scores = load_scorer(aux_dir / name).predict(data.dev)
        result[name] = evaluate_scores(data.dev, scores, data.scale)
    return result


def read_selection(out: Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The kept pair ids and the report of a finished selection in ``out`` (``None`` if none)."""
    if not (out / SELECTED_FILE).is_file() or not (out / REPORT_FILE).is_file():
        return None
    return pd.read_parquet(out / SELECTED_FILE), read_json(out / REPORT_FILE)
