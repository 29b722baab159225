"""Benchmarks given no paths take them from the quickstart run, or stop saying what to do."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def load_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], ModuleType]]:
    """Imports ``benchmarks/quickstart_run.py`` for a given run dir; forgets it afterwards."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(run: Path) -> ModuleType:
        monkeypatch.setenv("SHOPREL_QUICKSTART_RUN", str(run))
        sys.modules.pop("quickstart_run", None)
        return importlib.import_module("quickstart_run")

    yield load
    sys.modules.pop("quickstart_run", None)


def test_paths_not_given_come_from_the_quickstart_run(
    load_defaults: Callable[[Path], ModuleType], tmp_path: Path
) -> None:
    (tmp_path / "teacher" / "labeler").mkdir(parents=True)
    (tmp_path / "augment").mkdir()
    (tmp_path / "augment" / "pairs.parquet").write_bytes(b"")
    module = load_defaults(tmp_path)
    given = tmp_path / "elsewhere"
    args = argparse.Namespace(teacher=None, pairs=given)
    module.fill(args, teacher="labeler", pairs="pairs")
    assert args.teacher == tmp_path / "teacher" / "labeler" and args.pairs == given


def test_a_missing_quickstart_run_says_to_make_the_demo(
    load_defaults: Callable[[Path], ModuleType], tmp_path: Path
) -> None:
    module = load_defaults(tmp_path / "none")
    with pytest.raises(SystemExit, match=r"data is missing: run `make demo`"):
        module.fill(argparse.Namespace(data=None), data="data")


def test_quick_sizes_fill_only_what_was_not_given(
    load_defaults: Callable[[Path], ModuleType], tmp_path: Path
) -> None:
    module = load_defaults(tmp_path)
    full, quick = {"pairs": 6000, "rounds": 15}, {"pairs": 200, "rounds": 5}
    args = argparse.Namespace(quick=True, pairs=0, rounds=None)  # 0 given: "all"
    module.fill_sizes(args, full, quick)
    assert (args.pairs, args.rounds) == (0, 5)
    args = argparse.Namespace(quick=False, pairs=None, rounds=None)
    module.fill_sizes(args, full, quick)
    assert (args.pairs, args.rounds) == (6000, 15)
