"""Prompts and the verbalizer of the LLM relevance judge.

The prompt puts the query first, so that the items of one query share a token prefix; the product
fields follow; the answer is one grade word (``direct`` mode) or a short reasoning that ends with
``Label:`` and the grade word (``cot`` mode, after Multi-CoT training). Prompt ids are always
``prefix ids + suffix ids`` (each tokenized on its own), so training, plain scoring and
prefix-shared scoring see the very same tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from shoprel.data.schema import GradeScale

SYSTEM = (
    "You judge how relevant a product is to a shopper's search query. "
    "Answer with one word: {choices}."
)
ANSWER_LEAD = "Relevance:"
COT_SYSTEM = (
    "You judge how relevant a product is to a shopper's search query. "
    "Reason briefly, then end with 'Label:' and one word: {choices}."
)
MODES = ("direct", "cot")


@dataclass
class PromptConfig:
    """How a (query, product) pair becomes a prompt.

    Args:
        fields: product fields shown after the title, in this order.
        description_tokens: the description is cut to this many tokens (0 leaves it out).
        attributes_tokens: the attributes are cut to this many tokens.
        use_chat_template: wrap in the tokenizer's chat template where it has one.
        verbalizer: one word per grade, lowest grade first; each must be a single token. Empty means
            the grade words with a leading space (`` exact``).
        system: the instruction before the query; ``{choices}`` becomes the grade words. Every
            token of it is paid for in training, once per pair.
        cot_system: the instruction of ``cot`` mode prompts (reasoning before the grade).
        cot_lead: the text a ``cot`` mode answer starts after (``Relevance:`` in ``direct`` mode).
        label_lead: in ``cot`` mode the grade word follows this, after the reasoning.
    """

    fields: list[str] = field(
        default_factory=lambda: ["brand", "category", "attributes", "description"]
    )
    description_tokens: int = 64
    attributes_tokens: int = 48
    use_chat_template: bool = True
    verbalizer: list[str] = field(default_factory=list)
    system: str = SYSTEM
    cot_system: str = COT_SYSTEM
    cot_lead: str = "Reasoning:"
    label_lead: str = "Label:"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class VerbalizerError(ValueError):
    """A grade word that is not exactly one token for the tokenizer."""


def verbalizer_words(cfg: PromptConfig, scale: GradeScale) -> list[str]:
    words = cfg.verbalizer or [f" {grade}" for grade in scale.grades]
    if len(words) != scale.n_grades:
        raise ValueError(
            f"verbalizer: expected {scale.n_grades} words for grades {list(scale.grades)}, "
            f"got {len(words)}: {words}"
        )
    return words


def grade_token_ids(tokenizer: Any, words: list[str]) -> list[int]:
    """The token id of each grade word; ``VerbalizerError`` names words that are not one token."""
    ids, bad = [], []
    for word in words:
        pieces = tokenizer.encode(word, add_special_tokens=False)
        if len(pieces) == 1:
            ids.append(pieces[0])
        else:
            bad.append(f"{word!r} -> {tokenizer.convert_ids_to_tokens(pieces)}")
    if bad:
        raise VerbalizerError(
            "each grade word must be a single token for this tokenizer; not so: "
            + "; ".join(bad)
            + ". Pick other words with --verbalizer (lowest grade first)."
        )
    if len(set(ids)) != len(ids):
        raise VerbalizerError(f"grade words {words} share a token id: {ids}")
    return ids


class PromptBuilder:
    """Turns pairs into token ids ``prefix + suffix``; the prefix depends on the query only.

    ``mode="cot"`` builds the prompts of reasoning answers: ``cfg.cot_system`` as the instruction
    and ``cfg.cot_lead`` as the last prompt text.
    """

    def __init__(
        self,
        tokenizer: Any,
        scale: GradeScale,
        cfg: PromptConfig | None = None,
        mode: str = "direct",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"prompt mode: expected one of {MODES}, got {mode!r}")
        self.tokenizer = tokenizer
        self.scale = scale
        self.cfg = cfg or PromptConfig()
        self.mode = mode
        self.words = verbalizer_words(self.cfg, scale)
        self.grade_ids = grade_token_ids(tokenizer, self.words)
        self._head, self._tail = self._template_parts()
        # the part of every prompt before the query: BOS, system message, template
        self.head_ids = self._bos_ids() + tokenizer.encode(self._head, add_special_tokens=False)
        self._query_cache: dict[str, list[int]] = {}

    def _template_parts(self) -> tuple[str, str]:
        """Text before the user message and text after it, up to the answer position."""
        choices = ", ".join(word.strip() for word in self.words)
        cot = self.mode == "cot"
        system = (self.cfg.cot_system if cot else self.cfg.system).format(choices=choices)
        lead = self.cfg.cot_lead if cot else ANSWER_LEAD
        marker = "\x00USER\x00"
        if self.cfg.use_chat_template and getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": system}, {"role": "user", "content": marker}]
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            head, tail = text.split(marker)
            return head, tail + lead
        return f"{system}\n\n", f"\n{lead}"

    def query_ids(self, query: str) -> list[int]:
        if query not in self._query_cache:
            text = f"Query: {query}\n"
            self._query_cache[query] = self.tokenizer.encode(text, add_special_tokens=False)
        return self._query_cache[query]

    def prefix_ids(self, query: str) -> list[int]:
        return self.head_ids + self.query_ids(query)

    def suffix_ids(self, row: dict[str, Any] | pd.Series) -> list[int]:
        parts = [f"Product: {row['title']}"]
        for name in self.cfg.fields:
            value = row.get(name) or ""
            budget = {
                "description": self.cfg.description_tokens,
                "attributes": self.cfg.attributes_tokens,
            }
            if name in budget:
                value = self._cut(value, budget[name])
            if value:
                parts.append(f"{name.capitalize()}: {value}")
        return self.tokenizer.encode("\n".join(parts) + self._tail, add_special_tokens=False)

    def _cut(self, text: str, tokens: int) -> str:
        if tokens <= 0 or not text:
            return ""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return text if len(ids) <= tokens else self.tokenizer.decode(ids[:tokens]).strip() + " ..."

    def _bos_ids(self) -> list[int]:
        """A BOS token where the model expects one and the template does not already add it."""
        bos = self.tokenizer.bos_token_id
        head_ids = self.tokenizer.encode(self._head, add_special_tokens=False)[:1]
        wants_bos = getattr(self.tokenizer, "add_bos_token", False)
        return [bos] if bos is not None and wants_bos and head_ids != [bos] else []

    def encode(self, row: dict[str, Any] | pd.Series) -> list[int]:
        return self.prefix_ids(row["query"]) + self.suffix_ids(row)

    def label_lead_ids(self) -> list[int]:
        """The ids of ``cfg.label_lead`` on a new line: after them a reasoning answer's grade."""
        return self.tokenizer.encode(f"\n{self.cfg.label_lead}", add_special_tokens=False)
