"""``cot`` scoring: the judge writes its reasoning, then the grade is read after ``Label:``.

    shoprel score --model run/teacher --data run/data --split test --mode cot --out cot.parquet

Reasoning is generated greedily (``generate()``), stopping at the label lead or after
``max_new_tokens`` (the lead is then appended); one more forward pass over prompt, reasoning and
lead gives the grade distribution at the lead's end, as in ``direct`` mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from shoprel.progress import progress_bar
from shoprel.teacher.model import grade_logits, pad_right
from shoprel.teacher.prompts import PromptBuilder


def _stop_criteria(lead: list[int], eos: int | None) -> Any:
    from transformers import StoppingCriteria

    class StopAtLead(StoppingCriteria):
        """Each row is done once it ends with the label lead (or the end-of-text token)."""

        def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
            tail = torch.tensor(lead, device=input_ids.device)
            done = (input_ids[:, -len(lead) :] == tail).all(dim=1)
            if eos is not None:
                done |= input_ids[:, -1] == eos
            return done

    return StopAtLead()


def find(sequence: list[int], part: list[int]) -> int:
    """Index of the first occurrence of ``part`` in ``sequence`` (-1 if none)."""
    n = len(part)
    return next((i for i in range(len(sequence) - n + 1) if sequence[i : i + n] == part), -1)


def reasoning_to_lead(generated: list[int], lead: list[int], stop: set[int]) -> list[int]:
    """The generated ids up to and with the first label lead; without one, up to the first stop
    token (end of text, padding) with the lead appended."""
    at = find(generated, lead)
    if at >= 0:
        return generated[: at + len(lead)]
    end = next((i for i, t in enumerate(generated) if t in stop), len(generated))
    return generated[:end] + lead


def _batches(lengths: list[int], size: int) -> Iterator[np.ndarray]:
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), size):
        yield order[start : start + size]


def generate_reasoning(
    model: Any,
    builder: PromptBuilder,
    pairs: pd.DataFrame,
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt ids and generated reasoning ids (ending with the label lead) of each pair."""
    from transformers import GenerationConfig

    tokenizer = builder.tokenizer
    lead, eos = builder.label_lead_ids(), tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    prompts = [builder.encode(row) for row in pairs.to_dict("records")]
    reasoning: list[list[int]] = [[] for _ in prompts]
    generation = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, eos_token_id=eos
    )
    device = next(model.parameters()).device
    with (
        torch.inference_mode(),
        progress_bar(len(prompts), "reasoning", disable=not progress) as bar,
    ):
        for rows in _batches([len(p) for p in prompts], batch_size):
            width = max(len(prompts[i]) for i in rows)
            ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in rows])
            mask = (
                torch.arange(width)
                >= torch.tensor([width - len(prompts[i]) for i in rows])[:, None]
            ).long()
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                generation_config=generation,
                stopping_criteria=[_stop_criteria(lead, eos)],
            )
            for row, generated in zip(rows, out[:, width:].tolist(), strict=True):
                reasoning[row] = reasoning_to_lead(generated, lead, {eos, pad})
            bar.update(len(rows))
    return prompts, reasoning


def grade_probabilities_after(
    model: Any, sequences: list[list[int]], grade_ids: torch.Tensor, pad_id: int, batch_size: int
) -> np.ndarray:
    """Grade distribution at the last token of each sequence."""
    probs = np.zeros((len(sequences), len(grade_ids)))
    device = next(model.parameters()).device
    with torch.inference_mode():
        for rows in _batches([len(s) for s in sequences], batch_size):
            ids, mask = pad_right([sequences[i] for i in rows], pad_id)
            logits = grade_logits(model, ids.to(device), mask.to(device), grade_ids.to(device))
            probs[rows] = torch.softmax(logits, dim=-1).cpu().numpy()
    return probs


def cot_grade_probabilities(
    scorer: Any, pairs: pd.DataFrame, progress: bool = False
) -> tuple[np.ndarray, list[str]]:
    """A :class:`~shoprel.teacher.scorer.TeacherScorer`'s ``cot`` mode: grade probabilities and
    the reasoning text of each pair."""
    builder = PromptBuilder(
        scorer.builder.tokenizer, scorer.scale, scorer.meta.prompt_config(), mode="cot"
    )
    prompts, reasoning = generate_reasoning(
        scorer.model,
        builder,
        pairs,
        max_new_tokens=scorer.max_new_tokens,
        batch_size=scorer.batch_size,
        progress=progress,
    )
    sequences = [p + r for p, r in zip(prompts, reasoning, strict=True)]
    probs = grade_probabilities_after(
        scorer.model, sequences, scorer.grade_ids, scorer.pad_id, scorer.batch_size
    )
    lead = len(builder.label_lead_ids())
    texts = [
        builder.tokenizer.decode(r[:-lead], skip_special_tokens=True).strip() for r in reasoning
    ]
    return probs, texts
