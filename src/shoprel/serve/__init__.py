"""Serving: ONNX export of the cross-encoder, the ``Reranker`` API and the HTTP service.

    shoprel student export --model runs/hd/ce-minilm --out runs/hd/onnx --int8 --data runs/hd/data
    shoprel serve --model runs/hd/onnx

Modules: ``export`` (torch to ONNX, int8 behind an accuracy gate), ``onnx_scorer`` (the export on
onnxruntime), ``reranker`` (the Python API), ``batcher`` (micro-batching), ``app`` (FastAPI), with
``schemas``, ``errors``, ``middleware`` and ``telemetry`` beside it.
"""
