"""What ``train_teacher(..., resume=True)`` reuses, continues or trains afresh, with each stage's
``run`` replaced by one that only records its call (the stages' own resume is tested in
``test_teacher.py`` and ``test_lref_cli.py`` on a tiny model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from shoprel.teacher.config import SelectConfig, TeacherTrainConfig
from shoprel.teacher.train import train_teacher

Calls = list[tuple[str, bool]]


@pytest.fixture
def data(demo_data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(demo_data, tmp_path / "data"))


def change_dev(data: Path) -> None:
    dev = pd.read_parquet(data / "dev.parquet")
    dev.iloc[1:].to_parquet(data / "dev.parquet", index=False)


def test_a_finished_sft_judge_is_reused_where_its_data_moved_and_retrained_on_other_dev(
    stage_calls: Calls, data: Path, tmp_path: Path
) -> None:
    cfg, out = TeacherTrainConfig(max_train_pairs=32), tmp_path / "judge"
    train_teacher(cfg, data, out)
    train_teacher(cfg, data, out, resume=True)
    assert stage_calls == [("sft", False)]  # finished: reused, not continued
    (tmp_path / "elsewhere").mkdir()
    moved = Path(shutil.move(data, tmp_path / "elsewhere" / "data"))
    train_teacher(cfg, moved, out, resume=True)
    assert stage_calls == [("sft", False)]  # the same files in a moved run dir
    change_dev(moved)  # dev picks the judge's epoch: another dev is another judge
    train_teacher(cfg, moved, out, resume=True)
    assert stage_calls == [("sft", False), ("sft", False)]


def test_an_unfinished_sft_judge_continues(stage_calls: Calls, data: Path, tmp_path: Path) -> None:
    cfg, out = TeacherTrainConfig(max_train_pairs=32), tmp_path / "judge"
    train_teacher(cfg, data, out)
    (out / "metrics.json").unlink()  # stopped before the stage recorded its end
    train_teacher(cfg, data, out, resume=True)
    assert stage_calls == [("sft", False), ("sft", True)]


def test_lref_stages_start_afresh_on_other_dev_and_their_judge_is_not_taken_for_sft_alone(
    stage_calls: Calls, data: Path, tmp_path: Path
) -> None:
    lref = TeacherTrainConfig(max_train_pairs=32, select=SelectConfig(method="random", frac=0.5))
    out = tmp_path / "judge"
    train_teacher(lref, data, out)
    train_teacher(lref, data, out, resume=True)
    assert stage_calls == [("select", False), ("sft", False)]
    assert json.loads((out / "lref.json").read_text())["pairs"]["selected"] == 16
    change_dev(data)
    train_teacher(lref, data, out, resume=True)
    assert stage_calls[2:] == [("select", False), ("sft", False)]
    train_teacher(TeacherTrainConfig(max_train_pairs=32), data, out, resume=True)
    assert stage_calls[4:] == [("sft", False)]  # OUT held the LREF judge, not SFT's alone
    train_teacher(lref, data, out, resume=True)
    assert stage_calls[5:] == []  # the LREF stages are still there, finished
    published = json.loads((out / "model.safetensors").read_text())
    assert published == {"stage": "sft", "run": 4}  # published again from sft/


def test_resume_warns_of_a_start_afresh_only_where_the_dir_held_something(
    stage_calls: Calls, data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "judge"
    out.mkdir()  # a new output dir made beforehand holds no other start
    train_teacher(TeacherTrainConfig(max_train_pairs=32), data, out, resume=True)
    assert "other settings" not in caplog.text
    train_teacher(TeacherTrainConfig(max_train_pairs=24), data, out, resume=True)
    assert "was started with other settings or pairs: afresh" in caplog.text
    assert stage_calls == [("sft", False), ("sft", False)]


def test_a_killed_start_with_other_settings_is_not_mistaken_for_a_finished_judge(
    stage_calls: Calls, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shoprel.teacher.train as teacher_train

    out = tmp_path / "judge"
    train_teacher(TeacherTrainConfig(max_train_pairs=32), data, out)
    recorder = teacher_train.stage_module

    class Killed:
        def __init__(self, name: str) -> None:
            pass

        def run(self, *args: object, **kwargs: object) -> Path:
            raise KeyboardInterrupt  # killed while training with the new settings

    monkeypatch.setattr(teacher_train, "stage_module", Killed)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(TeacherTrainConfig(max_train_pairs=24), data, out)
    monkeypatch.setattr(teacher_train, "stage_module", recorder)
    train_teacher(TeacherTrainConfig(max_train_pairs=24), data, out, resume=True)
    assert stage_calls == [("sft", False), ("sft", True)]  # trained on, not the 32-pair judge


def test_a_selection_is_made_again_when_the_sft_settings_its_judges_train_with_change(
    stage_calls: Calls, data: Path, tiny_base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "judge"

    def lref(select: str, lr: float) -> TeacherTrainConfig:
        sft = {"args": {"learning_rate": lr}}
        return TeacherTrainConfig(
            base=str(tiny_base), max_train_pairs=32, select=SelectConfig(method=select), sft=sft
        )

    train_teacher(lref("lref", 1e-4), data, out)
    train_teacher(lref("lref", 1e-3), data, out, resume=True)  # its auxiliary judges' too
    assert stage_calls == [("select", False), ("sft", False)] * 2
    train_teacher(lref("random", 1e-3), data, out, resume=True)
    train_teacher(lref("random", 1e-4), data, out, resume=True)  # no auxiliary judges
    assert stage_calls[4:] == [("select", False), ("sft", False), ("sft", False)]


def test_publishing_a_judge_drops_the_model_files_of_the_judge_before_it(tmp_path: Path) -> None:
    from shoprel.teacher.stage_io import publish

    stage, out = tmp_path / "sft", tmp_path / "out"
    stage.mkdir(), out.mkdir()
    for name in ("model.safetensors", "config.json", "tokenizer.json", "shoprel_teacher.json"):
        (stage / name).write_text(name)
    (stage / "metrics.json").write_text("{}")  # the stage's own, not the judge's
    earlier = ("model-00001-of-00002.safetensors", "vocab.json", "merges.txt", "tokenizer.json")
    for name in (*earlier, "lref.json"):
        (out / name).write_text("earlier")
    publish(stage, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "lref.json", "model.safetensors", "shoprel_teacher.json", "tokenizer.json"
    ]  # fmt: skip
    assert (out / "tokenizer.json").read_text() == "tokenizer.json"
