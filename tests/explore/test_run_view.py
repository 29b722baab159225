"""The explorer's tables: per-query metrics, disagreement, moves, comparison of two runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprel.data.schema import get_scale
from shoprel.eval.metrics import ranking_metrics
from shoprel.explore.run_view import RunView, column, compare_runs, moves


@pytest.fixture(scope="module")
def view(explore_run: Path) -> RunView:
    return RunView(explore_run)


def test_per_query_metrics_are_the_metrics_of_that_query_alone(view: RunView) -> None:
    scale = get_scale("esci")
    for query_id, rows in view.pairs.groupby("query_id"):
        for model in view.models:
            alone = ranking_metrics(
                rows["query_id"], rows["label"], view.scores.loc[rows.index, model], scale
            )
            got = view.per_query.loc[query_id]
            for ours, theirs in (("ndcg@10", "ndcg@10"), ("pairwise", "pairwise_accuracy")):
                expected = alone[theirs]
                value = got[column(model, ours)]
                assert (np.isnan(value) and np.isnan(expected)) or value == pytest.approx(expected)


def test_overview_sorts_and_filters(view: RunView) -> None:
    rows = view.overview("student (distilled)|pairwise")
    values = [r.metrics["student (distilled)"]["pairwise"] for r in rows]
    defined = [v for v in values if not np.isnan(v)]
    assert defined == sorted(defined) and values[: len(defined)] == defined  # nan last
    assert len(rows) == view.pairs["query_id"].nunique()
    descending = view.overview("items", descending=True)
    assert [r.items for r in descending] == sorted((r.items for r in rows), reverse=True)
    word = rows[0].query.split()[0]
    filtered = view.overview(text=word.upper())
    assert filtered and all(word.lower() in r.query.lower() for r in filtered)
    in_split_order = [r.query_id for r in view.overview("no such|column")]  # unknown key
    assert in_split_order == view.pairs["query_id"].astype(str).drop_duplicates().tolist()
    items = {r.query_id: r.items for r in rows}
    assert view.overview_row(in_split_order[0]).items == items[in_split_order[0]]


def test_the_query_ranked_backwards_leads_both_lists(view: RunView, backwards: str) -> None:
    top, distance = view.disagreements("teacher", "student (distilled)", 3)[0]
    assert top.query_id == backwards and distance == pytest.approx(2.0)
    assert view.furthest_from_labels("student (distilled)", 3)[0].query_id == backwards


def test_query_columns_rank_by_each_model(view: RunView, backwards: str) -> None:
    items = view.query(backwards, ["teacher", "student (distilled)"])
    assert items[column("rank", "label")].tolist() == list(range(1, len(items) + 1))
    teacher, student = (
        items[column("rank", "teacher")],
        items[column("rank", "student (distilled)")],
    )
    assert (teacher + student == len(items) + 1).all()  # the student reversed the teacher
    with pytest.raises(KeyError):
        view.query("no-such-query", ["teacher"])


def test_moves_are_the_largest_rank_changes() -> None:
    items = pd.DataFrame(
        {"product_id": ["a", "b", "c", "d"], "rank|x": [1, 2, 3, 4], "rank|y": [4, 2, 1, 3]}
    )
    assert moves(items, "x", "y", n=2) == {"a": 3, "c": -2}
    assert moves(items, "x", "y", n=4) == {"a": 3, "c": -2, "d": -1}  # b does not move


def test_compare_runs_finds_the_query_that_changed(
    view: RunView, hostile_data: Path, tmp_path: Path, backwards: str, run_writer, scores_of
) -> None:
    test = view.pairs
    scores = scores_of(test)
    fixed = backwards
    scores["student (distilled)"] = np.where(
        test["query_id"] == fixed, scores["teacher"], scores["student (distilled)"]
    )
    other = RunView(run_writer(tmp_path / "other", hostile_data, scores))
    table = compare_runs(other, view, "student (distilled)", "pairwise")
    assert table.index[0] == fixed and table["change"].iloc[0] > 0.5
    assert (table["change"].drop(fixed) == 0).all()
    with pytest.raises(KeyError, match="no model"):
        compare_runs(other, view, "ghost", "pairwise")
