"""``shoprel serve``: the reranker as an HTTP service (FastAPI on uvicorn).

    shoprel serve --model runs/hd/onnx --port 8000
    curl -s localhost:8000/v1/rerank -H 'content-type: application/json' \\
        -d '{"query": "cordless drill", "items": [{"id": "1", "title": "18V drill"}], "top_k": 5}'

Routes: ``POST /v1/rerank`` (one query, items best first), ``POST /v1/score`` (pairs, in order),
``POST /v2/rerank`` (the Cohere-style rerank API that LangChain, LlamaIndex, LiteLLM and the
``cohere`` client call; ``relevance_score`` is the calibrated P(relevant)),
``POST /v1/admin/reload`` (swap in a new export), ``GET /healthz`` (the process answers),
``GET /readyz`` (the model is loaded), ``GET /metrics`` (Prometheus text), ``GET /docs``
(OpenAPI). The model loads in the background after start; until then ``/readyz`` and ``/v1/*``
answer 503. Concurrent requests are scored together by :class:`~shoprel.serve.batcher.MicroBatcher`.

In production:

- ``SIGTERM`` drains: ``/readyz`` and new requests answer 503, the requests in flight finish,
  then the process exits 0 (after ``drain_s`` at the most; a second signal stops it at once).
- ``SIGHUP``, or ``POST /v1/admin/reload`` (``{"model": DIR}``, behind the API key where one is
  set), loads the new export beside the old one and switches in one step: a request is scored by
  exactly one of the two, and none fails for the swap. The old model goes once its jobs are done.
"""

# no ``from __future__ import annotations`` here: FastAPI reads the route signatures, whose request
# models are built inside ``create_app``

import asyncio
import logging
import math
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Security
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware import Middleware

from shoprel import __version__
from shoprel.serve.batcher import MicroBatcher, QueueFull
from shoprel.serve.errors import ApiError, error_response, install_error_handlers
from shoprel.serve.middleware import Guard, Timing
from shoprel.serve.reranker import Reranker, check_min_relevance, rank
from shoprel.serve.schemas import (
    CohereDocumentText,
    CohereMeta,
    CohereRerankResponse,
    CohereRerankResult,
    ErrorResponse,
    Limits,
    RerankResponse,
    RerankResult,
    ScoreResponse,
    cohere_request_model,
    request_models,
)
from shoprel.serve.telemetry import Telemetry

logger = logging.getLogger(__name__)
ROUTES = frozenset(
    {"/v1/rerank", "/v1/score", "/v2/rerank", "/v1/admin/reload", "/healthz", "/readyz", "/metrics"}
)
UNCALIBRATED = (
    "uncalibrated: relevance_score is the model's raw score on its label scale, not a "
    "probability; export the model with --data to calibrate it"
)


class ServeSettings(BaseModel):
    """The service's settings (``shoprel serve`` flags for the common ones; the rest here)."""

    model_config = ConfigDict(frozen=True)

    model: Path = Field(description="ONNX export or cross-encoder dir")
    onnx_file: str | None = Field(None, description="file of an ONNX export; default: its default")
    host: str = Field("127.0.0.1", description="bind address; loopback unless told otherwise")
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = Field(None, repr=False, description="Bearer key all /v1, /v2 calls need")
    max_items: int = Field(1000, ge=1, description="items per rerank request, pairs per score one")
    max_field_chars: int = Field(2000, ge=1, description="characters per text field")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="request body size")
    max_batch_items: int = Field(256, ge=1, description="pairs per model call across requests")
    max_wait_ms: float = Field(2.0, ge=0, description="how long a batch waits for more requests")
    max_queue_items: int = Field(20_000, ge=1, description="pairs waiting before 429 answers")
    batch_size: int = Field(32, ge=1, description="pairs per onnxruntime run within a model call")
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads (0: one per core)")
    drain_s: float = Field(30.0, ge=0, description="SIGTERM: longest wait for requests in flight")


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


@dataclass
class _State:
    serving: ServeSettings  # what the model in service was loaded with
    reranker: Reranker | None = None
    batcher: MicroBatcher | None = None
    failure: str | None = None  # why the model did not load
    draining: bool = False  # SIGTERM came: new requests get 503
    in_flight: int = 0  # requests holding a model


class ReloadRequest(BaseModel):
    """``POST /v1/admin/reload``: the export to swap in (default: the one in service, read again
    from disk). A new ``model`` loads with its own default file unless ``onnx_file`` names one."""

    model_config = ConfigDict(extra="forbid")

    model: Path | None = Field(None, description="ONNX export or cross-encoder dir")
    onnx_file: str | None = Field(None, description="file of an ONNX export")


def load_reranker(settings: ServeSettings) -> Reranker:
    from shoprel.serve.onnx_scorer import META_FILE

    options: dict[str, Any] = {"batch_size": settings.batch_size}
    if (settings.model / META_FILE).is_file():
        options |= {"threads": settings.threads, "onnx_file": settings.onnx_file}
    return Reranker.load(settings.model, **options)


def create_app(settings: ServeSettings, reranker: Reranker | None = None) -> FastAPI:
    """The app; it loads ``settings.model`` in the background unless given a ``reranker``."""
    state, telemetry = _State(serving=settings), Telemetry()
    limits = Limits(settings.max_items, settings.max_field_chars)
    rerank_request, score_request = request_models(limits)
    cohere_request = cohere_request_model(limits)

    async def start_batcher(loaded: Reranker) -> MicroBatcher:
        batcher = MicroBatcher(
            loaded.score_pairs,
            max_batch_items=settings.max_batch_items,
            max_wait_ms=settings.max_wait_ms,
            max_queue_items=settings.max_queue_items,
            on_batch=telemetry.batch,
        )
        await batcher.start()
        return batcher

    swapping = asyncio.Lock()  # the first load and every reload, one at a time, in order

    async def load() -> None:
        async with swapping:
            try:
                loaded = reranker or await asyncio.to_thread(load_reranker, settings)
            except Exception as error:  # reported by /readyz; the process stays up to say so
                logger.exception("loading %s failed", settings.model)
                state.failure = f"{type(error).__name__}: {error}"
                return
            batcher = await start_batcher(loaded)
            state.reranker, state.batcher = loaded, batcher
            logger.info("model %s ready", settings.model)

    async def swap(target: ServeSettings) -> Reranker:
        """Load ``target.model`` beside the serving one, switch in one step, retire the old."""
        check_model(target)
        async with swapping:
            loaded = await asyncio.to_thread(load_reranker, target)
            batcher = await start_batcher(loaded)
            old = state.batcher
            state.reranker, state.batcher, state.failure = loaded, batcher, None
            state.serving = target
            logger.info("model %s swapped in", target.model)
            if old is not None:
                await old.drain()
                await old.stop()
        return loaded

    def reload_on_hangup() -> None:
        serving = state.serving
        task = asyncio.create_task(swap(serving))
        task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or logger.error(
            "SIGHUP reload of %s failed: %s", serving.model, t.exception()
        ))  # fmt: skip

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loading = None
        if reranker is None:
            loading = asyncio.create_task(load())
        else:  # already in memory: ready before the first request
            await load()
        hangup = _on_signal(signal.SIGHUP, reload_on_hangup)
        yield
        if hangup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if loading is not None:
            loading.cancel()
        if state.batcher is not None:
            await state.batcher.stop()

    def ready() -> tuple[Reranker, MicroBatcher]:
        if state.draining:
            raise ApiError(503, "shutting down", headers={"Retry-After": "1"})
        if state.reranker is None or state.batcher is None:
            message = f"model failed to load: {state.failure}" if state.failure else "model loading"
            raise ApiError(503, message, headers={"Retry-After": "1"})
        return state.reranker, state.batcher

    @asynccontextmanager
    async def serving() -> AsyncIterator[tuple[Reranker, MicroBatcher]]:
        """The model a request is scored by, counted in flight while it is."""
        found = ready()
        state.in_flight += 1
        try:
            yield found
        finally:
            state.in_flight -= 1

    app = FastAPI(
        title="shoprel reranker",
        version=__version__,
        description=__doc__,
        lifespan=lifespan,
        middleware=[
            Middleware(Timing, telemetry=telemetry, routes=ROUTES),
            Middleware(
                Guard,
                api_key=settings.api_key,
                max_body_bytes=settings.max_body_bytes,
                protected=("/v1/", "/v2/"),
            ),
        ],
    )
    app.state.shoprel = state
    install_error_handlers(app)
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse} for status in (401, 413, 422, 429, 503)
    }
    auth = [Security(HTTPBearer(auto_error=False))] if settings.api_key else []

    @app.post("/v1/rerank", responses=errors, dependencies=auth)
    async def rerank(request: rerank_request) -> RerankResponse:  # type: ignore[valid-type]
        """Score each item for the query; the items best first (ties in input order)."""
        items = [item.model_dump(exclude_none=True) for item in request.items]
        async with serving() as (model, batcher):
            try:
                check_min_relevance(request.min_relevance, model.calibration)
            except ValueError as error:
                raise ApiError(422, f"invalid request: {error}") from error
            scores = await submit(batcher, [request.query] * len(items), items)
        relevance = model.relevance(scores)
        ranked = rank(items, scores, request.top_k, relevance, request.min_relevance)
        return RerankResponse(model=model.name, results=[RerankResult(**asdict(r)) for r in ranked])

    @app.post("/v1/score", responses=errors, dependencies=auth)
    async def score(request: score_request) -> ScoreResponse:  # type: ignore[valid-type]
        """Score each (query, item) pair on its own; the scores in request order."""
        items = [pair.item.model_dump(exclude_none=True) for pair in request.pairs]
        async with serving() as (model, batcher):
            scores = await submit(batcher, [pair.query for pair in request.pairs], items)
        return ScoreResponse(model=model.name, scores=[float(s) for s in scores])

    @app.post("/v2/rerank", responses=errors, dependencies=auth)
    async def cohere_rerank(request: cohere_request) -> CohereRerankResponse:  # type: ignore[valid-type]
        """The Cohere-style rerank API: documents best first, each with its calibrated relevance."""
        texts = [doc if isinstance(doc, str) else doc.text for doc in request.documents]
        items = [{"title": text} for text in texts]
        async with serving() as (model, batcher):
            scores = await submit(batcher, [request.query] * len(items), items)
        relevance = model.relevance(scores)
        results = [
            CohereRerankResult(
                index=hit.index,
                relevance_score=hit.score if hit.relevance is None else hit.relevance,
                document=CohereDocumentText(text=texts[hit.index])
                if request.return_documents
                else None,
            )
            for hit in rank(items, scores, request.top_n, relevance)
        ]
        meta = CohereMeta(warnings=None if model.calibration else [UNCALIBRATED])
        return CohereRerankResponse(id=str(uuid.uuid4()), results=results, meta=meta)

    @app.post("/v1/admin/reload", responses=errors, dependencies=auth)
    async def reload(request: ReloadRequest | None = None) -> dict[str, str]:
        """Swap in a new export without downtime (default: the service's own, read again)."""
        if settings.api_key is None and not is_loopback(settings.host):
            raise ApiError(403, "reload over the network needs an API key (--api-key)")
        target = reload_target(state.serving, request)
        try:
            loaded = await swap(target)
        except Exception as error:  # any export that does not load: the old one keeps serving
            raise ApiError(
                422, f"cannot serve {target.model}: {type(error).__name__}: {error}"
            ) from error
        return {"status": "swapped", "model": loaded.name}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorResponse}})
    async def readyz() -> JSONResponse:
        try:
            model, _ = ready()
        except ApiError as error:
            return error_response(error.status, error.message, headers=error.headers)
        return JSONResponse({"status": "ready", "model": model.name})

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        text = telemetry.render(ready=state.batcher is not None)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


async def submit(
    batcher: MicroBatcher, queries: list[str], items: list[dict[str, Any]]
) -> np.ndarray:
    try:
        return await batcher.submit(queries, items)
    except QueueFull as error:
        raise ApiError(429, f"overloaded: {error}", headers={"Retry-After": "1"}) from error


def reload_target(serving: ServeSettings, request: ReloadRequest | None) -> ServeSettings:
    """The settings a reload loads: those in service, with what the request sets laid over."""
    changes = request.model_dump(exclude_unset=True) if request else {}
    if changes.get("model") is None:
        changes.pop("model", None)
    else:  # another model: its own default file, unless the request names one
        changes.setdefault("onnx_file", None)
    return serving.model_copy(update=changes)


def check_model(settings: ServeSettings) -> None:
    """Fail fast, before binding a port, on a dir that holds no model shoprel can serve."""
    from shoprel.scoring import CROSS_ENCODER_META
    from shoprel.serve.onnx_scorer import META_FILE as ONNX_META

    directory, onnx_file = settings.model, settings.onnx_file
    if not any((directory / name).is_file() for name in (ONNX_META, CROSS_ENCODER_META)):
        raise FileNotFoundError(
            f"{directory}: not a model to serve (no {ONNX_META} or {CROSS_ENCODER_META}); "
            "give an export of `shoprel student export` or a dir of `shoprel student train`"
        )
    if onnx_file is not None and not (directory / ONNX_META).is_file():
        raise ValueError(f"{directory}: --onnx-file needs an ONNX export, not a torch model dir")
    if onnx_file is not None and not (directory / onnx_file).is_file():
        raise FileNotFoundError(f"{directory}: no {onnx_file} (--onnx-file)")


def _on_signal(sig: signal.Signals, callback: Any) -> bool:
    """Run ``callback`` on ``sig`` in the event loop, where the loop may own signals (the main
    thread of a Unix process); whether it was installed."""
    try:
        asyncio.get_running_loop().add_signal_handler(sig, callback)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


def draining_server(app: FastAPI, settings: ServeSettings) -> Any:
    """uvicorn's server, draining on the first SIGTERM or SIGINT instead of stopping: ``/readyz``
    and new requests answer 503 until the requests in flight are done (or ``drain_s`` passed);
    a second signal stops it at once."""
    import uvicorn

    state: _State = app.state.shoprel

    class DrainingServer(uvicorn.Server):
        deadline = 0.0

        def handle_exit(self, sig: int, frame: Any) -> None:
            if state.draining:
                self.force_exit = True
                return super().handle_exit(sig, frame)
            state.draining, self.deadline = True, time.monotonic() + settings.drain_s
            logger.info("draining %d request(s) in flight before exit", state.in_flight)

        async def on_tick(self, counter: int) -> bool:
            drained = state.in_flight == 0 or time.monotonic() > self.deadline
            if state.draining and drained:
                self.should_exit = True
            return await super().on_tick(counter)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=max(1, math.ceil(settings.drain_s)),  # a body never finished
    )
    return DrainingServer(config)


def serve(settings: ServeSettings) -> None:
    check_model(settings)
    draining_server(create_app(settings), settings).run()
