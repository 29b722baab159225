"""A student run stopped part-way continues from its checkpoints: the same model, no epoch twice."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from shoprel.cli import app
from shoprel.student.train import META_FILE, StudentTrainConfig, train_cross_encoder


def student_config(tiny_bert: Path) -> StudentTrainConfig:
    return StudentTrainConfig(
        base=str(tiny_bert),
        max_train_pairs=128,
        max_dev_pairs=60,
        epochs=2,
        learning_rate=1e-3,
        batch_size=16,
        max_length=32,
        save_steps=4,
    )


class Stop(Exception):
    """The run is killed."""


def stop_after(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    """Make the trainer fail at the optimizer step after ``steps``."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainer

    original = CrossEncoderTrainer.training_step
    calls = {"n": 0}

    def training_step(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > steps:
            raise Stop
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CrossEncoderTrainer, "training_step", training_step)


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


def test_a_stopped_student_resumes_to_the_model_of_an_unbroken_run(
    tiny_bert: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = student_config(tiny_bert)
    unbroken = train_cross_encoder(cfg, demo_data, tmp_path / "unbroken")
    straight = [
        json.loads(line) for line in (unbroken / "dev_metrics.jsonl").read_text().splitlines()
    ]
    first_epoch = straight[0]["step"]  # whole queries: about 128 pairs, 16 a step
    done = first_epoch + 4  # stopped in epoch 2
    saved = sorted({*range(cfg.save_steps, done + 1, cfg.save_steps), first_epoch})
    assert saved[-1] > first_epoch  # the resume starts within epoch 2
    with monkeypatch.context() as patch:
        stop_after(patch, done)
        with pytest.raises(Stop):
            train_cross_encoder(cfg, demo_data, tmp_path / "stopped")
    checkpoints = tmp_path / "stopped" / "checkpoints"
    kept = sorted(int(d.name.split("-")[1]) for d in checkpoints.glob("checkpoint-*"))
    assert kept == saved[-2:]  # the newest two, one of them the end of epoch 1 or after it
    assert not (tmp_path / "stopped" / META_FILE).exists()
    resumed = train_cross_encoder(cfg, demo_data, tmp_path / "stopped", resume=True)

    meta = json.loads((resumed / META_FILE).read_text())
    assert meta["train"]["resumed_at_step"] == saved[-1] and not checkpoints.exists()
    epochs = [json.loads(line) for line in (resumed / "dev_metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1.0, 2.0]
    for key in ("pairwise_accuracy", "auc"):
        assert np.allclose([e[key] for e in epochs], [e[key] for e in straight], atol=1e-6)
    ours, theirs = weights(resumed), weights(unbroken)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.allclose(ours[name], theirs[name], atol=1e-5), name


def test_a_run_killed_in_its_last_dev_evaluation_evaluates_that_epoch_on_resume(
    tiny_bert: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shoprel.student.callbacks import BestEpochCallback

    cfg, out = student_config(tiny_bert), tmp_path / "stopped"
    evaluate, calls = BestEpochCallback._dev_metrics, {"n": 0}

    def killed_in_the_second(self: BestEpochCallback) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:  # the end of the last epoch, its steps all done
            raise Stop
        return evaluate(self)

    with monkeypatch.context() as patch:
        patch.setattr(BestEpochCallback, "_dev_metrics", killed_in_the_second)
        with pytest.raises(Stop):
            train_cross_encoder(cfg, demo_data, out)
    resumed = train_cross_encoder(cfg, demo_data, out, resume=True)
    epochs = [json.loads(line) for line in (resumed / "dev_metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1.0, 2.0]


def test_resume_refuses_checkpoints_of_other_settings(
    tiny_bert: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = student_config(tiny_bert)
    with monkeypatch.context() as patch:
        stop_after(patch, 4)
        with pytest.raises(Stop):
            train_cross_encoder(cfg, demo_data, tmp_path / "student")
    config = tmp_path / "student.yaml"
    config.write_text(yaml.safe_dump(asdict(cfg)))
    args = ["student", "train", "--data", str(demo_data), "--out", str(tmp_path / "student")]
    done = CliRunner().invoke(app, [*args, "--config", str(config), "--lr", "2e-3", "--resume"])
    assert done.exit_code != 0
    assert re.search(r"other settings \(learning_rate\)", str(done.exception))
    assert (tmp_path / "student" / "checkpoints" / "checkpoint-4").is_dir()  # nothing lost


def test_resume_without_checkpoints_trains_afresh(
    tiny_bert: Path, demo_data: Path, tmp_path: Path
) -> None:
    cfg = student_config(tiny_bert)
    cfg.epochs, cfg.save_steps = 1, 0
    out = train_cross_encoder(cfg, demo_data, tmp_path / "student", resume=True)
    meta = json.loads((out / META_FILE).read_text())
    assert meta["train"]["resumed_at_step"] is None and meta["train"]["best_epoch"] == 1.0
    assert not (out / "checkpoints").exists()


def test_a_finished_student_is_reused_whatever_its_checkpoint_interval(
    tiny_bert: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shoprel.student.train as student_train

    cfg = student_config(tiny_bert)
    cfg.epochs = 1
    out = student_train.train_or_reuse(cfg, demo_data, tmp_path / "student")
    before = weights(out)

    def trained_again(*args: Any, **kwargs: Any) -> Path:
        raise AssertionError("trained again")

    monkeypatch.setattr(student_train, "train_cross_encoder", trained_again)
    cfg.save_steps = 7  # does not shape the model
    assert student_train.train_or_reuse(cfg, demo_data, out) == out
    cfg.learning_rate = 2e-3
    with pytest.raises(AssertionError, match="trained again"):
        student_train.train_or_reuse(cfg, demo_data, out)  # another model: trained again
    assert all(torch.equal(before[k], v) for k, v in weights(out).items())
