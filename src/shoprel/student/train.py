"""``shoprel student train``: a sentence-transformers ``CrossEncoder`` student.

    shoprel student train --data run/data --base minilm-l6 --out run/ce-labels --loss labels
    shoprel student train --data run/data --labels run/labels/train --labels run/labels/aug \\
        --augment-frac 0.5 --base minilm-l6 --out run/student        # --loss margin-mse

Losses:

- ``margin-mse`` (the default with ``--labels``): for each query, over all pairs of its items
  i < j, the mean of ((s_i − s_j) − (t_i − t_j))², with t the teacher's scores
  (:class:`~shoprel.student.losses.GroupMarginMSELoss`), plus ``pointwise_weight`` times the
  pointwise MSE (s − t)², which keeps the scores' level where margins alone leave it free.
  Batches hold whole queries (:class:`~shoprel.student.sampler.QueryGroupBatchSampler`); queries
  with one item are dropped.
- ``mse``: pointwise MSE between the logit and the teacher score.
- ``labels`` (the default without ``--labels``): binary cross-entropy on the human label mapped to
  [0, 1]; the no-teacher baseline and a member of a teacher ensemble.

Teacher scores are mapped to [0, 1] by the dataset's label scale before either teacher loss, so the
same learning rate suits every scale (``mse`` regresses that unit score). The training pairs of a
teacher loss are the teacher-scored train-split pairs of the label dirs plus a seeded
``augment_frac`` share of their augmented pairs, taken by whole query (see
:mod:`shoprel.student.data`).

The score of a ``labels`` model is the sigmoid of its logit mapped to the label scale; that of a
distilled student is the raw logit (``"activation": "identity"`` in the meta file). After each
epoch the model scores a dev sample of whole queries (``OUT/dev_metrics.jsonl``); the weights of
the best epoch (by pairwise accuracy, then AUC) are the ones saved, and its metrics are in
``OUT/dev_metrics.json``. Input text: the query, then the title and the short fields (brand,
category), no description.

Every ``save_steps`` steps and at each epoch's end the run checkpoints into ``OUT/checkpoints``
(the trainer's state and the epochs' dev metrics); ``resume`` continues a stopped run from there,
if its settings are the same. The checkpoints are removed once the model is saved.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.readers import DataError
from shoprel.data.schema import GradeScale, get_scale
from shoprel.data.splits import read_card, read_split
from shoprel.io import jsonable, newest_checkpoint, read_json, trained_with, write_json
from shoprel.models import resolve_model
from shoprel.scoring import CROSS_ENCODER_META as META_FILE
from shoprel.student.data import (
    check_heldout,
    check_scale,
    drop_single_items,
    read_teacher_labels,
    take_queries,
    training_pairs,
)
from shoprel.student.scorer import CrossEncoderScorer, item_texts

logger = logging.getLogger(__name__)
LOSSES = ("labels", "mse", "margin-mse")
TEACHER_LOSSES = ("mse", "margin-mse")
TARGET = "unit_target"  # the training target mapped to [0, 1]
CHECKPOINTS = "checkpoints"
SETTINGS_FILE = "settings.json"  # in CHECKPOINTS: what a resumed run must match


@dataclass
class StudentTrainConfig:
    """Training a cross-encoder.

    Model:
        base (str, defaults to ``minilm-l6``): encoder alias, local dir or hub id.
        layers (int, defaults to 0 = all): keep only the base's first ``layers`` transformer
            layers (a smaller, faster student: 2, 3 or 4 of MiniLM-L6's 6).
        ffn_width (int, defaults to 0 = the base's): keep each feed-forward block's most
            important hidden units, this many (MiniLM-L6: 1,536), for a narrower, faster student.
        loss (str, defaults to ``margin-mse`` with label dirs, else ``labels``): see module doc.
        pointwise_weight (float, defaults to 0.0): ``margin-mse`` only; weight of the pointwise
            MSE term beside the margins.
    Data:
        labels (list[str], defaults to none): teacher label dirs (``shoprel label``).
        augment_frac (float, defaults to 1.0): share of the augmented pairs kept, by whole query.
        fields (list[str], defaults to brand, category): product fields after the title.
        max_train_pairs (int, defaults to 0 = all): about this many train-split pairs, whole
            queries chosen by a seeded hash, so that every loss learns from the same queries
            (teacher losses: their teacher scores; augmented pairs are governed by
            ``augment_frac``).
        max_dev_pairs (int, defaults to 2000; 0 = all): dev pairs scored after each epoch, whole
            queries.
    Training:
        epochs (float, 1.0), learning_rate (float, 5e-5), batch_size (int, 32 pairs),
        max_length (int, 96 tokens), seed (int, 0).
        save_steps (int, defaults to 500; 0 = none): a checkpoint every N steps (and at each
            epoch's end) to resume from.
    """

    base: str = "minilm-l6"
    layers: int = 0
    ffn_width: int = 0
    loss: str | None = None
    pointwise_weight: float = 0.0
    labels: list[str] = field(default_factory=list)
    augment_frac: float = 1.0
    fields: list[str] = field(default_factory=lambda: ["brand", "category"])
    max_train_pairs: int = 0
    max_dev_pairs: int = 2000
    epochs: float = 1.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    max_length: int = 96
    seed: int = 0
    save_steps: int = 500

    def __post_init__(self) -> None:
        if isinstance(self.labels, str | Path):
            self.labels = [self.labels]
        self.labels = [str(d) for d in self.labels]
        if self.loss is None:
            self.loss = "margin-mse" if self.labels else "labels"
        if self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {LOSSES}, got {self.loss!r}")
        if self.loss in TEACHER_LOSSES and not self.labels:
            raise ValueError(
                f"loss {self.loss!r} learns teacher scores: expected label dirs (--labels DIR), "
                "got none"
            )
        if self.loss == "labels" and self.labels:
            raise ValueError(
                "loss 'labels' learns the human labels of --data, but label dirs were given; "
                "drop --labels or choose --loss margin-mse or mse"
            )
        if not 0.0 <= self.augment_frac <= 1.0:
            raise ValueError(f"augment_frac: expected a share in [0, 1], got {self.augment_frac}")
        if self.layers < 0:
            raise ValueError(f"layers: expected 0 (all) or a count >= 1, got {self.layers}")
        if self.ffn_width < 0:
            raise ValueError(f"ffn_width: expected 0 (the base's) or >= 1, got {self.ffn_width}")
        if self.pointwise_weight and self.loss != "margin-mse":
            raise ValueError(
                f"pointwise_weight: adds to the margin-mse loss, but loss is {self.loss!r}"
            )
        if not self.pointwise_weight >= 0:  # NaN too
            raise ValueError(f"pointwise_weight: expected >= 0, got {self.pointwise_weight}")
        if self.save_steps < 0:
            raise ValueError(f"save_steps: expected 0 (none) or >= 1, got {self.save_steps}")
        if self.loss == "margin-mse" and self.batch_size < 2:
            raise ValueError(f"batch_size: margin-mse needs >= 2 pairs, got {self.batch_size}")

    @property
    def activation(self) -> str:
        """How the logit becomes the score: ``sigmoid`` (mapped to the label scale) or raw."""
        return "sigmoid" if self.loss == "labels" else "identity"


def to_unit(labels: Any, scale: GradeScale) -> np.ndarray:
    return (np.asarray(labels, dtype=float) - scale.low) / (scale.high - scale.low)


def student_pairs(
    cfg: StudentTrainConfig, data_dir: str | Path, train: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, GradeScale]:
    """The pairs to train on, with the target mapped to [0, 1] in column ``unit_target``;
    ``train`` replaces the train split (labeled pairs, ``loss: labels`` only)."""
    if train is None:
        train, scale = read_split(data_dir, "train")
    elif cfg.loss != "labels":
        raise ValueError("given train pairs are labeled pairs: they need loss 'labels'")
    else:
        scale = get_scale(read_card(data_dir)["scale"])
    if cfg.loss == "labels":
        pairs = take_queries(train, cfg.max_train_pairs, cfg.seed) if cfg.max_train_pairs else train
        return pairs.assign(**{TARGET: to_unit(pairs["label"], scale)}), scale
    labels = read_teacher_labels(cfg.labels)
    check_scale(labels, scale)
    heldout = pd.concat([read_split(data_dir, split)[0] for split in ("dev", "test")])
    check_heldout(labels, heldout, str(data_dir))
    pairs = training_pairs(labels, cfg.augment_frac, cfg.max_train_pairs, cfg.seed)
    if cfg.loss == "margin-mse":
        pairs = drop_single_items(pairs)
    if pairs.empty:
        raise DataError(f"no training pairs in {cfg.labels} (augment_frac {cfg.augment_frac})")
    return pairs.assign(**{TARGET: to_unit(pairs["score"], scale)}), scale


def to_dataset(pairs: pd.DataFrame, cfg: StudentTrainConfig) -> Any:
    """Columns in the loss's order: query, text, (query_id for margin-mse), label."""
    from datasets import Dataset

    columns: dict[str, list[Any]] = {
        "query": pairs["query"].tolist(),
        "text": item_texts(pairs, cfg.fields),
    }
    if cfg.loss == "margin-mse":
        columns["query_id"] = pairs["query_id"].astype(str).tolist()
    columns["label"] = pairs[TARGET].astype(float).tolist()
    return Dataset.from_dict(columns)


def make_loss(cfg: StudentTrainConfig, model: Any) -> Any:
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, MSELoss

    from shoprel.student.losses import GroupMarginMSELoss

    if cfg.loss == "margin-mse":
        return GroupMarginMSELoss(model, pointwise_weight=cfg.pointwise_weight)
    return {"labels": BinaryCrossEntropyLoss, "mse": MSELoss}[cfg.loss](model)


def pairs_per_epoch(pairs: pd.DataFrame, cfg: StudentTrainConfig) -> int:
    """Pairs one epoch trains on (margin-mse cuts a query to ``batch_size`` pairs)."""
    if cfg.loss != "margin-mse":
        return len(pairs)
    return int(pairs.groupby("query_id").size().clip(upper=cfg.batch_size).sum())


def training_arguments(cfg: StudentTrainConfig, out: Path) -> Any:
    import torch
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    from shoprel.devices import cuda_has_bf16
    from shoprel.student.sampler import QueryGroupBatchSampler

    grouped = cfg.loss == "margin-mse"
    return CrossEncoderTrainingArguments(
        output_dir=str(out / CHECKPOINTS),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=0.1,
        seed=cfg.seed,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=2,  # the newest may lack the tracker's state if the run stopped mid-save
        logging_steps=50,
        report_to=[],
        dataloader_pin_memory=torch.cuda.is_available(),
        bf16=cuda_has_bf16(),  # mixed precision on a GPU that has it; fp32 on the CPU
        batch_sampler=QueryGroupBatchSampler if grouped else BatchSamplers.BATCH_SAMPLER,
    )


def keep_first_layers(model: Any, layers: int) -> None:
    """Cut a BERT-like ``model`` (its ``base_model.encoder.layer`` list) to its first ``layers``
    transformer layers, in place; the config follows, so the saved model loads as it is."""
    encoder = getattr(model.base_model, "encoder", None)
    blocks = getattr(encoder, "layer", None)
    if blocks is None:
        raise ValueError(f"layers: {type(model).__name__} has no encoder.layer list to cut")
    if not 1 <= layers <= len(blocks):
        raise ValueError(f"layers: the base has {len(blocks)} layers, got {layers}")
    encoder.layer = blocks[:layers]
    model.config.num_hidden_layers = layers


def keep_widest_ffn(model: Any, width: int) -> None:
    """Narrow every feed-forward block of a BERT-like ``model`` to its ``width`` most important
    hidden units, in place: a unit's importance is the norm of its input weights times the norm
    of its output weights, so the units kept carry most of the block's output. The config
    follows (``intermediate_size``), so the saved model loads as it is."""
    import torch

    blocks = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if blocks is None or not hasattr(blocks[0], "intermediate"):
        raise ValueError(f"ffn_width: {type(model).__name__} has no BERT-like feed-forward blocks")
    current = model.config.intermediate_size
    if not 1 <= width <= current:
        raise ValueError(f"ffn_width: the feed-forward blocks are {current} wide, got {width}")
    for block in blocks:
        up, down = block.intermediate.dense, block.output.dense
        importance = up.weight.norm(dim=1) * down.weight.norm(dim=0)
        keep = torch.topk(importance, width).indices.sort().values
        block.intermediate.dense = _linear_rows(up, keep)
        block.output.dense = _linear_columns(down, keep)
    model.config.intermediate_size = width


def _linear_rows(linear: Any, keep: Any) -> Any:
    """``linear`` with only the output units ``keep``."""
    import torch

    cut = torch.nn.Linear(linear.in_features, len(keep), bias=linear.bias is not None)
    with torch.no_grad():
        cut.weight.copy_(linear.weight[keep])
        if linear.bias is not None:
            cut.bias.copy_(linear.bias[keep])
    return cut.to(linear.weight.dtype)


def _linear_columns(linear: Any, keep: Any) -> Any:
    """``linear`` reading only the input units ``keep``."""
    import torch

    cut = torch.nn.Linear(len(keep), linear.out_features, bias=linear.bias is not None)
    with torch.no_grad():
        cut.weight.copy_(linear.weight[:, keep])
        if linear.bias is not None:
            cut.bias.copy_(linear.bias)
    return cut.to(linear.weight.dtype)


def model_settings(cfg: StudentTrainConfig) -> dict[str, Any]:
    """The settings that shape the model: all but how often it checkpoints."""
    return {k: v for k, v in asdict(cfg).items() if k != "save_steps"}


def run_settings(cfg: StudentTrainConfig, data_dir: str | Path) -> dict[str, Any]:
    """What a checkpoint is valid for: the model's settings and the data dir."""
    settings = {"data": str(Path(data_dir).resolve()), **model_settings(cfg)}
    return json.loads(json.dumps(jsonable(settings)))


def resumable(cfg: StudentTrainConfig, data_dir: str | Path, out: str | Path) -> bool:
    """Whether ``out`` holds checkpoints of a run with these settings."""
    saved = Path(out) / CHECKPOINTS / SETTINGS_FILE
    return saved.is_file() and read_json(saved) == run_settings(cfg, data_dir)


def resume_point(cfg: StudentTrainConfig, data_dir: str | Path, out: Path) -> Path | None:
    """The newest complete checkpoint in ``out`` (None: there is none); an error if they come from
    other settings."""
    from shoprel.student.callbacks import STATE_FILE

    folder = out / CHECKPOINTS
    if not any(folder.glob("checkpoint-*")):
        logger.info("no checkpoint in %s: starting afresh", folder)
        return None
    if not resumable(cfg, data_dir, out):
        saved = folder / SETTINGS_FILE
        theirs = read_json(saved) if saved.is_file() else {}
        ours = run_settings(cfg, data_dir)
        differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        raise ValueError(
            f"{folder}: the checkpoints come from other settings ({', '.join(differ)}); "
            "train afresh without resume, or with the same settings"
        )
    newest = newest_checkpoint(folder, STATE_FILE)
    if newest is None:
        logger.warning("no complete checkpoint in %s: starting afresh", folder)
    return newest


def train_cross_encoder(
    cfg: StudentTrainConfig,
    data_dir: str | Path,
    out: str | Path,
    pairs: pd.DataFrame | None = None,
    resume: bool = False,
) -> Path:
    """Train, keep the best epoch on dev, save a CrossEncoder dir into ``out`` and return it.
    ``pairs`` (labeled) replace the train split; ``resume`` continues from the newest checkpoint
    of a stopped run with the same settings."""
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer
    from transformers import set_seed

    from shoprel.student.callbacks import BestEpochCallback

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = resume_point(cfg, data_dir, out) if resume else None
    if checkpoint is None:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
        if cfg.save_steps:
            write_json(run_settings(cfg, data_dir), out / CHECKPOINTS / SETTINGS_FILE)
    pairs, scale = student_pairs(cfg, data_dir, pairs)
    dev, _ = read_split(data_dir, "dev")
    dev = take_queries(dev, cfg.max_dev_pairs, cfg.seed) if cfg.max_dev_pairs else dev
    set_seed(cfg.seed)  # the new scoring head's initial weights
    model = CrossEncoder(resolve_model(cfg.base), num_labels=1, max_length=cfg.max_length)
    if cfg.layers:
        keep_first_layers(model.model, cfg.layers)
    if cfg.ffn_width:
        keep_widest_ffn(model.model, cfg.ffn_width)
    scorer = CrossEncoderScorer(model, scale, cfg.fields, activation=cfg.activation)
    per_epoch = pairs_per_epoch(pairs, cfg)
    tracker = BestEpochCallback(scorer, dev, out / "dev_metrics.jsonl", per_epoch)
    trainer = CrossEncoderTrainer(
        model=model,
        args=training_arguments(cfg, out),
        train_dataset=to_dataset(pairs, cfg),
        loss=make_loss(cfg, model),
        callbacks=[tracker],
    )
    resumed_at = 0
    if checkpoint is not None:
        tracker.load(checkpoint)
        resumed_at = read_json(checkpoint / "trainer_state.json")["global_step"]
        logger.info("resuming from %s", checkpoint)
    eval_before = tracker.eval_seconds
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - started - (tracker.eval_seconds - eval_before)
    tracker.restore_best()
    share = (trainer.state.global_step - resumed_at) / max(trainer.state.max_steps, 1)
    facts = {
        "seconds": round(seconds, 1),
        "train_pairs": len(pairs),
        "augmented_pairs": int((pairs["source"] != "human").sum()) if cfg.labels else 0,
        "pairs_per_s": round(per_epoch * cfg.epochs * share / max(seconds, 1e-9), 1),
        "best_epoch": tracker.best["epoch"] if tracker.best else None,
        "resumed_at_step": resumed_at or None,
    }
    if tracker.best is not None:
        write_json(tracker.best, out / "dev_metrics.json")
        logger.info("best epoch %s of %s", tracker.best["epoch"], cfg.epochs)
    save_student(model, cfg, scale, facts, out)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    logger.info(
        "trained on %d pairs: %.0f s, %.0f pairs/s", len(pairs), seconds, facts["pairs_per_s"]
    )
    return out


def train_or_reuse(
    cfg: StudentTrainConfig,
    data_dir: str | Path,
    out: str | Path,
    settings: dict[str, Any] | None = None,
) -> Path:
    """``out`` as it is where it holds a finished model whose saved settings include ``settings``
    (by default every setting that shapes the model); else trained, continuing the checkpoints of
    a stopped run with the same settings."""
    wanted = model_settings(cfg) if settings is None else settings
    if not trained_with(out, META_FILE, wanted):
        train_cross_encoder(cfg, data_dir, out, resume=resumable(cfg, data_dir, out))
    return Path(out)


def save_student(
    model: Any, cfg: StudentTrainConfig, scale: GradeScale, facts: dict[str, Any], out: Path
) -> None:
    """The CrossEncoder dir, then the meta file last (a dir without it is not loadable)."""
    (out / META_FILE).unlink(missing_ok=True)
    model.save_pretrained(str(out))
    meta = {
        "scale": scale.name,
        "fields": cfg.fields,
        "max_length": cfg.max_length,
        "activation": cfg.activation,
        "train": asdict(cfg) | facts,
    }
    write_json(meta, out / META_FILE)
