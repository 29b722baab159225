"""Multi-CoT tuning: the SFT judge learns to reason before its grade (EE, then RA, then DR).

    shoprel teacher train --data run/data --out run/teacher --cot ee,ra,dr [--cot-generator openai]

Each kind is one run of TRL's ``SFTTrainer`` (completion-only loss) on the same LoRA adapter,
starting from the SFT judge:

- **EE**: the pair -> why it has its grade;
- **RA**: the pair, with the relevance rules in the instruction -> the rules' grade (only pairs
  where the rules agree with the label are trained);
- **DR**: the pair and a wrong grade (the judge's own most likely mistake) -> why it is wrong,
  then the right grade.

An answer is the reasoning, then ``Label:`` and the grade word, then end-of-text. Direct-answer
examples (the grade right after the prompt) are mixed into every run (``direct_frac``), so the
judge keeps its one-pass ``direct`` scoring. With ``reasoning`` off the stage is its own control:
the same runs and steps, every example a direct answer. Writes the merged judge,
``rationales.jsonl`` and ``metrics.json`` (dev metrics in ``direct`` mode, and in ``cot`` mode on
``eval_pairs``).
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

from shoprel.data.schema import GradeScale
from shoprel.data.splits import sample_pairs
from shoprel.io import write_jsonl
from shoprel.teacher.config import TeacherTrainConfig
from shoprel.teacher.judge_io import (
    library_config,
    load_judge,
    lora_config,
    save_merged,
    trainer_arguments,
)
from shoprel.teacher.lref.cot_prompts import CotPrompts, Example, requests_for
from shoprel.teacher.lref.generators import make_generator
from shoprel.teacher.lref.rationales import Rationale, RationaleRequest, wrong_grade
from shoprel.teacher.lref.rules import RelevanceRules
from shoprel.teacher.stage_io import (
    StageData,
    guard_verdict,
    judge_metrics,
    publish,
    read_stage_metrics,
    score_judge,
    write_stage_metrics,
)

logger = logging.getLogger(__name__)
RATIONALES_FILE = "rationales.jsonl"


def kind_examples(
    kind: str,
    pairs: pd.DataFrame,
    rationales: list[Rationale | None],
    requests: list[RationaleRequest],
    prompts: CotPrompts,
    scale: GradeScale,
    max_tokens: int,
) -> list[Example]:
    """Examples of one kind; RA only where the rules' grade is the label."""
    examples = []
    for row, rationale, request in zip(pairs.to_dict("records"), rationales, requests, strict=True):
        if rationale is None or rationale.grade != request.grade:
            continue
        grade = scale.grades.index(rationale.grade)
        examples.append(
            Example(
                prompts.prompt(kind, row, request.wrong),
                prompts.answer(rationale.reasoning, grade, max_tokens),
            )
        )
    return examples


def to_dataset(examples: list[Example], max_length: int, seed: int) -> Any:
    from datasets import Dataset

    fitted = [e.fitted(max_length) for e in examples]
    data = Dataset.from_dict(
        {
            "input_ids": [e.prompt + e.answer for e in fitted],
            "completion_mask": [[0] * len(e.prompt) + [1] * len(e.answer) for e in fitted],
        }
    )
    return data.shuffle(seed=seed)


def sft_arguments(cfg: TeacherTrainConfig, model: Any, out: Path, examples: int) -> Any:
    """TRL's ``SFTConfig`` of one kind's run: ``cfg.cot.args`` over the shared arguments, the
    loss on the answer only."""
    from trl import SFTConfig

    stage = {"completion_only_loss": True} | cfg.cot.trainer_kwargs()
    kwargs = trainer_arguments(cfg, model, out, examples, stage)
    return library_config(SFTConfig, kwargs, "cot.args")


def train_phase(model: Any, tokenizer: Any, dataset: Any, args: Any, peft: Any) -> Any:
    """One SFT run; returns the trainer (its model is the adapter-wrapped judge)."""
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft
    )
    trainer.train()
    return trainer


def run(cfg: TeacherTrainConfig, data: StageData, out: Path, resume: bool = False) -> Path:
    """Tune the judge in ``data.start`` with Multi-CoT on ``data.pairs``; save the merged judge
    in ``out``. Rationales already answered are cached, so a rerun asks only for the rest."""
    if data.start is None:
        raise ValueError("cot: needs the judge to start from (StageData.start)")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pairs, scale = sample_pairs(data.pairs, cfg.cot.max_pairs, cfg.seed), data.scale
    model, tokenizer, meta = load_judge(data.start)
    rules = RelevanceRules.load(cfg.cot.rules or None)
    prompts = CotPrompts(tokenizer, scale, meta.prompt_config(), rules)
    phases, written = build_phases(cfg, pairs, scale, (model, tokenizer, meta), prompts, out)
    model, records = train_phases(cfg, model, tokenizer, phases, pairs, scale, prompts, out)
    seconds = time.perf_counter() - started
    meta.train = asdict(cfg) | {
        "stage": "cot", "start": str(data.start), "seconds": round(seconds, 1)
    }  # fmt: skip
    save_merged(model, tokenizer, meta, out)
    _write_metrics(cfg, out, data, seconds, records, written)
    return out


def build_phases(
    cfg: TeacherTrainConfig,
    pairs: pd.DataFrame,
    scale: GradeScale,
    judge: tuple[Any, Any, Any],
    prompts: CotPrompts,
    out: Path,
) -> tuple[dict[str, list[Example]], list[dict[str, Any]]]:
    """The examples of each kind, and every rationale written (also to ``rationales.jsonl``).

    DR's wrong grades are the judge's (model, tokenizer, meta) most likely mistakes."""
    from shoprel.teacher.scorer import TeacherScorer

    cot = cfg.cot
    generator = make_generator(cot, scale, out / "cache", pairs)
    wrong = None
    if "dr" in cot.kinds:
        true = scale.nearest_grade(pairs["label"].to_numpy(float))
        probs = TeacherScorer(*judge).grade_probabilities(pairs, progress=True)
        wrong = np.array([wrong_grade(p, t) for p, t in zip(probs, true, strict=True)])
    phases, written = {}, []
    for kind in cot.kinds:
        requests = requests_for(kind, pairs, scale, wrong)
        rationales = generator.generate(requests, progress=True)
        written += _rationale_rows(pairs, kind, requests, rationales)
        phases[kind] = kind_examples(
            kind, pairs, rationales, requests, prompts, scale, cot.max_rationale_tokens
        )
        if not phases[kind]:
            raise ValueError(f"cot {kind}: no usable rationale for {len(pairs)} pairs")
    write_jsonl(written, out / RATIONALES_FILE)
    return phases, written


def train_phases(
    cfg: TeacherTrainConfig,
    model: Any,
    tokenizer: Any,
    phases: dict[str, list[Example]],
    pairs: pd.DataFrame,
    scale: GradeScale,
    prompts: CotPrompts,
    out: Path,
) -> tuple[Any, list[dict[str, Any]]]:
    """One SFT run per kind, in order, on one LoRA adapter, direct examples mixed in; returns the
    adapter-wrapped model and a record of each run."""
    true = scale.nearest_grade(pairs["label"].to_numpy(float))
    peft, records = lora_config(cfg), []
    for step, (kind, examples) in enumerate(phases.items()):
        n_direct = round(cfg.cot.direct_frac * len(examples))
        if not cfg.cot.reasoning:  # the control: the same number of examples, all direct
            n_direct, examples = n_direct + len(examples), []
        direct = _direct_examples(pairs, true, prompts, n_direct, cfg.seed + step)
        started = time.perf_counter()
        max_length = cfg.cot.trainer_kwargs()["max_length"]
        dataset = to_dataset(examples + direct, max_length, cfg.seed)
        args = sft_arguments(cfg, model, out / "checkpoints" / kind, len(dataset))
        trainer = train_phase(model, tokenizer, dataset, args, peft)
        model, peft = trainer.model, None  # later kinds continue the same adapter
        records.append(_phase_record(kind, examples, direct, trainer, started))
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the runs save nothing there
    return model, records


def _direct_examples(
    pairs: pd.DataFrame, true: np.ndarray, prompts: CotPrompts, n: int, seed: int
) -> list[Example]:
    """``n`` direct answers of seeded pairs, each pair once before any pair twice."""
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(pairs)) for _ in range(-(-n // len(pairs)))]
    rows = np.concatenate([np.empty(0, int), *orders])[:n]
    records = pairs.to_dict("records")
    return [prompts.direct(records[i], int(true[i])) for i in rows]


def _rationale_rows(
    pairs: pd.DataFrame,
    kind: str,
    requests: list[RationaleRequest],
    rationales: list[Rationale | None],
) -> list[dict[str, Any]]:
    return [
        {
            "pair_id": pair_id,
            "kind": kind,
            "grade": request.grade,
            "wrong": request.wrong or None,
            "text": rationale.text if rationale else None,
            "trained": bool(rationale and rationale.grade == request.grade),
        }
        for pair_id, request, rationale in zip(pairs["pair_id"], requests, rationales, strict=True)
    ]


def _phase_record(
    kind: str, examples: list[Example], direct: list[Example], trainer: Any, started: float
) -> dict[str, Any]:
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "kind": kind,
        "cot_examples": len(examples),
        "direct_examples": len(direct),
        "steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _write_metrics(
    cfg: TeacherTrainConfig,
    out: Path,
    data: StageData,
    seconds: float,
    phases: list[dict[str, Any]],
    written: list[dict[str, Any]],
) -> None:
    """The stage's metrics; where the guard finds that Multi-CoT hurt the judge on dev, the
    stage keeps the judge it started from (``data.start``) and says so."""
    dev, scale = data.dev, data.scale
    facts: dict[str, Any] = {"phases": phases}
    ra = [r for r in written if r["kind"] == "ra" and r["text"]]
    if ra:
        facts["ra_agreement"] = round(sum(r["trained"] for r in ra) / len(ra), 4)
    if not dev.empty:
        facts["dev"] = judge_metrics(score_judge(out, dev), dev, scale)
        if cfg.cot.eval_pairs:
            sample = dev.head(cfg.cot.eval_pairs)
            scores = score_judge(out, sample, mode="cot", max_new_tokens=cfg.cot.max_new_tokens)
            facts["dev_cot"] = judge_metrics(scores.drop(columns="_reasoning"), sample, scale)
        before = start_dev_metrics(data)
        facts["guard"] = guard_verdict(before, facts["dev"], cfg.cot)
        if facts["guard"]["kept_start"]:
            logger.warning(
                "cot: %s; the stage keeps the judge it started from (%s)",
                facts["guard"]["reason"], data.start,
            )  # fmt: skip
            publish(Path(data.start), out)
            facts["tuned_dev"], facts["dev"] = facts["dev"], before
    write_stage_metrics(out, "cot", seconds, **facts)


def start_dev_metrics(data: StageData) -> dict[str, Any]:
    """The start judge's dev metrics: as its stage recorded them on this dev sample, else
    scored now."""
    recorded = (read_stage_metrics(Path(data.start)) or {}).get("dev")
    if recorded and recorded.get("pairs") == len(data.dev) and "predicted_share" in recorded:
        return recorded
    return judge_metrics(score_judge(data.start, data.dev), data.dev, data.scale)
