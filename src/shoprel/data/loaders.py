"""Loaders: each turns one dataset's files into raw pair records on one grade scale.

A raw record has the canonical text columns, ``label_raw`` (as read), and ``_file``/``_line`` so
that a bad row can be named. Validation, soft targets and splitting happen in ``prepare``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from shoprel.data.readers import (
    FILE,
    LINE,
    MALFORMED,
    DataError,
    one_line,
    read_records,
    require_columns,
)
from shoprel.data.schema import SCALES, TEXT_FIELDS, GradeScale, get_scale

RAW_COLUMNS = ["query", "product_id", *TEXT_FIELDS, "label_raw", FILE, LINE, MALFORMED]
MAX_ATTRIBUTES_CHARS = 600


@dataclass
class LoaderOptions:
    """Options some loaders read; the others ignore them.

    Args:
        locale: ESCI ``product_locale`` to keep (``None`` keeps all).
        version: ESCI subset, ``small`` (the reduced task-1 set), ``large`` or ``all``.
        columns: ``table`` loader: canonical name -> column of the file.
        scale: ``table`` loader: name of the grade scale of its labels.
        encoding: text encoding of CSV/TSV files (UTF-8, falling back to latin-1, when unset).
        seed: ``demo`` loader: generator seed.
    """

    locale: str | None = "us"
    version: str = "small"
    columns: dict[str, str] = field(default_factory=dict)
    scale: str | None = None
    encoding: str | None = None
    seed: int = 0


@dataclass
class Loaded:
    records: pd.DataFrame
    scale: GradeScale
    rows_read: int
    filtered: dict[str, int] = field(default_factory=dict)


def _expand(inputs: list[Path]) -> list[Path]:
    """Directories stand for the data files inside them."""
    files: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir():
            files += sorted(
                p
                for p in path.iterdir()
                if p.suffix.lower() in {".csv", ".tsv", ".parquet", ".jsonl"}
            )
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or directory")
    return files


def _by_columns(
    files: list[Path], roles: dict[str, str], encoding: str | None
) -> dict[str, pd.DataFrame]:
    """Read each file and give it the first role whose marker column it has. Files of one role
    with the same columns (a train file in parts) are stacked, each row keeping its file and
    line; files of one role with other columns (train.csv beside an unlabeled test.csv) are
    refused, naming both."""
    found: dict[str, pd.DataFrame] = {}
    for path in files:
        frame = read_records(path, encoding=encoding)
        role = next((r for r, marker in roles.items() if marker in frame.columns), None)
        if role is None:
            raise DataError(
                f"{path}: not a recognised file; expected a column among {sorted(roles.values())}"
            )
        if role in found:
            first = found[role]
            if set(first.columns) != set(frame.columns):
                raise DataError(
                    f"{path}: a second file with a {roles[role]!r} column, beside "
                    f"{first[FILE].iat[0]}, with other columns; pass only the one to load"
                )
            frame = pd.concat([first, frame], ignore_index=True)
        found[role] = frame
    return found


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    for column in RAW_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame[RAW_COLUMNS].reset_index(drop=True)


def _join_text(parts: list[str], limit: int = MAX_ATTRIBUTES_CHARS) -> str:
    return "; ".join(parts)[:limit]


def load_homedepot(inputs: list[Path], options: LoaderOptions) -> Loaded:
    """Kaggle Home Depot: ``train.csv`` (+ ``product_descriptions.csv``, ``attributes.csv``)."""
    roles = {"pairs": "search_term", "descriptions": "product_description", "attributes": "name"}
    files = _by_columns(_expand(inputs), roles, options.encoding or "latin-1")
    if "pairs" not in files:
        raise DataError(
            "homedepot: no file with a 'search_term' column among the inputs (train.csv)"
        )
    pairs = files["pairs"]
    require_columns(
        pairs,
        pairs[FILE].iat[0] if len(pairs) else "train.csv",
        ["search_term", "product_uid", "product_title", "relevance"],
    )
    frame = pairs.rename(
        columns={
            "search_term": "query",
            "product_uid": "product_id",
            "product_title": "title",
            "relevance": "label_raw",
        }
    )
    if "descriptions" in files:
        desc = files["descriptions"].drop_duplicates("product_uid")
        frame["description"] = frame["product_id"].map(
            desc.set_index("product_uid")["product_description"]
        )
    if "attributes" in files:
        brand, attrs = _homedepot_attributes(files["attributes"])
        frame["brand"] = frame["product_id"].map(brand)
        frame["attributes"] = frame["product_id"].map(attrs)
    return Loaded(_finish(frame), SCALES["homedepot"], len(pairs))


def _homedepot_attributes(table: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    table = table.dropna(subset=["product_uid", "name"])
    brand = table[table["name"] == "MFG Brand Name"].drop_duplicates("product_uid")
    specs = table[~table["name"].str.startswith("Bullet") & (table["name"] != "MFG Brand Name")]
    attrs = specs.groupby("product_uid").apply(
        lambda g: _join_text([f"{n}: {v}" for n, v in zip(g["name"], g["value"], strict=True)]),
        include_groups=False,
    )
    return brand.set_index("product_uid")["value"], attrs


def load_esci(inputs: list[Path], options: LoaderOptions) -> Loaded:
    """Amazon ESCI: examples + products (Parquet or CSV), or one file with both merged."""
    files = _by_columns(
        _expand(inputs), {"examples": "esci_label", "products": "product_title"}, options.encoding
    )
    if "examples" not in files:
        raise DataError(
            "esci: no file with an 'esci_label' column (shopping_queries_dataset_examples)"
        )
    examples = files["examples"]
    path = examples[FILE].iat[0] if len(examples) else "examples"
    require_columns(examples, path, ["query", "product_id", "esci_label"])
    rows_read = len(examples)
    examples, filtered = _esci_filter(examples, path, options)
    if "product_title" not in examples.columns:
        if "products" not in files:
            raise DataError(
                "esci: the examples have no product fields; also give the products file"
            )
        examples = _esci_join(examples, files["products"])
    frame = examples.rename(
        columns={
            "product_title": "title",
            "product_brand": "brand",
            "product_description": "description",
            "esci_label": "label_raw",
        }
    )
    colors = frame.get("product_color", pd.Series([None] * len(frame), index=frame.index))
    bullets = frame.get("product_bullet_point", pd.Series([None] * len(frame), index=frame.index))
    frame["attributes"] = [
        _join_text([f"color: {c}"] * bool(c) + [b] * bool(b))
        for c, b in zip(colors.map(one_line), bullets.map(one_line), strict=True)
    ]
    return Loaded(_finish(frame), SCALES["esci"], rows_read, filtered)


def _esci_filter(
    examples: pd.DataFrame, path: str, options: LoaderOptions
) -> tuple[pd.DataFrame, dict[str, int]]:
    filtered: dict[str, int] = {}
    # a malformed row's fields are not to be trusted: it goes on to be rejected, not filtered
    malformed = (
        examples[MALFORMED].notna()
        if MALFORMED in examples.columns
        else pd.Series(False, index=examples.index)
    )
    if options.locale and "product_locale" in examples.columns:
        keep = (examples["product_locale"] == options.locale) | malformed
        filtered["locale"] = int((~keep).sum())
        examples, malformed = examples[keep], malformed[keep]
    if options.version != "all":
        column = f"{options.version}_version"
        require_columns(examples, path, [column])
        keep = examples[column].astype(str).isin(["1", "1.0", "True"]) | malformed
        filtered["version"] = int((~keep).sum())
        examples = examples[keep]
    return examples, filtered


def _esci_join(examples: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    keys = ["product_id"] + ["product_locale"] * (
        "product_locale" in products.columns and "product_locale" in examples.columns
    )
    fields = [c for c in products.columns if c.startswith("product_") and c not in keys]
    products = products.drop_duplicates(keys)[keys + fields]
    return examples.merge(products, on=keys, how="left")


def load_wands(inputs: list[Path], options: LoaderOptions) -> Loaded:
    """Wayfair WANDS: tab-separated ``query.csv``, ``product.csv`` and ``label.csv``."""
    files: dict[str, Path] = {}
    for path in _expand(inputs):
        if path.stem in files:
            raise DataError(f"wands: two {path.stem} files, {files[path.stem]} and {path}")
        files[path.stem] = path
    missing = [name for name in ("query", "product", "label") if name not in files]
    if missing:
        raise DataError(f"wands: missing {', '.join(f'{m}.csv' for m in missing)} among the inputs")
    read = {
        name: read_records(files[name], encoding=options.encoding, sep="\t")
        for name in ("query", "product", "label")
    }
    require_columns(read["label"], files["label"], ["query_id", "product_id", "label"])
    require_columns(read["query"], files["query"], ["query_id", "query"])
    require_columns(read["product"], files["product"], ["product_id", "product_name"])
    labels = read["label"].rename(columns={"label": "label_raw"})
    queries = read["query"].drop_duplicates("query_id").set_index("query_id")["query"]
    products = read["product"].drop_duplicates("product_id").set_index("product_id")
    labels["query"] = labels["query_id"].map(queries)
    labels["title"] = labels["product_id"].map(products["product_name"])
    for target, column in (
        ("category", "category hierarchy"),
        ("description", "product_description"),
    ):
        if column in products.columns:
            labels[target] = labels["product_id"].map(products[column])
    if "product_features" in products.columns:
        features = (
            products["product_features"]
            .fillna("")
            .map(
                lambda text: _join_text(
                    [part.replace(":", ": ", 1) for part in text.split("|") if part]
                )
            )
        )
        labels["attributes"] = labels["product_id"].map(features)
    return Loaded(_finish(labels), SCALES["wands"], len(read["label"]))


def load_table(inputs: list[Path], options: LoaderOptions) -> Loaded:
    """Any CSV/TSV/JSONL/Parquet with ``options.columns`` mapping canonical names to its columns."""
    if options.scale is None:
        raise DataError(
            f"table: give the grade scale of the labels (--scale, one of {sorted(SCALES)})"
        )
    scale = get_scale(options.scale)
    mapping = {"query": "query", "title": "title", "label": "label", **options.columns}
    unknown = set(mapping) - {"query", "product_id", "label", *TEXT_FIELDS}
    if unknown:
        raise DataError(
            f"table: unknown canonical column(s) {sorted(unknown)} in the column mapping"
        )
    shared = sorted({src for src in mapping.values() if list(mapping.values()).count(src) > 1})
    if shared:
        raise DataError(f"table: column(s) {shared} mapped to more than one canonical column")
    frames = []
    for path in _expand(inputs):
        frame = read_records(path, encoding=options.encoding)
        require_columns(frame, path, list(mapping.values()))
        # a file column named as a canonical one it is not mapped to would stand beside it
        frame = frame.drop(columns=[c for c in mapping if c in frame and mapping[c] != c])
        frame = frame.rename(columns={src: dst for dst, src in mapping.items()})
        frames.append(frame.rename(columns={"label": "label_raw"}))
    if not frames:
        raise DataError("table: no input files")
    frame = pd.concat(frames, ignore_index=True)
    if "product_id" not in mapping:
        frame["product_id"] = [_title_id(t) for t in frame["title"]]
    return Loaded(_finish(frame), scale, len(frame))


def _title_id(title: object) -> str | None:
    return "t" + hashlib.sha1(str(title).encode()).hexdigest()[:12] if title else None


def load_demo(inputs: list[Path], options: LoaderOptions) -> Loaded:
    """The embedded demo shop (``shoprel.data.demo``); takes no input files."""
    from shoprel.data.demo import generate_demo

    frame = generate_demo(seed=options.seed).pairs().rename(columns={"grade": "label_raw"})
    frame[FILE] = "demo"
    frame[LINE] = range(1, len(frame) + 1)
    return Loaded(_finish(frame), SCALES["esci"], len(frame))


LOADERS: dict[str, Callable[[list[Path], LoaderOptions], Loaded]] = {
    "homedepot": load_homedepot,
    "esci": load_esci,
    "wands": load_wands,
    "table": load_table,
    "demo": load_demo,
}


def load(source: str, inputs: list[Path], options: LoaderOptions | None = None) -> Loaded:
    if source not in LOADERS:
        raise DataError(f"unknown source {source!r}; expected one of {sorted(LOADERS)}")
    if source != "demo" and not inputs:
        raise DataError(f"{source}: give at least one --input file or directory")
    return LOADERS[source](list(inputs), options or LoaderOptions())
