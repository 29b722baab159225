"""``RUN/judgments.jsonl``: graded (query, product) pairs from raters, appended one line each.

Each line is a JSON object with the query, the product's id and text fields, ``label`` (the grade
word of the run's scale), ``rater``, ``time`` and ``judgment_id``. It reads back as labeled data:

    shoprel data prepare --source table --scale esci --column product_id=product_id \
        --input RUN/judgments.jsonl --out judged

Writes hold an exclusive ``flock`` on the file, so raters in threads or in other processes
never interleave; a judgment is acknowledged only after its line is on disk (``fsync``), and a
judgment id already in the file is not written again (a retried submission is not a second
judgment). A line torn by a crash mid-write was never acknowledged; it is cut off before the next
append.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
FILE = "judgments.jsonl"
REQUIRED = frozenset({"judgment_id", "query", "product_id", "label", "rater"})


@dataclass(frozen=True)
class Judgment:
    judgment_id: str
    query: str
    product_id: str
    label: str  # a grade word of the run's scale
    rater: str
    time: str  # ISO 8601, UTC
    fields: dict[str, str]  # the product's text fields: title, brand, ...

    def line(self) -> bytes:
        row = {k: v for k, v in asdict(self).items() if k != "fields"} | self.fields
        return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


class JudgmentLog:
    """Appends judgments to ``path`` exactly once each, safely across threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._read_up_to = 0

    def append(self, judgment: Judgment) -> bool:
        """Write ``judgment``; False (and nothing written) if its id is already in the file."""
        with self._lock, open(self.path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._catch_up(handle)
                if judgment.judgment_id in self._seen:
                    return False
                handle.write(judgment.line())
                handle.flush()
                os.fsync(handle.fileno())
                self._seen.add(judgment.judgment_id)
                self._read_up_to = handle.tell()
                return True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _catch_up(self, handle: Any) -> None:
        """Learn the ids other writers added since the last look; cut a torn last line."""
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        if end < self._read_up_to:  # the file was replaced or truncated: read it all again
            self._seen.clear()
            self._read_up_to = 0
        handle.seek(self._read_up_to)
        data = handle.read(end - self._read_up_to)
        whole = data.rfind(b"\n") + 1
        if whole < len(data):
            handle.truncate(self._read_up_to + whole)
        for row in self._rows(data[:whole]):
            self._seen.add(row["judgment_id"])
        self._read_up_to += whole
        handle.seek(0, os.SEEK_END)

    def read(self) -> list[dict[str, Any]]:
        """Every complete line of the file (a torn last line left out)."""
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        return self._rows(data[: data.rfind(b"\n") + 1])

    def _rows(self, data: bytes) -> list[dict[str, Any]]:
        """The judgments of whole lines; a line edited into something else is skipped, named."""
        rows = []
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError:
                row = None
            if isinstance(row, dict) and row.keys() >= REQUIRED:
                rows.append(row)
            else:
                logger.warning("%s: skipping a line that is not a judgment: %.80r", self.path, raw)
        return rows

    def counts(self) -> dict[str, Any]:
        """Judgments, distinct judged pairs, and judgments per grade and per rater."""
        rows = self.read()
        return {
            "judgments": len(rows),
            "pairs": len({(r["query"], r["product_id"]) for r in rows}),
            "by_grade": dict(Counter(r["label"] for r in rows)),
            "by_rater": dict(Counter(r["rater"] for r in rows)),
        }

    def pair_counts(self) -> Counter[tuple[str, str]]:
        """How many judgments each (query, product id) pair has."""
        return Counter((r["query"], r["product_id"]) for r in self.read())
