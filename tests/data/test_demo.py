"""The demo shop: sizes, determinism, grade mix, and that every grade follows the written rules."""

from __future__ import annotations

import pandas as pd
import pytest

from shoprel.data.demo import (
    COMPLEMENTS,
    GRADES,
    SUBSTITUTES,
    TYPES,
    DemoCatalog,
    QuerySpec,
    generate_demo,
    judge,
)
from shoprel.data.schema import SCALES


@pytest.fixture(scope="module")
def demo() -> DemoCatalog:
    return generate_demo(seed=0)


def _product(ptype: str, brand: str, attributes: str) -> dict[str, str]:
    return {"product_type": ptype, "brand": brand, "attributes": attributes}


DRILL_QUERY = QuerySpec(
    text="dewalt 20v cordless drill 1/2 in",
    product_type="cordless drill",
    modifiers={"brand": "DEWALT", "voltage": "20V", "chuck size": "1/2 in."},
)


def test_sizes(demo: DemoCatalog) -> None:
    assert len(demo.products) >= 2000
    assert demo.products["product_type"].nunique() >= 30
    assert demo.products["product_id"].is_unique
    assert len(demo.queries) >= 300
    assert demo.judgments["query"].nunique() == len(demo.queries)
    assert 4000 <= len(demo.judgments) <= 5000
    per_query = demo.judgments.groupby("query").size()
    assert per_query.between(10, 16).all()


def test_columns(demo: DemoCatalog) -> None:
    assert list(demo.products.columns) == [
        "product_id", "title", "brand", "category", "attributes", "description", "product_type",
    ]  # fmt: skip
    assert list(demo.judgments.columns) == ["query", "product_id", "grade"]
    pairs = demo.pairs()
    assert list(pairs.columns) == [
        "query", "product_id", "title", "brand", "category", "attributes", "description", "grade",
    ]  # fmt: skip
    assert len(pairs) == len(demo.judgments)
    assert not pairs.isna().any().any()


def test_broad_and_specific_queries(demo: DemoCatalog) -> None:
    texts = [q.text for q in demo.queries]
    assert any(len(t.split()) == 1 for t in texts)  # "drill", "hose", ...
    assert sum(len(q.modifiers) == 0 for q in demo.queries) >= 20
    assert sum(len(q.modifiers) == 3 for q in demo.queries) >= 20
    assert any(len(q.modifiers) == 3 and "brand" in q.modifiers for q in demo.queries)
    assert len(set(texts)) == len(texts)


def test_grades_are_esci_and_balanced(demo: DemoCatalog) -> None:
    grades = demo.judgments["grade"]
    assert set(grades) == set(SCALES["esci"].grades) == set(GRADES)
    shares = grades.value_counts(normalize=True)
    assert (shares >= 0.10).all(), shares.to_dict()


def test_no_duplicate_pairs(demo: DemoCatalog) -> None:
    assert not demo.judgments.duplicated(["query", "product_id"]).any()
    assert demo.judgments["product_id"].isin(demo.products["product_id"]).all()


def test_same_seed_same_output(demo: DemoCatalog) -> None:
    again = generate_demo(seed=0)
    pd.testing.assert_frame_equal(demo.products, again.products)
    pd.testing.assert_frame_equal(demo.judgments, again.judgments)
    assert demo.queries == again.queries


def test_other_seed_differs(demo: DemoCatalog) -> None:
    other = generate_demo(seed=1)
    assert not demo.products.equals(other.products)
    assert not demo.judgments.equals(other.judgments)


def test_relation_tables_are_consistent() -> None:
    for table in (SUBSTITUTES, COMPLEMENTS):
        for qtype, related in table.items():
            assert qtype in TYPES and qtype not in related
            assert all(t in TYPES for t in related), (qtype, related)
    for qtype in TYPES:  # a type is never both a substitute and a complement of one query type
        assert not set(SUBSTITUTES.get(qtype, ())) & set(COMPLEMENTS.get(qtype, ()))


def test_judge_all_modifiers_match_is_exact() -> None:
    product = _product(
        "cordless drill", "DEWALT", "voltage: 20V; chuck size: 1/2 in.; kit: Tool Only"
    )
    assert judge(DRILL_QUERY, product) == "exact"


def test_judge_broad_query_same_type_is_exact() -> None:
    broad = QuerySpec(text="power drill", product_type="cordless drill")
    product = _product(
        "cordless drill", "RYOBI", "voltage: 18V; chuck size: 3/8 in.; kit: Tool Only"
    )
    assert judge(broad, product) == "exact"


def test_judge_brand_conflict_is_substitute() -> None:
    product = _product(
        "cordless drill", "Makita", "voltage: 20V; chuck size: 1/2 in.; kit: Tool Only"
    )
    assert judge(DRILL_QUERY, product) == "substitute"


def test_judge_spec_conflict_is_substitute() -> None:
    product = _product(
        "cordless drill", "DEWALT", "voltage: 12V; chuck size: 1/2 in.; kit: Tool Only"
    )
    assert judge(DRILL_QUERY, product) == "substitute"


def test_judge_substitute_type_is_substitute() -> None:
    product = _product("impact driver", "DEWALT", "voltage: 20V; kit: Tool Only; motor: Brushless")
    assert judge(DRILL_QUERY, product) == "substitute"


def test_judge_complement_type_is_complement() -> None:
    bits = _product("drill bit set", "DEWALT", "material: Titanium; pieces: 21-Piece")
    battery = _product("battery pack", "Bosch", "voltage: 18V; capacity: 4.0Ah")
    assert judge(DRILL_QUERY, bits) == "complement"
    assert judge(DRILL_QUERY, battery) == "complement"


def test_judge_unrelated_is_irrelevant() -> None:
    rug = _product("area rug", "nuLOOM", "color: Gray; size: 5 ft. x 7 ft.; pattern: Solid")
    same_brand = _product("tool box", "DEWALT", "size: 20 in.; material: Plastic; color: Black")
    assert judge(DRILL_QUERY, rug) == "irrelevant"
    assert judge(DRILL_QUERY, same_brand) == "irrelevant"


def test_stored_grades_follow_the_rules(demo: DemoCatalog) -> None:
    specs = {q.text: q for q in demo.queries}
    products = demo.products.set_index("product_id")
    sample = demo.judgments.sample(n=800, random_state=0)
    for query, product_id, grade in sample.itertuples(index=False):
        row = products.loc[product_id]
        product = _product(row["product_type"], row["brand"], row["attributes"])
        assert judge(specs[query], product) == grade, (query, product_id)


def test_every_query_has_an_exact_item(demo: DemoCatalog) -> None:
    exact_queries = set(demo.judgments.loc[demo.judgments["grade"] == "exact", "query"])
    assert exact_queries == {q.text for q in demo.queries}


def test_modifiers_match_the_products_fields(demo: DemoCatalog) -> None:
    """Rules see only public fields: each modifier names the brand or an attribute of the type."""
    for spec in demo.queries:
        dims = {"brand", *TYPES[spec.product_type].attrs}
        assert set(spec.modifiers) <= dims
        assert len(spec.modifiers) <= 3


def test_titles_show_brand_and_every_attribute(demo: DemoCatalog) -> None:
    for row in demo.products.sample(n=300, random_state=0).itertuples(index=False):
        assert row.title.startswith(row.brand)
        for part in row.attributes.split("; "):
            assert part.split(": ", 1)[1] in row.title, (row.title, part)
