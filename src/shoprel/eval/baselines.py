"""``shoprel baseline``: scores that need no training, the bar every trained model must clear.

    shoprel baseline bm25 --data run/data --split test --out run/bm25.test.parquet
    shoprel baseline biencoder --data run/data --split test --out run/biencoder.test.parquet

``bm25`` scores each judged item by BM25 (``bm25s``) with term statistics of every product in the
data dir; ``biencoder`` is the zero-shot cosine of the ``minilm-l6`` sentence embedding.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.schema import SPLITS
from shoprel.data.splits import read_split
from shoprel.io import write_parquet
from shoprel.scoring import Scorer

BASELINES = ("bm25", "biencoder")
logger = logging.getLogger(__name__)


def item_text(
    frame: pd.DataFrame, fields: tuple[str, ...] = ("brand", "title", "category")
) -> pd.Series:
    """Short item text: the title with brand and category where they add words."""

    def join(row: pd.Series) -> str:
        parts = [row["title"]]
        parts += [
            row[f]
            for f in fields
            if f != "title" and row[f] and row[f].lower() not in row["title"].lower()
        ]
        return " | ".join(parts)

    return frame.apply(join, axis=1)


def bm25_scores(pairs: pd.DataFrame, corpus: pd.DataFrame) -> np.ndarray:
    """BM25 of each pair's query against its item, with IDF from ``corpus`` (unique products)."""
    from shoprel.eval.bm25 import Bm25

    products = corpus.drop_duplicates("product_id").reset_index(drop=True)
    row_of = pd.Series(range(len(products)), index=products["product_id"])
    index = Bm25(item_text(products).tolist())
    pairs = pairs.reset_index(drop=True)
    scores = np.zeros(len(pairs))
    for _, group in pairs.groupby("query_id", sort=False):
        all_scores = index.scores(group["query"].iat[0])
        scores[group.index] = all_scores[row_of[group["product_id"]].to_numpy()]
    if index.empty_queries:
        logger.warning(
            "bm25: %d of %d queries have no token the catalog knows; their items score 0",
            index.empty_queries, pairs["query_id"].nunique(),
        )  # fmt: skip
    return scores


def biencoder_scores(
    pairs: pd.DataFrame, model: str = "minilm-l6", batch_size: int = 128
) -> np.ndarray:
    """Cosine similarity of query and item embeddings from a sentence-transformers model."""
    return BiEncoderScorer.load(model, batch_size=batch_size).cosine(pairs)


class BiEncoderScorer(Scorer):
    """Zero-shot cosine of query and item embeddings; a baseline and an ensemble member."""

    def __init__(self, encoder: Any, batch_size: int = 128) -> None:
        self.encoder, self.batch_size = encoder, batch_size

    @classmethod
    def load(cls, model: str | Path = "minilm-l6", batch_size: int = 128) -> BiEncoderScorer:
        from sentence_transformers import SentenceTransformer

        from shoprel.devices import pick_device
        from shoprel.models import resolve_model

        device = pick_device().type
        return cls(SentenceTransformer(resolve_model(str(model)), device=device), batch_size)

    def cosine(self, pairs: pd.DataFrame, progress: bool = False) -> np.ndarray:
        queries = pairs["query"].drop_duplicates().tolist()
        texts = item_text(pairs)
        unique_texts = texts.drop_duplicates().tolist()
        query_vecs = self.encode(queries, progress)
        item_vecs = self.encode(unique_texts, progress)
        query_row = pd.Series(range(len(queries)), index=queries)[pairs["query"]].to_numpy()
        item_row = pd.Series(range(len(unique_texts)), index=unique_texts)[texts].to_numpy()
        return np.einsum("ij,ij->i", query_vecs[query_row], item_vecs[item_row])

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Normalised embeddings of ``texts``."""
        return self.encoder.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress or len(texts) > 2000,
        )

    def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        scores = self.cosine(pairs, progress).astype(float)
        return pd.DataFrame({"pair_id": pairs["pair_id"].to_numpy(), "score": scores})


def run_baseline(name: str, data_dir: str | Path, split: str, out: str | Path) -> pd.DataFrame:
    """Score one split with a baseline and write ``pair_id, score`` to ``out``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {list(BASELINES)}")
    pairs, _ = read_split(data_dir, split)
    if name == "bm25":
        corpus = pd.concat(
            [pd.read_parquet(p) for s in SPLITS if (p := Path(data_dir) / f"{s}.parquet").is_file()]
        )
        scores = bm25_scores(pairs, corpus)
    else:
        scores = biencoder_scores(pairs)
    frame = pd.DataFrame({"pair_id": pairs["pair_id"], "score": scores.astype(float)})
    write_parquet(frame, out)
    return frame
