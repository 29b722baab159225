"""Counters and histograms for ``GET /metrics``, in the Prometheus text format (version 0.0.4).

Updated from the event loop only, so no locks. Label values come from a fixed set (routes the app
knows, HTTP status codes), so the number of series stays bounded.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PAIR_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
JOB_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)

Labels = tuple[str, ...]


class Counter:
    def __init__(self, name: str, help: str, label_names: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help, tuple(label_names)
        self.values: dict[Labels, float] = defaultdict(float)

    def inc(self, *labels: str, by: float = 1.0) -> None:
        self.values[labels] += by

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for labels, value in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels(self.label_names, labels)} {_number(value)}")
        return lines


class Histogram:
    def __init__(
        self, name: str, help: str, buckets: Sequence[float], label_names: Sequence[str] = ()
    ) -> None:
        self.name, self.help, self.label_names = name, help, tuple(label_names)
        self.bounds = tuple(sorted(buckets))
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = defaultdict(float)

    def observe(self, value: float, *labels: str) -> None:
        counts = self.counts.setdefault(labels, [0] * (len(self.bounds) + 1))
        counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sums[labels] += value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels, counts in sorted(self.counts.items()):
            total = 0
            for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
                total += count
                le = _labels((*self.label_names, "le"), (*labels, _number(bound)))
                lines.append(f"{self.name}_bucket{le} {total}")
            plain = _labels(self.label_names, labels)
            lines.append(f"{self.name}_sum{plain} {_number(self.sums[labels])}")
            lines.append(f"{self.name}_count{plain} {total}")
        return lines


class Telemetry:
    """What the service counts: requests, their latency, and the model calls of the batcher."""

    def __init__(self) -> None:
        self.requests = Counter(
            "shoprel_requests_total", "HTTP requests by route and status.", ("route", "status")
        )
        self.latency = Histogram(
            "shoprel_request_duration_seconds",
            "Time from request to response, by route.",
            LATENCY_BUCKETS,
            ("route",),
        )
        self.batch_pairs = Histogram(
            "shoprel_batch_pairs", "(query, item) pairs scored per model call.", PAIR_BUCKETS
        )
        self.batch_requests = Histogram(
            "shoprel_batch_requests", "Requests merged into one model call.", JOB_BUCKETS
        )
        self.batch_seconds = Histogram(
            "shoprel_batch_duration_seconds", "Time of one model call.", LATENCY_BUCKETS
        )

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests.inc(route, str(status))
        self.latency.observe(seconds, route)

    def batch(self, pairs: int, requests: int, seconds: float) -> None:
        self.batch_pairs.observe(pairs)
        self.batch_requests.observe(requests)
        self.batch_seconds.observe(seconds)

    def render(self, ready: bool) -> str:
        lines = [
            "# HELP shoprel_model_ready 1 once the model is loaded.",
            "# TYPE shoprel_model_ready gauge",
        ]
        lines.append(f"shoprel_model_ready {int(ready)}")
        for metric in (
            self.requests,
            self.latency,
            self.batch_pairs,
            self.batch_requests,
            self.batch_seconds,
        ):
            lines += metric.render()
        return "\n".join(lines) + "\n"


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = (f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True))
    return "{" + ",".join(pairs) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))
