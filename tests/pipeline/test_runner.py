"""The pipeline runner: skipping by fingerprint, --from, failures, typed config."""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from shoprel.io import write_json
from shoprel.pipeline.config import PipelineConfig, config_yaml, load_pipeline_config
from shoprel.pipeline.runner import Stage, StageError, run_pipeline


def toy_stages(calls: list[str], fail: str | None = None) -> list[Stage]:
    def make(name: str):
        def run(cfg: PipelineConfig, out: Path) -> dict[str, Any]:
            calls.append(name)
            if name == fail:
                raise RuntimeError("boom")
            (out / f"{name}.txt").write_text(name)
            return {"wrote": name}

        return run

    return [
        Stage("prepare", make("prepare"), lambda c: c.data),
        Stage("augment", make("augment"), lambda c: c.augment),
        Stage("label", make("label"), lambda c: c.label),
    ]


def test_unchanged_stages_are_skipped_and_a_change_redoes_what_follows(tmp_path: Path) -> None:
    cfg, calls = PipelineConfig(), []
    run_pipeline(cfg, tmp_path, toy_stages(calls))
    assert calls == ["prepare", "augment", "label"]
    records = run_pipeline(cfg, tmp_path, toy_stages(calls))
    assert calls == ["prepare", "augment", "label"]  # nothing ran again
    assert all(r["skipped"] for r in records.values())
    cfg.augment.bm25_k += 1
    run_pipeline(cfg, tmp_path, toy_stages(calls))
    assert calls[3:] == ["augment", "label"]  # prepare stays, the changed stage and after rerun
    assert "stage augment: running" in (tmp_path / "log.txt").read_text()


def test_inputs_count_by_content_not_modification_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("query,title\ndrill,cordless drill\n")
    cfg, calls, out = PipelineConfig(), [], tmp_path / "run"
    cfg.data.inputs = [data]
    run_pipeline(cfg, out, toy_stages(calls))
    os.utime(data / "train.csv", ns=(0, 0))  # a copy or a fresh mount: same bytes, new time
    run_pipeline(cfg, out, toy_stages(calls))
    assert calls == ["prepare", "augment", "label"]
    (data / "train.csv").write_text("query,title\ndrill,corded drill\n")
    run_pipeline(cfg, out, toy_stages(calls))
    assert calls[3:] == ["prepare", "augment", "label"]


def test_from_redoes_a_stage_and_the_ones_after(tmp_path: Path) -> None:
    cfg, calls = PipelineConfig(), []
    run_pipeline(cfg, tmp_path, toy_stages(calls))
    run_pipeline(cfg, tmp_path, toy_stages(calls), from_stage="augment")
    assert calls[3:] == ["augment", "label"]
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        run_pipeline(cfg, tmp_path, toy_stages(calls), from_stage="nope")


def test_a_from_run_cut_short_leaves_no_stage_after_it_up_to_date(tmp_path: Path) -> None:
    cfg, calls = PipelineConfig(), []
    run_pipeline(cfg, tmp_path, toy_stages(calls))
    with pytest.raises(StageError):
        run_pipeline(cfg, tmp_path, toy_stages(calls, fail="prepare"), from_stage="prepare")
    run_pipeline(cfg, tmp_path, toy_stages(calls))
    assert calls[3:] == ["prepare", "prepare", "augment", "label"]  # none kept from before


def test_a_failing_stage_is_named_and_earlier_outputs_stay(tmp_path: Path) -> None:
    cfg, calls = PipelineConfig(), []
    with pytest.raises(StageError, match="stage 'augment' failed: RuntimeError: boom"):
        run_pipeline(cfg, tmp_path, toy_stages(calls, fail="augment"))
    assert (tmp_path / "prepare.txt").is_file() and not (tmp_path / "label.txt").exists()
    assert (tmp_path / "stages" / "prepare.json").is_file()
    assert not (tmp_path / "stages" / "augment.json").exists()
    run_pipeline(cfg, tmp_path, toy_stages(calls))  # the fix: resumes at the failed stage
    assert calls[2:] == ["augment", "label"]


def test_config_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\naugment:\n  bm25_k: 3\n  bm25_kk: 4\n")
    with pytest.raises(ValueError, match=r"augment: unknown key\(s\) \['bm25_kk'\]"):
        load_pipeline_config(path)
    path.write_text(
        "name: x\ndata:\n  source: demo\n  inputs: [a.csv]\nteacher:\n  judge:\n    peft: {r: 4}\n"
    )
    cfg = load_pipeline_config(path, data=["b.csv"])
    assert cfg.teacher.judge.lora_kwargs()["r"] == 4 and [str(p) for p in cfg.data.inputs] == [
        "b.csv"
    ]


def test_a_section_changes_only_the_keys_it_names(tmp_path: Path) -> None:
    """The pipeline's export defaults to int8 on; an export section that names other keys keeps
    it on, and an empty section is the defaults."""
    path = tmp_path / "run.yaml"
    path.write_text("export:\n  gate_pairs: 300\nlabel:\n")
    cfg = load_pipeline_config(path)
    assert cfg.export.int8 is True and cfg.export.gate_pairs == 300
    assert cfg.label == PipelineConfig().label
    path.write_text("export:\n  int8: false\n")
    assert load_pipeline_config(path).export.int8 is False


def test_a_section_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("name: x\ndata: 5\n")
    with pytest.raises(ValueError, match=r"run.yaml.data: expected a mapping of keys, got int 5"):
        load_pipeline_config(path)


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("name: x\naugment:\n  bm25_k: [3\n  dense_k: 2\n")
    with pytest.raises(ValueError, match=r"run.yaml:\d+:\d+: not valid YAML") as error:
        load_pipeline_config(path)
    assert error.value.__cause__ is None  # the message, not the parser's traceback


def test_shipped_configs_load() -> None:
    for path in sorted(Path(__file__).parents[2].glob("configs/*.yaml")):
        assert load_pipeline_config(path).name


def test_a_rerun_stage_reuses_models_finished_with_the_same_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A student stage stopped after its first model trains only the models still missing, and
    a model whose settings changed is trained again; one stopped part-way resumes."""
    import shoprel.student.train as student_train
    from shoprel.pipeline.stages import run_student

    trained: list[str] = []
    resumed: dict[str, bool] = {}

    def fake_train(cfg: Any, data_dir: Path, out: Path, resume: bool = False) -> Path:
        trained.append(Path(out).name)
        resumed[Path(out).name] = resume
        write_json(
            student_train.run_settings(cfg, data_dir),
            Path(out) / student_train.CHECKPOINTS / student_train.SETTINGS_FILE,
        )
        write_json({"train": asdict(cfg) | {"seconds": 1.0}}, Path(out) / student_train.META_FILE)
        return Path(out)

    monkeypatch.setattr(student_train, "train_cross_encoder", fake_train)
    write_json({"result": {"members": {}}}, tmp_path / "stages" / "teacher.json")
    cfg = PipelineConfig()
    cfg.student.curve_fracs = [0.5]
    run_student(cfg, tmp_path)
    assert trained == ["student", "student-labels", "student-augment-0.5"]
    assert not any(resumed.values())
    (tmp_path / "student-labels" / student_train.META_FILE).unlink()  # stopped before it finished
    run_student(cfg, tmp_path)
    assert trained[3:] == ["student-labels"] and resumed["student-labels"]  # from its checkpoints
    cfg.student.model.learning_rate *= 2
    run_student(cfg, tmp_path)
    assert trained[4:] == ["student", "student-labels", "student-augment-0.5"]
    assert not any(resumed.values())  # the checkpoints of other settings are not taken up
    run_student(cfg, tmp_path)
    assert len(trained) == 7  # the same settings and inputs: reused
    (tmp_path / "labels-augment").mkdir()
    (tmp_path / "labels-augment" / "labels.parquet").write_bytes(b"other labels")
    run_student(cfg, tmp_path)  # the distilled students learn these labels: trained again
    assert trained[7:] == ["student", "student-augment-0.5"] and not any(resumed.values())
    (tmp_path / "labels-augment" / "label_report.json").write_text('{"seconds": 2}')
    run_student(cfg, tmp_path)  # the same labels scored again, at another speed: reused
    assert len(trained) == 9
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.parquet").write_bytes(b"another split")
    run_student(cfg, tmp_path)  # every model learns the split
    assert trained[9:] == ["student", "student-labels", "student-augment-0.5"]


def test_from_removes_what_the_stage_trained(tmp_path: Path) -> None:
    calls: list[str] = []
    stages = toy_stages(calls)
    stages[1] = replace(stages[1], outputs=("augment-*",))
    (tmp_path / "augment-model").mkdir(parents=True)
    (tmp_path / "augment-model" / "weights").write_text("from before")
    (tmp_path / "kept").mkdir()
    run_pipeline(PipelineConfig(), tmp_path, stages)
    assert (tmp_path / "augment-model" / "weights").is_file()  # a first run may resume it
    run_pipeline(PipelineConfig(), tmp_path, stages, from_stage="augment")
    assert not (tmp_path / "augment-model").exists() and (tmp_path / "kept").is_dir()
    assert calls == ["prepare", "augment", "label", "augment", "label"]


def test_show_config_prints_every_key_and_reads_back_the_same(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from shoprel.cli import app

    shipped = Path(__file__).parents[2] / "configs" / "quickstart.yaml"
    done = CliRunner().invoke(app, ["pipeline", "--config", str(shipped), "--show-config"])
    assert done.exit_code == 0, done.output
    assert "curve_fracs:" in done.output and "bm25_k: 3" in done.output  # a default and a set key
    printed = tmp_path / "full.yaml"
    printed.write_text(done.output)
    assert config_yaml(load_pipeline_config(printed)) == done.output


def test_a_rerun_teacher_stage_reuses_the_judge_until_its_settings_change(
    stage_calls: list[tuple[str, bool]], demo_data: Path, tmp_path: Path
) -> None:
    import shutil

    from shoprel.pipeline.stages import _judge
    from shoprel.teacher.config import SelectConfig

    shutil.copytree(demo_data, tmp_path / "data")
    judge = replace(PipelineConfig().teacher.judge, max_train_pairs=32)
    judge.select = SelectConfig(method="random", frac=0.5)
    model_dir = tmp_path / "teacher" / "judge"
    _judge(judge, tmp_path, model_dir)
    _judge(judge, tmp_path, model_dir)  # the same settings: nothing trains again
    assert stage_calls == [("select", False), ("sft", False)]
    judge.select.frac = 0.25
    _judge(judge, tmp_path, model_dir)
    assert stage_calls[2:] == [("select", False), ("sft", False)]


def test_the_label_only_student_is_the_member_trained_with_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a cross-encoder member learned the labels with the label-only student's settings,
    the student stage takes that model instead of training it again; other settings train."""
    import shoprel.student.train as student_train
    from shoprel.pipeline.stages import LABEL_ONLY, run_student

    trained: list[str] = []

    def fake_train(cfg: Any, data_dir: Path, out: Path, resume: bool = False) -> Path:
        trained.append(Path(out).name)
        write_json({"train": asdict(cfg)}, Path(out) / student_train.META_FILE)
        return Path(out)

    monkeypatch.setattr(student_train, "train_cross_encoder", fake_train)
    cfg = PipelineConfig()
    member = tmp_path / "teacher" / "ce-minilm-l6"
    member_cfg = replace(cfg.student.model, labels=[], loss="labels")
    write_json({"train": asdict(member_cfg)}, member / student_train.META_FILE)
    members = {"judge": str(tmp_path / "teacher" / "judge"), "ce-minilm-l6": str(member)}
    members["cosine-minilm-l6"] = "minilm-l6"
    write_json({"result": {"members": members}}, tmp_path / "stages" / "teacher.json")
    result = run_student(cfg, tmp_path)
    assert trained == ["student"] and result[LABEL_ONLY] == str(member)
    cfg.student.model.max_train_pairs += 1  # not the member's settings any more
    result = run_student(cfg, tmp_path)
    assert trained[1:] == ["student", "student-labels"]
    assert result[LABEL_ONLY] == str(tmp_path / "student-labels")


def test_the_labels_follow_the_train_queries_the_students_take() -> None:
    from shoprel.pipeline.runner import fingerprint
    from shoprel.pipeline.stages import STAGES

    label = next(stage for stage in STAGES if stage.name == "label")
    cfg = PipelineConfig()
    before = fingerprint(label, cfg, "")
    cfg.student.model.max_train_pairs += 1000
    assert fingerprint(label, cfg, "") != before
    cfg = PipelineConfig()
    cfg.student.model.epochs += 1  # what the students do with the labels: not the labels
    assert fingerprint(label, cfg, "") == before
