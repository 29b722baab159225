"""Synthetic queries written from products: a product type, then a modifier or two.

The product type is the category's last level where the data has one, else the head of the title
(its main clause, without codes and sizes, last two words). Modifiers come from the product's
brand, a colour word and a number with a unit found in the title. Each product yields one query
from a template whose slots it can fill, chosen with a seeded generator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

_CLAUSE_END = re.compile(r"\s(?:with|for|in|by|from|and)\s|[,(\-–|]\s|\s[-–|]\s")
_CODE = re.compile(r"#\S+|\b\d[\w./-]*\b")
_SIZE = re.compile(
    r"\b(\d+(?:[./]\d+)?)[\s-]?(in|inch|ft|gal|oz|lb|mm|cm|v|volt|watt|w|amp|qt|pk|pack|piece)\b\.?",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'&]+")
_COLOUR_WORDS = (
    "black white gray grey silver red blue green yellow brown beige bronze brass chrome nickel "
    "copper gold ivory almond natural oak walnut cherry espresso pink purple orange tan"
)
COLOURS = frozenset(_COLOUR_WORDS.split())
TEMPLATES: tuple[str, ...] = (
    "{type}",
    "{brand} {type}",
    "{colour} {type}",
    "{size} {type}",
    "{type} {size}",
    "{brand} {colour} {type}",
)


@dataclass(frozen=True)
class ProductFacets:
    type: str
    brand: str
    colour: str
    size: str


def product_type(title: str, category: str = "") -> str:
    if category:
        return category.split(">")[-1].split("/")[-1].strip().lower()
    clause = _CLAUSE_END.split(f"{title} ", maxsplit=1)[0]
    words = _WORD.findall(_CODE.sub(" ", clause))
    return " ".join(words[-2:]).lower()


def facets(title: str, brand: str = "", category: str = "") -> ProductFacets:
    lowered = title.lower()
    colour = next((w for w in re.findall(r"[a-z]+", lowered) if w in COLOURS), "")
    size = _SIZE.search(title)
    return ProductFacets(
        type=product_type(title, category),
        brand=brand.strip().lower(),
        colour=colour,
        size=f"{size.group(1)} {size.group(2).lower()}" if size else "",
    )


def template_query(product: ProductFacets, rng: np.random.Generator) -> str | None:
    """One query for the product from a template it can fill, or ``None`` without a type."""
    if not product.type:
        return None
    values = {"type": product.type, "brand": product.brand, "colour": product.colour}
    values["size"] = product.size
    usable = [t for t in TEMPLATES if all(values[s] for s in re.findall(r"{(\w+)}", t))]
    query = usable[rng.integers(len(usable))].format(**values)
    return " ".join(query.split())


def template_queries(products: pd.DataFrame, count: int, seed: int) -> pd.DataFrame:
    """``query, product_id`` for ``count`` sampled products (fewer if types are missing)."""
    rng = np.random.default_rng(seed)
    sample = products.sample(n=min(count, len(products)), random_state=seed)
    rows = []
    for product in sample.itertuples(index=False):
        shape = facets(product.title, product.brand or "", product.category or "")
        query = template_query(shape, rng)
        if query:
            rows.append({"query": query, "product_id": product.product_id})
    return pd.DataFrame(rows, columns=["query", "product_id"])
