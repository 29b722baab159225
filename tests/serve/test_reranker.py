"""``Reranker``: one interface over the ONNX export and the torch cross-encoder dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shoprel.serve.onnx_scorer import FP32_FILE
from shoprel.serve.reranker import RerankedItem, Reranker

QUERY = "cordless drill"


@pytest.mark.parametrize("model", ["onnx_export", "serve_cross_encoder"])
def test_rerank_sorts_by_score(
    model: str, items: list[dict], request: pytest.FixtureRequest
) -> None:
    reranker = Reranker.load(request.getfixturevalue(model))
    scores = reranker.score(QUERY, items)
    assert scores.shape == (len(items),) and len(set(scores.round(6))) == len(items)
    ranked = reranker.rerank(QUERY, items)
    order = np.argsort(-scores, kind="stable")
    assert [r.index for r in ranked] == order.tolist()
    assert [r.id for r in ranked] == [items[i]["id"] for i in order]
    np.testing.assert_allclose([r.score for r in ranked], scores[order], rtol=0, atol=1e-6)
    assert reranker.rerank(QUERY, items, top_k=2) == ranked[:2]
    assert reranker.rerank(QUERY, items, top_k=100) == ranked


def test_export_and_torch_dir_agree(
    onnx_export: Path, serve_cross_encoder: Path, items: list[dict]
) -> None:
    onnx_fp32 = Reranker.load(onnx_export, onnx_file=FP32_FILE, threads=1)
    torch = Reranker.load(serve_cross_encoder)
    np.testing.assert_allclose(
        onnx_fp32.score(QUERY, items), torch.score(QUERY, items), rtol=0, atol=1e-4
    )


def test_items_ids_and_errors(onnx_export: Path) -> None:
    reranker = Reranker.load(onnx_export, threads=1)
    ranked = reranker.rerank(QUERY, [{"title": "drill"}, {"title": "paint", "id": 7}])
    assert sorted(r.id for r in ranked) == ["0", "7"]
    assert all(isinstance(r, RerankedItem) for r in ranked)
    assert reranker.rerank(QUERY, []) == []
    with pytest.raises(ValueError, match=r"items\[1\]: expected a dict with a 'title' string"):
        reranker.rerank(QUERY, [{"title": "drill"}, {"name": "paint"}])
    with pytest.raises(ValueError, match="top_k: expected None or an int >= 1, got 0"):
        reranker.rerank(QUERY, [{"title": "drill"}], top_k=0)


def test_text_that_is_not_utf8_is_cleaned(onnx_export: Path) -> None:
    reranker = Reranker.load(onnx_export, threads=1)
    lone = reranker.rerank("drill \ud800", [{"id": "x\udfff", "title": "cordless \udc00 drill"}])
    clean = reranker.rerank("drill ?", [{"id": "x?", "title": "cordless ? drill"}])
    assert lone == clean


def test_import_shoprel_stays_light() -> None:
    code = (
        "import json, sys, shoprel\n"
        "heavy = ('torch', 'onnxruntime', 'fastapi', 'transformers')\n"
        "before = [m for m in heavy if m in sys.modules]\n"
        "from shoprel import Reranker\n"
        "from shoprel.serve.reranker import Reranker as Direct\n"
        "after = [m for m in heavy if m in sys.modules]\n"
        "print(json.dumps([before, after, Reranker is Direct, 'Reranker' in shoprel.__all__]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[], [], True, True]
