"""The exported cross-encoder on onnxruntime: the same scores as the torch model, without torch.

    scorer = OnnxScorer.load("runs/hd/onnx")             # the export's default file
    scorer = OnnxScorer.load("runs/hd/onnx", int8=True)  # model_int8.onnx

An export dir (``shoprel student export``) holds the tokenizer, ``model.onnx`` (fp32), optionally
``model_int8.onnx``, and :data:`META_FILE`: the cross-encoder's meta (scale, fields, max_length,
activation) plus which file is the default. Pairs are tokenized with ``tokenizers`` alone, sorted by
length and run in batches of ``batch_size``; the score is the torch scorer's: the sigmoid of the
logit mapped to the label scale, or the logit itself for ``"activation": "identity"``. The int8
graph quantizes activations with one scale per run, so an int8 score moves a little (about 0.01
on a 1-3 scale) with the other pairs of its batch; fp32 scores do not depend on the batch. An
export calibrated on dev adds ``relevance`` (P(relevant)) and ``expected_label`` to the scores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprel.data.schema import get_scale
from shoprel.io import read_json
from shoprel.progress import progress_bar
from shoprel.scoring import ONNX_META as META_FILE
from shoprel.scoring import Scorer
from shoprel.serve.calibration import Calibration
from shoprel.student.scorer import item_texts, to_scores

FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
TOKENIZER_FILE = "tokenizer.json"


def session_options(threads: int = 0, pin_threads: bool = True, spin: bool = True) -> Any:
    """One intra-op thread per core this process may use (``threads`` > 0 caps it), pinned.

    onnxruntime never pins the calling thread; the others go one to a core, in the order of the
    process's CPU set (processor ids are 1-based in the affinity string)."""
    import onnxruntime as ort

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    n_threads = threads or len(cores) or os.cpu_count() or 1
    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if pin_threads and 1 < n_threads <= len(cores):
        affinities = ";".join(str(core + 1) for core in cores[1:n_threads])
        options.add_session_config_entry("session.intra_op_thread_affinities", affinities)
    return options


def load_session(path: str | Path, **options: Any) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(
        str(path), session_options(**options), providers=["CPUExecutionProvider"]
    )


def load_tokenizer(directory: str | Path, max_length: int) -> tuple[Any, int]:
    """The fast tokenizer of ``directory``, truncating pairs longest-first, and its pad id."""
    from tokenizers import Tokenizer

    directory = Path(directory)
    tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
    config_path = directory / "tokenizer_config.json"
    config = read_json(config_path) if config_path.is_file() else {}
    pad_token = config.get("pad_token") or "[PAD]"
    pad_token = pad_token["content"] if isinstance(pad_token, dict) else pad_token
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ValueError(f"{directory}: pad token {pad_token!r} is not in the tokenizer's vocab")
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
    return tokenizer, pad_id


def read_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory}: not an ONNX export (no {META_FILE}); run `shoprel student export`"
        )
    return read_json(path)


class OnnxScorer(Scorer):
    """A cross-encoder on onnxruntime; scores on the dataset's label scale."""

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        pad_id: int,
        meta: dict[str, Any],
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.session, self.tokenizer, self.pad_id = session, tokenizer, pad_id
        self.scale = get_scale(meta["scale"])
        self.fields: list[str] = list(meta["fields"])
        self.activation: str = meta.get("activation", "sigmoid")
        self.batch_size = batch_size
        found = meta.get("calibration")
        self.calibration = Calibration.from_dict(found) if found else None
        self.input_names = [node.name for node in session.get_inputs()]
        self.output_name = session.get_outputs()[0].name

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        int8: bool = False,
        onnx_file: str | None = None,
        batch_size: int = 32,
        threads: int = 0,
        pin_threads: bool = True,
        spin: bool = True,
    ) -> OnnxScorer:
        """The export in ``directory``: ``onnx_file`` if given, else int8 if asked, else the
        export's default file."""
        directory = Path(directory)
        meta = read_meta(directory)
        name = onnx_file or (INT8_FILE if int8 else meta["onnx"]["default"])
        if not (directory / name).is_file():
            hint = "; export again with --int8" if name == INT8_FILE else ""
            raise FileNotFoundError(f"{directory}: no {name}{hint}")
        session = load_session(
            directory / name, threads=threads, pin_threads=pin_threads, spin=spin
        )
        tokenizer, pad_id = load_tokenizer(directory, meta["max_length"])
        return cls(session, tokenizer, pad_id, meta, batch_size=batch_size)

    def logits(self, queries: list[str], texts: list[str], progress: bool = False) -> np.ndarray:
        """One logit per (query, text) pair, batched by token length."""
        encodings = self.tokenizer.encode_batch(list(zip(queries, texts, strict=True)))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.empty(len(encodings), dtype=np.float32)
        with progress_bar(len(order), "onnx", disable=not progress) as bar:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                feed = self.feed([encodings[i] for i in rows])
                out[rows] = self.session.run([self.output_name], feed)[0].reshape(len(rows), -1)[
                    :, 0
                ]
                bar.update(len(rows))
        return out

    def feed(self, encodings: list[Any]) -> dict[str, np.ndarray]:
        """Right-padded ``input_ids``, ``attention_mask`` and ``token_type_ids`` the graph takes."""
        width = max(len(e.ids) for e in encodings)
        arrays = {
            "input_ids": np.full((len(encodings), width), self.pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            arrays["input_ids"][row, :n] = encoding.ids
            arrays["attention_mask"][row, :n] = 1
            arrays["token_type_ids"][row, :n] = encoding.type_ids
        return {name: arrays[name] for name in self.input_names}

    def score_texts(self, queries: list[str], texts: list[str]) -> np.ndarray:
        return to_scores(self.logits(queries, texts), self.scale, self.activation)

    def predict(self, pairs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        queries = pairs["query"].astype(str).tolist()
        logits = self.logits(queries, item_texts(pairs, self.fields), progress=progress)
        score = to_scores(logits, self.scale, self.activation)
        scores = pd.DataFrame({"pair_id": pairs["pair_id"].to_numpy(), "score": score})
        if self.calibration is not None:
            scores["relevance"] = self.calibration.relevance(score)
            scores["expected_label"] = self.calibration.expected_label(score)
        return scores
