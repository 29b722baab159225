"""BM25 (``bm25s``) over product text, with a tokenizer for what people type in a shop.

Sizes and counts are words: ``2x4``, ``1/2``, ``3.5in``, ``18v`` stay whole tokens, and ``in``,
``by`` and ``on`` are not stop words (``1/2 in``, ``2 by 4``, ``clip on``). A query with no token
left (``the``, an empty string) gets a score of 0 for every item; the index counts such queries
in ``empty_queries`` and the callers log the count.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import numpy as np

TOKEN = re.compile(r"\d+(?:[./x]\d+)*[^\W\d_]*|[^\W\d_]+")
KEPT_STOPWORDS = {"in", "by", "on"}  # units and dimensions in a home-improvement shop


def import_bm25s() -> Any:
    """``bm25s``, with JAX kept on the CPU while it loads: where JAX is installed, bm25s runs a
    JAX top-k at import, and JAX on a GPU takes 75% of the GPU's memory up front (its default),
    which the judge and the student then lack. BM25 here never uses that top-k."""
    if "bm25s" in sys.modules or "jax" in sys.modules:  # JAX already set up as its user chose
        import bm25s

        return bm25s
    before = os.environ.get("JAX_PLATFORMS")
    os.environ["JAX_PLATFORMS"] = before or "cpu"
    try:
        import bm25s
    finally:
        if before is None:
            del os.environ["JAX_PLATFORMS"]
    return bm25s


def _stopwords() -> frozenset[str]:
    return frozenset(import_bm25s().stopwords.STOPWORDS_EN) - KEPT_STOPWORDS


def tokenize(text: str, stopwords: frozenset[str]) -> list[str]:
    """Lower-cased tokens of ``text``: numbers with their sizes and units, and words."""
    return [t for t in TOKEN.findall(text.lower()) if t not in stopwords]


class Bm25:
    """A BM25 index over ``texts`` (one per item, in order)."""

    def __init__(self, texts: list[str]) -> None:
        self.stopwords = _stopwords()
        self.retriever = import_bm25s().BM25()
        corpus = [tokenize(text, self.stopwords) or [""] for text in texts]
        self.retriever.index(corpus, show_progress=False)
        self.vocab = self.retriever.vocab_dict
        self.size = len(texts)
        self.empty_queries = 0

    def query_tokens(self, query: str) -> list[str]:
        """The query's tokens that some item has (others cannot score)."""
        return [t for t in tokenize(query, self.stopwords) if t and t in self.vocab]

    def scores(self, query: str) -> np.ndarray:
        """BM25 of ``query`` against every item; zeros where the query has no known token."""
        tokens = self.query_tokens(query)
        if not tokens:
            self.empty_queries += 1
            return np.zeros(self.size)
        return np.asarray(self.retriever.get_scores(tokens), dtype=float)

    def top_k(self, queries: list[str], k: int) -> np.ndarray:
        """Rows of the ``k`` best items per query, best first (-1 where fewer items match)."""
        k = min(k, self.size)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        for i, query in enumerate(queries):
            scores = self.scores(query)
            best = np.argpartition(-scores, k - 1)[:k]
            best = best[np.argsort(-scores[best], kind="stable")]
            matched = best[scores[best] > 0]
            rows[i, : len(matched)] = matched
        return rows
