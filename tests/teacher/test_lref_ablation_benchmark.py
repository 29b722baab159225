"""``benchmarks/lref_ablation.py`` on a tiny judge: every row, and a rerun that trains nothing."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "lref_ablation.py"
ROWS = ["SFT, all pairs", "SFT, random pairs", "SFT, LREF-selected pairs", "+ Multi-CoT", "+ DPO"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_script(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    """The script as ``python benchmarks/lref_ablation.py ARGS`` runs it (its dir on the path)."""
    argv, path = sys.argv, list(sys.path)
    sys.argv, sys.path = [str(SCRIPT), *args], [str(SCRIPT.parent), *sys.path]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        sys.argv, sys.path = argv, path
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_ablation_rows_and_a_rerun_reuses_them(
    tiny_base: Path, demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--data", str(demo_data), "--out", str(tmp_path / "ablation"), "--base", str(tiny_base)]
    args += ["--max-train-pairs", "48", "--max-dev-pairs", "12", "--select-frac", "0.5"]
    args += ["--cot-max-pairs", "6", "--batch-size", "8", "--lr", "5e-3"]
    first = run_script(args, capsys)
    rows = first["rows"]
    assert list(rows) == ROWS
    kept = first["selection"]["kept"]
    assert rows["SFT, random pairs"]["train_examples"] == kept
    assert rows["SFT, LREF-selected pairs"]["train_examples"] == kept
    assert rows["SFT, all pairs"]["train_examples"] > kept
    dpo = json.loads((tmp_path / "ablation" / "lref" / "dpo" / "metrics.json").read_text())
    assert rows["+ DPO"]["train_examples"] == dpo["pairs"]
    for row in rows.values():
        assert 0.0 <= row["over_recall"] <= 1.0 and row["rmse"] > 0 and row["train_seconds"] > 0
    row_file = tmp_path / "ablation" / "all" / "ablation_row.json"
    stamp = row_file.stat().st_mtime_ns
    assert run_script(args, capsys)["rows"] == rows
    assert row_file.stat().st_mtime_ns == stamp


def test_a_pipeline_config_without_lref_selection_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("name: x\nteacher:\n  judge:\n    select: {method: random}\n")
    with pytest.raises(SystemExit, match=r"select\.method is not lref"):
        run_script(["--data", str(tmp_path), "--pipeline-config", str(config)], capsys)
