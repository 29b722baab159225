"""Micro-batching: requests that arrive together are scored in one model call.

A request is a job of (query, item) pairs. The worker takes the first waiting job, waits up to
``max_wait_ms`` for more while the batch holds fewer than ``max_batch_items`` pairs, then scores the
batch in one call on a dedicated thread (onnxruntime releases the GIL, so the event loop keeps
accepting requests, which queue up for the next batch). A job is never split; one that does not
fit waits for the next batch. If a batch fails, its jobs are scored one by one so that one bad job
fails alone. When more than ``max_queue_items`` pairs wait, a new job is refused with
:class:`QueueFull` (the service answers 429) instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ScorePairs = Callable[[Sequence[str], Sequence[Mapping[str, Any]]], np.ndarray]
OnBatch = Callable[[int, int, float], None]
"""Called after each model call with the pairs, the jobs and the seconds it took."""


class QueueFull(RuntimeError):
    """Too many pairs are waiting; retry later."""


@dataclass
class _Job:
    queries: list[str]
    items: list[Mapping[str, Any]]
    future: asyncio.Future[np.ndarray] = field(repr=False)


class MicroBatcher:
    def __init__(
        self,
        score_pairs: ScorePairs,
        *,
        max_batch_items: int = 256,
        max_wait_ms: float = 2.0,
        max_queue_items: int = 1_000_000,
        on_batch: OnBatch | None = None,
    ) -> None:
        if max_batch_items < 1 or max_wait_ms < 0 or max_queue_items < 1:
            raise ValueError(
                f"expected max_batch_items >= 1, max_wait_ms >= 0 and max_queue_items >= 1, "
                f"got {max_batch_items}, {max_wait_ms} and {max_queue_items}"
            )
        self.score_pairs, self.on_batch = score_pairs, on_batch
        self.max_batch_items, self.max_wait_s = max_batch_items, max_wait_ms / 1000
        self.max_queue_items = max_queue_items
        self._pending: deque[_Job] = deque()
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._open = 0  # jobs submitted and not yet answered

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoprel-model")
        self._worker = asyncio.create_task(self._run(), name="shoprel-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(
        self, queries: Sequence[str], items: Sequence[Mapping[str, Any]]
    ) -> np.ndarray:
        """The score of each (query, item) pair, scored together with concurrent jobs."""
        if self._worker is None:
            raise RuntimeError("MicroBatcher.submit before start()")
        if len(queries) != len(items):
            raise ValueError(
                f"got {len(queries)} queries for {len(items)} items; expected one each"
            )
        waiting = self._pending_items()
        if waiting and waiting + len(items) > self.max_queue_items:
            raise QueueFull(f"{waiting} pairs are waiting to be scored; retry later")
        job = _Job(list(queries), list(items), asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._arrived.set()
        self._open += 1
        try:
            return await job.future
        finally:
            self._open -= 1

    async def drain(self, poll_s: float = 0.005) -> None:
        """Return once every job submitted so far has its answer (new ones are not refused)."""
        while self._open:
            await asyncio.sleep(poll_s)

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            await self._gather_more()
            jobs = self._take()
            if self._pending:  # jobs that did not fit go first in the next batch
                self._arrived.set()
            else:
                self._arrived.clear()
            if jobs:
                await self._score(jobs)

    async def _gather_more(self) -> None:
        """Wait until the batch is full or ``max_wait_ms`` has passed since this call."""
        deadline = time.monotonic() + self.max_wait_s
        while self._pending_items() < self.max_batch_items:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    def _pending_items(self) -> int:
        return sum(len(job.items) for job in self._pending)

    def _take(self) -> list[_Job]:
        """Waiting jobs in arrival order up to ``max_batch_items`` pairs (at least one job)."""
        jobs: list[_Job] = []
        n_items = 0
        while self._pending:
            job = self._pending[0]
            if jobs and n_items + len(job.items) > self.max_batch_items:
                break
            self._pending.popleft()
            if not job.future.done():  # a cancelled request (client gone) is dropped
                jobs.append(job)
                n_items += len(job.items)
        return jobs

    async def _score(self, jobs: list[_Job]) -> None:
        queries = [q for job in jobs for q in job.queries]
        items = [item for job in jobs for item in job.items]
        started = time.perf_counter()
        try:
            scores = await self._call(queries, items)
        except Exception as error:
            if len(jobs) == 1:
                _settle(jobs[0], error=error)
            else:
                for job in jobs:
                    await self._score([job])
            return
        if self.on_batch is not None:
            self.on_batch(len(items), len(jobs), time.perf_counter() - started)
        bounds = np.cumsum([0, *(len(job.items) for job in jobs)])
        for job, start, stop in zip(jobs, bounds[:-1], bounds[1:], strict=True):
            _settle(job, scores=scores[start:stop])

    async def _call(self, queries: list[str], items: list[Mapping[str, Any]]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.score_pairs, queries, items)


def _settle(
    job: _Job, scores: np.ndarray | None = None, error: BaseException | None = None
) -> None:
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(scores)
