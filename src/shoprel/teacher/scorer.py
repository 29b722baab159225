"""Score pairs with a trained judge: one forward pass per item, never ``generate()``.

    shoprel score --model run/teacher --data run/data --split test --out run/teacher.test.parquet

Items are batched by length to cut padding. With prefix sharing (the default) the prompt up to the
end of the query is run once per query and kept as a KV cache; only the item suffixes run against
it. ``int8`` applies dynamic int8 quantization to the linear layers (CPU), all but the MLP's down
projection, whose activations' outliers int8 cannot hold.

``mode="cot"`` (``shoprel score --mode cot``) scores a judge trained with Multi-CoT the slow way:
it writes its reasoning first and the grade is read after ``Label:``
(:mod:`shoprel.teacher.lref.cot_scoring`); the reasoning comes back in ``_reasoning``.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from shoprel.data.schema import get_scale
from shoprel.devices import pick_device, pick_dtype
from shoprel.progress import progress_bar
from shoprel.scoring import Scorer
from shoprel.teacher.model import (
    TeacherMeta,
    grade_logits,
    grade_logits_after_prefixes,
    pad_right,
    run_prefixes,
)
from shoprel.teacher.prompts import MODES, PromptBuilder, PromptConfig


def set_cpu_threads() -> None:
    """Use every core this process may run on."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))


# The MLP's down projection reads the SwiGLU product, whose outliers (max |x| 100-1000x the mean
# on Qwen2.5-0.5B) leave one int8 scale per batch too coarse: its int8 output is 20-24% off the
# float one (median over layers), the other projections' 3-9% (int8_rel_error of
# benchmarks/teacher_scoring.py). It stays float: the judge's scores keep their order (RESULTS.md).
INT8_FLOAT_LAYERS = ("down_proj",)


def quantize_int8(
    model: torch.nn.Module, float_layers: Collection[str] = INT8_FLOAT_LAYERS
) -> torch.nn.Module:
    """Dynamic int8 quantization of the decoder's linear layers: weights int8 per output channel,
    activations quantized per batch. Layers whose last name is in ``float_layers`` stay float, and
    so does the LM head: only its grade rows are used."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name in int8_layer_names(model, float_layers)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8)


def int8_layer_names(
    model: torch.nn.Module, float_layers: Collection[str] = INT8_FLOAT_LAYERS
) -> list[str]:
    """The linear layers :func:`quantize_int8` turns into int8."""
    head = model.get_output_embeddings()
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and module is not head
        and name.rsplit(".", 1)[-1] not in float_layers
    ]


def load_causal_lm(
    path: str | Path, device: torch.device, int8: bool, dtype: torch.dtype | None = None
) -> Any:
    """A causal LM in ``dtype`` (default: the device's, :func:`pick_dtype`), int8-quantized on
    request (CPU only), threads set."""
    from transformers import AutoModelForCausalLM

    if int8 and device.type != "cpu":
        raise ValueError("int8 scoring is dynamic quantization for the CPU; drop --int8 on CUDA")
    if int8:
        dtype = torch.float32  # dynamic int8 quantizes fp32 weights
    dtype = dtype or pick_dtype(device)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    set_cpu_threads()
    return quantize_int8(model) if int8 else model


class TeacherScorer(Scorer):
    """The LLM judge as a scorer: grade distribution and expected label for each pair.

    ``mode`` is ``direct`` (the grade right after the prompt) or ``cot`` (reasoning of at most
    ``max_new_tokens`` first, then the grade after ``Label:``).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        meta: TeacherMeta,
        *,
        batch_size: int = 32,
        prefix_sharing: bool = True,
        mode: str = "direct",
        max_new_tokens: int = 96,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"scoring mode: expected one of {MODES}, got {mode!r}")
        self.mode, self.max_new_tokens = mode, max_new_tokens
        self.model = model.eval()
        self.meta = meta
        self.scale = get_scale(meta.scale)
        self.builder = PromptBuilder(tokenizer, self.scale, meta.prompt_config())
        if self.builder.grade_ids != meta.grade_ids:
            raise ValueError(
                f"the tokenizer maps grade words {meta.words} to {self.builder.grade_ids}, "
                f"but the model was trained with {meta.grade_ids}"
            )
        self.grade_ids = torch.tensor(meta.grade_ids, device=self._device())
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.batch_size = batch_size
        self.prefix_sharing = prefix_sharing
        self.grades = list(self.scale.grades)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        int8: bool = False,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> TeacherScorer:
        from transformers import AutoTokenizer

        model = load_causal_lm(directory, pick_device(device), int8, dtype)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        return cls(model, tokenizer, TeacherMeta.load(directory), **options)

    @classmethod
    def from_base(
        cls,
        base: str,
        scale: str,
        *,
        prompt: PromptConfig | None = None,
        int8: bool = False,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> TeacherScorer:
        """A judge never fine-tuned (zero-shot), from any causal LM alias, dir or hub id."""
        from transformers import AutoTokenizer

        from shoprel.models import resolve_model

        path = resolve_model(base)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = load_causal_lm(path, pick_device(device), int8, dtype)
        prompt = prompt or PromptConfig()
        builder = PromptBuilder(tokenizer, get_scale(scale), prompt)
        meta = TeacherMeta(
            base=base,
            scale=scale,
            grades=list(builder.scale.grades),
            words=builder.words,
            grade_ids=builder.grade_ids,
            prompt=prompt.to_dict(),
        )
        return cls(model, tokenizer, meta, **options)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def grade_probabilities(self, pairs: pd.DataFrame, progress: bool = False) -> np.ndarray:
        """An ``(n_pairs, n_grades)`` array of grade probabilities, in the order of ``pairs``."""
        pairs = pairs.reset_index(drop=True)
        if self.mode == "cot":
            from shoprel.teacher.lref.cot_scoring import cot_grade_probabilities

            return cot_grade_probabilities(self, pairs, progress)[0]
        probs = np.zeros((len(pairs), len(self.grades)), dtype=np.float64)
        batches = self._prefix_batches(pairs) if self.prefix_sharing else self._plain_batches(pairs)
        with (
            torch.inference_mode(),
            progress_bar(len(pairs), "scoring", disable=not progress) as bar,
        ):
            for rows, logits in batches:
                probs[rows] = torch.softmax(logits, dim=-1).cpu().numpy()
                bar.update(len(rows))
        return probs

    def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        reasoning = None
        if self.mode == "cot":
            from shoprel.teacher.lref.cot_scoring import cot_grade_probabilities

            probs, reasoning = cot_grade_probabilities(self, pairs.reset_index(drop=True), progress)
        else:
            probs = self.grade_probabilities(pairs, progress=progress)
        frame = pd.DataFrame(
            {"pair_id": pairs["pair_id"].to_numpy(), "score": probs @ self.scale.values}
        )
        for i, grade in enumerate(self.grades):
            frame[f"p_{grade}"] = probs[:, i]
        if reasoning is not None:
            frame["_reasoning"] = reasoning
        return frame

    def _plain_batches(self, pairs: pd.DataFrame) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        encoded = [self.builder.encode(row) for row in pairs.to_dict("records")]
        order = np.argsort([len(ids) for ids in encoded], kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids, mask = pad_right([encoded[i] for i in rows], self.pad_id)
            device = self._device()
            yield rows, grade_logits(self.model, ids.to(device), mask.to(device), self.grade_ids)

    def _prefix_batches(self, pairs: pd.DataFrame) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Whole queries per batch. The prompt head (system message) runs once for all pairs, each
        query's tokens once per batch; the cache rows then repeat for each query's items."""
        device = self._device()
        head = torch.tensor([self.builder.head_ids], device=device)
        head_cache, head_mask = run_prefixes(self.model, head, torch.ones_like(head))
        for rows in self._query_batches(pairs):
            batch = pairs.loc[rows]
            queries = list(dict.fromkeys(batch["query"]))
            ids, mask = pad_right([self.builder.query_ids(q) for q in queries], self.pad_id)
            owner = torch.tensor([queries.index(q) for q in batch["query"]], device=device)
            suffix_ids, suffix_mask = pad_right(
                [self.builder.suffix_ids(r) for r in batch.to_dict("records")], self.pad_id
            )
            logits = grade_logits_after_prefixes(
                self.model,
                (copy.deepcopy(head_cache), head_mask),
                (ids.to(device), mask.to(device)),
                owner,
                (suffix_ids.to(device), suffix_mask.to(device)),
                self.grade_ids,
            )
            yield rows, logits

    def _query_batches(self, pairs: pd.DataFrame) -> Iterator[np.ndarray]:
        """Row indices in batches of about ``batch_size`` that keep a query's items together
        (a query with more items than a batch is split), queries in order of prompt length."""
        lengths = pairs["title"].str.len() + pairs["query"].str.len()
        groups = sorted(
            pairs.groupby("query", sort=False).indices.values(), key=lambda g: lengths[g].mean()
        )
        batch: list[int] = []
        for group in groups:
            for start in range(0, len(group), self.batch_size):
                part = group[start : start + self.batch_size].tolist()
                if len(batch) + len(part) > self.batch_size:
                    yield np.array(batch)
                    batch = []
                batch += part
        if batch:
            yield np.array(batch)
