"""``shoprel teacher train`` and ``shoprel score`` through the CLI, with a YAML config."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from shoprel.cli import app
from shoprel.config import load_config
from shoprel.teacher.train import TeacherTrainConfig


def test_yaml_config_with_flag_overrides(tmp_path: Path) -> None:
    path = tmp_path / "teacher.yaml"
    path.write_text(
        "peft: {r: 8}\nsft: {args: {num_train_epochs: 3}}\nprompt:\n  description_tokens: 16\n"
    )
    cfg = load_config(TeacherTrainConfig, path, {"seed": 3, "max_dev_pairs": None})
    assert cfg.sft.trainer_kwargs()["num_train_epochs"] == 3
    assert cfg.sft.trainer_kwargs()["learning_rate"] == 2e-4  # the default stays under the YAML
    assert (cfg.lora_kwargs()["r"], cfg.lora_kwargs()["lora_alpha"]) == (8, 32)
    assert (cfg.seed, cfg.max_dev_pairs, cfg.prompt.description_tokens) == (3, 1000, 16)
    path.write_text("peft: {r: 8}\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rat'\]"):
        load_config(TeacherTrainConfig, path, {})
    path.write_text("learning_rate: 0.1\n")  # a key that moved into a stage says where to
    with pytest.raises(ValueError, match=r"learning_rate is now sft\.args\.learning_rate"):
        load_config(TeacherTrainConfig, path, {})
    path.write_text("dpo: {beta: 0.3}\n")
    with pytest.raises(ValueError, match=r"beta is now dpo\.args\.beta"):
        load_config(TeacherTrainConfig, path, {})
    path.write_text("sft: {args: [1, 2]}\n")
    with pytest.raises(ValueError, match=r"sft\.args: expected a mapping"):
        load_config(TeacherTrainConfig, path, {})
    path.write_text("prompt:\n  fieldz: []\n")
    with pytest.raises(ValueError, match=r"prompt: unknown key\(s\) \['fieldz'\]"):
        load_config(TeacherTrainConfig, path, {})
    with pytest.raises(ValueError, match=r"sft\.target: expected 'soft' or 'hard'"):
        load_config(TeacherTrainConfig, None, {"sft": {"target": "fuzzy"}})


def test_train_then_score(tiny_base: Path, demo_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "teacher"
    args = [
        "teacher",
        "train",
        "--data",
        str(demo_data),
        "--base",
        str(tiny_base),
        "--out",
        str(out),
        "--max-train-pairs",
        "16",
        "--max-dev-pairs",
        "8",
        "--batch-size",
        "8",
        "--epochs",
        "1",
    ]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    scores = tmp_path / "scores.parquet"
    done = runner.invoke(
        app,
        [
            "score",
            "--model",
            str(out),
            "--data",
            str(demo_data),
            "--split",
            "dev",
            "--out",
            str(scores),
        ],
    )
    assert done.exit_code == 0, done.output
    frame = pd.read_parquet(scores)
    assert len(frame) == len(pd.read_parquet(demo_data / "dev.parquet"))
    assert {"pair_id", "score", "p_exact", "p_irrelevant"} <= set(frame.columns)
