"""shoprel: e-commerce search relevance, from an LLM relevance judge to a fast reranker."""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "PrepareConfig": "shoprel.data.prepare",
    "Reranker": "shoprel.serve.reranker",
    "prepare": "shoprel.data.prepare",
    "evaluate": "shoprel.eval.evaluate",
    "run_baseline": "shoprel.eval.baselines",
    "resolve_model": "shoprel.models",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'shoprel' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
