"""``shoprel teacher train`` with LREF stages and ``shoprel score --mode cot`` on a tiny judge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shoprel.cli import app
from shoprel.scoring import load_scorer
from shoprel.teacher.model import META_FILE

TINY = [
    "--max-dev-pairs", "8", "--batch-size", "8", "--epochs", "1", "--lr", "5e-3", "--lora-r", "4",
]  # fmt: skip
ALL_STAGES = """\
max_train_pairs: 40
peft: {lora_alpha: 8}
select: {method: lref, frac: 0.5, aux_frac: 0.4, aux_max_pairs: 16}
cot:
  kinds: [ee, ra, dr]
  max_pairs: 8
  args: {per_device_train_batch_size: 8}
  eval_pairs: 3
  max_new_tokens: 6
  max_rationale_tokens: 16
dpo:
  {enabled: true, holdout_frac: 0.25, max_pool_pairs: 16, top_k: 4,
   args: {per_device_train_batch_size: 4}}
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(tiny_base: Path, demo_data: Path, out: Path, *options: str) -> None:
    args = ["teacher", "train", "--data", str(demo_data), "--base", str(tiny_base)]
    done = CliRunner().invoke(app, [*args, "--out", str(out), *TINY, *options])
    assert done.exit_code == 0, done.output + repr(done.exception)


def test_random_selection_writes_stage_dirs_and_a_loadable_judge(
    tiny_base: Path, demo_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "teacher"
    train(tiny_base, demo_data, out, "--max-train-pairs", "32", "--select", "random",
          "--select-frac", "0.5")  # fmt: skip
    selected = pd.read_parquet(out / "select" / "selected_pairs.parquet")
    assert len(selected) == 16 and set(selected["reason"]) == {"random"}
    report = json.loads((out / "select" / "selection_report.json").read_text())
    assert report["kept"] == 16 and sum(report["grade_mix"]["kept"].values()) == 16
    sft = json.loads((out / "sft" / "metrics.json").read_text())
    assert sft["train_pairs"] == 16 and sft["seconds"] > 0 and sft["dev"]["pairs"] == 8
    assert {"over_recall", "per_grade", "macro_f1"} <= set(sft["dev"])
    assert (out / "sft" / META_FILE).is_file() and not (out / "cot").exists()
    summary = json.loads((out / "lref.json").read_text())
    assert list(summary["stages"]) == ["select", "sft"] and summary["final"] == "sft"
    pairs = pd.read_parquet(demo_data / "dev.parquet").head(12)
    final = load_scorer(out).predict(pairs)
    from_sft = load_scorer(out / "sft").predict(pairs)
    assert np.allclose(final["score"], from_sft["score"])
    meta = json.loads((out / "sft" / META_FILE).read_text())
    assert meta["train"]["train_pairs"] == 16


def test_a_resumed_run_reuses_finished_stages_and_redoes_the_broken_one(
    tiny_base: Path, demo_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "teacher"
    options = ("--max-train-pairs", "32", "--select", "random", "--select-frac", "0.5")
    train(tiny_base, demo_data, out, *options)
    select_metrics = out / "select" / "metrics.json"
    select_metrics.write_text(json.dumps(json.loads(select_metrics.read_text()) | {"mark": 1}))
    (out / "sft" / META_FILE).unlink()  # as if stopped while SFT saved its judge
    (out / "sft" / "metrics.json").write_text(json.dumps({"stage": "sft", "seconds": -1}))
    train(tiny_base, demo_data, out, *options, "--resume")
    assert json.loads(select_metrics.read_text())["mark"] == 1  # the finished stage was reused
    redone = json.loads((out / "sft" / "metrics.json").read_text())
    assert redone["seconds"] > 0 and redone["train_pairs"] == 16
    assert (out / "sft" / META_FILE).is_file()
    pairs = pd.read_parquet(demo_data / "dev.parquet").head(12)
    assert np.allclose(
        load_scorer(out).predict(pairs)["score"], load_scorer(out / "sft").predict(pairs)["score"]
    )
    sft_meta = (out / "sft" / META_FILE).read_text()
    train(tiny_base, demo_data, out, *options, "--resume", "--lr", "1e-3")  # SFT's settings
    assert json.loads(select_metrics.read_text())["mark"] == 1  # the selection is the same
    assert (out / "sft" / META_FILE).read_text() != sft_meta  # SFT trained afresh
    assert json.loads((out / "sft" / META_FILE).read_text())["train"]["sft"]["args"][
        "learning_rate"
    ] == pytest.approx(1e-3)
    train(tiny_base, demo_data, out, *options[:-1], "0.25", "--resume", "--lr", "1e-3")
    assert "mark" not in json.loads(select_metrics.read_text())  # another selection
    assert json.loads((out / "sft" / "metrics.json").read_text())["train_pairs"] == 8


def test_all_stages_then_score_in_both_modes(
    tiny_base: Path, demo_data: Path, tmp_path: Path
) -> None:
    config = tmp_path / "teacher.yaml"
    config.write_text(ALL_STAGES)
    out = tmp_path / "teacher"
    train(tiny_base, demo_data, out, "--config", str(config))
    for stage in ("select", "sft", "cot", "dpo"):
        record = json.loads((out / stage / "metrics.json").read_text())
        assert record["stage"] == stage and record["seconds"] > 0
    for name in ("im", "ci", "ms"):
        assert (out / "select" / "aux" / name / META_FILE).is_file()
    selection = json.loads((out / "select" / "selection_report.json").read_text())
    assert selection["aux_learn_from"] == "outside the pool" and selection["aux_pairs"] == 16
    kinds = [json.loads(line)["kind"] for line in (out / "cot" / "rationales.jsonl").open()]
    assert sorted(set(kinds)) == ["dr", "ee", "ra"]
    cot = json.loads((out / "cot" / "metrics.json").read_text())
    assert [p["kind"] for p in cot["phases"]] == ["ee", "ra", "dr"]
    assert all(p["direct_examples"] > 0 for p in cot["phases"]) and "dev_cot" in cot
    dpo = json.loads((out / "dpo" / "metrics.json").read_text())
    assert dpo["mode"] == "cot" and dpo["pool"] > 0
    for when in ("before", "after"):
        direct = dpo[when]["direct"]
        assert 0 <= direct["over_recall"] <= 1
        assert set(direct["per_grade"]) == {"irrelevant", "complement", "substitute", "exact"}
    pairs = pd.read_parquet(out / "dpo" / "dpo_pairs.parquet")
    grades = ["irrelevant", "complement", "substitute", "exact"]
    assert all(
        grades.index(r) > grades.index(c)
        for c, r in zip(pairs["chosen"], pairs["rejected"], strict=True)
    )
    assert json.loads((out / "lref.json").read_text())["final"] == "dpo"
    scores = tmp_path / "cot.parquet"
    args = ["score", "--model", str(out), "--data", str(demo_data), "--split", "dev"]
    done = CliRunner().invoke(app, [*args, "--out", str(scores), "--mode", "cot",
                                    "--max-new-tokens", "4"])  # fmt: skip
    assert done.exit_code == 0, done.output + repr(done.exception)
    frame = pd.read_parquet(scores)
    assert len(frame) == len(pd.read_parquet(demo_data / "dev.parquet"))
    assert {"score", "p_exact", "_reasoning"} <= set(frame.columns)
    assert np.allclose(frame[[f"p_{g}" for g in grades]].sum(axis=1), 1)


def guarded_stage(
    tiny_base: Path, demo_data: Path, tmp_path: Path, stage: str, config: str
) -> tuple[dict, dict]:
    """Train with ``config`` (a stage whose guard allows a top grade share of 20%: with four
    grades the most predicted one always has more); check that the stage kept the SFT judge.
    Returns the stage's and SFT's metrics."""
    (tmp_path / "teacher.yaml").write_text(config)
    out = tmp_path / "teacher"
    train(tiny_base, demo_data, out, "--config", str(tmp_path / "teacher.yaml"))
    record = json.loads((out / stage / "metrics.json").read_text())
    assert record["guard"]["kept_start"] and "of dev predictions are" in record["guard"]["reason"]
    pairs = pd.read_parquet(demo_data / "dev.parquet").head(12)
    final = load_scorer(out).predict(pairs)
    assert np.allclose(final["score"], load_scorer(out / "sft").predict(pairs)["score"])
    return record, json.loads((out / "sft" / "metrics.json").read_text())


def test_dpo_guard_keeps_the_sft_judge_when_one_grade_takes_over(
    tiny_base: Path, demo_data: Path, tmp_path: Path
) -> None:
    dpo, _ = guarded_stage(
        tiny_base, demo_data, tmp_path, "dpo",
        "max_train_pairs: 40\npeft: {lora_alpha: 8}\n"
        "dpo: {enabled: true, holdout_frac: 0.25, max_pool_pairs: 32, top_k: 4, mode: direct,"
        " max_grade_share: 0.2, args: {per_device_train_batch_size: 4, learning_rate: 0.05}}\n",
    )  # fmt: skip
    assert dpo["pairs"] > 0, "the seeded tiny judge makes optimistic errors for the guard to see"
    assert dpo["after"] == dpo["before"] and dpo["tuned_dev"]["pairs"] == 8
    assert sum(dpo["kinds"].values()) == dpo["pairs"]


def test_cot_guard_keeps_the_sft_judge_when_one_grade_takes_over(
    tiny_base: Path, demo_data: Path, tmp_path: Path
) -> None:
    cot, sft = guarded_stage(
        tiny_base, demo_data, tmp_path, "cot",
        "max_train_pairs: 24\npeft: {lora_alpha: 8}\n"
        "cot: {kinds: [ee], max_pairs: 8, eval_pairs: 0, max_rationale_tokens: 16,"
        " max_grade_share: 0.2, args: {per_device_train_batch_size: 8}}\n",
    )  # fmt: skip
    assert cot["dev"] == sft["dev"] and cot["tuned_dev"]["pairs"] == sft["dev"]["pairs"] == 8


def test_bad_options_are_errors_before_any_training(
    tiny_base: Path, demo_data: Path, tmp_path: Path
) -> None:
    config = tmp_path / "teacher.yaml"
    config.write_text("select: {method: random, frac: 0.5, fracc: 1}\n")
    args = ["teacher", "train", "--data", str(demo_data), "--base", str(tiny_base)]
    out = tmp_path / "teacher"
    done = CliRunner().invoke(app, [*args, "--out", str(out), "--config", str(config)])
    assert isinstance(done.exception, ValueError)
    assert "select: unknown key(s) ['fracc']" in str(done.exception)
    done = CliRunner().invoke(app, [*args, "--out", str(out), "--cot", "ee",
                                    "--cot-generator", "openai"])  # fmt: skip
    assert isinstance(done.exception, ValueError) and "--cot-url" in str(done.exception)
    done = CliRunner().invoke(app, [*args, "--out", str(out), "--select", "best"])
    assert isinstance(done.exception, ValueError) and "select.method" in str(done.exception)
    assert not out.exists()
    done = CliRunner().invoke(
        app, ["score", "--model", str(tiny_base), "--data", str(demo_data), "--out",
              str(tmp_path / "s.parquet"), "--mode", "cot"],
    )  # fmt: skip
    assert done.exit_code != 0 and "needs an LLM judge dir" in done.output
