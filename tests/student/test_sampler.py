"""Batches of whole queries: never split, every pair once, the same number of batches each epoch."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoprel.student.sampler import QueryGroupBatchSampler, pack_groups


def grouped_rows(sizes: list[int], shuffle_seed: int) -> list[str]:
    """A group-id column with ``sizes[g]`` rows of group ``g``, rows in shuffled order."""
    column = [f"q{g}" for g, size in enumerate(sizes) for _ in range(size)]
    random.Random(shuffle_seed).shuffle(column)
    return column


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 20), min_size=1, max_size=40),
    batch_size=st.integers(2, 16),
    seed=st.integers(0, 1000),
)
def test_batches_never_split_a_query(sizes: list[int], batch_size: int, seed: int) -> None:
    column = grouped_rows(sizes, seed)
    sampler = QueryGroupBatchSampler({"query_id": column}, batch_size=batch_size, seed=seed)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        seen: Counter[int] = Counter()
        group_batch: dict[str, int] = {}
        for b, batch in enumerate(batches):
            assert 0 < len(batch) <= batch_size
            for row in batch:
                seen[row] += 1
                assert group_batch.setdefault(column[row], b) == b, "a query was split"
        assert max(seen.values()) == 1
        per_group = Counter(column[row] for row in seen)
        assert per_group == {f"q{g}": min(s, batch_size) for g, s in enumerate(sizes)}
        assert sum(len(b) for b in batches) == sampler.pairs_per_epoch


def test_a_long_query_is_cut_to_a_seeded_sample_drawn_anew_each_epoch() -> None:
    column = ["big"] * 30 + ["small"] * 3
    sampler = QueryGroupBatchSampler({"query_id": column}, batch_size=8, seed=0)
    draws = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        big = [row for batch in sampler for row in batch if column[row] == "big"]
        assert len(big) == 8
        draws.append(sorted(big))
    assert draws[0] == draws[2] and draws[0] != draws[1]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 12), min_size=1, max_size=60), seed=st.integers(0, 99))
def test_packing_count_depends_only_on_the_sizes(sizes: list[int], seed: int) -> None:
    shuffled = sizes[:]
    random.Random(seed).shuffle(shuffled)
    batches = pack_groups(sizes, 12)
    assert len(batches) == len(pack_groups(shuffled, 12))
    assert sorted(k for batch in batches for k in batch) == list(range(len(sizes)))
    assert all(sum(sizes[k] for k in batch) <= 12 for batch in batches)
    assert len(batches) >= -(-sum(sizes) // 12)


def test_packing_fills_batches() -> None:
    assert sorted(map(sorted, pack_groups([5, 3, 4, 4, 2, 6], 8))) == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError, match=r"group sizes must be in 1..8"):
        pack_groups([9], 8)


def test_missing_group_column_is_an_error() -> None:
    with pytest.raises(ValueError, match="groups rows by the 'query_id' column"):
        QueryGroupBatchSampler({"query": ["a"]}, batch_size=4)
