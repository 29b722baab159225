"""Explicit relevance signals of a (query, product) pair, read from their text.

The product type the query asks for (its last word that is not a brand, colour, size or stop
word) against the product's type (:func:`shoprel.augment.synthetic.product_type`); brand, colour
and number-with-unit matches and conflicts; query words the product never mentions. The rules
(:mod:`shoprel.teacher.lref.rules`) and the rationale generators read these.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shoprel.augment.synthetic import COLOURS, product_type

STOP_WORDS = frozenset(
    ["a", "an", "and", "the", "for", "with", "of", "in", "on", "to", "by", "from", "or", "x", "at"]
)
UNITS = {
    "in": "in", "inch": "in", "inches": "in", "ft": "ft", "feet": "ft", "foot": "ft",
    "gal": "gal", "gallon": "gal", "oz": "oz", "lb": "lb", "lbs": "lb", "mm": "mm", "cm": "cm",
    "v": "v", "volt": "v", "volts": "v", "w": "w", "watt": "w", "watts": "w", "amp": "amp",
    "amps": "amp", "ah": "ah", "qt": "qt", "yd": "yd", "gpm": "gpm", "gpf": "gpf", "mph": "mph",
    "cfm": "cfm", "pk": "pack", "pack": "pack", "piece": "piece", "pc": "piece", "pcs": "piece",
    "count": "count", "ct": "count",
}  # fmt: skip
_UNIT = "|".join(sorted(UNITS, key=len, reverse=True))
SIZE = re.compile(rf"(?<![\w.])(\d+(?:[./-]\d+)*)\s*-?\s*({_UNIT})(?![a-z])\.?", re.IGNORECASE)
WORD = re.compile(r"[a-z][a-z'&]*")
MODIFIERS = ("brand", "colour", "size")
SIGNAL_VALUES: dict[str, tuple[str, ...]] = {
    "type": ("match", "related", "mismatch", "unknown"),
    "brand": ("match", "conflict", "missing", "absent"),
    "colour": ("match", "conflict", "missing", "absent"),
    "size": ("match", "conflict", "missing", "absent"),
    "conflicts": ("none", "some"),
    "missing": ("none", "some"),
}


def singular(word: str) -> str:
    """A crude English singular: ``boxes`` -> ``box``, ``batteries`` -> ``battery``."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    return [singular(w) for w in WORD.findall(text.lower())]


def sizes(text: str) -> set[tuple[str, str]]:
    """Numbers with a unit, as ``(number, unit)``: ``20V`` -> ``("20", "v")``."""
    found = set()
    for number, unit in SIZE.findall(text):
        number = number.rstrip(".")
        if re.fullmatch(r"\d+\.0+", number):
            number = number.split(".")[0]
        found.add((number, UNITS[unit.lower()]))
    return found


def find_brand(text: str, brands: Iterable[str]) -> str:
    """The longest brand of ``brands`` that occurs in ``text`` as whole words ('' if none)."""
    lowered = text.lower()
    for brand in sorted({b.lower() for b in brands if b}, key=len, reverse=True):
        if _whole_words(brand).search(lowered):
            return brand
    return ""


def _whole_words(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])")


@dataclass(frozen=True)
class Signals:
    """What the query asks for against what the product is.

    ``type`` is ``match`` (the product is the queried type), ``related`` (the queried type is named
    in the product but is not its type: an accessory or part), ``mismatch`` or ``unknown`` (the
    query names no type). Each modifier is ``match``, ``conflict`` (the product states another
    value), ``missing`` (the product states none) or ``absent`` (the query asks for none).
    """

    query_type: str
    item_type: str
    type: str
    brand: str
    colour: str
    size: str
    query_values: Mapping[str, str]
    item_values: Mapping[str, str]
    missing_words: tuple[str, ...]

    @property
    def conflicts(self) -> tuple[str, ...]:
        return tuple(m for m in MODIFIERS if getattr(self, m) == "conflict")

    @property
    def missing(self) -> tuple[str, ...]:
        asked = tuple(m for m in MODIFIERS if getattr(self, m) == "missing")
        return asked + self.missing_words

    def values(self) -> dict[str, str]:
        """The signal values the rules' conditions test (see ``SIGNAL_VALUES``)."""
        return {
            "type": self.type,
            **{m: getattr(self, m) for m in MODIFIERS},
            "conflicts": "some" if self.conflicts else "none",
            "missing": "some" if self.missing else "none",
        }


def _modifier(asked: set[Any], stated: set[Any], same_kind: bool) -> str:
    if not asked:
        return "absent"
    if asked <= stated:
        return "match"
    return "conflict" if stated and same_kind else "missing"


def _size_signal(asked: set[tuple[str, str]], stated: set[tuple[str, str]]) -> str:
    same_unit = {unit for _, unit in asked} & {unit for _, unit in stated}
    return _modifier(asked, stated, bool(same_unit))


def type_head(item_type: str) -> str:
    """The word that names a product type: the last one (``drill bits`` -> ``bit``)."""
    found = words(item_type)
    return found[-1] if found else ""


def query_head(query_words: list[str], heads: Collection[str]) -> int:
    """Index of the word naming the queried type: the last known type head, else the last word."""
    known = [i for i, w in enumerate(query_words) if w in heads]
    return known[-1] if known else len(query_words) - 1


def _type_signal(query_words: list[str], head: str, item_type: str, title: str) -> str:
    if not query_words:
        return "unknown"
    type_words = words(item_type)
    joined = singular("".join(item_type.lower().split()))
    if (type_words and head == type_words[-1]) or head == joined:
        return "match"
    named_in_item = head in type_words or head in words(title)
    item_in_query = bool(type_words) and type_words[-1] in query_words
    return "related" if named_in_item or item_in_query else "mismatch"


def _show(values: set[Any]) -> str:
    return ", ".join(sorted(" ".join(v) if isinstance(v, tuple) else v for v in values))


def extract(
    query: str,
    item: Mapping[str, Any],
    brands: Iterable[str] = (),
    heads: Collection[str] = frozenset(),
) -> Signals:
    """The signals of one pair.

    ``item`` has ``title`` and optionally brand, category, attributes, description; ``brands``
    are the brands a query may name and ``heads`` the words that name product types (both from
    the data: they tell a brand conflict, and the queried type among a query's words)."""
    title = str(item.get("title") or "")
    item_brand = str(item.get("brand") or "").strip().lower()
    attributes = str(item.get("attributes") or "")
    category = str(item.get("category") or "")
    described = f"{title} {attributes}"
    everything = f"{described} {category} {item.get('description') or ''} {item_brand}"
    query_brand = find_brand(query, [*brands, item_brand])
    rest = _whole_words(query_brand).sub(" ", query.lower()) if query_brand else query.lower()
    asked_sizes, rest = sizes(rest), SIZE.sub(" ", rest)
    asked_colours = {w for w in WORD.findall(rest) if w in COLOURS}
    query_words = [
        w for w in words(rest) if w not in STOP_WORDS and w not in COLOURS and len(w) > 1
    ]
    item_type = product_type(title, category)
    at = query_head(query_words, heads)
    known = set(words(everything))
    stated_colours = {w for w in WORD.findall(described.lower()) if w in COLOURS}
    stated_sizes = sizes(described)
    brand = _modifier({query_brand} - {""}, {item_brand} - {""}, True)
    return Signals(
        query_type=" ".join(query_words[: at + 1]),
        item_type=item_type,
        type=_type_signal(query_words, query_words[at] if query_words else "", item_type, title),
        brand=brand,
        colour=_modifier(asked_colours, stated_colours, True),
        size=_size_signal(asked_sizes, stated_sizes),
        query_values={"brand": query_brand, "colour": _show(asked_colours),
                      "size": _show(asked_sizes)},
        item_values={"brand": item_brand, "colour": _show(stated_colours),
                     "size": _show(stated_sizes)},
        missing_words=tuple(w for i, w in enumerate(query_words) if i != at and w not in known),
    )  # fmt: skip
