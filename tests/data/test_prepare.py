"""The data layer on small files written in each dataset's real format, good and broken."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shoprel.data.loaders import LoaderOptions
from shoprel.data.prepare import PrepareConfig, prepare, split_by_query
from shoprel.data.readers import DataError
from shoprel.data.schema import PAIR_COLUMNS, SCALES

HOMEDEPOT_TRAIN = """\
"id","product_uid","product_title","search_term","relevance"
2,100001,"Simpson Strong-Tie 12-Gauge Angle","angle bracket",3
3,100001,"Simpson Strong-Tie 12-Gauge Angle","l bracket",2.5
9,100002,"BEHR Premium Textured DeckOver 1-gal.","deck over",2.33
16,100005,"Delta Vero 1-Handle Shower Faucet","rain shower head",2.67
17,100005,"Delta Vero 1-Handle Shower Faucet","shower only faucet",1
"""


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def run(tmp_path: Path, source: str, inputs: list[Path], **kwargs) -> dict:
    cfg = PrepareConfig(source=source, inputs=inputs, **kwargs)
    return prepare(cfg, tmp_path / "out")


def read_out(tmp_path: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in sorted((tmp_path / "out").glob("*.parquet"))]
    return pd.concat(frames, ignore_index=True)


def rejects(tmp_path: Path) -> list[dict]:
    lines = (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_homedepot_soft_targets_and_joins(tmp_path: Path) -> None:
    train = write(
        tmp_path / "train.csv",
        HOMEDEPOT_TRAIN + '18,100006,"Café Table","table",3\n',
        encoding="latin-1",
    )
    desc = write(
        tmp_path / "product_descriptions.csv",
        '"product_uid","product_description"\n100001,"Angle made from steel"\n',
    )
    attrs = write(
        tmp_path / "attributes.csv",
        '"product_uid","name","value"\n'
        '100001,"MFG Brand Name","Simpson Strong-Tie"\n100001,"Material","Steel"\n'
        '100001,"Bullet01","Not an attribute"\n',
    )
    card = run(tmp_path, "homedepot", [train, desc, attrs])
    pairs = read_out(tmp_path).set_index("query")
    assert list(read_out(tmp_path).columns) == PAIR_COLUMNS
    assert card["rows_read"] == card["rows_written"] == 6
    assert pairs.loc["deck over", "target"].tolist() == pytest.approx([0, 0.67, 0.33])
    assert pairs.loc["shower only faucet", "target"].tolist() == [1, 0, 0]
    assert pairs.loc["angle bracket", "brand"] == "Simpson Strong-Tie"
    assert pairs.loc["angle bracket", "attributes"] == "Material: Steel"
    assert pairs.loc["angle bracket", "description"] == "Angle made from steel"
    assert pairs.loc["table", "title"] == "Café Table"  # latin-1 decoded


def test_a_file_in_parts_is_read_whole_and_an_unlabeled_one_is_refused(tmp_path: Path) -> None:
    lines = HOMEDEPOT_TRAIN.splitlines(keepends=True)
    first = write(tmp_path / "train-1.csv", "".join(lines[:3]))
    second = write(tmp_path / "train-2.csv", lines[0] + "".join(lines[3:]) + "21,100009,,x,2\n")
    card = run(tmp_path, "homedepot", [first, second])
    assert card["rows_read"] == 6 and card["rows_written"] == 5
    assert [(r["file"], r["line"]) for r in rejects(tmp_path)] == [(str(second), 5)]
    test = write(tmp_path / "test.csv", '"id","product_uid","product_title","search_term"\n')
    with pytest.raises(DataError, match=r"test.csv: a second file with a 'search_term' column"):
        run(tmp_path, "homedepot", [first, test])


def test_soft_target_smoothing_and_one_hot() -> None:
    scale = SCALES["homedepot"]
    assert scale.soft_target(2.33) == pytest.approx([0, 0.67, 0.33])
    assert scale.soft_target(3.0) == [0, 0, 1]
    assert scale.soft_target(1.0, smoothing=0.3) == pytest.approx([0.8, 0.1, 0.1])
    assert sum(scale.soft_target(1.5, smoothing=0.1)) == pytest.approx(1)


BROKEN = """\
"id","product_uid","product_title","search_term","relevance"
1,100001,"Angle","angle bracket",3
2,100002,"","deck over",2
3,100003,"Faucet","",2
4,100004,"Hose","garden hose",abc
5,100005,"Mower","lawn mower",4
6,100006,"Drill","drill",3
7,100006,"Drill","Drill ",1
8,100007,"Saw","saw",2
9,100007,"Saw","saw",2
10,100008,"Rake","rake"
11,100009,"Broom
with a newline","broom",2.5
12,100010,"Mop","mop",
"""


def test_broken_rows_are_rejected_with_file_line_and_reason(tmp_path: Path) -> None:
    path = write(tmp_path / "train.csv", BROKEN)
    card = run(tmp_path, "homedepot", [path])
    got = {(r["line"], r["reason"]) for r in rejects(tmp_path)}
    assert got == {
        (3, "empty_title"),
        (4, "empty_query"),
        (5, "bad_label"),
        (6, "bad_label"),
        (7, "conflicting_labels"),
        (8, "conflicting_labels"),
        (10, "duplicate_pair"),
        (11, "malformed_row"),
        (14, "bad_label"),
    }
    assert all(r["file"] == str(path) for r in rejects(tmp_path))
    assert card["rows_read"] == 12
    assert card["rows_read"] == card["rows_written"] + card["rows_rejected"]
    assert card["rows_written"] == len(read_out(tmp_path)) == 3
    assert card["rejects_by_reason"]["bad_label"] == 3
    assert set(read_out(tmp_path)["query"]) == {"angle bracket", "saw", "broom"}


def test_strict_turns_a_reject_into_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "train.csv", BROKEN)
    with pytest.raises(DataError, match=r"--strict: 9 row\(s\) rejected.*train.csv:3 empty_title"):
        run(tmp_path, "homedepot", [path], strict=True)
    assert not (tmp_path / "out" / "train.parquet").exists()


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "train.csv", '"id","product_uid","product_title","search_term"\n1,2,"a","b"\n'
    )
    with pytest.raises(DataError, match=r"train.csv: missing column 'relevance'"):
        run(tmp_path, "homedepot", [path])


def test_split_is_by_query_and_deterministic(tmp_path: Path) -> None:
    card = run(tmp_path, "demo", [], seed=3)
    splits = {
        s: pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in ("train", "dev", "test")
    }
    queries = [set(f["query_id"]) for f in splits.values()]
    assert not (queries[0] & queries[1] or queries[0] & queries[2] or queries[1] & queries[2])
    assert card["splits"]["dev"]["queries"] > 0 and card["splits"]["test"]["queries"] > 0
    pairs = pd.concat(splits.values())
    again = split_by_query(pairs, 3, (0.8, 0.1, 0.1))
    assert all(set(again[s]["pair_id"]) == set(splits[s]["pair_id"]) for s in splits)
    other = split_by_query(pairs, 4, (0.8, 0.1, 0.1))
    assert set(other["test"]["query_id"]) != set(splits["test"]["query_id"])
    # a query's split does not depend on which other queries are in the data
    half = pairs[pairs["query_id"].isin(sorted(set(pairs["query_id"]))[::2])]
    assert set(split_by_query(half, 3, (0.8, 0.1, 0.1))["test"]["query_id"]) <= queries[2]


def test_test_only_writes_one_split(tmp_path: Path) -> None:
    path = write(tmp_path / "train.csv", HOMEDEPOT_TRAIN)
    card = run(tmp_path, "homedepot", [path], test_only=True)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == ["test.parquet"]
    assert card["splits"]["test"]["pairs"] == 5
    run(tmp_path, "homedepot", [path])  # all three splits, then test only again into the same dir
    run(tmp_path, "homedepot", [path], test_only=True)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == ["test.parquet"]


def test_input_with_no_pairs_is_refused(tmp_path: Path) -> None:
    header = write(tmp_path / "header.csv", HOMEDEPOT_TRAIN.splitlines()[0] + "\n")
    with pytest.raises(DataError, match=r"header\.csv: no pairs to prepare: the input has no rows"):
        run(tmp_path, "homedepot", [header])
    bad = write(tmp_path / "bad.csv", HOMEDEPOT_TRAIN.splitlines()[0] + '\n2,1,"t","q",9\n')
    with pytest.raises(
        DataError, match=r"no pairs to prepare: all 1 rejected, e\.g\. .*bad\.csv:2"
    ):
        run(tmp_path, "homedepot", [bad])
    assert not (tmp_path / "out" / "card.json").exists()


def test_esci_parquet_examples_and_products(tmp_path: Path) -> None:
    examples = pd.DataFrame(
        {
            "example_id": [1, 2, 3, 4, 5],
            "query": ["usb cable", "usb cable", "usb cable", "tv stand", "zapatos"],
            "query_id": [1, 1, 1, 2, 3],
            "product_id": ["B1", "B2", "B3", "B1", "B9"],
            "product_locale": ["us", "us", "us", "us", "es"],
            "esci_label": ["E", "S", "X", "I", "E"],
            "small_version": [1, 1, 1, 0, 1],
            "large_version": [1, 1, 1, 1, 1],
            "split": ["train"] * 5,
        }
    )
    products = pd.DataFrame(
        {
            "product_id": ["B1", "B2", "B3", "B9"],
            "product_locale": ["us", "us", "us", "es"],
            "product_title": ["Anker USB-C cable", "USB-A cable", "HDMI cable", "Zapatos"],
            "product_description": [None, "A cable", None, None],
            "product_bullet_point": ["6 ft", None, None, None],
            "product_brand": ["Anker", None, "Amazon Basics", None],
            "product_color": ["black", None, None, None],
        }
    )
    examples.to_parquet(tmp_path / "shopping_queries_dataset_examples.parquet")
    products.to_parquet(tmp_path / "shopping_queries_dataset_products.parquet")
    card = run(tmp_path, "esci", [tmp_path])
    assert card["rows_read"] == 5
    assert card["rows_filtered"] == {"locale": 1, "version": 1}
    assert card["rows_read"] == card["rows_written"] + card["rows_rejected"] + 2
    assert [r["reason"] for r in rejects(tmp_path)] == ["bad_label"]
    pairs = read_out(tmp_path).set_index("product_id")
    assert pairs.loc["B1", "label"] == 3 and pairs.loc["B2", "label"] == 2
    assert pairs.loc["B1", "brand"] == "Anker"
    assert pairs.loc["B1", "attributes"] == "color: black; 6 ft"


def test_esci_rows_cut_short_are_rejected_with_their_line_not_filtered(tmp_path: Path) -> None:
    header = "example_id,query,query_id,product_id,product_locale,esci_label,small_version"
    product = "product_id,product_locale,product_title\nB1,us,USB cable\nB2,us,HDMI cable\n"
    write(tmp_path / "products.csv", product)
    examples = f"{header}\n1,usb cable,1,B1,us,E,1\n2,usb cable,1,B2\n3,hdmi, cable,1,B2,us,E,1\n"
    write(tmp_path / "examples.csv", examples)
    card = run(tmp_path, "esci", [tmp_path])
    assert card["rows_filtered"] == {"locale": 0, "version": 0}
    assert sorted(r["line"] for r in rejects(tmp_path)) == [3, 4] and card["rows_rejected"] == 2


def test_esci_merged_sample_file() -> None:
    path = Path(__file__).parents[2] / "../shared/data/esci_sample200_underspec/esci.csv"
    if not path.is_file():
        pytest.skip(f"ESCI sample not found at {path.resolve()}")
    from shoprel.data.loaders import load

    loaded = load("esci", [path], LoaderOptions(version="all"))
    assert loaded.rows_read == 200 and loaded.records["title"].notna().all()


def test_wands_tab_separated(tmp_path: Path) -> None:
    write(
        tmp_path / "query.csv",
        "query_id\tquery\tquery_class\n0\tsalon chair\tMassage Chairs\n"
        "1\tsmart coffee table\tCoffee Tables\n",
    )
    write(
        tmp_path / "product.csv",
        "product_id\tproduct_name\tproduct_class\tcategory hierarchy\t"
        "product_description\tproduct_features\n"
        "10\tsalon massage chair\tMassage Chairs\tFurniture / Chairs\tnice\t"
        "color:black|material:leather\n"
        "11\tcoffee table\tCoffee Tables\tFurniture / Tables\t\t\n",
    )
    write(
        tmp_path / "label.csv",
        "id\tquery_id\tproduct_id\tlabel\n0\t0\t10\tExact\n1\t0\t11\tIrrelevant\n"
        "2\t1\t11\tPartial\n3\t1\t10\tMaybe\n4\t1\t99\tExact\n",
    )
    card = run(tmp_path, "wands", [tmp_path])
    assert card["scale"] == "wands" and card["rows_read"] == 5
    assert {(r["line"], r["reason"]) for r in rejects(tmp_path)} == {
        (5, "bad_label"),
        (6, "empty_title"),
    }
    pairs = read_out(tmp_path).set_index(["query", "product_id"])
    assert pairs.loc[("salon chair", "10"), "label"] == 2.0
    assert pairs.loc[("salon chair", "10"), "attributes"] == "color: black; material: leather"
    assert pairs.loc[("smart coffee table", "11"), "category"] == "Furniture / Tables"


def test_table_with_column_mapping(tmp_path: Path) -> None:
    rows = [
        {"q": "red drill", "name": "Red drill", "grade": 1, "sku": "A"},
        {"q": "red drill", "name": "Blue saw", "grade": 0, "sku": "B"},
        {"q": "", "name": "Blue saw", "grade": 0, "sku": "B"},
    ]
    path = tmp_path / "judgments.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n[1, 2]\n" + '{"q": "torn')
    columns = {"query": "q", "title": "name", "label": "grade", "product_id": "sku"}
    card = run(tmp_path, "table", [path], loader=LoaderOptions(columns=columns, scale="binary"))
    assert card["rows_written"] == 2
    assert [(r["line"], r["reason"], r["detail"]) for r in rejects(tmp_path)] == [
        (3, "empty_query", "query is empty"),
        (5, "malformed_row", "expected a JSON object, got list"),
        (6, "malformed_row", "not valid JSON (Unterminated string starting at)"),
    ]
    with pytest.raises(DataError, match="grade scale"):
        run(tmp_path, "table", [path], loader=LoaderOptions(columns=columns))
    with pytest.raises(DataError, match=r"judgments.jsonl: missing column 'nope'"):
        run(
            tmp_path,
            "table",
            [path],
            loader=LoaderOptions(columns={**columns, "brand": "nope"}, scale="binary"),
        )


def test_a_mapped_column_may_take_the_name_of_a_file_column(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "query,title,name,label\ndrill,old title,Cordless drill,1\n")
    columns = {"title": "name"}  # the file's own "title" column is not the title
    run(tmp_path, "table", [path], loader=LoaderOptions(columns=columns, scale="binary"))
    assert read_out(tmp_path)["title"].tolist() == ["Cordless drill"]
    with pytest.raises(DataError, match=r"column\(s\) \['name'\] mapped to more than one"):
        both = LoaderOptions(columns={"title": "name", "brand": "name"}, scale="binary")
        run(tmp_path, "table", [path], loader=both)


def test_outputs_are_replaced_whole(tmp_path: Path) -> None:
    run(tmp_path, "demo", [])
    assert not list((tmp_path / "out").glob(".*.tmp"))
    card = json.loads((tmp_path / "out" / "card.json").read_text())
    assert card["pairs"] == sum(s["pairs"] for s in card["splits"].values())


def test_a_byte_order_mark_is_dropped_and_bad_encodings_are_named(tmp_path: Path) -> None:
    from shoprel.data.readers import read_records

    csv_file, jsonl_file = tmp_path / "pairs.csv", tmp_path / "pairs.jsonl"
    csv_file.write_bytes(b'\xef\xbb\xbf"query","title"\ndrill,cordless drill\n')
    assert list(read_records(csv_file).columns[:2]) == ["query", "title"]
    jsonl_file.write_bytes(b'\xef\xbb\xbf{"query": "drill", "title": "cordless drill"}\n')
    first = read_records(jsonl_file).iloc[0]
    assert (first["query"], first["_malformed"]) == ("drill", None)
    with pytest.raises(DataError, match=r"pairs\.csv: unknown encoding 'utf8x'"):
        read_records(csv_file, encoding="utf8x")
    wide = tmp_path / "wide.jsonl"
    wide.write_text('{"query": "drill"}\n{"query": "bohrer"}\n', encoding="utf-16")
    assert read_records(wide, encoding="utf-16")["query"].tolist() == ["drill", "bohrer"]
    jsonl_file.write_bytes(b'{"query": "drill"}\n{"query": "\xff"}\n')
    with pytest.raises(DataError, match=r"pairs\.jsonl:2: cannot decode as utf-8-sig"):
        read_records(jsonl_file)


def test_cli_names_an_unknown_model_alias_without_a_traceback() -> None:
    import subprocess
    import sys

    shoprel = str(Path(sys.executable).with_name("shoprel"))
    done = subprocess.run(
        [shoprel, "models", "fetch", "no-such-model"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "unknown model alias 'no-such-model'" in done.stderr
    assert "Traceback" not in done.stderr
