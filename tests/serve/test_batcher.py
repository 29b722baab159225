"""``MicroBatcher``: concurrent jobs scored together, each getting its own scores back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprel.serve.batcher import MicroBatcher, QueueFull
from shoprel.serve.onnx_scorer import FP32_FILE
from shoprel.serve.reranker import Reranker

QUERIES = [
    "cordless drill",
    "white paint",
    "copper elbow",
    "garden hose",
    "drill bits",
    "impact driver",
    "led bulb",
    "door hinge",
]


async def run_jobs(
    batcher: MicroBatcher, jobs: list[tuple[list[str], list[dict]]]
) -> list[np.ndarray | BaseException]:
    await batcher.start()
    try:
        calls = [batcher.submit(queries, items) for queries, items in jobs]
        return await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_jobs_get_their_own_scores(onnx_export: Path, items: list[dict]) -> None:
    # fp32: int8 activations are quantized per batch, so int8 scores move with the batch
    reranker = Reranker.load(onnx_export, onnx_file=FP32_FILE, threads=1)
    jobs = [([q] * (2 + i % 4), items[: 2 + i % 4]) for i, q in enumerate(QUERIES)]
    expected = [reranker.score_pairs(queries, job_items) for queries, job_items in jobs]
    batches: list[tuple[int, int]] = []
    batcher = MicroBatcher(
        reranker.score_pairs,
        max_batch_items=1000,
        max_wait_ms=200,
        on_batch=lambda pairs, requests, _: batches.append((pairs, requests)),
    )
    got = asyncio.run(run_jobs(batcher, jobs))
    for scores, want in zip(got, expected, strict=True):
        assert isinstance(scores, np.ndarray)
        np.testing.assert_allclose(scores, want, rtol=0, atol=1e-5)
    assert batches == [(sum(len(job[1]) for job in jobs), len(jobs))]  # one model call


def fake_scores(queries: Sequence[str], items: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """A score that names its pair: the query's number plus the item's number / 100."""
    if any(item["title"] == "boom" for item in items):
        raise ValueError("boom")
    return np.array(
        [float(q) + float(item["title"]) / 100 for q, item in zip(queries, items, strict=True)]
    )


def job(query: int, n_items: int) -> tuple[list[str], list[dict]]:
    return [str(query)] * n_items, [{"title": str(i)} for i in range(n_items)]


def test_batches_stay_under_the_cap() -> None:
    batches: list[tuple[int, int]] = []
    batcher = MicroBatcher(
        fake_scores,
        max_batch_items=4,
        max_wait_ms=100,
        on_batch=lambda pairs, requests, _: batches.append((pairs, requests)),
    )
    jobs = [job(1, 3), job(2, 1), job(3, 3), job(4, 6), job(5, 2)]
    got = asyncio.run(run_jobs(batcher, jobs))
    for (queries, job_items), scores in zip(jobs, got, strict=True):
        np.testing.assert_allclose(scores, fake_scores(queries, job_items))
    # in arrival order: 3+1, then 3 (the 6 does not fit), the 6 alone, then 2
    assert batches == [(4, 2), (3, 1), (6, 1), (2, 1)]


def test_a_failing_job_fails_alone() -> None:
    bad = (["9"], [{"title": "boom"}])
    got = asyncio.run(
        run_jobs(MicroBatcher(fake_scores, max_wait_ms=100), [job(1, 2), bad, job(2, 3)])
    )
    np.testing.assert_allclose(got[0], [1.0, 1.01])
    assert isinstance(got[1], ValueError) and str(got[1]) == "boom"
    np.testing.assert_allclose(got[2], [2.0, 2.01, 2.02])


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="expected max_batch_items >= 1, max_wait_ms >= 0"):
        MicroBatcher(fake_scores, max_batch_items=0)

    async def early() -> None:
        await MicroBatcher(fake_scores).submit(["q"], [{"title": "t"}])

    with pytest.raises(RuntimeError, match="before start"):
        asyncio.run(early())


def test_a_full_queue_refuses_new_jobs() -> None:
    release = threading.Event()

    def slow(queries: Sequence[str], items: Sequence[Mapping[str, Any]]) -> np.ndarray:
        assert release.wait(30)
        return fake_scores(queries, items)

    async def scenario() -> list[np.ndarray]:
        batcher = MicroBatcher(slow, max_batch_items=2, max_wait_ms=0, max_queue_items=3)
        await batcher.start()
        try:
            first = asyncio.create_task(batcher.submit(*job(1, 2)))
            await asyncio.sleep(0.1)  # taken by the worker: in the model, no longer waiting
            second = asyncio.create_task(batcher.submit(*job(2, 2)))
            await asyncio.sleep(0)
            with pytest.raises(QueueFull, match="2 pairs are waiting to be scored"):
                await batcher.submit(*job(3, 2))
            release.set()
            return list(await asyncio.gather(first, second))
        finally:
            release.set()
            await batcher.stop()

    first, second = asyncio.run(scenario())
    np.testing.assert_allclose(first, [1.0, 1.01])
    np.testing.assert_allclose(second, [2.0, 2.01])
