"""rerank_latency: scorers take turns on one draw per round, and rounds draw anew."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from shoprel.serve import latency


class RecordingReranker:
    """Stands in for ``Reranker``: remembers every call's query and candidate ids."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def rerank(self, query: str, items: list[dict[str, str]]) -> list[dict[str, Any]]:
        self.calls.append((query, tuple(item["id"] for item in items)))
        return []


@pytest.fixture
def pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query": [f"query {i % 7}" for i in range(60)],
            "product_id": [f"p{i}" for i in range(60)],
            "title": [f"title {i}" for i in range(60)],
        }
    )


def test_rounds_draw_new_lists_and_scorers_share_each_draw(monkeypatch, pairs):
    made: dict[str, RecordingReranker] = {}

    def load(path: str, **_: Any) -> RecordingReranker:
        made[path] = RecordingReranker()
        return made[path]

    monkeypatch.setattr(latency.Reranker, "load", staticmethod(load))
    result = latency.rerank_latency({"a": ("a", {}), "b": ("b", {})}, pairs, [5, 10], rounds=4)

    assert set(result) == {"a", "b"} and all(set(ms) == {5, 10} for ms in result.values())
    timed_a, timed_b = made["a"].calls[1:], made["b"].calls[1:]  # after the warm-up call
    assert timed_a == timed_b  # both scorers saw the same draws in the same order
    assert len(timed_a) == 4 * 2
    tens = [ids for _, ids in timed_a if len(ids) == 10]
    assert len(set(tens)) == 4  # every round a new draw of candidates
    assert len({query for query, _ in timed_a}) == 4  # and a new query
