"""DPO against the judge's optimistic bias: calling a product better than it is.

    shoprel teacher train --data run/data --out run/teacher --dpo [--dpo-beta 0.1]

On labeled pairs that SFT never trained on, the judge (SFT, or CoT after a CoT stage) gives its
grade distribution. Where its top grade is above the true grade and the true grade is among its
``top_k`` most likely grades, a preference pair is made: chosen = the true grade, rejected = the
judge's top grade. In ``direct`` mode an answer is the grade word; in ``cot`` mode, chosen is the
true grade after its rationale and rejected the top grade after the judge's own reasoning. TRL's
``DPOTrainer`` trains a LoRA adapter on these pairs (the reference is the judge with the adapter
off); the merged judge, ``dpo_pairs.parquet`` and ``metrics.json`` (over-recall and per-grade
precision/recall on dev before and after, the rejected-minus-chosen log-probability margin before
and after) go to the stage dir.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from shoprel.data.schema import GradeScale
from shoprel.data.splits import sample_pairs
from shoprel.io import write_parquet
from shoprel.teacher.config import TeacherTrainConfig
from shoprel.teacher.judge_io import (
    library_config,
    load_judge,
    lora_config,
    save_merged,
    trainer_arguments,
)
from shoprel.teacher.model import pad_right
from shoprel.teacher.stage_io import (
    StageData,
    guard_verdict,
    judge_metrics,
    publish,
    write_stage_metrics,
)

logger = logging.getLogger(__name__)
PAIRS_FILE = "dpo_pairs.parquet"


def optimistic_pairs(probs: np.ndarray, true: np.ndarray, top_k: int = 2) -> pd.DataFrame:
    """``row, chosen, rejected`` (grade indices) where the top grade is above the true grade and
    the true grade is among the ``top_k`` most likely (ties ranked by the lower grade first)."""
    probs, true = np.asarray(probs, dtype=float), np.asarray(true, dtype=np.int64)
    ranked = np.argsort(-probs, axis=1, kind="stable")
    top = ranked[:, 0]
    keep = (top > true) & (ranked[:, :top_k] == true[:, None]).any(axis=1)
    return pd.DataFrame({"row": np.flatnonzero(keep), "chosen": true[keep], "rejected": top[keep]})


def pair_kinds(pairs: pd.DataFrame, scale: GradeScale) -> dict[str, int]:
    """Preference pairs per kind, ``"chosen<rejected"`` by grade name."""
    counts = pairs.groupby(["chosen", "rejected"]).size()
    return {f"{scale.grades[c]}<{scale.grades[r]}": int(n) for (c, r), n in counts.items()}


def balance_kinds(pairs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """At most max(the rarest kind's count, pairs / (2 x kinds)) pairs of each (chosen, rejected)
    kind, a seeded sample of each; the rows stay in their order."""
    if pairs.empty:
        return pairs
    groups = pairs.groupby(["chosen", "rejected"])
    cap = max(int(groups.size().min()), len(pairs) // (2 * groups.ngroups))
    keep = [g.sample(min(len(g), cap), random_state=seed) for _, g in groups]
    return pd.concat(keep).sort_index().reset_index(drop=True)


def answer_logps(
    model: Any, prompts: list[list[int]], answers: list[list[int]], pad_id: int, batch_size: int = 4
) -> np.ndarray:
    """Sum of the log-probabilities of each answer's tokens after its prompt, in eval mode (no
    dropout: the margins before and after DPO compare); the model's mode is put back after."""
    out = np.zeros(len(prompts))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            rows = range(start, min(start + batch_size, len(prompts)))
            ids, mask = pad_right([prompts[i] + answers[i] for i in rows], pad_id)
            ids, mask = ids.to(device), mask.to(device)
            logps = torch.log_softmax(
                model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1
            )
            token = logps.gather(-1, ids[:, 1:, None])[..., 0]
            for j, i in enumerate(rows):
                begin, end = len(prompts[i]) - 1, len(prompts[i]) + len(answers[i]) - 1
                out[i] = float(token[j, begin:end].sum())
    model.train(was_training)
    return out


def _dpo_trainer_class() -> type:
    from trl import DPOTrainer

    class PretokenizedDPOTrainer(DPOTrainer):
        """TRL's ``DPOTrainer`` that takes ``prompt_ids, chosen_ids, rejected_ids`` as they are,
        so the judge sees the very prompt ids it is scored with."""

        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            if {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(dataset.column_names):
                return dataset
            return super()._prepare_dataset(dataset, *args, **kwargs)

    return PretokenizedDPOTrainer


def dpo_arguments(cfg: TeacherTrainConfig, model: Any, out: Path, pairs: int) -> Any:
    """TRL's ``DPOConfig``: ``cfg.dpo.args`` over the shared arguments."""
    from trl import DPOConfig

    kwargs = trainer_arguments(cfg, model, out, pairs, cfg.dpo.trainer_kwargs())
    return library_config(DPOConfig, kwargs, "dpo.args")


def train_dpo(
    cfg: TeacherTrainConfig,
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    chosen: list[list[int]],
    rejected: list[list[int]],
    out: Path,
) -> Any:
    """DPO on LoRA over ``model``; returns the trained, adapter-wrapped model."""
    from datasets import Dataset

    room = cfg.dpo.trainer_kwargs()["max_length"] - max(len(a) for a in chosen + rejected)
    data = Dataset.from_dict(
        {
            "prompt_ids": [p[-max(room, 1) :] for p in prompts],
            "chosen_ids": chosen,
            "rejected_ids": rejected,
        }
    )
    trainer = _dpo_trainer_class()(
        model=model,
        args=dpo_arguments(cfg, model, out / "checkpoints", len(data)),
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
    )
    trainer.train()
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the run saves nothing there
    return trainer.model


def resolve_mode(cfg: TeacherTrainConfig) -> str:
    if cfg.dpo.mode == "auto":
        return "cot" if cfg.cot.enabled else "direct"
    return cfg.dpo.mode


def run(cfg: TeacherTrainConfig, data: StageData, out: Path, resume: bool = False) -> Path:
    """DPO on the optimistic errors of the judge in ``data.start`` over ``data.pairs`` (labeled
    pairs no earlier stage trained on); the judge goes into ``out``. A rerun starts over."""
    from shoprel.teacher.scorer import TeacherScorer

    if data.start is None:
        raise ValueError("dpo: needs the judge to start from (StageData.start)")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if data.pairs.empty:
        raise ValueError(
            "dpo: no labeled pairs left that SFT did not train on; set dpo.holdout_frac > 0 "
            "or select a share of the train pairs (--select)"
        )
    start, dev, scale = data.start, data.dev, data.scale
    mode = resolve_mode(cfg)
    pool = sample_pairs(data.pairs, cfg.dpo.max_pool_pairs, cfg.seed)
    model, tokenizer, meta = load_judge(start)
    scorer = TeacherScorer(model, tokenizer, meta)
    before = _dev_metrics(scorer, dev, scale, mode, cfg)
    true = scale.nearest_grade(pool["label"].to_numpy(float))
    answers = PoolAnswers(scorer, pool, mode, cfg, out)
    found = optimistic_pairs(answers.probs, true, cfg.dpo.top_k)
    pairs = balance_kinds(found, cfg.seed) if cfg.dpo.balance else found
    warn_if_one_kind(pairs, scale)
    _write_pairs(pool, pairs, answers.probs, scale, out)
    facts: dict[str, Any] = {"mode": mode, "pool": len(pool), "pairs": len(pairs)}
    facts["kinds_found"], facts["kinds"] = pair_kinds(found, scale), pair_kinds(pairs, scale)
    logger.info("dpo: preference pairs by kind %s (found %s)", facts["kinds"], facts["kinds_found"])
    facts["errors"] = int((answers.probs.argmax(1) != true).sum())
    facts["optimistic_errors"] = int((answers.probs.argmax(1) > true).sum())
    if pairs.empty:
        logger.warning(
            "dpo: the judge makes no optimistic error within its top %d on the pool; "
            "it is kept as it is",
            cfg.dpo.top_k,
        )
        publish(start, out)
        after = before
    else:
        facts |= tune_on_pairs(cfg, answers, pairs, (model, tokenizer, meta), start, out)
        after = _dev_metrics(TeacherScorer.load(out), dev, scale, mode, cfg)
        facts["guard"] = guard_verdict(before.get("direct"), after.get("direct"), cfg.dpo)
        if facts["guard"]["kept_start"]:
            logger.warning(
                "dpo: %s; the stage keeps the judge it started from (%s)",
                facts["guard"]["reason"], start,
            )  # fmt: skip
            publish(start, out)
            facts["tuned_dev"], after = after.get("direct"), before
    write_stage_metrics(
        out, "dpo", time.perf_counter() - started, **facts, before=before, after=after,
        dev=after.get("direct"),
    )  # fmt: skip
    return out


def warn_if_one_kind(pairs: pd.DataFrame, scale: GradeScale) -> None:
    """Warn where every preference pair is the same grade over the same grade: DPO then teaches
    the judge to shun the rejected grade everywhere, right or wrong."""
    kinds = pairs[["chosen", "rejected"]].drop_duplicates()
    if len(pairs) < 2 or len(kinds) > 1:
        return
    chosen, rejected = (scale.grades[int(kinds.iloc[0][c])] for c in ("chosen", "rejected"))
    logger.warning(
        "dpo: all %d pairs prefer %r over %r; the judge may stop saying %r at all: "
        "compare the dpo stage's dev metrics with the stage before it",
        len(pairs), chosen, rejected, rejected,
    )  # fmt: skip


def tune_on_pairs(
    cfg: TeacherTrainConfig,
    answers: PoolAnswers,
    pairs: pd.DataFrame,
    judge: tuple[Any, Any, Any],
    start: Path,
    out: Path,
) -> dict[str, float]:
    """DPO on the preference pairs; saves the merged judge into ``out``. Returns the mean
    rejected-minus-chosen log-probability margin before and after."""
    model, tokenizer, meta = judge
    prompts, chosen, rejected = answers.preference_ids(pairs)
    pad = tokenizer.pad_token_id

    def margin(m: Any) -> float:
        rejected_logps = answer_logps(m, prompts, rejected, pad)
        return float(np.mean(rejected_logps - answer_logps(m, prompts, chosen, pad)))

    before = margin(model)
    tuned = train_dpo(cfg, model, tokenizer, prompts, chosen, rejected, out)
    meta.train = asdict(cfg) | {"stage": "dpo", "start": str(start)}
    facts = {"margin_before": before, "margin_after": margin(tuned)}
    save_merged(tuned, tokenizer, meta, out)
    return facts


class PoolAnswers:
    """The judge's answers on the pool: grade probabilities, and its reasoning in ``cot`` mode."""

    def __init__(
        self, scorer: Any, pool: pd.DataFrame, mode: str, cfg: TeacherTrainConfig, out: Path
    ) -> None:
        from shoprel.teacher.lref.cot_prompts import CotPrompts
        from shoprel.teacher.lref.rules import RelevanceRules

        self.pool, self.mode, self.cfg, self.out = pool, mode, cfg, out
        rules = RelevanceRules.load(cfg.cot.rules or None)
        tokenizer = scorer.builder.tokenizer
        self.prompts = CotPrompts(tokenizer, scorer.scale, scorer.meta.prompt_config(), rules)
        self.scale = scorer.scale
        if mode == "direct":
            self.probs = scorer.grade_probabilities(pool, progress=True)
            self.prompt_ids = [self.prompts.prompt("direct", r) for r in pool.to_dict("records")]
            self.reasoning: list[list[int]] = []
            return
        from shoprel.teacher.lref.cot_scoring import generate_reasoning, grade_probabilities_after

        self.prompt_ids, self.reasoning = generate_reasoning(
            scorer.model, self.prompts.builders["ee"], pool,
            max_new_tokens=cfg.cot.max_new_tokens, batch_size=scorer.batch_size, progress=True,
        )  # fmt: skip
        sequences = [p + r for p, r in zip(self.prompt_ids, self.reasoning, strict=True)]
        self.probs = grade_probabilities_after(
            scorer.model, sequences, scorer.grade_ids, scorer.pad_id, scorer.batch_size
        )

    def preference_ids(
        self, pairs: pd.DataFrame
    ) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
        """Prompt, chosen and rejected answer ids of each preference pair."""
        grade_ids, rows = self.prompts.grade_ids, pairs["row"].tolist()
        prompts = [self.prompt_ids[i] for i in rows]
        if self.mode == "direct":
            chosen = [[grade_ids[g]] for g in pairs["chosen"]]
            rejected = [[grade_ids[g]] for g in pairs["rejected"]]
            return prompts, chosen, rejected
        rationales = self._true_rationales(pairs)
        max_tokens = self.cfg.cot.max_rationale_tokens
        chosen = [
            self.prompts.answer(text, int(g), max_tokens)
            for text, g in zip(rationales, pairs["chosen"], strict=True)
        ]
        rejected = [
            self.reasoning[i] + [grade_ids[int(g)]] + self.prompts.end
            for i, g in zip(rows, pairs["rejected"], strict=True)
        ]
        return prompts, chosen, rejected

    def _true_rationales(self, pairs: pd.DataFrame) -> list[str]:
        from shoprel.teacher.lref.cot_prompts import requests_for
        from shoprel.teacher.lref.generators import make_generator

        subset = self.pool.iloc[pairs["row"].to_numpy()].reset_index(drop=True)
        generator = make_generator(self.cfg.cot, self.scale, self.out / "cache", self.pool)
        written = generator.generate(requests_for("ee", subset, self.scale), progress=True)
        return [r.reasoning if r else "" for r in written]


def _dev_metrics(
    scorer: Any, dev: pd.DataFrame, scale: GradeScale, mode: str, cfg: TeacherTrainConfig
) -> dict[str, Any]:
    """Over-recall, per-grade precision/recall and the rest on dev, by scoring mode."""
    if dev.empty:
        return {}
    result = {"direct": judge_metrics(scorer.predict(dev, progress=True), dev, scale)}
    if mode == "cot" and cfg.cot.eval_pairs:
        sample = dev.head(cfg.cot.eval_pairs)
        scorer.mode, scorer.max_new_tokens = "cot", cfg.cot.max_new_tokens
        scores = scorer.predict(sample, progress=True).drop(columns="_reasoning")
        scorer.mode = "direct"
        result["cot"] = judge_metrics(scores, sample, scale)
    return result


def _write_pairs(
    pool: pd.DataFrame, pairs: pd.DataFrame, probs: np.ndarray, scale: GradeScale, out: Path
) -> None:
    rows = pairs["row"].to_numpy()
    grades = np.asarray(scale.grades)
    frame = pd.DataFrame(
        {
            "pair_id": pool["pair_id"].to_numpy()[rows],
            "chosen": grades[pairs["chosen"].to_numpy(dtype=int)],
            "rejected": grades[pairs["rejected"].to_numpy(dtype=int)],
            "p_rejected": probs[rows, pairs["rejected"].to_numpy(dtype=int)],
            "p_chosen": probs[rows, pairs["chosen"].to_numpy(dtype=int)],
        }
    )
    write_parquet(frame, out / PAIRS_FILE)
