"""The judge's trainer on soft targets: the loss, the trainer, dev metrics after each epoch.

Trains the SFT stage's judge (:mod:`shoprel.teacher.sft`) and the auxiliary judges of data
selection (:mod:`shoprel.teacher.select`).

The loss is the cross-entropy between the softmax over the grade tokens at the answer position and
the pair's target distribution (soft: the dataset's label spread over neighbouring grades; hard:
one-hot on the nearest grade). LoRA by default (merged into the saved model, so scoring needs no
PEFT). Uses the transformers ``Trainer`` with this loss; checkpoints go to ``OUT/checkpoints`` and
dev metrics after each epoch to ``OUT/dev_metrics.jsonl``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer import TRAINER_STATE_NAME

from shoprel.data.schema import GradeScale
from shoprel.devices import pick_device
from shoprel.io import newest_checkpoint, read_jsonl, write_jsonl
from shoprel.models import resolve_model
from shoprel.teacher.config import TeacherTrainConfig
from shoprel.teacher.judge_io import (
    library_config,
    load_base,
    load_tokenizer,
    save_merged,
    trainer_arguments,
)
from shoprel.teacher.model import (
    TeacherMeta,
    grade_logits,
    grade_logits_after_prefixes,
    pad_right,
    run_prefixes,
)
from shoprel.teacher.prompts import PromptBuilder
from shoprel.teacher.scorer import TeacherScorer, set_cpu_threads
from shoprel.teacher.stage_io import judge_metrics

logger = logging.getLogger(__name__)
DEV_METRICS_FILE = "dev_metrics.jsonl"


def targets_for(pairs: pd.DataFrame, scale: GradeScale, kind: str) -> np.ndarray:
    """Soft targets as prepared, or one-hot on the grade nearest to the label."""
    if kind == "soft":
        return np.stack(pairs["target"].to_numpy()).astype(np.float32)
    return np.eye(scale.n_grades, dtype=np.float32)[scale.nearest_grade(pairs["label"].to_numpy())]


def encode_pairs(
    builder: PromptBuilder, pairs: pd.DataFrame, max_length: int, share_prefix: bool
) -> list[dict[str, Any]]:
    """Each pair's prompt ids, cut to ``max_length`` tokens: whole (the last tokens are kept), or
    with ``share_prefix`` as the query's ids and the suffix's (the suffix loses its first tokens,
    so that the head and the query stay whole and shareable)."""
    records = pairs.to_dict("records")
    if not share_prefix:
        return [{"input_ids": builder.encode(row)[-max_length:]} for row in records]
    encoded = []
    for row in records:
        room = max(max_length - len(builder.prefix_ids(row["query"])), 1)
        encoded.append(
            {
                "query": row["query"],
                "query_ids": builder.query_ids(row["query"]),
                "suffix_ids": builder.suffix_ids(row)[-room:],
            }
        )
    return encoded


class PairDataset(torch.utils.data.Dataset):
    def __init__(self, encoded: list[dict[str, Any]], targets: np.ndarray) -> None:
        self.encoded, self.targets = encoded, targets

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.encoded[i], "target": self.targets[i]}


class PadCollator:
    """Right-pads a batch. Rows encoded with a shared prefix become each distinct query's ids
    (``query_ids``, ``query_mask``), the query of each row (``owner``) and the rows' suffixes
    (``input_ids``, ``attention_mask``)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {"target": torch.tensor(np.stack([r["target"] for r in rows]))}
        if "query_ids" in rows[0]:
            ids_of = {r["query"]: r["query_ids"] for r in rows}
            queries = list(ids_of)
            batch["query_ids"], batch["query_mask"] = pad_right(list(ids_of.values()), self.pad_id)
            batch["owner"] = torch.tensor([queries.index(r["query"]) for r in rows])
            rows = [{"input_ids": r["suffix_ids"]} for r in rows]
        ids, mask = pad_right([r["input_ids"] for r in rows], self.pad_id)
        return batch | {"input_ids": ids, "attention_mask": mask}


class QueryGroupedSampler(torch.utils.data.Sampler[int]):
    """Pairs of one query one after another, so that a batch holds few queries whose prompt
    prefixes it runs once. Each epoch shuffles the queries and the pairs within each, seeded by
    ``seed`` and the epoch, so a resumed run sees the order the interrupted one saw."""

    def __init__(self, queries: list[str], seed: int) -> None:
        self.groups = list(pd.Series(queries).groupby(queries, sort=True).indices.values())
        self.seed, self.epoch, self.size = seed, 0, len(queries)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for g in rng.permutation(len(self.groups)):
            yield from rng.permutation(self.groups[g]).tolist()


def batch_grade_logits(
    model: Any,
    inputs: dict[str, torch.Tensor],
    grade_ids: torch.Tensor,
    head_ids: list[int] | None = None,
) -> torch.Tensor:
    """The grade logits of a :class:`PadCollator` batch: whole prompts, or suffixes after shared
    prefixes (the prompt head ``head_ids``, run once, then each query once)."""
    rows = (inputs["input_ids"], inputs["attention_mask"])
    if "owner" not in inputs:
        return grade_logits(model, *rows, grade_ids)
    if head_ids is None:
        raise ValueError("a batch of shared prefixes needs the prompt head's ids")
    head = torch.tensor([head_ids], device=rows[0].device)
    return grade_logits_after_prefixes(
        model,
        run_prefixes(model, head, torch.ones_like(head)),
        (inputs["query_ids"], inputs["query_mask"]),
        inputs["owner"],
        rows,
        grade_ids,
    )


def soft_target_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between softmax(grade logits) and a target distribution, mean over rows."""
    return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


class GradeTrainer(Trainer):
    """A ``Trainer`` whose loss reads the grade-token distribution at the answer position.

    Given the prompt head's ids (``head_ids``) and each train pair's query (``queries``), batches
    come from a :class:`QueryGroupedSampler` and each runs the head once and each query once
    (:func:`~shoprel.teacher.model.grade_logits_after_prefixes`).
    """

    def __init__(
        self,
        *args: Any,
        grade_ids: list[int],
        head_ids: list[int] | None = None,
        queries: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.grade_ids = torch.tensor(grade_ids)
        self.head_ids, self.queries = head_ids, queries

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self.queries is not None:
            return QueryGroupedSampler(self.queries, self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        grade_ids = self.grade_ids.to(inputs["input_ids"].device)
        logits = batch_grade_logits(model, inputs, grade_ids, self.head_ids)
        loss = soft_target_loss(logits, inputs["target"].to(logits.dtype))
        return (loss, {"logits": logits}) if return_outputs else loss


class DevMetricsCallback(TrainerCallback):
    """Scores a dev sample with the model in training after each epoch, into a JSONL file. A run
    resumed from a checkpoint keeps the records up to the checkpoint's step (the later ones are
    scored again), so that no epoch is recorded twice and the last record stays known."""

    def __init__(
        self, dev: pd.DataFrame, scale: GradeScale, tokenizer: Any, meta: TeacherMeta, path: Path
    ) -> None:
        self.dev, self.scale, self.tokenizer, self.meta = dev, scale, tokenizer, meta
        self.path, self.records = path, []

    @property
    def last(self) -> dict[str, Any]:
        """The dev metrics after the last epoch recorded (empty: none)."""
        if not self.records:
            return {}
        return {k: v for k, v in self.records[-1].items() if k not in ("epoch", "step")}

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        records = read_jsonl(self.path) if self.path.is_file() else []
        self.records = [r for r in records if r["step"] <= state.global_step]
        write_jsonl(self.records, self.path)

    def on_epoch_end(
        self, args: Any, state: Any, control: Any, model: Any = None, **_: Any
    ) -> None:
        self._record(state, model)

    def on_train_end(
        self, args: Any, state: Any, control: Any, model: Any = None, **_: Any
    ) -> None:
        """A run resumed from its last checkpoint ends without an epoch end: score it here."""
        if not self.records or self.records[-1]["step"] < state.global_step:
            self._record(state, model)

    def _record(self, state: Any, model: Any) -> None:
        if model is None or self.dev.empty:
            return
        scorer = TeacherScorer(model, self.tokenizer, self.meta, batch_size=32)
        metrics = judge_metrics(scorer.predict(self.dev), self.dev, self.scale)
        model.train()
        record = {"epoch": round(state.epoch or 0, 3), "step": state.global_step, **metrics}
        logger.info(
            "dev after epoch %.2f: %s",
            record["epoch"],
            {k: metrics[k] for k in ("pairwise_accuracy", "auc", "rmse")},
        )
        self.records.append(record)
        write_jsonl(self.records, self.path)


def training_arguments(
    cfg: TeacherTrainConfig, model: Any, out: Path, examples: int
) -> TrainingArguments:
    """The shared judge trainer arguments, ``cfg.sft.args``, checkpoints for ``--resume``."""
    sft = {"save_strategy": "steps", "save_total_limit": 2, "remove_unused_columns": False}
    stage = sft | cfg.sft.trainer_kwargs()
    kwargs = trainer_arguments(cfg, model, out / "checkpoints", examples, stage)
    return library_config(TrainingArguments, kwargs, "sft.args")


def fit_judge(
    cfg: TeacherTrainConfig,
    pairs: pd.DataFrame,
    dev: pd.DataFrame,
    scale: GradeScale,
    out: Path,
    resume: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``cfg.base`` on ``pairs``, save it merged into ``out``; return its last dev
    metrics (empty where ``dev`` is). With ``resume``, continue from the last checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device()
    set_cpu_threads()
    set_seed(cfg.seed)  # LoRA's initial weights come from the global generator
    base_path = resolve_model(cfg.base)
    tokenizer = load_tokenizer(base_path)
    builder = PromptBuilder(tokenizer, scale, cfg.prompt)
    model = load_base(base_path, cfg, device, builder.grade_ids)
    meta = TeacherMeta(
        base=cfg.base,
        scale=scale.name,
        grades=list(scale.grades),
        words=builder.words,
        grade_ids=builder.grade_ids,
        prompt=cfg.prompt.to_dict(),
        train=asdict(cfg),
    )
    share = cfg.sft.share_prefix
    encoded = encode_pairs(builder, pairs, cfg.sft.max_length, share)
    dataset = PairDataset(encoded, targets_for(pairs, scale, cfg.sft.target))
    dev_metrics = DevMetricsCallback(dev, scale, tokenizer, meta, out / DEV_METRICS_FILE)
    trainer = GradeTrainer(
        model=model,
        args=training_arguments(cfg, model, out, len(dataset)),
        train_dataset=dataset,
        data_collator=PadCollator(tokenizer.pad_token_id),
        grade_ids=builder.grade_ids,
        head_ids=builder.head_ids if share else None,
        queries=pairs["query"].tolist() if share else None,
        callbacks=[dev_metrics],
    )
    started = time.perf_counter()
    checkpoint = newest_checkpoint(out / "checkpoints", TRAINER_STATE_NAME) if resume else None
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    meta.train["seconds"] = round(time.perf_counter() - started, 1)
    meta.train["train_pairs"] = len(pairs)
    save_merged(trainer.model, tokenizer, meta, out)
    return dev_metrics.last
