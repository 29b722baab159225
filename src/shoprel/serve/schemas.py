"""Request and response bodies of the HTTP service, with the limits of its settings.

Request models are built per app (:func:`request_models`, :func:`cohere_request_model`) so that
the OpenAPI schema states the configured limits: items per request and characters per text
field. Text within the character limit but longer than the model's ``max_length`` tokens is cut
by the tokenizer, not rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from shoprel.serve.reranker import clean_text

OPTIONAL_FIELDS = ("brand", "category", "attributes", "description")
MAX_ID_CHARS = 256


@dataclass(frozen=True)
class Limits:
    max_items: int
    max_field_chars: int


def _text(limits: Limits) -> Any:
    """Required text: not blank, at most ``limits.max_field_chars`` characters, cleaned."""
    return Annotated[
        str,
        Field(min_length=1, max_length=limits.max_field_chars),
        BeforeValidator(_no_non_finite),
        AfterValidator(_clean_required),
    ]


def request_models(limits: Limits) -> tuple[type[BaseModel], type[BaseModel]]:
    """``RerankRequest`` and ``ScoreRequest`` capped by ``limits``."""
    text = _text(limits)
    optional = Annotated[
        str | None,
        Field(max_length=limits.max_field_chars),
        BeforeValidator(_no_non_finite),
        AfterValidator(_clean_optional),
    ]
    item_id = Annotated[
        str | None,
        Field(max_length=MAX_ID_CHARS),
        BeforeValidator(_no_non_finite),
        AfterValidator(_clean_optional),
    ]
    item = create_model(
        "Item",
        __config__=ConfigDict(coerce_numbers_to_str=True, extra="ignore"),
        __doc__="A product; keys other than these are ignored.",
        id=(item_id, Field(None, description="returned with the item's score; default: position")),
        title=(text, Field(description="product title")),
        **{name: (optional, None) for name in OPTIONAL_FIELDS},
    )
    items = Annotated[list[item], Field(min_length=1, max_length=limits.max_items)]  # type: ignore[valid-type]
    rerank = create_model(
        "RerankRequest",
        __doc__="One query and its candidate items.",
        query=(text, ...),
        items=(items, ...),
        top_k=(int | None, Field(None, ge=1, le=limits.max_items, description="keep the best k")),
        min_relevance=(
            float | None,
            Field(
                None,
                ge=0.0,
                le=1.0,
                allow_inf_nan=False,
                description="drop items whose calibrated P(relevant) is below this (needs an "
                "export calibrated with --data)",
            ),
        ),
        __config__=ConfigDict(json_schema_extra={"examples": [RERANK_EXAMPLE]}),
    )
    pair = create_model("Pair", query=(text, ...), item=(item, ...))
    pairs = Annotated[list[pair], Field(min_length=1, max_length=limits.max_items)]  # type: ignore[valid-type]
    score = create_model(
        "ScoreRequest",
        __doc__="(query, item) pairs, each scored on its own.",
        pairs=(pairs, ...),
        __config__=ConfigDict(json_schema_extra={"examples": [SCORE_EXAMPLE]}),
    )
    return rerank, score


def cohere_request_model(limits: Limits) -> type[BaseModel]:
    """The body of ``POST /v2/rerank``, the Cohere-style rerank API (also served by Jina, Infinity
    and vLLM), capped by ``limits``. Keys of that API this service has no use for (``priority``,
    ``max_tokens_per_doc``: the model's ``max_length`` cuts text) are accepted and ignored."""
    text = _text(limits)
    document = create_model(
        "CohereDocument",
        __config__=ConfigDict(extra="ignore"),
        __doc__="A document as an object; its text is scored as the product title.",
        text=(text, ...),
    )
    documents = Annotated[
        list[text | document],  # type: ignore[valid-type]
        Field(min_length=1, max_length=limits.max_items),
    ]
    return create_model(
        "CohereRerankRequest",
        __config__=ConfigDict(extra="ignore", json_schema_extra={"examples": [COHERE_EXAMPLE]}),
        __doc__="One query and its documents, in the shape Cohere-style clients send.",
        model=(str | None, Field(None, description="accepted for clients; one model is served")),
        query=(text, ...),
        documents=(documents, ...),
        top_n=(int | None, Field(None, ge=1, le=limits.max_items, description="keep the best n")),
        return_documents=(bool, Field(False, description="echo each document in its result")),
    )


def _no_non_finite(value: Any) -> Any:
    """Numbers become text (ids, sizes), but NaN and infinities are no text anyone typed."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected text, got {value}")
    return value


def _clean_required(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return clean_text(value)


def _clean_optional(value: str | None) -> str | None:
    return None if value is None or not value.strip() else clean_text(value)


class RerankResult(BaseModel):
    id: str
    index: int = Field(description="position in the request's items")
    score: float = Field(description="on the label scale of the model's data set; higher is better")
    relevance: float | None = Field(
        None, description="calibrated P(relevant), where the export was calibrated on dev"
    )


class RerankResponse(BaseModel):
    model: str
    results: list[RerankResult] = Field(description="best first")


class ScoreResponse(BaseModel):
    model: str
    scores: list[float] = Field(description="one per pair, in request order")


class CohereDocumentText(BaseModel):
    text: str


class CohereRerankResult(BaseModel):
    index: int = Field(description="position in the request's documents")
    relevance_score: float = Field(
        description="calibrated P(relevant) where the export was calibrated on dev, else the raw "
        "score on the label scale (and ``meta.warnings`` says so)"
    )
    document: CohereDocumentText | None = Field(None, description="with return_documents")


class CohereMeta(BaseModel):
    api_version: dict[str, str] = Field(default_factory=lambda: {"version": "2"})
    billed_units: dict[str, float] = Field(default_factory=lambda: {"search_units": 1})
    warnings: list[str] | None = None


class CohereRerankResponse(BaseModel):
    id: str = Field(description="this response's id")
    results: list[CohereRerankResult] = Field(description="best first")
    meta: CohereMeta = Field(default_factory=CohereMeta)


class ErrorDetail(BaseModel):
    status: int
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


RERANK_EXAMPLE = {
    "query": "cordless drill 18v",
    "items": [
        {"id": "205", "title": "18-Volt Lithium-Ion Cordless Drill Kit", "brand": "RYOBI"},
        {"id": "311", "title": "1/2 in. Copper Pipe Elbow", "category": "Plumbing"},
    ],
    "top_k": 10,
}
COHERE_EXAMPLE = {
    "model": "shoprel",
    "query": "cordless drill 18v",
    "documents": ["18-Volt Lithium-Ion Cordless Drill Kit", {"text": "1/2 in. Copper Pipe Elbow"}],
    "top_n": 10,
}
SCORE_EXAMPLE = {
    "pairs": [
        {"query": "cordless drill 18v", "item": {"title": "18-Volt Cordless Drill Kit"}},
        {"query": "copper elbow", "item": {"title": "1/2 in. Copper Pipe Elbow"}},
    ]
}
