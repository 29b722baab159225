"""``POST /v2/rerank``, the Cohere-style rerank API, called by the official ``cohere`` client."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from shoprel.serve.app import ServeSettings
from shoprel.serve.reranker import Reranker

cohere = pytest.importorskip("cohere", reason="needs the cohere client (the dev extra)")

QUERY = "cordless drill"


def titles(items: list[dict]) -> list[str]:
    return [item["title"] for item in items]


def client(url: str, api_key: str = "unused") -> cohere.ClientV2:
    return cohere.ClientV2(api_key=api_key, base_url=url, max_retries=0, timeout=30)


def test_the_cohere_client_gets_the_calibrated_ranking(
    calibrated_export: Path, items: list[dict], live_service: Callable
) -> None:
    documents = titles(items)
    expected = Reranker.load(calibrated_export, threads=1).rerank(
        QUERY, [{"title": text} for text in documents], top_k=4
    )
    settings = ServeSettings(model=calibrated_export, port=0, threads=1)
    with live_service(settings) as url:
        answer = client(url).rerank(model="shoprel", query=QUERY, documents=documents, top_n=4)
        again = httpx.post(
            f"{url}/v2/rerank",
            json={
                "model": "shoprel",
                "query": QUERY,
                "documents": [{"text": text} for text in documents],
                "return_documents": True,
                "priority": 1,  # a key of the API that this service ignores
            },
            timeout=30,
        )
    assert [r.index for r in answer.results] == [hit.index for hit in expected]
    np.testing.assert_allclose(
        [r.relevance_score for r in answer.results], [hit.relevance for hit in expected], atol=1e-6
    )
    assert answer.id and answer.meta is not None and not answer.meta.warnings
    assert again.status_code == 200, again.text
    results = again.json()["results"]
    assert len(results) == len(documents)  # no top_n: every document
    assert [r["index"] for r in results[:4]] == [hit.index for hit in expected]
    assert [r["document"]["text"] for r in results] == [documents[r["index"]] for r in results]


def test_an_uncalibrated_model_says_its_scores_are_raw(
    onnx_export: Path, items: list[dict], live_service: Callable
) -> None:
    documents = titles(items)
    expected = Reranker.load(onnx_export, threads=1).rerank(
        QUERY, [{"title": text} for text in documents]
    )
    with live_service(ServeSettings(model=onnx_export, port=0, threads=1)) as url:
        answer = client(url).rerank(model="shoprel", query=QUERY, documents=documents)
    assert [r.index for r in answer.results] == [hit.index for hit in expected]
    np.testing.assert_allclose(
        [r.relevance_score for r in answer.results], [hit.score for hit in expected], rtol=1e-5
    )
    assert answer.meta.warnings and "uncalibrated" in answer.meta.warnings[0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"top_n": 0}, "top_n"),
        ({"documents": []}, "documents"),
        ({"documents": ["drill", "   "]}, "documents"),
        ({"documents": ["drill", {"title": "no text key"}]}, "documents"),
        ({"documents": ["x"] * 6}, "documents"),
        ({"query": ""}, "query"),
        ({"top_n": float("nan")}, "top_n"),
    ],
)
def test_bad_input_gets_a_422_naming_the_field(
    onnx_export: Path, change: dict, field: str, live_service: Callable
) -> None:
    body = {"model": "shoprel", "query": QUERY, "documents": ["drill", "paint"]} | change
    settings = ServeSettings(model=onnx_export, port=0, threads=1, max_items=5)
    with live_service(settings) as url:
        raw = httpx.post(
            f"{url}/v2/rerank",
            content=json.dumps(body),  # NaN as JavaScript writes it
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert raw.status_code == 422, raw.text
        assert field in raw.json()["error"]["message"]
        if "top_n" in change and isinstance(change["top_n"], int):
            with pytest.raises(cohere.errors.UnprocessableEntityError):
                client(url).rerank(model="shoprel", query=QUERY, documents=["a"], top_n=0)


def test_the_api_key_guards_v2(onnx_export: Path, live_service: Callable) -> None:
    settings = ServeSettings(model=onnx_export, port=0, threads=1, api_key="s3cret")
    with live_service(settings) as url:
        with pytest.raises(cohere.errors.UnauthorizedError):
            client(url, api_key="wrong").rerank(model="m", query=QUERY, documents=["drill"])
        answer = client(url, api_key="s3cret").rerank(model="m", query=QUERY, documents=["drill"])
        assert [r.index for r in answer.results] == [0]
