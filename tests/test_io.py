"""Atomic writes and the finished-model check."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shoprel.io import atomic_path, read_json, read_jsonl, trained_with, write_json, write_jsonl
from shoprel.pipeline.stages import stage_result


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_json({"v": 1}, path)
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("stopped")
    assert path.read_text().strip().replace(" ", "").replace("\n", "") == '{"v":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_outputs_are_readable_by_others_as_the_umask_allows(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        write_json({}, tmp_path / "report.json")
    finally:
        os.umask(before)
    mode = stat.S_IMODE((tmp_path / "report.json").stat().st_mode)
    assert mode & stat.S_IROTH and mode & stat.S_IRGRP  # not mkstemp's 0600


def test_trained_with_needs_the_meta_file_and_the_same_settings(tmp_path: Path) -> None:
    settings = {"base": "minilm-l6", "labels": ("a", "b"), "lr": 5e-5}
    assert not trained_with(tmp_path, "meta.json", settings)
    write_json({"train": {"base": "minilm-l6", "labels": ["a", "b"], "lr": 5e-5, "seconds": 3}},
               tmp_path / "meta.json")  # fmt: skip
    assert trained_with(tmp_path, "meta.json", settings)  # a tuple saved as a list still matches
    assert not trained_with(tmp_path, "meta.json", settings | {"lr": 1e-4})


def test_the_new_bytes_reach_the_disk_before_they_replace_the_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    sync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or sync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or replace(a, b))
    write_json({"a": 1}, tmp_path / "out.json")
    assert events == ["fsync", "replace"]
    assert (tmp_path / "out.json").read_text().strip().startswith("{")


def test_a_json_file_that_does_not_parse_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text('{\n  "scale": "homedepot",\n  "cut short')
    with pytest.raises(ValueError, match=r"meta\.json: not valid JSON at line 3"):
        read_json(path)
    write_json({"scale": "homedepot"}, path)
    assert read_json(path) == {"scale": "homedepot"}


def test_a_jsonl_line_that_does_not_parse_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "dev_metrics.jsonl"
    write_jsonl([{"step": 1}, {"step": 2}], path)
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_text(path.read_text() + "\n" + '{"step": 3')
    with pytest.raises(ValueError, match=r"dev_metrics\.jsonl, line 4: not valid JSON"):
        read_jsonl(path)


def test_a_broken_stage_record_is_named_when_a_later_stage_reads_it(tmp_path: Path) -> None:
    record = tmp_path / "run" / "stages" / "teacher.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"result": ')
    with pytest.raises(ValueError, match=r"teacher\.json: not valid JSON"):
        stage_result(tmp_path / "run", "teacher")
