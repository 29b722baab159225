"""``shoprel augment``: unlabeled query–item pairs for the teacher to label.

    shoprel augment --data run/data --out run/augment [--catalog products.csv]

Queries are the train split's queries plus synthetic queries written from products. Each query
gets candidates from BM25 over the catalog, a dense bi-encoder index, and random catalog items,
each source with its own budget and named in the ``source`` column. No dev or test query, nor a
near-duplicate of one, enters (:mod:`shoprel.augment.guard`), and pairs already judged by people
are left out. Writes ``pairs.parquet`` (the pair columns of the data dir, without labels),
``report.json`` (the quality report) and ``catalog_rejects.jsonl`` (rows of ``--catalog`` that are
not products, with file, line and reason; counted in the report).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.augment.guard import LeakageGuard, near_duplicate_rate
from shoprel.augment.synthetic import product_type, template_queries
from shoprel.data.readers import (
    LINE,
    DataError,
    one_line,
    read_records,
    require_columns,
    row_problem,
)
from shoprel.data.schema import SPLITS, TEXT_FIELDS, make_pair_id, make_query_id
from shoprel.eval.baselines import item_text
from shoprel.io import write_json, write_jsonl, write_parquet

logger = logging.getLogger(__name__)
SOURCES = ("bm25", "dense", "random", "synthetic")
ITEM_COLUMNS = ["product_id", *TEXT_FIELDS]
CATALOG_REJECTS = "catalog_rejects.jsonl"  # rows of --catalog that are not products


@dataclass
class AugmentConfig:
    """Candidate budgets per query, and how the dense index is searched.

    bm25_k, dense_k, random_k: candidates per train query from each source (0 turns it off).
    synthetic_queries: products to write one query each from; synthetic_k: BM25 and dense
    candidates per synthetic query (besides the product it was written from).
    max_queries: a seeded sample of train queries (0 = all). exact_search_max: catalog size up to
    which the dense search is exact (faiss flat index); above it an HNSW graph is searched.
    """

    bm25_k: int = 6
    dense_k: int = 6
    random_k: int = 2
    synthetic_queries: int = 2000
    synthetic_k: int = 4
    max_queries: int = 0
    encoder: str = "minilm-l6"
    exact_search_max: int = 100_000
    seed: int = 0
    sources: list[str] = field(default_factory=lambda: list(SOURCES))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sources) - set(SOURCES))
        if unknown:
            raise ValueError(f"sources: unknown {unknown}; expected some of {list(SOURCES)}")


def read_splits(data_dir: str | Path) -> dict[str, pd.DataFrame]:
    found = {s: Path(data_dir) / f"{s}.parquet" for s in SPLITS}
    frames = {s: pd.read_parquet(p) for s, p in found.items() if p.is_file()}
    if "train" not in frames:
        raise DataError(f"{data_dir}: no train.parquet (run `shoprel data prepare` first)")
    return frames


def read_catalog(
    splits: dict[str, pd.DataFrame],
    extra: str | Path | None,
    rejects: list[dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Every product in the data dir, then the products of ``extra`` that are new. A row of
    ``extra`` that is not a product (malformed, no id, no title) is skipped and, where
    ``rejects`` is given, added to it with its file, line and reason."""
    frames = [frame[ITEM_COLUMNS] for frame in splits.values()]
    if extra is not None:
        products, skipped = read_products(Path(extra))
        frames.append(products)
        if skipped:
            logger.warning("%s: %d rows are not products and were skipped", extra, len(skipped))
        if rejects is not None:
            rejects += skipped
    catalog = pd.concat(frames, ignore_index=True).drop_duplicates("product_id")
    catalog = catalog[catalog["title"].fillna("").str.strip() != ""]
    return catalog.reset_index(drop=True).fillna("")


def read_products(path: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """A catalog file's products (text as one line each) and its rows that are not products."""
    products = read_records(path)
    require_columns(products, str(path), ["product_id", "title"])
    for column in ["product_id", *TEXT_FIELDS]:
        products[column] = products.get(column, pd.Series("", index=products.index)).map(one_line)
    problems = {i: row_problem(row, ("title", "product_id")) for i, row in products.iterrows()}
    usable = [i for i, (why, _) in problems.items() if why is None]
    repeated = products.loc[usable, "product_id"].duplicated()  # the first row of an id is kept
    for i in repeated[repeated].index:
        problems[i] = ("duplicate_product_id", f"product_id {products.at[i, 'product_id']!r}")
    rejects = [
        {"file": str(path), "line": int(products.at[i, LINE]), "reason": why, "detail": detail}
        for i, (why, detail) in problems.items()
        if why is not None
    ]
    kept = [i for i, (why, _) in problems.items() if why is None]
    return products.loc[kept, ITEM_COLUMNS], rejects


class Bm25Index:
    def __init__(self, catalog: pd.DataFrame) -> None:
        from shoprel.eval.bm25 import Bm25

        self.index = Bm25(item_text(catalog).tolist())
        self.size = len(catalog)

    def top_k(self, queries: list[str], k: int) -> np.ndarray:
        """Catalog rows of the ``k`` best items per query (-1 where a query matches fewer)."""
        before = self.index.empty_queries
        rows = self.index.top_k(queries, k)
        if self.index.empty_queries > before:
            logger.warning(
                "augment: %d of %d queries have no BM25 token the catalog knows; no BM25 items",
                self.index.empty_queries - before, len(queries),
            )  # fmt: skip
        return rows


class DenseIndex:
    """Normalised bi-encoder vectors in faiss: exact inner product, or HNSW for large catalogs."""

    def __init__(self, catalog: pd.DataFrame, encoder: str, exact_search_max: int) -> None:
        import faiss

        from shoprel.eval.baselines import BiEncoderScorer

        self.encoder = BiEncoderScorer.load(encoder)
        vectors = self.encoder.encode(item_text(catalog).tolist(), progress=True)
        dim = vectors.shape[1]
        self.exact = len(catalog) <= exact_search_max
        if self.exact:
            self.index = faiss.IndexFlatIP(dim)
        else:
            self.index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = 128
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def top_k(self, queries: list[str], k: int) -> np.ndarray:
        vectors = self.encoder.encode(queries, progress=False)
        _, rows = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return rows


def _first_unlabeled(
    rows: np.ndarray, query_ids: list[str], catalog_ids: np.ndarray, labeled: set[str], k: int
) -> list[tuple[str, str]]:
    """Up to ``k`` distinct (query_id, product_id) per query from ranked rows (random draws may
    repeat a row), skipping judged pairs."""
    pairs = []
    for query_id, ranked in zip(query_ids, rows, strict=True):
        kept: set[int] = set()
        for row in ranked:
            if len(kept) == k:
                break
            if (
                row >= 0
                and row not in kept
                and make_pair_id(query_id, catalog_ids[row]) not in labeled
            ):
                pairs.append((query_id, str(catalog_ids[row])))
                kept.add(row)
    return pairs


def candidate_pairs(
    queries: pd.DataFrame,
    catalog: pd.DataFrame,
    labeled: set[str],
    cfg: AugmentConfig,
    indexes: dict[str, Any],
) -> pd.DataFrame:
    """``query_id, product_id, source`` for the train queries, source by source."""
    ids, texts = queries["query_id"].tolist(), queries["query"].tolist()
    catalog_ids = catalog["product_id"].to_numpy()
    rng = np.random.default_rng(cfg.seed)
    frames = []
    budgets = {"bm25": cfg.bm25_k, "dense": cfg.dense_k, "random": cfg.random_k}
    for source, k in budgets.items():
        if k <= 0 or source not in cfg.sources:
            continue
        if source == "random":
            rows = rng.integers(len(catalog), size=(len(ids), 2 * k))
        else:
            rows = _batched_top_k(indexes[source], texts, 2 * k)
        found = _first_unlabeled(rows, ids, catalog_ids, labeled, k)
        frames.append(pd.DataFrame(found, columns=["query_id", "product_id"]).assign(source=source))
        logger.info("%s: %d candidates", source, len(found))
    return pd.concat(frames, ignore_index=True) if frames else _empty_candidates()


def _batched_top_k(index: Any, texts: list[str], k: int, batch: int = 2048) -> np.ndarray:
    from shoprel.progress import progress_bar

    parts = []
    with progress_bar(len(texts), f"{type(index).__name__} search", unit="query") as bar:
        for start in range(0, len(texts), batch):
            parts.append(index.top_k(texts[start : start + batch], k))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, k), dtype=int)


def _empty_candidates() -> pd.DataFrame:
    return pd.DataFrame(columns=["query_id", "product_id", "source"])


def synthetic_pairs(
    catalog: pd.DataFrame,
    guard: LeakageGuard,
    known_queries: set[str],
    labeled: set[str],
    cfg: AugmentConfig,
    indexes: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic queries (``query_id, query``) and their candidates, all of source synthetic."""
    written = template_queries(catalog, cfg.synthetic_queries, cfg.seed)
    written["query_id"] = written["query"].map(make_query_id)
    written = written[~written["query_id"].isin(known_queries)]
    written = written[written["query"].map(guard.allows).astype(bool)]  # empty: still a mask
    written = written.drop_duplicates("query_id")
    queries = written[["query_id", "query"]].reset_index(drop=True)
    own = written[["query_id", "product_id"]]
    sub = AugmentConfig(bm25_k=cfg.synthetic_k, dense_k=cfg.synthetic_k, random_k=0, seed=cfg.seed)
    sub.sources = [s for s in ("bm25", "dense") if s in cfg.sources]
    found = candidate_pairs(queries, catalog, labeled, sub, indexes)
    pairs = pd.concat([own, found[["query_id", "product_id"]]], ignore_index=True)
    return queries, pairs.assign(source="synthetic")


def train_queries(
    splits: dict[str, pd.DataFrame], guard: LeakageGuard, cfg: AugmentConfig
) -> pd.DataFrame:
    queries = splits["train"][["query_id", "query"]].drop_duplicates("query_id")
    if cfg.max_queries and len(queries) > cfg.max_queries:
        queries = queries.sample(n=cfg.max_queries, random_state=cfg.seed)
    return queries[queries["query"].map(guard.allows).astype(bool)].reset_index(drop=True)


def augment(
    cfg: AugmentConfig, data_dir: str | Path, out: str | Path, catalog_file: str | Path | None
) -> dict[str, Any]:
    """Build ``OUT/pairs.parquet`` and ``OUT/report.json``; returns the report."""
    out = Path(out)
    splits = read_splits(data_dir)
    rejects: list[dict[str, Any]] = []
    catalog = read_catalog(splits, catalog_file, rejects)
    write_jsonl(rejects, out / CATALOG_REJECTS)
    held_out_splits = [f["query"] for s, f in splits.items() if s != "train"]
    if not held_out_splits:
        raise DataError(
            f"{data_dir}: no dev or test split, so the leakage guard would guard nothing; "
            "prepare the data with held-out splits"
        )
    held_out = pd.concat(held_out_splits)
    guard = LeakageGuard(held_out)
    labeled = set(pd.concat([f["pair_id"] for f in splits.values()]))
    indexes = _build_indexes(catalog, cfg)
    queries = train_queries(splits, guard, cfg)
    candidates = [candidate_pairs(queries, catalog, labeled, cfg, indexes)]
    if "synthetic" in cfg.sources and cfg.synthetic_queries > 0:
        known = set(pd.concat([f["query_id"] for f in splits.values()]))
        written, pairs = synthetic_pairs(catalog, guard, known, labeled, cfg, indexes)
        queries = pd.concat([queries, written], ignore_index=True)
        candidates.append(pairs)
    pairs = assemble(pd.concat(candidates, ignore_index=True), queries, catalog, labeled)
    write_parquet(pairs, out / "pairs.parquet")
    report = quality_report(pairs, catalog, guard, cfg) | {"catalog_rejects": len(rejects)}
    write_json(report, out / "report.json")
    return report


def _build_indexes(catalog: pd.DataFrame, cfg: AugmentConfig) -> dict[str, Any]:
    indexes: dict[str, Any] = {}
    if "bm25" in cfg.sources:
        indexes["bm25"] = Bm25Index(catalog)
    if "dense" in cfg.sources:
        indexes["dense"] = DenseIndex(catalog, cfg.encoder, cfg.exact_search_max)
    return indexes


def assemble(
    candidates: pd.DataFrame, queries: pd.DataFrame, catalog: pd.DataFrame, labeled: set[str]
) -> pd.DataFrame:
    """One row per new pair (first source wins), with the query text and the item's fields."""
    pairs = candidates.drop_duplicates(["query_id", "product_id"]).copy()
    ids = zip(pairs["query_id"], pairs["product_id"], strict=True)
    pairs["pair_id"] = [make_pair_id(q, p) for q, p in ids]
    pairs = pairs[~pairs["pair_id"].isin(labeled)]
    pairs = pairs.merge(queries, on="query_id", how="left").merge(catalog, on="product_id")
    columns = ["pair_id", "query_id", "query", *ITEM_COLUMNS, "source"]
    return pairs[columns].sort_values(["query_id", "product_id"]).reset_index(drop=True)


def quality_report(
    pairs: pd.DataFrame, catalog: pd.DataFrame, guard: LeakageGuard, cfg: AugmentConfig
) -> dict[str, Any]:
    per_query = pairs.groupby("query_id").size()
    types = catalog["title"].map(product_type)
    covered = types[catalog["product_id"].isin(pairs["product_id"])]
    return {
        "pairs": len(pairs),
        "pairs_by_source": pairs["source"].value_counts().to_dict(),
        "queries": int(pairs["query_id"].nunique()),
        "queries_by_source": pairs.groupby("source")["query_id"].nunique().to_dict(),
        "items_per_query": _spread(per_query),
        "catalog_products": len(catalog),
        "products_covered": int(pairs["product_id"].nunique()),
        "product_type_coverage": round(covered.nunique() / max(types.nunique(), 1), 4),
        "near_duplicate_rate": round(near_duplicate_rate(pairs["query"]), 4),
        "queries_refused_by_leakage_guard": guard.refused,
        "config": asdict(cfg),
    }


def _spread(values: pd.Series) -> dict[str, float]:
    if values.empty:
        return {"mean": 0.0, "p10": 0.0, "median": 0.0, "p90": 0.0}
    quantiles = values.quantile([0.1, 0.5, 0.9]).to_numpy()
    return {
        "mean": round(float(values.mean()), 2),
        "p10": float(quantiles[0]),
        "median": float(quantiles[1]),
        "p90": float(quantiles[2]),
    }
