"""RUN/judgments.jsonl: exactly once under threads and processes, a torn line cut, read back."""

from __future__ import annotations

import json
import multiprocessing
import threading
import uuid
from pathlib import Path

import pandas as pd
import pytest

from shoprel.data.loaders import LoaderOptions
from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.explore.judgments import Judgment, JudgmentLog


def judgment(judgment_id: str, query: str = "cordless drill", grade: str = "exact") -> Judgment:
    fields = {"title": f"drill {judgment_id[:6]}", "brand": "DEWALT"}
    return Judgment(judgment_id, query, f"p-{judgment_id[:8]}", grade, "ann", "2026-01-01", fields)


def _write_many(path: str, ids: list[str]) -> None:
    log = JudgmentLog(path)
    threads = [
        threading.Thread(target=lambda part=part: [log.append(judgment(i)) for i in part])
        for part in (ids[0::4], ids[1::4], ids[2::4], ids[3::4])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_threads_and_processes_write_each_judgment_once(tmp_path: Path) -> None:
    path = tmp_path / "judgments.jsonl"
    ids = [str(uuid.uuid4()) for _ in range(200)]
    # two processes of four threads each, overlapping by half: every id is offered twice or more
    halves = [ids[:150], ids[50:]]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(path), h)) for h in halves]
    for worker in workers:
        worker.start()
    _write_many(str(path), ids[25:75])  # and this process at the same time
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    written = [json.loads(line)["judgment_id"] for line in path.read_text().splitlines()]
    assert sorted(written) == sorted(ids)


def test_a_torn_last_line_is_cut_before_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "judgments.jsonl"
    log = JudgmentLog(path)
    first = str(uuid.uuid4())
    assert log.append(judgment(first))
    with open(path, "ab") as handle:  # a crash in the middle of the next write
        handle.write(b'{"judgment_id": "torn", "query": "dri')
    assert [row["judgment_id"] for row in log.read()] == [first]
    second = str(uuid.uuid4())
    assert JudgmentLog(path).append(judgment(second))
    assert [row["judgment_id"] for row in log.read()] == [first, second]
    assert not JudgmentLog(path).append(judgment(first))  # a retry of a written one
    assert len(path.read_text().splitlines()) == 2


def test_a_line_edited_by_hand_into_something_else_is_skipped_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "judgments.jsonl"
    first = str(uuid.uuid4())
    assert JudgmentLog(path).append(judgment(first))
    with open(path, "ab") as handle:
        handle.write(b'{"note": "checked by hand"}\nnot json\n')
    log = JudgmentLog(path)
    second = str(uuid.uuid4())
    assert log.append(judgment(second))
    assert [row["judgment_id"] for row in log.read()] == [first, second]
    assert log.counts()["judgments"] == 2
    assert "skipping a line that is not a judgment" in caplog.text


def test_prepare_reads_the_judgments_back_as_labeled_data(tmp_path: Path) -> None:
    path = tmp_path / "judgments.jsonl"
    log = JudgmentLog(path)
    grades = ["exact", "irrelevant", "substitute", "complement"] * 10
    for n, grade in enumerate(grades):
        log.append(judgment(str(uuid.uuid4()), query=f"query {n % 7}", grade=grade))
    options = LoaderOptions(scale="esci", columns={"product_id": "product_id"})
    card = prepare(PrepareConfig(source="table", inputs=[path], loader=options), tmp_path / "data")
    assert card["pairs"] == len(grades) and card["rows_rejected"] == 0
    pairs = pd.concat(pd.read_parquet(tmp_path / "data" / f"{s}.parquet") for s in card["splits"])
    by_product = pairs.set_index("product_id")["label"]
    values = {"irrelevant": 0.0, "complement": 1.0, "substitute": 2.0, "exact": 3.0}
    for row in log.read():
        assert by_product[row["product_id"]] == values[row["label"]]
    assert log.counts()["by_grade"] == {
        "exact": 10,
        "irrelevant": 10,
        "substitute": 10,
        "complement": 10,
    }
