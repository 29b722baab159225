"""Dev metrics after each epoch and the weights of the best one, kept in every checkpoint so that a
resumed run knows the epochs before it."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from shoprel.eval.evaluate import evaluate_scores
from shoprel.io import atomic_path, write_jsonl
from shoprel.student.scorer import CrossEncoderScorer

logger = logging.getLogger(__name__)
STATE_FILE = "best_epoch.pt"  # the tracker's state, in each checkpoint dir


class BestEpochCallback(TrainerCallback):
    """After each epoch: dev metrics as one more line of a JSONL file, and a copy of the weights
    if the epoch is the best so far (pairwise accuracy, then AUC). Where the run checkpoints, an
    epoch's end is checkpointed too, and each checkpoint holds this state (:meth:`load`)."""

    def __init__(
        self, scorer: CrossEncoderScorer, dev: pd.DataFrame, path: Path, pairs_per_epoch: int
    ) -> None:
        self.scorer, self.dev, self.path, self.pairs_per_epoch = scorer, dev, path, pairs_per_epoch
        self.records: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.best_state: dict[str, Any] | None = None
        self.eval_seconds = 0.0
        self._started, self._start_epoch = 0.0, 0.0

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self._started, self._start_epoch = time.perf_counter(), state.epoch or 0.0

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        # an epoch's last step: its checkpoint waits for the epoch's dev record (on_epoch_end),
        # or a run killed in that evaluation would resume past it and never record the epoch
        if state.epoch and float(state.epoch).is_integer():
            control.should_save = False

    def on_epoch_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        seconds = time.perf_counter() - self._started
        pairs = self.pairs_per_epoch * ((state.epoch or 0.0) - self._start_epoch)
        started = time.perf_counter()
        metrics = self._dev_metrics()
        self.eval_seconds += time.perf_counter() - started
        record = {
            "epoch": round(state.epoch or 0.0, 3),
            "step": state.global_step,
            "train_pairs_per_s": round(pairs / max(seconds, 1e-9), 1),
            **metrics,
        }
        logger.info(
            "epoch %.2f: %.0f pairs/s; dev %s",
            record["epoch"],
            record["train_pairs_per_s"],
            {k: metrics.get(k) for k in ("pairwise_accuracy", "auc", "rmse")},
        )
        self.records.append(record)
        write_jsonl(self.records, self.path)
        if metrics and (self.best is None or _rank_key(record) > _rank_key(self.best)):
            self.best = record
            state_dict = self.scorer.model.state_dict()
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}
        control.should_save = args.save_strategy != "no"  # resume after this epoch, not before

    def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        saved = {
            "records": self.records,
            "best": self.best,
            "best_state": self.best_state,
            "eval_seconds": self.eval_seconds,
        }
        with atomic_path(checkpoint / STATE_FILE) as tmp:
            torch.save(saved, tmp)

    def load(self, checkpoint: Path) -> None:
        """Take up the state saved in ``checkpoint``; the JSONL file keeps its epochs only."""
        saved = torch.load(checkpoint / STATE_FILE, weights_only=True)
        self.records, self.best = saved["records"], saved["best"]
        self.best_state, self.eval_seconds = saved["best_state"], saved["eval_seconds"]
        write_jsonl(self.records, self.path)

    def _dev_metrics(self) -> dict[str, Any]:
        if self.dev.empty:
            return {}
        return evaluate_scores(self.dev, self.scorer.predict(self.dev), self.scorer.scale)

    def restore_best(self) -> None:
        """Load the best epoch's weights into the model (no-op without dev metrics)."""
        if self.best_state is not None:
            self.scorer.model.load_state_dict(self.best_state)


def _rank_key(record: dict[str, Any]) -> tuple[float, float]:
    def value(key: str) -> float:
        return -np.inf if record.get(key) is None else float(record[key])

    return value("pairwise_accuracy"), value("auc")
