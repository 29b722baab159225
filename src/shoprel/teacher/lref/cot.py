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
judge keeps its one-pass ``direct`` scoring. Writes the merged judge, ``rationales.jsonl`` and
``metrics.json`` (dev metrics in ``direct`` mode, and in ``cot`` mode on ``eval_pairs``).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.schema import GradeScale
from shoprel.data.splits import sample_pairs
from shoprel.io import write_jsonl
from shoprel.teacher.judge_io import (
    load_judge,
    lora_config,
    save_merged,
    trainer_arguments,
)
from shoprel.teacher.lref.common import judge_metrics, score_judge, write_stage_metrics
from shoprel.teacher.lref.generators import make_generator
from shoprel.teacher.lref.rationales import (
    ITEM_FIELDS,
    Rationale,
    RationaleRequest,
    wrong_grade,
)
from shoprel.teacher.lref.rules import RelevanceRules
from shoprel.teacher.prompts import PromptBuilder, PromptConfig

logger = logging.getLogger(__name__)
RATIONALES_FILE = "rationales.jsonl"


@dataclass(frozen=True)
class Example:
    """Token ids of a prompt and the answer the judge learns (the loss is on the answer only)."""

    prompt: list[int]
    answer: list[int]

    def fitted(self, max_length: int) -> Example:
        """The prompt cut from the left so that prompt and answer fit ``max_length``."""
        room = max(max_length - len(self.answer), 1)
        return Example(self.prompt[-room:], self.answer[: max_length - 1])


class CotPrompts:
    """The prompt builders of each kind and the answer ids of a rationale."""

    def __init__(
        self, tokenizer: Any, scale: GradeScale, prompt: PromptConfig, rules: RelevanceRules
    ) -> None:
        described = rules.describe(scale).replace("{", "{{").replace("}", "}}")
        ra_system = (
            f"{prompt.cot_system}\nRelevance rules, the first that holds decides:\n{described}"
        )
        self.builders = {
            "direct": PromptBuilder(tokenizer, scale, prompt),
            "ee": PromptBuilder(tokenizer, scale, prompt, mode="cot"),
            "ra": PromptBuilder(
                tokenizer, scale, replace(prompt, cot_system=ra_system), mode="cot"
            ),
            "dr": PromptBuilder(
                tokenizer, scale, replace(prompt, fields=[*prompt.fields, "proposed"]), mode="cot"
            ),
        }
        self.tokenizer = tokenizer
        self.grade_ids = self.builders["direct"].grade_ids
        self.lead = self.builders["ee"].label_lead_ids()
        eos = tokenizer.eos_token_id
        self.end = [eos] if eos is not None else []

    def prompt(self, kind: str, row: dict[str, Any], wrong: str = "") -> list[int]:
        return self.builders[kind].encode({**row, "proposed": wrong} if kind == "dr" else row)

    def answer(self, reasoning: str, grade: int, max_tokens: int) -> list[int]:
        """``reasoning`` (cut to ``max_tokens``), the label lead, the grade word, end-of-text."""
        ids = self.tokenizer.encode(f" {reasoning}", add_special_tokens=False)[:max_tokens]
        return ids + self.lead + [self.grade_ids[grade]] + self.end

    def direct(self, row: dict[str, Any], grade: int) -> Example:
        return Example(self.prompt("direct", row), [self.grade_ids[grade]])


def requests_for(
    kind: str, pairs: pd.DataFrame, scale: GradeScale, wrong: np.ndarray | None = None
) -> list[RationaleRequest]:
    """One request per pair; DR's wrong grades are ``wrong`` (indices, never the true grade)."""
    true = scale.nearest_grade(pairs["label"].to_numpy(float))
    requests = []
    for i, row in enumerate(pairs.to_dict("records")):
        item = {name: row.get(name) or "" for name in ITEM_FIELDS}
        mistake = scale.grades[int(wrong[i])] if kind == "dr" and wrong is not None else ""
        requests.append(RationaleRequest(kind, row["query"], item, scale.grades[true[i]], mistake))
    return requests


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


def sft_arguments(cfg: Any, model: Any, out: Path, examples: int) -> Any:
    from trl import SFTConfig

    cot = cfg.cot
    return SFTConfig(
        learning_rate=cot.learning_rate,
        max_length=cot.max_length,
        completion_only_loss=True,
        **trainer_arguments(cfg, model, out, examples, cot.batch_size, cot.epochs),
    )


def train_phase(model: Any, tokenizer: Any, dataset: Any, args: Any, peft: Any) -> Any:
    """One SFT run; returns the trainer (its model is the adapter-wrapped judge)."""
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft
    )
    trainer.train()
    return trainer


def run_cot(
    cfg: Any, pairs: pd.DataFrame, dev: pd.DataFrame, scale: GradeScale, start: Path, out: Path
) -> Path:
    """Tune the judge in ``start`` with Multi-CoT on ``pairs``; save the merged judge in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pairs = sample_pairs(pairs, cfg.cot.max_pairs, cfg.seed)
    model, tokenizer, meta = load_judge(start)
    rules = RelevanceRules.load(cfg.cot.rules or None)
    prompts = CotPrompts(tokenizer, scale, meta.prompt_config(), rules)
    phases, written = build_phases(cfg, pairs, scale, (model, tokenizer, meta), prompts, out)
    model, records = train_phases(cfg, model, tokenizer, phases, pairs, scale, prompts, out)
    seconds = time.perf_counter() - started
    meta.train = asdict(cfg) | {"stage": "cot", "start": str(start), "seconds": round(seconds, 1)}
    save_merged(model, tokenizer, meta, out)
    _write_metrics(cfg, out, dev, scale, seconds, records, written)
    return out


def build_phases(
    cfg: Any,
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
    cfg: Any,
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
        direct = _direct_examples(
            pairs, true, prompts, cfg.cot.direct_frac, len(examples), cfg.seed + step
        )
        started = time.perf_counter()
        dataset = to_dataset(examples + direct, cfg.cot.max_length, cfg.seed)
        args = sft_arguments(cfg, model, out / "checkpoints" / kind, len(dataset))
        trainer = train_phase(model, tokenizer, dataset, args, peft)
        model, peft = trainer.model, None  # later kinds continue the same adapter
        records.append(_phase_record(kind, examples, direct, trainer, started))
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the runs save nothing there
    return model, records


def _direct_examples(
    pairs: pd.DataFrame, true: np.ndarray, prompts: CotPrompts, frac: float, n_cot: int, seed: int
) -> list[Example]:
    n = min(round(frac * n_cot), len(pairs))
    rows = np.random.default_rng(seed).choice(len(pairs), size=n, replace=False)
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
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _write_metrics(
    cfg: Any,
    out: Path,
    dev: pd.DataFrame,
    scale: GradeScale,
    seconds: float,
    phases: list[dict[str, Any]],
    written: list[dict[str, Any]],
) -> None:
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
    write_stage_metrics(out, "cot", seconds, **facts)
