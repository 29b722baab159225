"""sentence-transformers' own ONNX int8 backend for a CrossEncoder, served to another process.

sentence-transformers exports and quantizes ONNX models through ``optimum-onnx``, whose only
release (0.1.0) needs transformers older than 4.58, and sentence-transformers 6 needs transformers
5: the backend runs only beside sentence-transformers 5.7 and transformers 4.57. ``make
st-onnx-env`` builds that environment (``.venv-st-onnx``, pinned in
``benchmarks/st_onnx_requirements.txt``); ``serving_latency.py`` starts this script with its
interpreter. It imports nothing of shoprel.

The script copies the cross-encoder to ``--out``, exports it with ``backend="onnx"``, quantizes it
with ``export_dynamic_quantized_onnx_model`` (``--config``: ``serving_latency.py`` passes the one
this CPU's flags call for, as the sentence-transformers docs advise), loads the int8 file and
writes one JSON line, ``{"file": ..., "versions": ...}``. Then it answers reranks, one JSON
object a line:

    {"pairs": [[query, text], ...]}  ->  {"ms": 12.3, "scores": [...]}

``ms`` is the time of ``CrossEncoder.predict`` alone, without the pipe.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path


def _weights_mtime(model_dir: Path) -> int:
    return max(path.stat().st_mtime_ns for path in model_dir.glob("*.safetensors"))


def load_int8(model_dir: Path, out: Path, max_length: int, config: str) -> tuple[object, str]:
    """The quantized CrossEncoder, exported into ``out`` again only when the weights change."""
    from sentence_transformers import CrossEncoder, export_dynamic_quantized_onnx_model

    source = json.dumps({"model": str(model_dir.resolve()), "mtime": _weights_mtime(model_dir)})
    stamp = out / "shoprel_source.json"
    files = sorted(out.glob(f"onnx/model_*int8_{config}.onnx"))  # qint8 or quint8 weights
    if not files or not stamp.is_file() or stamp.read_text() != source:
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(model_dir, out)
        model = CrossEncoder(str(out), backend="onnx", max_length=max_length)
        model.save_pretrained(str(out))
        export_dynamic_quantized_onnx_model(model, config, str(out))
        files = sorted(out.glob(f"onnx/model_*int8_{config}.onnx"))
        stamp.write_text(source)
    file_name = str(files[0].relative_to(out))
    model = CrossEncoder(
        str(out), backend="onnx", max_length=max_length, model_kwargs={"file_name": file_name}
    )
    return model, file_name


def serve(model: object, batch_size: int, sigmoid: bool) -> None:
    import torch

    activation = torch.nn.Sigmoid() if sigmoid else torch.nn.Identity()
    for line in sys.stdin:
        pairs = [tuple(pair) for pair in json.loads(line)["pairs"]]
        started = time.perf_counter()
        scores = model.predict(  # type: ignore[attr-defined]
            pairs, batch_size=batch_size, activation_fn=activation, show_progress_bar=False
        )
        ms = (time.perf_counter() - started) * 1000
        print(json.dumps({"ms": ms, "scores": [float(s) for s in scores]}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the cross-encoder's directory")
    parser.add_argument("--out", type=Path, required=True, help="where the ONNX copy is kept")
    parser.add_argument("--max-length", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--activation", choices=["sigmoid", "identity"], default="sigmoid")
    parser.add_argument(
        "--config", required=True, choices=["avx2", "avx512", "avx512_vnni", "arm64"]
    )
    args = parser.parse_args()
    model, file_name = load_int8(args.model, args.out, args.max_length, args.config)
    import sentence_transformers
    import transformers

    versions = (
        f"sentence-transformers {sentence_transformers.__version__}, "
        f"transformers {transformers.__version__}"
    )
    print(json.dumps({"file": file_name, "versions": versions}), flush=True)
    serve(model, args.batch_size, args.activation == "sigmoid")


if __name__ == "__main__":
    main()
