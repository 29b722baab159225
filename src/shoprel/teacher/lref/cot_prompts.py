"""The prompts and answers of Multi-CoT: each kind's prompt builder, a rationale's answer ids,
and the rationale requests of a set of pairs. Shared by the CoT stage, which trains on them, and
the DPO stage, whose ``cot``-mode pairs are answers of this shape."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.schema import GradeScale
from shoprel.teacher.lref.rationales import ITEM_FIELDS, RationaleRequest
from shoprel.teacher.lref.rules import RelevanceRules
from shoprel.teacher.prompts import PromptBuilder, PromptConfig


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
