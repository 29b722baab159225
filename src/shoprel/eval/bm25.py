"""BM25 (``bm25s``) over product text, with a tokenizer for what people type in a shop.

Sizes and counts are words: ``2x4``, ``1/2``, ``3.5in``, ``18v`` stay whole tokens, and ``in``,
``by`` and ``on`` are not stop words (``1/2 in``, ``2 by 4``, ``clip on``). A query with no token
left (``the``, an empty string) gets a score of 0 for every item; the index counts such queries
in ``empty_queries`` and the callers log the count.
"""

from __future__ import annotations

import re

import numpy as np

TOKEN = re.compile(r"\d+(?:[./x]\d+)*[^\W\d_]*|[^\W\d_]+")
KEPT_STOPWORDS = {"in", "by", "on"}  # units and dimensions in a home-improvement shop


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) - KEPT_STOPWORDS


def tokenize(text: str, stopwords: frozenset[str]) -> list[str]:
    """Lower-cased tokens of ``text``: numbers with their sizes and units, and words."""
    return [t for t in TOKEN.findall(text.lower()) if t not in stopwords]


class Bm25:
    """A BM25 index over ``texts`` (one per item, in order)."""

    def __init__(self, texts: list[str]) -> None:
        import bm25s

        self.stopwords = _stopwords()
        self.retriever = bm25s.BM25()
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
