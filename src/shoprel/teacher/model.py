"""The judge's one forward pass: the decoder's last hidden state projected on the grade tokens only.

Only the grade tokens' rows of the LM head are used, so the vocabulary projection (49k words for
SmolLM2) is never computed. Training and scoring both call :func:`grade_logits`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from shoprel.teacher.prompts import PromptConfig

META_FILE = "shoprel_teacher.json"


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
        from shoprel.io import write_json

        write_json(asdict(self), Path(directory) / META_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> TeacherMeta:
        path = Path(directory) / META_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: no {META_FILE}; not a teacher saved by shoprel")
        return cls(**json.loads(path.read_text()))


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA where supported, fp32 on CPU."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


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


def project_on_grades(model: Any, hidden: torch.Tensor, grade_ids: torch.Tensor) -> torch.Tensor:
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
