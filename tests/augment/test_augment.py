"""Augmented pairs: budgets per source, no judged pair, no held-out query or its near-duplicate."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shoprel.augment.candidates import AugmentConfig, DenseIndex, augment, read_catalog
from shoprel.augment.guard import LeakageGuard, near_duplicate_rate, query_key
from shoprel.augment.synthetic import facets, template_query
from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.data.readers import DataError


def test_query_key_joins_spellings_and_plurals() -> None:
    assert query_key("Decks over") == query_key("deck-over") == query_key("over the deck")
    assert query_key("3/4 in. pipes") == query_key("pipe 3/4 in")
    assert query_key("glass") == "glass"  # a double s is no plural
    assert query_key("boxes") == query_key("box")
    assert query_key("deck screws") != query_key("deck")


def test_guard_refuses_held_out_queries_and_their_near_duplicates() -> None:
    guard = LeakageGuard(["Deck Screws", "door hinge"])
    assert not guard.allows("deck screw")
    assert not guard.allows("Door  Hinges")
    assert not guard.allows("the of")  # empty key: nothing to match on
    assert guard.allows("deck stain")
    assert guard.refused == 3


def test_accents_and_other_scripts_make_keys_too() -> None:
    assert query_key("Silla niño") == query_key("silla nino")
    assert query_key("Café tables") == query_key("cafe table")
    assert query_key("ドリル 18v") == "18v ドリル"  # not empty: it can be matched
    assert not LeakageGuard(["silla niño"]).allows("Silla Nino")


def test_train_queries_all_refused_or_none_give_no_queries_not_a_crash() -> None:
    from shoprel.augment.candidates import train_queries

    train = pd.DataFrame({"query_id": ["q1", "q2"], "query": ["deck screw", "door hinges"]})
    guard = LeakageGuard(["deck screws", "door hinge"])
    assert train_queries({"train": train}, guard, AugmentConfig()).empty
    assert train_queries({"train": train.iloc[:0]}, guard, AugmentConfig()).empty


def test_data_without_held_out_splits_is_refused(demo_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "train-only"
    data.mkdir()
    for name in ("train.parquet", "card.json"):
        (data / name).write_bytes((demo_data / name).read_bytes())
    with pytest.raises(DataError, match=r"train-only: no dev or test split"):
        augment(AugmentConfig(), data, tmp_path / "out", None)


def test_near_duplicate_rate() -> None:
    assert near_duplicate_rate(["drill", "drills", "saw", "hammer"]) == pytest.approx(0.5)
    assert near_duplicate_rate([]) == 0.0


def test_template_query_uses_slots_the_product_fills() -> None:
    import numpy as np

    shape = facets("Hillman 4 in. Square Corner Door Hinge in Satin Nickel", "Hillman", "")
    assert shape.type == "door hinge" and shape.size == "4 in" and shape.colour == "nickel"
    rng = np.random.default_rng(0)
    queries = {template_query(shape, rng) for _ in range(60)}
    assert "door hinge" in queries and "hillman door hinge" in queries
    assert all(q and "door hinge" in q for q in queries)
    assert template_query(facets("1234", "", ""), rng) is None


@pytest.fixture(scope="module")
def leaky_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data with a train query that is a near-duplicate of a test query."""
    out = tmp_path_factory.mktemp("leaky")
    prepare(PrepareConfig(source="demo"), out)
    train = pd.read_parquet(out / "train.parquet")
    test_query = pd.read_parquet(out / "test.parquet")["query"].iat[0]
    twin = train.iloc[[0]].copy()
    twin["query"] = test_query.upper() + "s"
    twin["query_id"] = "qtwin"
    twin["pair_id"] = "qtwin/" + twin["product_id"]
    pd.concat([train, twin]).to_parquet(out / "train.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def augmented(leaky_data: Path, tiny_bi_encoder: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("augment")
    cfg = AugmentConfig(
        bm25_k=4, dense_k=3, random_k=2, synthetic_queries=200, encoder=str(tiny_bi_encoder)
    )
    report = augment(cfg, leaky_data, out, None)
    return report, pd.read_parquet(out / "pairs.parquet"), out


def test_no_held_out_query_enters(leaky_data: Path, augmented) -> None:
    report, pairs, _ = augmented
    held_out = pd.concat(
        [pd.read_parquet(leaky_data / f"{s}.parquet")["query"] for s in ("dev", "test")]
    )
    held_keys = {query_key(q) for q in held_out}
    assert not any(query_key(q) in held_keys for q in pairs["query"].unique())
    assert "qtwin" not in set(pairs["query_id"])
    assert report["queries_refused_by_leakage_guard"] >= 1


def test_judged_pairs_are_left_out_and_pairs_are_unique(leaky_data: Path, augmented) -> None:
    _, pairs, _ = augmented
    judged = pd.concat(
        [pd.read_parquet(leaky_data / f"{s}.parquet")["pair_id"] for s in ("train", "dev", "test")]
    )
    assert not pairs["pair_id"].isin(judged).any()
    assert not pairs["pair_id"].duplicated().any()
    assert (pairs["pair_id"] == pairs["query_id"] + "/" + pairs["product_id"]).all()


def test_budgets_and_sources(augmented) -> None:
    _, pairs, out = augmented
    assert set(pairs["source"]) == {"bm25", "dense", "random", "synthetic"}
    per_query = pairs[pairs["source"] != "synthetic"].groupby(["query_id", "source"]).size()
    budget = {"bm25": 4, "dense": 3, "random": 2}
    assert all(n <= budget[source] for (_, source), n in per_query.items())
    assert pairs["title"].str.len().gt(0).all() and pairs["query"].str.len().gt(0).all()
    saved = json.loads((out / "report.json").read_text())
    assert saved["pairs"] == len(pairs) == sum(saved["pairs_by_source"].values())
    assert 0 < saved["product_type_coverage"] <= 1


def test_dense_index_exact_and_hnsw_agree_on_an_items_own_title(
    demo_data: Path, tiny_bi_encoder: Path
) -> None:
    catalog = read_catalog({"train": pd.read_parquet(demo_data / "train.parquet")}, None)
    exact = DenseIndex(catalog, str(tiny_bi_encoder), exact_search_max=len(catalog))
    graph = DenseIndex(catalog, str(tiny_bi_encoder), exact_search_max=10)
    assert exact.exact and not graph.exact
    own = list(range(20))
    from shoprel.eval.baselines import item_text

    texts = item_text(catalog.head(20)).tolist()
    assert (exact.top_k(texts, 1)[:, 0] == own).mean() >= 0.9  # duplicates of a text may tie
    assert (graph.top_k(texts, 5) == exact.top_k(texts, 5)).mean() > 0.8


def test_extra_catalog_file_adds_products(demo_data: Path, tmp_path: Path) -> None:
    extra = tmp_path / "more.csv"
    extra.write_text(
        "product_id,title,brand\nX1,Cordless  Drill 20V,Acme\nX2,,Acme\n,Saw,Acme\nX3,Saw,A,b\n"
        "X1,Corded Drill,Acme\n"
    )
    rejects: list[dict] = []
    catalog = read_catalog({"train": pd.read_parquet(demo_data / "train.parquet")}, extra, rejects)
    assert catalog.set_index("product_id").loc["X1", "title"] == "Cordless Drill 20V"
    assert not {"X2", "X3", ""} & set(catalog["product_id"])
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (3, "empty_title"),
        (4, "empty_product_id"),
        (5, "malformed_row"),
        (6, "duplicate_product_id"),  # the first row of X1 is the product
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name\n1,Drill\n")
    with pytest.raises(Exception, match="product_id"):
        read_catalog({"train": pd.read_parquet(demo_data / "train.parquet")}, bad)


def test_random_draws_that_repeat_a_product_still_fill_the_budget() -> None:
    import numpy as np

    from shoprel.augment.candidates import _first_unlabeled

    rows = np.array([[3, 3, 3, 1, 2], [0, 0, 4, 4, 4]])
    ids = np.array(["p0", "p1", "p2", "p3", "p4"])
    kept = _first_unlabeled(rows, ["q1", "q2"], ids, labeled=set(), k=2)
    assert kept == [("q1", "p3"), ("q1", "p1"), ("q2", "p0"), ("q2", "p4")]
