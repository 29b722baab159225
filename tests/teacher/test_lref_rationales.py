"""Rationale generators: EE, RA and DR texts, the rules file, DR's wrong grades."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprel.data.schema import SCALES, GradeScale
from shoprel.teacher.lref.cot_prompts import requests_for
from shoprel.teacher.lref.rationales import (
    RationaleRequest,
    RulesGenerator,
    wrong_grade,
)
from shoprel.teacher.lref.rules import SHIPPED_RULES, RelevanceRules, RulesError
from shoprel.teacher.lref.signals import extract, sizes

HD, ESCI = SCALES["homedepot"], SCALES["esci"]
BRANDS = ["DEWALT", "Makita", "Husky"]
HEADS = {"drill", "box", "bit"}
DRILL = {
    "title": "DEWALT 20V MAX Cordless 1/2 in. Drill/Driver in Yellow",
    "brand": "DEWALT",
    "category": "Tools > Power Tools > Drills",
}
CASES = {  # query, item -> the rules' level
    "type mismatch": (
        "cordless drill",
        {"title": "Husky 20 in. Plastic Tool Box", "category": "Tools > Tool Storage > Tool Boxes"},
        "irrelevant",
    ),
    "brand conflict": ("makita cordless drill", DRILL, "partial"),
    "size conflict": ("12v drill", DRILL, "partial"),
    "colour conflict": ("dewalt drill black", DRILL, "partial"),
    "attribute not stated": ("brushless drill", DRILL, "partial"),
    "accessory": (
        "drill",
        {
            "title": "Makita Drill Bit Set (21-Piece)",
            "category": "Tools > Accessories > Drill Bits",
        },
        "related",
    ),
    "everything matches": ("dewalt 20v cordless drill", DRILL, "exact"),
}
LEVEL_TO = {
    "homedepot": {
        "irrelevant": "irrelevant",
        "partial": "partial",
        "related": "partial",
        "exact": "exact",
    },
    "esci": {
        "irrelevant": "irrelevant",
        "partial": "substitute",
        "related": "complement",
        "exact": "exact",
    },
}


def generator(scale=HD, rules: RelevanceRules | None = None) -> RulesGenerator:
    return RulesGenerator(rules or RelevanceRules.load(), scale, BRANDS, HEADS)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("scale", [HD, ESCI], ids=["homedepot", "esci"])
def test_ra_grade_follows_the_rules(case: str, scale) -> None:
    query, item, level = CASES[case]
    rationale = generator(scale).one(RationaleRequest("ra", query, item, grade="exact"))
    assert rationale.grade == LEVEL_TO[scale.name][level]
    assert rationale.text.endswith(f"\nLabel: {rationale.grade}")


def test_signals_of_hand_built_pairs() -> None:
    signals = extract("makita 12v cordless drill black", DRILL, BRANDS, HEADS)
    assert (signals.type, signals.brand, signals.size, signals.colour) == (
        "match",
        "conflict",
        "conflict",
        "conflict",
    )
    assert signals.conflicts == ("brand", "colour", "size")
    assert sizes("6-1/2 in. blade, 2.0Ah 20V MAX, 16 oz.") == {
        ("6-1/2", "in"),
        ("2", "ah"),
        ("20", "v"),
        ("16", "oz"),
    }


def test_a_brand_named_in_the_query_leaves_the_words_that_contain_it_whole() -> None:
    range_ = {"title": "GE 30 in. Electric Range", "brand": "GE", "category": "Appliances > Ranges"}
    signals = extract("ge electric range", range_, ["GE"], {"range"})
    assert (signals.query_type, signals.type, signals.brand) == ("electric range", "match", "match")


def test_the_three_formats_end_with_their_label() -> None:
    query, item, _ = CASES["brand conflict"]
    gen = generator()
    texts = {
        "ee": gen.one(RationaleRequest("ee", query, item, grade="partial")),
        "ra": gen.one(RationaleRequest("ra", query, item, grade="partial")),
        "dr": gen.one(RationaleRequest("dr", query, item, grade="partial", wrong="exact")),
    }
    for kind, rationale in texts.items():
        assert rationale.kind == kind
        assert re.search(r"\S\nLabel: (irrelevant|partial|exact)$", rationale.text), rationale.text
        assert rationale.text.endswith("Label: partial")
    assert "brand makita" in texts["ee"].reasoning and "dewalt" in texts["ee"].reasoning
    assert "modifier conflict" in texts["ra"].reasoning
    assert texts["dr"].reasoning.startswith("'exact' is wrong: it overrates the pair.")
    under = gen.one(RationaleRequest("dr", *CASES["everything matches"][:2], "exact", "partial"))
    assert "underrates" in under.reasoning and under.text.endswith("Label: exact")


def test_dr_wrong_grade_is_never_the_true_one(demo_data: Path) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4) * 0.3, size=500)
    true = rng.integers(0, 4, size=500)
    probs[:100, :] = 0.0
    probs[np.arange(100), true[:100]] = 1.0  # the judge is sure of the true grade
    wrong = np.array([wrong_grade(p, t) for p, t in zip(probs, true, strict=True)])
    assert (wrong != true).all()
    top_wrong = probs.argmax(1) != true
    assert (wrong[top_wrong] == probs.argmax(1)[top_wrong]).all()  # its own mistake when it errs
    pairs = pd.read_parquet(demo_data / "train.parquet").head(200)
    grades = ESCI.nearest_grade(pairs["label"].to_numpy(float))
    wrong = np.array([wrong_grade(p, t) for p, t in zip(probs[:200], grades, strict=True)])
    requests = requests_for("dr", pairs, ESCI, wrong)
    assert all(r.wrong and r.wrong != r.grade for r in requests)
    with pytest.raises(ValueError, match="DR needs a wrong grade"):
        RationaleRequest("dr", "drill", DRILL, grade="exact", wrong="exact")


def test_an_edited_rules_file_changes_ra(tmp_path: Path) -> None:
    text = SHIPPED_RULES.read_text().replace(
        "  - name: modifier conflict\n    when: {conflicts: some}\n    grade: partial",
        "  - name: modifier conflict\n    when: {conflicts: some}\n    grade: irrelevant",
    )
    assert text != SHIPPED_RULES.read_text()
    (tmp_path / "rules.yaml").write_text(text)
    rules = RelevanceRules.load(tmp_path / "rules.yaml")
    query, item, _ = CASES["brand conflict"]
    assert generator(rules=rules).one(RationaleRequest("ra", query, item, "exact")).grade == (
        "irrelevant"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("rules:\n  - {name: a, when: {typ: match}, grade: exact}\n", "unknown signal 'typ'"),
        ("rules:\n  - {name: a, when: {type: maybe}, grade: exact}\n", "type is one of"),
        ("rules:\n  - {name: a, when: {type: match}, grade: exact}\n", "last rule must have no"),
        ("rules:\n  - {name: a, grade: exact, because: '{colour}'}\n", "unknown placeholder"),
        ("rulez: []\n", "expected the keys"),
        ("levels: [a]\nrules:\n  - {name: a, grade: exact}\n", "levels: expected"),
        ("levels: {esci: [a]}\nrules:\n  - {name: a, grade: exact}\n", "levels: expected"),
        ("rules:\n  - {name: a, when: [type, match], grade: exact}\n", "when: expected"),
    ],
)
def test_bad_rules_files_are_refused(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "rules.yaml").write_text(body)
    with pytest.raises(RulesError, match=message) as refused:
        RelevanceRules.load(tmp_path / "rules.yaml")
    assert str(tmp_path / "rules.yaml") in str(refused.value)


def test_a_level_without_a_grade_is_named() -> None:
    scale = GradeScale("yesno", ("no", "yes"), (0.0, 1.0), bad_threshold=0, pair_min_diff=1)
    with pytest.raises(RulesError, match="level 'partial' is no grade of scale 'yesno'"):
        RelevanceRules.load().grade_of("partial", scale)
