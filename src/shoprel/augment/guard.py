"""Query keys for the leakage guard: two queries with one key are near-duplicates.

The key folds case and accents ("Niño" is "nino"), keeps letters and digits of any script, drops a
plural ``s`` and stop words, and sorts the distinct words: "Decks over", "deck-over" and "over the
deck" share one key. A query of the
augmented set must not share a key with any dev or test query.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]+(?:[./][0-9]+)?")  # letters and digits of any script
_STOP = frozenset({"a", "an", "and", "for", "in", "of", "on", "the", "to", "with", "x"})


def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def query_key(query: str) -> str:
    """The near-duplicate key of a query (empty for a query of stop words only)."""
    words = {_stem(w) for w in _WORD.findall(_folded(query)) if w not in _STOP}
    return " ".join(sorted(words))


def _folded(text: str) -> str:
    """``text`` case-folded, with the accents of Latin letters dropped ("é" is "e"); the marks of
    other scripts stay (Japanese "ド" is not "ト")."""
    kept: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        if not (unicodedata.combining(char) and kept and kept[-1].isascii()):
            kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept)).casefold()


class LeakageGuard:
    """Refuses any query whose key is the key of a held-out (dev or test) query."""

    def __init__(self, held_out_queries: Iterable[str]) -> None:
        self.held_out = {query_key(q) for q in held_out_queries}
        self.refused = 0

    def allows(self, query: str) -> bool:
        key = query_key(query)
        allowed = bool(key) and key not in self.held_out
        self.refused += not allowed
        return allowed


def near_duplicate_rate(queries: Iterable[str]) -> float:
    """Share of distinct queries whose key another distinct query of the set also has."""
    distinct = sorted(set(queries))
    if not distinct:
        return 0.0
    keys = [query_key(q) for q in distinct]
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return sum(counts[key] > 1 for key in keys) / len(distinct)
