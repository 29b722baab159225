"""``shoprel student export``: a trained cross-encoder to ONNX, optionally int8, behind a gate.

    shoprel student export --model runs/hd/ce-minilm --out runs/hd/onnx --int8 --data runs/hd/data

1. The model (a dir of ``shoprel student train``) is traced by torch's TorchScript exporter
   (``dynamo=False``: the dynamo exporter needs ``onnxscript``, which shoprel does not install) with
   dynamic batch and sequence axes, and checked against torch on a padded batch.
2. With ``--int8``, onnxruntime's dynamic quantization tries the :data:`QUANT_SETTINGS` in order
   and keeps the first whose scores on a dev sample (``--data``: whole dev queries) agree with fp32:
   Spearman >= 0.99 and at most 0.005 pairwise accuracy lost. If none passes the export stops with
   the figures of each, unless ``--force`` (which keeps the best by Spearman). Without ``--data``
   the gate is skipped with a warning and the first setting is kept.
3. With ``--data``, the default model's scores on dev are calibrated (:mod:`shoprel.serve.
   calibration`): P(relevant), the expected label and the thresholds for precision 0.9 and 0.95
   go into the meta, and every reader of the export applies them.
4. Files go to a staging dir first and move into ``--out`` together; :data:`META_FILE` is written
   last, so a dir with a meta file is always complete.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.schema import get_scale
from shoprel.io import read_json, write_json
from shoprel.serve.onnx_scorer import FP32_FILE, INT8_FILE, META_FILE, OnnxScorer

logger = logging.getLogger(__name__)
MAX_FP32_DIFF = 1e-4
"""Largest logit difference allowed between the fp32 graph and torch on the check batch."""


@dataclass(frozen=True)
class QuantSetting:
    """One way to run ``quantize_dynamic`` (int8 weights, activations quantized per batch)."""

    name: str
    per_channel: bool
    reduce_range: bool


QUANT_SETTINGS: tuple[QuantSetting, ...] = (
    QuantSetting("per-channel", per_channel=True, reduce_range=False),
    QuantSetting("per-channel-reduce-range", per_channel=True, reduce_range=True),
    QuantSetting("per-tensor", per_channel=False, reduce_range=False),
    QuantSetting("per-tensor-reduce-range", per_channel=False, reduce_range=True),
)
"""Tried in this order. Per-channel weight scales first: on MiniLM-L6 per-tensor int8 kept a
Spearman of only about 0.98 with fp32 against 0.996 per-channel. Reduced range (7-bit weights)
avoids overflow in the int8 kernels of CPUs without VNNI."""


@dataclass
class ExportConfig:
    """Exporting a cross-encoder.

    int8 (bool, defaults to False): also write ``model_int8.onnx`` and make it the default.
    data (Path, optional): prepared data dir whose dev split feeds the int8 gate and the
        calibration.
    force (bool, defaults to False): write the int8 model even if it fails the gate.
    gate_pairs (int, defaults to 2000): dev pairs (whole queries) in the gate sample.
    calibration_pairs (int, defaults to 20000): dev pairs (whole queries) the calibration is
        fitted on.
    min_spearman (float, defaults to 0.99): least Spearman correlation of int8 with fp32 scores.
    max_pairwise_loss (float, defaults to 0.005): most pairwise accuracy int8 may lose.
    opset (int, defaults to 17), seed (int, defaults to 0): ONNX opset; gate sampling seed.
    """

    int8: bool = False
    data: Path | None = None
    force: bool = False
    gate_pairs: int = 2000
    calibration_pairs: int = 20_000
    min_spearman: float = 0.99
    max_pairwise_loss: float = 0.005
    opset: int = 17
    seed: int = 0

    def __post_init__(self) -> None:
        if self.gate_pairs < 2:
            raise ValueError(f"gate_pairs: expected >= 2, got {self.gate_pairs}")


class GateError(ValueError):
    """The int8 model scores too differently from fp32 under every setting tried."""


def read_cross_encoder_meta(model_dir: Path) -> dict[str, Any]:
    from shoprel.scoring import CROSS_ENCODER_META

    path = model_dir / CROSS_ENCODER_META
    if not path.is_file():
        raise FileNotFoundError(
            f"{model_dir}: not a cross-encoder saved by `shoprel student train` "
            f"(no {CROSS_ENCODER_META}); pass --model the dir given to --out there"
        )
    meta = read_json(path)
    missing = [key for key in ("scale", "fields", "max_length") if key not in meta]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; train the model again")
    return meta | {"activation": meta.get("activation", "sigmoid")}


def export_fp32(model_dir: Path, stage: Path, max_length: int, opset: int) -> None:
    """Tokenizer files, ``config.json`` and ``model.onnx`` (logits [batch, 1]) into ``stage``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{model_dir}: the export needs a fast tokenizer (tokenizer.json)")
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    if model.config.num_labels != 1:
        raise ValueError(
            f"{model_dir}: expected a cross-encoder with one output (num_labels=1), "
            f"got num_labels={model.config.num_labels}"
        )
    tokenizer.save_pretrained(stage)
    model.config.save_pretrained(stage)  # the architecture, for readers that count operations
    batch = check_batch(tokenizer, max_length)
    # the graph's inputs follow forward()'s parameters, whatever the order of the dict passed in
    names = [name for name in inspect.signature(model.forward).parameters if name in batch]
    batch = {name: batch[name] for name in names}
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and trace notes
        torch.onnx.export(
            model,
            (dict(batch),),
            str(stage / FP32_FILE),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
        expected = model(**batch).logits.numpy()
    check_graph(stage / FP32_FILE, batch, expected)


def check_batch(tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Pairs of unequal length (so the batch is padded) and one longer than ``max_length``."""
    queries = ["cordless drill", "paint", "1/2 in. copper pipe fitting"]
    texts = ["18V brushless drill kit | DEWALT", "interior paint " * 64, "elbow"]
    return dict(
        tokenizer(
            queries,
            texts,
            padding=True,
            truncation="longest_first",
            max_length=max_length,
            return_tensors="pt",
        )
    )


def check_graph(path: Path, batch: dict[str, Any], expected: np.ndarray) -> None:
    """The exported graph runs on this CPU and gives the torch logits."""
    from shoprel.serve.onnx_scorer import load_session

    session = load_session(path, threads=1)
    names = {node.name for node in session.get_inputs()}
    feed = {name: value.numpy() for name, value in batch.items() if name in names}
    got = session.run(None, feed)[0]
    diff = float(np.abs(got - expected).max())
    if got.shape != expected.shape or diff > MAX_FP32_DIFF:
        raise ValueError(
            f"{path.name}: the ONNX graph disagrees with torch (shape {got.shape} vs "
            f"{expected.shape}, max |Δlogit| {diff:.2e} > {MAX_FP32_DIFF})"
        )


def quantize(fp32: Path, out: Path, setting: QuantSetting) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a line per tensor on the root logger
    try:
        quantize_dynamic(
            fp32,
            out,
            per_channel=setting.per_channel,
            reduce_range=setting.reduce_range,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)


def gate_sample(data_dir: Path, max_pairs: int, seed: int) -> tuple[pd.DataFrame, float]:
    """Whole dev queries in seeded order, about ``max_pairs`` pairs; and the pair label gap."""
    from shoprel.data.splits import read_split

    dev, scale = read_split(data_dir, "dev")
    queries = dev["query_id"].drop_duplicates().sample(frac=1.0, random_state=seed)
    sizes = dev["query_id"].value_counts().loc[queries].cumsum()
    keep = set(sizes.index[: int(np.searchsorted(sizes.to_numpy(), max_pairs)) + 1])
    return dev[dev["query_id"].isin(keep)].reset_index(drop=True), scale.pair_min_diff


def gate_figures(
    sample: pd.DataFrame, min_diff: float, fp32: np.ndarray, int8: np.ndarray
) -> dict[str, float]:
    from scipy.stats import spearmanr

    from shoprel.eval.metrics import pairwise_accuracy

    pairwise_fp32 = pairwise_accuracy(sample["query_id"], sample["label"], fp32, min_diff)
    pairwise_int8 = pairwise_accuracy(sample["query_id"], sample["label"], int8, min_diff)
    return {
        "spearman": float(spearmanr(fp32, int8).statistic),
        "pairwise_accuracy_fp32": pairwise_fp32,
        "pairwise_accuracy_int8": pairwise_int8,
        "pairwise_loss": pairwise_fp32 - pairwise_int8,
        "max_abs_diff": float(np.abs(fp32 - int8).max()),
    }


def passes(figures: dict[str, float], cfg: ExportConfig) -> bool:
    # NaN (no qualifying pair, constant scores) fails both comparisons, so it never passes
    return bool(
        figures["spearman"] >= cfg.min_spearman
        and figures["pairwise_loss"] <= cfg.max_pairwise_loss
    )


def choose_int8(stage: Path, cfg: ExportConfig) -> dict[str, Any]:
    """Quantize with each setting in turn until one passes the gate; ``stage/model_int8.onnx``."""
    fp32_path, int8_path = stage / FP32_FILE, stage / INT8_FILE
    if cfg.data is None:
        logger.warning("no --data: the int8 accuracy gate is skipped (give a prepared data dir)")
        setting = QUANT_SETTINGS[0]
        quantize(fp32_path, int8_path, setting)
        OnnxScorer.load(stage, onnx_file=INT8_FILE).score_texts(["drill"], ["cordless drill"])
        return {"setting": asdict(setting), "gate": None}
    sample, min_diff = gate_sample(cfg.data, cfg.gate_pairs, cfg.seed)
    fp32 = OnnxScorer.load(stage, onnx_file=FP32_FILE).predict(sample)["score"].to_numpy()
    tried: dict[str, dict[str, float]] = {}
    passed = False
    for setting in QUANT_SETTINGS:
        candidate = stage / f"int8-{setting.name}.onnx"
        quantize(fp32_path, candidate, setting)
        int8 = OnnxScorer.load(stage, onnx_file=candidate.name).predict(sample)
        tried[setting.name] = gate_figures(sample, min_diff, fp32, int8["score"].to_numpy())
        logger.info("int8 %s: %s", setting.name, _describe(tried[setting.name]))
        if passed := passes(tried[setting.name], cfg):
            break
    # the setting that passed, else (with --force) the one closest to fp32
    best = setting.name if passed else max(tried, key=lambda name: _closeness(tried[name]))
    if not passed and not cfg.force:
        raise GateError(
            f"int8 fails the accuracy gate (Spearman >= {cfg.min_spearman}, pairwise accuracy "
            f"loss <= {cfg.max_pairwise_loss}) on {len(sample)} dev pairs with every setting: "
            + "; ".join(f"{name}: {_describe(f)}" for name, f in tried.items())
            + ". Export without --int8, or pass --force to write the best anyway."
        )
    chosen = next(s for s in QUANT_SETTINGS if s.name == best)
    (stage / f"int8-{best}.onnx").replace(int8_path)
    gate = {
        "pairs": len(sample),
        "queries": int(sample["query_id"].nunique()),
        "min_spearman": cfg.min_spearman,
        "max_pairwise_loss": cfg.max_pairwise_loss,
        "passed": passed,
        "forced": not passed,
        "tried": tried,
    }
    return {"setting": asdict(chosen), "gate": gate}


def calibrate(stage: Path, cfg: ExportConfig, onnx_file: str) -> dict[str, Any] | None:
    """The calibration of ``onnx_file``'s scores on dev (None without ``--data``)."""
    if cfg.data is None:
        return None
    from shoprel.serve.calibration import fit_calibration

    sample, _ = gate_sample(cfg.data, cfg.calibration_pairs, cfg.seed)
    scale = get_scale(read_json(stage / META_FILE)["scale"])
    scores = OnnxScorer.load(stage, onnx_file=onnx_file).predict(sample)["score"].to_numpy()
    calibration = fit_calibration(scores, sample["label"].to_numpy(), sample["query_id"], scale)
    logger.info(
        "calibration on %d dev pairs: %s, out-of-fold ECE %s",
        len(sample), calibration.method, calibration.dev["out_of_fold_ece"],
    )  # fmt: skip
    return calibration.to_dict()


def _closeness(figures: dict[str, float]) -> float:
    """Spearman with fp32, where NaN (constant scores) is the farthest."""
    return -math.inf if math.isnan(figures["spearman"]) else figures["spearman"]


def _describe(figures: dict[str, float]) -> str:
    return (
        f"Spearman {figures['spearman']:.4f}, pairwise accuracy "
        f"{figures['pairwise_accuracy_fp32']:.4f} -> {figures['pairwise_accuracy_int8']:.4f} "
        f"(loss {figures['pairwise_loss']:+.4f})"
    )


def export_onnx(model_dir: str | Path, out: str | Path, cfg: ExportConfig) -> dict[str, Any]:
    """Export ``model_dir`` into ``out``; returns the meta written to ``out/shoprel_onnx.json``."""
    model_dir, out = Path(model_dir), Path(out)
    meta = read_cross_encoder_meta(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        export_fp32(model_dir, stage, meta["max_length"], cfg.opset)
        (stage / META_FILE).write_text(json.dumps(_meta(meta, model_dir, cfg, None)))
        int8 = choose_int8(stage, cfg) if cfg.int8 else None
        calibration = calibrate(stage, cfg, INT8_FILE if int8 else FP32_FILE)
        (stage / META_FILE).unlink()
        for candidate in stage.glob("int8-*.onnx"):
            candidate.unlink()
        (out / META_FILE).unlink(missing_ok=True)  # incomplete until the new meta lands
        (out / INT8_FILE).unlink(missing_ok=True)
        for path in stage.iterdir():
            path.replace(out / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    result = _meta(meta, model_dir, cfg, int8) | {"calibration": calibration}
    write_json(result, out / META_FILE)
    return result


def _meta(
    meta: dict[str, Any], model_dir: Path, cfg: ExportConfig, int8: dict[str, Any] | None
) -> dict[str, Any]:
    files = {"fp32": FP32_FILE} | ({"int8": INT8_FILE} if int8 else {})
    return {
        "scale": meta["scale"],
        "fields": meta["fields"],
        "max_length": meta["max_length"],
        "activation": meta["activation"],
        "onnx": files | {"default": INT8_FILE if int8 else FP32_FILE, "opset": cfg.opset},
        "quantization": int8,
        "source": {"model": str(model_dir), "meta": meta},
    }
