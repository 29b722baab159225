"""The rationale generator a CoT config names: ``rules`` (offline) or ``openai`` (an endpoint)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shoprel.data.schema import GradeScale
from shoprel.teacher.config import CotConfig
from shoprel.teacher.lref.rationales import RationaleGenerator, RulesGenerator
from shoprel.teacher.lref.rules import RelevanceRules


def make_generator(
    cfg: CotConfig, scale: GradeScale, cache_dir: str | Path, pairs: pd.DataFrame
) -> RationaleGenerator:
    """The generator ``cfg.generator`` names, with the rules of ``cfg.rules``; ``pairs`` are the
    data's pairs (the rules generator learns the brands and product types from them)."""
    rules = RelevanceRules.load(cfg.rules or None)
    if cfg.generator == "rules":
        return RulesGenerator.from_pairs(rules, scale, pairs)
    from shoprel.teacher.lref.openai_generator import OpenAIGenerator  # only when asked for

    return OpenAIGenerator(cfg.openai, rules, scale, cache_dir=cfg.openai.cache_dir or cache_dir)
