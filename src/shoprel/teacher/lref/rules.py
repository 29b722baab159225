"""Written relevance rules (``relevance_rules.yaml``): signals in, a grade and a reason out.

    rules = RelevanceRules.load()                      # the shipped file, or a path
    decision = rules.decide(extract(query, item), scale)
    decision.grade, decision.rule, decision.reason

The file is meant to be edited: a rule tests signal values (:data:`SIGNAL_VALUES`), the first rule
that holds gives a level, and each scale maps levels to its grades.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoprel.config import read_yaml
from shoprel.data.schema import GradeScale
from shoprel.teacher.lref.signals import SIGNAL_VALUES, Signals

SHIPPED_RULES = Path(__file__).with_name("relevance_rules.yaml")
PLACEHOLDERS = ("query_type", "item_type", "conflicts", "missing", "query_brand", "item_brand")


class RulesError(ValueError):
    """A rules file that does not follow the format (the message names the file and the rule)."""


@dataclass(frozen=True)
class Rule:
    name: str
    when: dict[str, tuple[str, ...]]
    level: str
    because: str

    def holds(self, values: dict[str, str]) -> bool:
        return all(values[key] in allowed for key, allowed in self.when.items())


@dataclass(frozen=True)
class Decision:
    grade: str
    rule: str
    reason: str


@dataclass(frozen=True)
class RelevanceRules:
    rules: tuple[Rule, ...]
    levels: dict[str, dict[str, str]]
    source: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> RelevanceRules:
        """The rules of ``path`` (else the shipped file); ``RulesError`` says what is wrong."""
        path = Path(path) if path else SHIPPED_RULES
        if not path.is_file():
            raise FileNotFoundError(f"relevance rules: no such file {path}")
        raw = read_yaml(path)
        if not isinstance(raw, dict) or set(raw) - {"levels", "rules"}:
            raise RulesError(f"{path}: expected the keys 'levels' and 'rules' only")
        rules = tuple(_rule(item, i, path) for i, item in enumerate(raw.get("rules") or []))
        if not rules or rules[-1].when:
            raise RulesError(f"{path}: the last rule must have no condition (`when: {{}}`)")
        return cls(rules=rules, levels=_levels(raw.get("levels"), path), source=str(path))

    def grade_of(self, level: str, scale: GradeScale) -> str:
        """The grade of ``scale`` a rule level stands for."""
        mapped = self.levels.get(scale.name, {}).get(level, level)
        if mapped not in scale.grades:
            raise RulesError(
                f"{self.source}: level {level!r} is no grade of scale {scale.name!r} "
                f"{list(scale.grades)}; map it under `levels: {scale.name}:`"
            )
        return mapped

    def decide(self, signals: Signals, scale: GradeScale) -> Decision:
        values = signals.values()
        rule = next(r for r in self.rules if r.holds(values))
        reason = rule.because.format(**_fill(signals))
        return Decision(grade=self.grade_of(rule.level, scale), rule=rule.name, reason=reason)

    def describe(self, scale: GradeScale) -> str:
        """The rules as a numbered list, for prompts."""
        lines = []
        for i, rule in enumerate(self.rules, 1):
            test = (
                " and ".join(f"{k} is {'/'.join(v)}" for k, v in rule.when.items()) or "otherwise"
            )
            lines.append(f"{i}. {rule.name}: if {test}, grade {self.grade_of(rule.level, scale)}")
        return "\n".join(lines)


def _fill(signals: Signals) -> dict[str, str]:
    return {
        "query_type": signals.query_type or "product",
        "item_type": signals.item_type or "product",
        "conflicts": " and ".join(signals.conflicts) or "nothing",
        "missing": ", ".join(signals.missing) or "nothing",
        "query_brand": signals.query_values.get("brand", ""),
        "item_brand": signals.item_values.get("brand", ""),
    }


def _levels(raw: Any, path: Path) -> dict[str, dict[str, str]]:
    """``levels:``: per scale, a mapping from rule level to the scale's grade."""
    shape = "`levels: {SCALE: {LEVEL: GRADE}}`"
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise RulesError(f"{path}: levels: expected {shape}")
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in raw.items()}


def _rule(item: Any, index: int, path: Path) -> Rule:
    where = f"{path}: rule {index + 1}"
    if not isinstance(item, dict) or not {"name", "grade"} <= set(item):
        raise RulesError(f"{where}: expected a mapping with name, when, grade, because")
    where = f"{where} ({item['name']!r})"
    unknown = set(item) - {"name", "when", "grade", "because"}
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {sorted(unknown)}")
    when = {}
    if not isinstance(item.get("when") or {}, dict):
        raise RulesError(f"{where}: when: expected a mapping of signal to value(s)")
    for key, value in (item.get("when") or {}).items():
        allowed = SIGNAL_VALUES.get(key)
        if allowed is None:
            raise RulesError(
                f"{where}: unknown signal {key!r}; expected one of {list(SIGNAL_VALUES)}"
            )
        values = tuple(value) if isinstance(value, list) else (str(value),)
        if set(values) - set(allowed):
            raise RulesError(f"{where}: {key} is one of {list(allowed)}, got {list(values)}")
        when[key] = values
    because = str(item.get("because") or item["name"])
    names = {f for _, f, _, _ in string.Formatter().parse(because) if f}
    if names - set(PLACEHOLDERS):
        raise RulesError(f"{where}: unknown placeholder(s) {sorted(names - set(PLACEHOLDERS))}")
    return Rule(name=str(item["name"]), when=when, level=str(item["grade"]), because=because)
