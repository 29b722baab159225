"""Config files: a value of the wrong type is an error that names the file and the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from shoprel.config import from_dict
from shoprel.pipeline.config import load_pipeline_config


@dataclass
class Inner:
    learning_rate: float = 1e-4
    steps: int = 10
    mode: Literal["soft", "hard"] = "soft"
    limit: int | None = None


@dataclass
class Outer:
    name: str = "run"
    inputs: list[Path] = field(default_factory=list)
    fast: bool = False
    inner: Inner = field(default_factory=Inner)


def test_values_take_their_fields_types() -> None:
    values = {"name": 2024, "inputs": "data/train.csv", "inner": {"learning_rate": "2e-5"}}
    cfg = from_dict(Outer, values, "run.yaml")
    assert cfg.name == "2024" and cfg.inputs == [Path("data/train.csv")]
    assert cfg.inner.learning_rate == pytest.approx(2e-5) and cfg.inner.limit is None
    assert from_dict(Inner, {"learning_rate": 1, "limit": None}).learning_rate == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"inner": {"steps": "3"}},
            r"run\.yaml\.inner\.steps: expected a whole number, got str '3'",
        ),
        ({"inner": {"steps": 2.5}}, r"run\.yaml\.inner\.steps: expected a whole number"),
        (
            {"inner": {"learning_rate": "fast"}},
            r"run\.yaml\.inner\.learning_rate: expected a number",
        ),
        (
            {"inner": {"mode": "sofft"}},
            r"run\.yaml\.inner\.mode: expected one of \['soft', 'hard'\]",
        ),
        ({"name": None}, r"run\.yaml\.name: expected text, got nothing"),
        ({"fast": "yes"}, r"run\.yaml\.fast: expected true or false"),
        ({"inputs": {"a": 1}}, r"run\.yaml\.inputs: expected a list"),
        ({"inner": {"limit": "many"}}, r"run\.yaml\.inner\.limit: expected a whole number"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_file_and_key(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_dict(Outer, values, "run.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name:\ndata: {source: demo}\n", r"shop\.yaml\.name: expected text, got nothing"),
        ("label: {shard_size: 0}\n", r"shop\.yaml\.label: .*shard_size"),  # the field's own check
        ("1: a\nfoo: b\n", r"shop\.yaml: unknown key\(s\) \['1', 'foo'\]"),  # not a crash
    ],
)
def test_a_bad_pipeline_file_names_itself_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_pipeline_config(path)


def test_one_input_file_is_a_list_of_one(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text("name: shop\ndata: {source: homedepot, inputs: data/train.csv}\n")
    assert load_pipeline_config(path).data.inputs == [Path("data/train.csv")]


def test_the_cli_prints_brackets_in_an_error_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoprel import cli

    path = tmp_path / "shop.yaml"
    path.write_text("'[/b]': 1\n'[bm25]': 2\n")
    monkeypatch.setattr("sys.argv", ["shoprel", "pipeline", "--config", str(path)])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 2
    assert "['[/b]', '[bm25]']" in capsys.readouterr().err.replace("\n", "")
