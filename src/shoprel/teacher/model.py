"""The judge's one forward pass: the decoder's last hidden state projected on the grade tokens only.

Only the grade tokens' rows of the LM head are used, so the vocabulary projection (49k words for
SmolLM2) is never computed. Training and scoring both call :func:`grade_logits`. A judge trained
with ``head: classifier`` projects on a :class:`GradeHead` of its own instead, folded back into
those rows when it is saved, so a saved judge is always a plain causal LM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from shoprel.io import read_json, write_json
from shoprel.scoring import TEACHER_META as META_FILE
from shoprel.teacher.prompts import PromptConfig


@dataclass
class TeacherMeta:
    """What a saved judge needs besides its weights: scale, verbalizer, prompt settings."""

    base: str
    scale: str
    grades: list[str]
    words: list[str]
    grade_ids: list[int]
    prompt: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def prompt_config(self) -> PromptConfig:
        return PromptConfig(**self.prompt)

    def save(self, directory: str | Path) -> None:
        write_json(asdict(self), Path(directory) / META_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> TeacherMeta:
        path = Path(directory) / META_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: no {META_FILE}; not a teacher saved by shoprel")
        try:
            return cls(**read_json(path))
        except TypeError as error:
            raise ValueError(f"{path}: not a judge's meta file of this shoprel: {error}") from error


def run_decoder(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    past: tuple[Any, torch.Tensor] | None = None,
    use_cache: bool = False,
) -> tuple[Any, torch.Tensor]:
    """The decoder over right-padded rows, optionally continuing a prefix cache; returns its output
    and the attention mask over prefix + rows.

    ``past`` is a KV cache with its ``(rows, prefix_len)`` mask. Prefixes are right-padded too: pads
    sit between a prefix and what follows and are masked out, and each row's positions continue its
    own prefix.
    """
    steps = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    cache, mask, positions = None, attention_mask, steps
    if past is not None:
        cache, past_mask = past
        mask = torch.cat([past_mask, attention_mask], dim=1)
        positions = steps + past_mask.sum(dim=1, keepdim=True)
    output = model.get_decoder()(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=use_cache or cache is not None,
    )
    return output, mask


def grade_logits(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    grade_ids: torch.Tensor,
    past: tuple[Any, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits of the grade tokens at each row's last real token (see :func:`run_decoder`)."""
    hidden = run_decoder(model, input_ids, attention_mask, past)[0].last_hidden_state
    last = attention_mask.sum(dim=1) - 1
    hidden_last = hidden[torch.arange(len(hidden), device=hidden.device), last]
    return project_on_grades(model, hidden_last, grade_ids)


def run_prefixes(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    past: tuple[Any, torch.Tensor] | None = None,
) -> tuple[Any, torch.Tensor]:
    """The KV cache of right-padded prefixes and its mask, optionally continuing ``past``."""
    output, mask = run_decoder(model, input_ids, attention_mask, past, use_cache=True)
    return output.past_key_values, mask


def grade_logits_after_prefixes(
    model: Any,
    head: tuple[Any, torch.Tensor],
    queries: tuple[torch.Tensor, torch.Tensor],
    owner: torch.Tensor,
    suffixes: tuple[torch.Tensor, torch.Tensor],
    grade_ids: torch.Tensor,
) -> torch.Tensor:
    """Grade logits of rows whose prompts share a head and, a few rows each, a query.

    ``head`` is the KV cache of the prompt head (one row) and its mask; it runs each of the
    right-padded ``queries`` (ids, mask) once, and each row's suffix (``suffixes``, ids and mask)
    then continues the query ``owner`` names. The same logits as :func:`grade_logits` on each
    row's whole prompt, for the tokens of the head and the queries run once instead of per row;
    with gradients as without. ``head``'s cache is consumed.
    """
    cache, head_mask = head
    n_queries = len(queries[0])
    cache.batch_repeat_interleave(n_queries)
    past = (cache, head_mask.expand(n_queries, -1))
    cache, prefix_mask = run_prefixes(model, *queries, past)
    cache.batch_select_indices(owner)
    return grade_logits(model, *suffixes, grade_ids, (cache, prefix_mask[owner]))


GRADE_HEAD = "grade_head"  # the attribute a classifier head is attached as


class GradeHead(torch.nn.Module):
    """A classifier on the last token: one trainable row per grade (and a bias where the LM head
    has one), initialised from the grade words' rows of the LM head."""

    def __init__(self, lm_head: torch.nn.Module, grade_ids: list[int]) -> None:
        super().__init__()
        rows = torch.tensor(grade_ids)
        self.register_buffer("grade_ids", rows, persistent=False)
        self.weight = torch.nn.Parameter(lm_head.weight.detach()[rows].clone())
        bias = getattr(lm_head, "bias", None)
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach()[rows].clone())

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = hidden @ self.weight.T
        return logits if self.bias is None else logits + self.bias


def attach_grade_head(model: Any, grade_ids: list[int]) -> None:
    """Give ``model`` a :class:`GradeHead` that :func:`grade_logits` projects on from now on."""
    setattr(model, GRADE_HEAD, GradeHead(model.get_output_embeddings(), grade_ids))


def fold_grade_head(model: Any) -> None:
    """Write a trained :class:`GradeHead` into the grade rows of the LM head and detach it. An LM
    head tied to the input embeddings is untied first, so the prompt's tokens keep their
    embeddings (the saved model grows by one vocabulary matrix)."""
    grade_head = getattr(model, GRADE_HEAD, None)
    if grade_head is None:
        return
    delattr(model, GRADE_HEAD)
    lm_head = model.get_output_embeddings()
    if lm_head.weight is model.get_input_embeddings().weight:
        lm_head.weight = torch.nn.Parameter(lm_head.weight.detach().clone())
        model.config.tie_word_embeddings = False
    rows = grade_head.grade_ids.to(lm_head.weight.device)
    with torch.no_grad():
        lm_head.weight[rows] = grade_head.weight.to(lm_head.weight)
        if grade_head.bias is not None:
            lm_head.bias[rows] = grade_head.bias.to(lm_head.bias)


def project_on_grades(model: Any, hidden: torch.Tensor, grade_ids: torch.Tensor) -> torch.Tensor:
    grade_head = getattr(model, GRADE_HEAD, None)
    if grade_head is not None:
        logits = grade_head(hidden)
    else:
        head = model.get_output_embeddings()
        logits = hidden @ head.weight[grade_ids].T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[grade_ids]
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask
