"""``shoprel student export``: the ONNX graph against torch, the int8 gate, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from typer.testing import CliRunner

from shoprel.cli import app
from shoprel.data.schema import get_scale
from shoprel.scoring import load_scorer
from shoprel.serve import export
from shoprel.serve.export import QUANT_SETTINGS, ExportConfig, GateError, QuantSetting, export_onnx
from shoprel.serve.onnx_scorer import FP32_FILE, INT8_FILE, META_FILE, OnnxScorer, to_scores
from shoprel.student.scorer import CrossEncoderScorer, item_texts


def test_fp32_graph_scores_like_torch(
    serve_cross_encoder: Path, onnx_export: Path, demo_data: Path
) -> None:
    pairs = pd.read_parquet(demo_data / "test.parquet").head(60)
    long = pairs.head(2).assign(pair_id=["long-1", "long-2"], title="cordless drill kit " * 50)
    pairs = pd.concat([pairs, long], ignore_index=True)
    torch_scores = CrossEncoderScorer.load(serve_cross_encoder).predict(pairs)
    onnx_scores = OnnxScorer.load(onnx_export, onnx_file=FP32_FILE, threads=1).predict(pairs)
    assert onnx_scores["pair_id"].tolist() == pairs["pair_id"].tolist()
    assert torch_scores["score"].std() > 0.01
    np.testing.assert_allclose(onnx_scores["score"], torch_scores["score"], rtol=0, atol=1e-4)


def test_identity_activation_scores_like_torch(
    serve_cross_encoder: Path, demo_data: Path, tmp_path: Path
) -> None:
    student = tmp_path / "student"
    shutil.copytree(serve_cross_encoder, student)
    meta_path = student / "shoprel_cross_encoder.json"
    meta_path.write_text(json.dumps(json.loads(meta_path.read_text()) | {"activation": "identity"}))
    export_onnx(student, tmp_path / "onnx", ExportConfig())
    pairs = pd.read_parquet(demo_data / "test.parquet").head(40)
    torch_scores = CrossEncoderScorer.load(student).predict(pairs)["score"]
    scorer = OnnxScorer.load(tmp_path / "onnx", threads=1)
    onnx_scores = scorer.predict(pairs)["score"]
    assert json.loads((tmp_path / "onnx" / META_FILE).read_text())["activation"] == "identity"
    np.testing.assert_allclose(onnx_scores, torch_scores, rtol=0, atol=1e-4)
    texts = item_texts(pairs, scorer.fields)
    logits = scorer.logits(pairs["query"].tolist(), texts)
    np.testing.assert_allclose(onnx_scores, logits, rtol=0, atol=1e-6)  # the raw logit


def test_export_dir(onnx_export: Path) -> None:
    names = {path.name for path in onnx_export.iterdir()}
    assert {FP32_FILE, INT8_FILE, META_FILE, "tokenizer.json"} <= names
    assert not [name for name in names if name.startswith(".")], "staging files left behind"
    meta = json.loads((onnx_export / META_FILE).read_text())
    assert meta["onnx"]["default"] == INT8_FILE and meta["activation"] == "sigmoid"
    assert meta["quantization"]["setting"]["name"] == QUANT_SETTINGS[0].name
    assert meta["quantization"]["gate"] is None
    fp32 = onnx.load(onnx_export / FP32_FILE)
    for tensor in fp32.graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"], tensor.name
    int8_ops = {node.op_type for node in onnx.load(onnx_export / INT8_FILE).graph.node}
    assert int8_ops & {"MatMulInteger", "DynamicQuantizeMatMul"}


def test_int8_graph_runs_and_differs_from_fp32(onnx_export: Path) -> None:
    queries, texts = ["cordless drill"] * 3, ["18V drill kit", "paint", "copper elbow " * 30]
    fp32 = OnnxScorer.load(onnx_export, onnx_file=FP32_FILE, threads=1)
    int8 = OnnxScorer.load(onnx_export, threads=1)  # the default file
    got, expected = int8.score_texts(queries, texts), fp32.score_texts(queries, texts)
    assert got.shape == (3,) and np.isfinite(got).all()
    assert 0 < np.abs(got - expected).max() < 0.5


def test_load_scorer_knows_the_export(serve_cross_encoder: Path, onnx_export: Path) -> None:
    scorer = load_scorer(onnx_export, int8=True, batch_size=4, prefix_sharing=True)
    assert isinstance(scorer, OnnxScorer) and scorer.batch_size == 4
    fp32_only = onnx_export.parent / "fp32-only"
    export_onnx(serve_cross_encoder, fp32_only, ExportConfig())
    assert json.loads((fp32_only / META_FILE).read_text())["onnx"]["default"] == FP32_FILE
    assert not (fp32_only / INT8_FILE).exists()
    with pytest.raises(FileNotFoundError, match=r"no model_int8\.onnx; export again with --int8"):
        load_scorer(fp32_only, int8=True)


def test_scores_follow_the_activation() -> None:
    scale = get_scale("esci")
    logits = np.array([-2.0, 0.0, 0.5])
    sigmoid = to_scores(logits, scale)
    np.testing.assert_allclose(
        sigmoid, scale.low + (scale.high - scale.low) / (1 + np.exp(-logits))
    )
    np.testing.assert_allclose(to_scores(logits, scale, "identity"), logits)
    with pytest.raises(ValueError, match="activation: expected one of"):
        to_scores(logits, scale, "softmax")


def write_negated(fp32: Path, out: Path) -> None:
    """The fp32 graph with its logit negated: a model that ranks every item backwards."""
    model = onnx.load(fp32)
    name = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [f"{name}_raw" if o == name else o for o in node.output]
    model.graph.node.append(onnx.helper.make_node("Neg", [f"{name}_raw"], [name]))
    onnx.save(model, out)


def test_gate_refuses_a_bad_int8_model(
    serve_cross_encoder: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "quantize", lambda fp32, out, setting: write_negated(fp32, out))
    cfg = ExportConfig(int8=True, data=demo_data, gate_pairs=200)
    out = tmp_path / "onnx"
    with pytest.raises(GateError, match="fails the accuracy gate") as refused:
        export_onnx(serve_cross_encoder, out, cfg)
    for setting in QUANT_SETTINGS:
        assert f"{setting.name}: Spearman -1.0000" in str(refused.value)
    assert list(out.iterdir()) == []  # nothing written, no staging left

    cfg.force = True
    meta = export_onnx(serve_cross_encoder, out, cfg)
    gate = meta["quantization"]["gate"]
    assert (gate["passed"], gate["forced"], len(gate["tried"])) == (False, True, 4)
    assert gate["pairs"] >= 200
    pairs = pd.read_parquet(demo_data / "dev.parquet").head(20)
    fp32 = OnnxScorer.load(out, onnx_file=FP32_FILE).predict(pairs)["score"].to_numpy()
    int8 = OnnxScorer.load(out).predict(pairs)["score"].to_numpy()
    scale = get_scale("esci")
    np.testing.assert_allclose(int8, scale.low + scale.high - fp32, atol=1e-5)


def test_an_export_that_fails_leaves_the_export_before_it_whole(
    serve_cross_encoder: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "onnx"
    export_onnx(serve_cross_encoder, out, ExportConfig())
    pairs = pd.read_parquet(demo_data / "dev.parquet").head(20)
    before = OnnxScorer.load(out).predict(pairs)["score"].to_numpy()
    monkeypatch.setattr(export, "quantize", lambda fp32, out, setting: write_negated(fp32, out))
    with pytest.raises(GateError):
        export_onnx(
            serve_cross_encoder, out, ExportConfig(int8=True, data=demo_data, gate_pairs=200)
        )
    assert (out / META_FILE).is_file() and not (out / INT8_FILE).exists()
    np.testing.assert_array_equal(load_scorer(out).predict(pairs)["score"].to_numpy(), before)


def test_forced_int8_never_keeps_a_setting_with_constant_scores(
    serve_cross_encoder: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_quantize(fp32: Path, out: Path, setting: QuantSetting) -> None:
        write_negated(fp32, out)
        if setting == QUANT_SETTINGS[0]:  # every score the same: Spearman is NaN
            model = onnx.load(out)
            for node in model.graph.node:
                if node.op_type == "Neg":
                    node.op_type, node.input[:] = "Sub", [node.input[0], node.input[0]]
            onnx.save(model, out)

    monkeypatch.setattr(export, "quantize", fake_quantize)
    cfg = ExportConfig(int8=True, data=demo_data, gate_pairs=200, force=True)
    quantization = export_onnx(serve_cross_encoder, tmp_path / "onnx", cfg)["quantization"]
    assert np.isnan(quantization["gate"]["tried"][QUANT_SETTINGS[0].name]["spearman"])
    assert quantization["setting"]["name"] == QUANT_SETTINGS[1].name


def test_gate_keeps_the_first_setting_that_passes(
    serve_cross_encoder: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_quantize(fp32: Path, out: Path, setting: QuantSetting) -> None:
        if setting == QUANT_SETTINGS[0]:
            write_negated(fp32, out)
        else:
            shutil.copyfile(fp32, out)

    monkeypatch.setattr(export, "quantize", fake_quantize)
    cfg = ExportConfig(int8=True, data=demo_data, gate_pairs=200)
    meta = export_onnx(serve_cross_encoder, tmp_path / "onnx", cfg)
    quantization = meta["quantization"]
    assert quantization["setting"]["name"] == QUANT_SETTINGS[1].name
    assert list(quantization["gate"]["tried"]) == [s.name for s in QUANT_SETTINGS[:2]]
    second = quantization["gate"]["tried"][QUANT_SETTINGS[1].name]
    assert second["spearman"] == pytest.approx(1.0) and second["pairwise_loss"] == 0
    assert quantization["gate"]["passed"] and not quantization["gate"]["forced"]


def test_cli_export_then_score(serve_cross_encoder: Path, demo_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "onnx"
    args = ["student", "export", "--model", str(serve_cross_encoder), "--out", str(out)]
    gate = ["--int8", "--data", str(demo_data), "--gate-pairs", "100", "--force"]
    done = runner.invoke(app, args + gate)
    assert done.exit_code == 0, done.output
    assert {FP32_FILE, INT8_FILE, META_FILE} <= {p.name for p in out.iterdir()}
    assert json.loads((out / META_FILE).read_text())["quantization"]["gate"]["pairs"] >= 100
    scores = tmp_path / "scores.parquet"
    command = ["score", "--model", str(out), "--data", str(demo_data), "--out", str(scores)]
    done = runner.invoke(app, command)
    assert done.exit_code == 0, done.output
    pairs = pd.read_parquet(demo_data / "test.parquet")
    expected = OnnxScorer.load(out).predict(pairs)
    pd.testing.assert_frame_equal(pd.read_parquet(scores), expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["student", "export"], "not a cross-encoder saved by `shoprel student train`"),
        (["serve"], "not a model to serve"),
    ],
)
def test_cli_refuses_a_dir_without_a_model(args: list[str], message: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "shoprel.cli", *args, "--model", str(tmp_path)]
    if args[0] == "student":
        command += ["--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split())


def test_gate_keeps_the_setting_that_passed_over_a_closer_one(
    serve_cross_encoder: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = iter(
        [  # the first is closer to fp32 but loses pairwise accuracy; the second passes
            {"spearman": 0.999, "pairwise_loss": 0.02},
            {"spearman": 0.995, "pairwise_loss": 0.0},
        ]
    )

    def fake_figures(*_: object) -> dict[str, float]:
        return next(figures) | {"pairwise_accuracy_fp32": 0.7, "pairwise_accuracy_int8": 0.7}

    monkeypatch.setattr(export, "quantize", lambda fp32, out, setting: shutil.copyfile(fp32, out))
    monkeypatch.setattr(export, "gate_figures", fake_figures)
    cfg = ExportConfig(int8=True, data=demo_data, gate_pairs=50)
    quantization = export_onnx(serve_cross_encoder, tmp_path / "onnx", cfg)["quantization"]
    assert quantization["setting"]["name"] == QUANT_SETTINGS[1].name
    assert quantization["gate"]["passed"] and len(quantization["gate"]["tried"]) == 2
