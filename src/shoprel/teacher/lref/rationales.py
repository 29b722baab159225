"""Rationale generators for Multi-CoT: EE, RA and DR texts behind one interface.

    generator = make_generator(cfg.cot, scale, cache_dir, pairs)   # shoprel.teacher.lref.generators
    texts = generator.generate([RationaleRequest("ee", query, item, grade="exact"), ...])

- **EE** (explain): why the pair has its grade.
- **RA** (rule application): the grade the relevance rules derive, with the rule that decided.
- **DR** (decision review): why a wrong grade is wrong, then the right grade.

Every text ends with ``Label: <grade>``. ``rules`` reasons offline from explicit signals
(:mod:`shoprel.teacher.lref.signals`); ``openai`` asks any OpenAI-compatible chat endpoint
(:mod:`shoprel.teacher.lref.openai_generator`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shoprel.augment.synthetic import product_type
from shoprel.data.schema import GradeScale
from shoprel.progress import progress_bar
from shoprel.teacher.config import COT_KINDS
from shoprel.teacher.lref.rules import RelevanceRules
from shoprel.teacher.lref.signals import MODIFIERS, Signals, extract, type_head

ITEM_FIELDS = ("title", "brand", "category", "attributes", "description")


@dataclass(frozen=True)
class RationaleRequest:
    """One rationale to write.

    Args:
        kind: ``ee``, ``ra`` or ``dr``.
        query: the search query.
        item: the product's fields (``title`` at least).
        grade: the pair's true grade (EE explains it, DR ends on it; RA derives its own).
        wrong: DR only: the wrong grade to refute (never ``grade``).
    """

    kind: str
    query: str
    item: Mapping[str, Any]
    grade: str
    wrong: str = ""

    def __post_init__(self) -> None:
        if self.kind not in COT_KINDS:
            raise ValueError(f"rationale kind: expected one of {COT_KINDS}, got {self.kind!r}")
        if self.kind == "dr" and (not self.wrong or self.wrong == self.grade):
            raise ValueError(
                f"DR needs a wrong grade other than {self.grade!r}, got {self.wrong!r}"
            )


@dataclass(frozen=True)
class Rationale:
    """Reasoning and the grade it ends on; ``text`` is what the judge learns to write."""

    kind: str
    reasoning: str
    grade: str

    @property
    def text(self) -> str:
        return f"{self.reasoning}\nLabel: {self.grade}"


class RationaleGenerator(ABC):
    """Writes rationales; ``None`` where it could not (an endpoint's answer without a grade)."""

    @abstractmethod
    def generate(
        self, requests: Sequence[RationaleRequest], progress: bool = False
    ) -> list[Rationale | None]: ...


def wrong_grade(probs: np.ndarray, true: int) -> int:
    """The wrong grade a judge finds most likely: its top grade, or its runner-up when the top is
    the true one."""
    masked = np.asarray(probs, dtype=float).copy()
    masked[true] = -np.inf
    return int(np.argmax(masked))


@dataclass
class RulesGenerator(RationaleGenerator):
    """Rationales from explicit signals and the written relevance rules (offline, deterministic).

    Args:
        rules: the relevance rules (RA's grade is theirs).
        scale: the grade scale of the data.
        brands: brands a query may name (the data's), to tell a brand conflict.
        heads: words that name product types (the data's), to find the type in a query.
    """

    rules: RelevanceRules
    scale: GradeScale
    brands: Iterable[str] = field(default_factory=tuple)
    heads: Collection[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        self.brands = tuple(sorted({str(b).lower() for b in self.brands if b}))
        self.heads = frozenset(self.heads)

    @classmethod
    def from_pairs(
        cls, rules: RelevanceRules, scale: GradeScale, pairs: pd.DataFrame
    ) -> RulesGenerator:
        """A generator that knows the brands and product types of ``pairs``' products."""
        products = pairs.drop_duplicates("product_id") if "product_id" in pairs else pairs
        titles, categories = products["title"].fillna(""), products["category"].fillna("")
        heads = {type_head(product_type(t, c)) for t, c in zip(titles, categories, strict=True)}
        return cls(rules, scale, products["brand"].dropna(), heads - {""})

    def generate(
        self, requests: Sequence[RationaleRequest], progress: bool = False
    ) -> list[Rationale | None]:
        out: list[Rationale | None] = []
        with progress_bar(len(requests), "rationales", disable=not progress, unit="text") as bar:
            for request in requests:
                out.append(self.one(request))
                bar.update(1)
        return out

    def one(self, request: RationaleRequest) -> Rationale:
        signals = extract(request.query, request.item, self.brands, self.heads)
        facts = describe_signals(signals)
        if request.kind == "ra":
            decision = self.rules.decide(signals, self.scale)
            reasoning = f"{facts} Rule '{decision.rule}' applies: {decision.reason}."
            return Rationale("ra", reasoning, decision.grade)
        if request.kind == "ee":
            return Rationale("ee", f"{facts} So the product is {request.grade}.", request.grade)
        return Rationale("dr", self._review(signals, request), request.grade)

    def _review(self, signals: Signals, request: RationaleRequest) -> str:
        """Why ``request.wrong`` is wrong: what speaks against it, then the right grade."""
        order = list(self.scale.grades)
        if order.index(request.wrong) > order.index(request.grade):
            decision = self.rules.decide(signals, self.scale)
            why = (
                sentence(decision.reason)
                if decision.grade != order[-1]
                else ("The product does not meet the query as fully as that grade requires.")
            )
            verdict = "overrates"
        else:
            why, verdict = describe_signals(signals, positive_only=True), "underrates"
        return (
            f"'{request.wrong}' is wrong: it {verdict} the pair. {why} "
            f"The right grade is {request.grade}."
        )


def sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def describe_signals(signals: Signals, positive_only: bool = False) -> str:
    """The signals in plain sentences (``positive_only``: only what matches)."""
    parts = []
    if signals.type != "unknown":
        verdict = {
            "match": "the same type",
            "related": "a related type",
            "mismatch": "another type",
        }
        if not positive_only or signals.type == "match":
            item = signals.item_type or "unnamed"
            parts.append(
                f"The query asks for {signals.query_type}; the product is {item}"
                f" ({verdict[signals.type]})."
            )
    for name in MODIFIERS:
        state, asked = getattr(signals, name), signals.query_values.get(name, "")
        stated = signals.item_values.get(name, "")
        if state == "match":
            parts.append(f"The {name} {asked} matches.")
        elif positive_only or state == "absent":
            continue
        elif state == "conflict":
            parts.append(f"The query asks for {name} {asked}, the product has {stated}.")
        else:
            parts.append(f"The query asks for {name} {asked}; the product does not state it.")
    if signals.missing_words and not positive_only:
        parts.append(f"Not stated by the product: {', '.join(signals.missing_words)}.")
    return " ".join(parts) or "The product matches what the query names."
