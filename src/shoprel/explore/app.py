"""``shoprel explore``: a web page to see, compare and judge a run's rankings, query by query.

    shoprel explore --run runs/quickstart                     # http://127.0.0.1:8080
    shoprel explore --run runs/b --compare runs/a --api-key KEY

Pages are rendered on the server (Jinja2, autoescaped: a product title is always text); the one
script, ``static/explore.js``, posts judgments and fetches the teacher's scores for live search.
Every asset is served from the package, so the page works offline. With an API key, the ``/api/``
routes (judging, teacher scores) need ``Authorization: Bearer KEY``; the pages stay readable.
Requests name queries and products by id, looked up in the run's tables: no request names a path.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, Field
from starlette.middleware import Middleware

from shoprel.eval.table import COLUMNS
from shoprel.explore.judgments import FILE, Judgment, JudgmentLog
from shoprel.explore.run_view import METRICS, RunView, column, compare_runs, moves
from shoprel.explore.search import LiveSearch, SearchConfig
from shoprel.report.html import metric_rows
from shoprel.serve.errors import ApiError, error_response, install_error_handlers, printable
from shoprel.serve.middleware import Guard

MAX_BODY_BYTES = 64 * 1024
LIST_LENGTH = 10


@dataclass
class ExploreSettings:
    run: Path
    compare: Path | None = None
    api_key: str | None = field(default=None, repr=False)
    search: SearchConfig = field(default_factory=SearchConfig)
    host: str = "127.0.0.1"
    port: int = 8080
    warm: bool = False  # build the search indexes and load the student at start, in a thread


class JudgmentRequest(BaseModel):
    query: str = Field(min_length=1, max_length=1000, pattern=r"\S")
    product_id: str = Field(min_length=1, max_length=200)
    grade: str = Field(min_length=1, max_length=50)
    rater: str = Field("anonymous", min_length=1, max_length=100, pattern=r"\S")
    judgment_id: uuid.UUID | None = None


class TeacherRequest(BaseModel):
    query: str = Field(min_length=1, max_length=1000, pattern=r"\S")
    product_ids: list[str] = Field(min_length=1, max_length=100)


def create_app(settings: ExploreSettings) -> FastAPI:
    run = settings.run.resolve()
    view = RunView(run)
    other = RunView(settings.compare) if settings.compare else None
    search = LiveSearch(run, settings.search)
    if settings.warm:
        threading.Thread(target=search.warm, name="explore-warm", daemon=True).start()
    log = JudgmentLog(run / FILE)
    pages = _templates()
    app = FastAPI(
        title="shoprel explore",
        docs_url=None,
        redoc_url=None,
        middleware=[
            Middleware(
                Guard, api_key=settings.api_key, max_body_bytes=MAX_BODY_BYTES, protected="/api/"
            )
        ],
    )
    install_error_handlers(app, _page_or_json(pages))
    static = Path(__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context |= {
            "run": run.name,
            "compare": other is not None,
            "needs_key": bool(settings.api_key),
        }
        return HTMLResponse(pages.get_template(name).render(**context), status_code=status)

    @functools.cache
    def query_lists() -> tuple[list[Any], list[Any]]:
        """Where teacher and student disagree most, and where the student is furthest from the
        labels: fixed for a run, so worked out once, on the first overview."""
        student, teacher = view.student, _teacher(view)
        disagree = view.disagreements(teacher, student, LIST_LENGTH) if teacher and student else []
        furthest = view.furthest_from_labels(student, LIST_LENGTH) if student else []
        return disagree, furthest

    @app.get("/", response_class=HTMLResponse)
    def overview(
        sort: str | None = None, desc: bool = False, q: str = "", every: bool = False
    ) -> HTMLResponse:
        """``every``: a column pair for every model, not only the featured ones."""
        student, teacher = view.student, _teacher(view)
        disagree, furthest = query_lists()
        return render(
            "overview.html",
            metrics=metric_rows(view.metrics),
            columns=[title for _, title in COLUMNS],
            featured=view.models if every else view.featured,
            every=every,
            metric_names=METRICS,
            rows=view.overview(sort, desc, q[:200]),
            sort=sort,
            desc=desc,
            q=q[:200],
            disagree=disagree,
            teacher=teacher,
            student=student,
            furthest=furthest,
            judged=log.counts(),
            grades=view.scale.grades,
        )

    @app.get("/query/{query_id}", response_class=HTMLResponse)
    async def query_page(query_id: str, a: str | None = None, b: str | None = None) -> HTMLResponse:
        if query_id not in view.per_query.index:
            raise ApiError(404, f"no query {query_id!r} in the {view.split} split of this run")
        a, b = _pair(view.featured, a, b, view.models)
        columns = list(dict.fromkeys([*view.featured, a, b]))
        items = view.query(query_id, columns)
        judged = log.pair_counts()
        text = str(items["query"].iloc[0])
        relevance = await asyncio.to_thread(search.relevance, text, items)
        return render(
            "query.html",
            query_id=query_id,
            query=text,
            columns=[("label", "human label")] + [(m, m) for m in columns],
            ranked={m: _ranked(items, m, view.scale.grades) for m in ["label", *columns]},
            moved=moves(items, a, b),
            a=a,
            b=b,
            models=view.models,
            grades=view.scale.grades,
            judged={pid: judged[(text, pid)] for pid in items["product_id"].astype(str)},
            relevance=relevance,
            student=view.student,
            new_id=lambda: str(uuid.uuid4()),
            row=view.overview_row(query_id),
            featured=view.featured,
            metric_names=METRICS,
        )

    @app.get("/search", response_class=HTMLResponse)
    async def live_search(q: str = "") -> HTMLResponse:
        text = q.strip()[:200]
        results = await asyncio.to_thread(search.search, text) if text else None
        hits = [] if results is None else results.to_dict("records")
        return render(
            "search.html",
            q=text,
            hits=hits,
            student=search.student_dir.name,
            grades=view.scale.grades,
            new_id=lambda: str(uuid.uuid4()),
        )

    @app.get("/compare", response_class=HTMLResponse)
    def compare(model: str | None = None, metric: str = "ndcg@10") -> HTMLResponse:
        if other is None:
            raise ApiError(404, "this explorer was started without --compare OTHER_RUN")
        shared = [m for m in view.models if m in other.models]
        if not shared:
            raise ApiError(404, f"the runs {view.run.name} and {other.run.name} share no model")
        model = model or (view.student if view.student in shared else shared[0])
        if model not in shared or metric not in METRICS:
            raise ApiError(404, f"no model {model!r} with metric {metric!r} in both runs")
        table = compare_runs(view, other, model, metric)
        return render(
            "compare.html",
            other=other.run.name,
            model=model,
            metric=metric,
            models=shared,
            metric_names=METRICS,
            better=table[table["change"] > 0].head(LIST_LENGTH).itertuples(),
            worse=table[table["change"] < 0].iloc[::-1].head(LIST_LENGTH).itertuples(),
            rows=table.itertuples(),
            counts={
                "shared": len(table),
                "better": int((table["change"] > 0).sum()),
                "worse": int((table["change"] < 0).sum()),
            },
        )

    @app.post("/api/judgments", status_code=201)
    async def judge(request: JudgmentRequest) -> dict[str, Any]:
        """Append one judgment to RUN/judgments.jsonl (a repeated judgment_id is not written)."""
        grades = view.scale.grades
        if request.grade not in grades:
            raise ApiError(
                422,
                f"invalid request: grade: {request.grade!r} is not one of {list(grades)}",
            )
        product = await asyncio.to_thread(search.product, request.product_id)
        if product is None:
            raise ApiError(
                422,
                f"invalid request: product_id: {request.product_id!r} is not in this run's catalog",
            )
        judgment = Judgment(
            judgment_id=str(request.judgment_id or uuid.uuid4()),
            query=request.query.strip(),
            product_id=request.product_id,
            label=request.grade,
            rater=request.rater.strip(),
            time=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            fields={k: str(v) for k, v in product.items() if k != "product_id"},
        )
        written = await asyncio.to_thread(log.append, judgment)
        return {
            "written": written,
            "judgment_id": judgment.judgment_id,
            "next_id": str(uuid.uuid4()),
        }

    @app.get("/api/judgments/counts")
    def judgment_counts() -> dict[str, Any]:
        return log.counts()

    @app.post("/api/teacher-scores")
    async def teacher_scores(request: TeacherRequest) -> dict[str, Any]:
        """The teacher's score of each product for the query (computed now: seconds for an LLM)."""
        if not search.teacher_dir.is_dir():
            raise ApiError(404, f"no teacher to score with: {search.teacher_dir} is not a dir")
        scores = await asyncio.to_thread(
            search.teacher_scores, request.query.strip(), request.product_ids
        )
        return {"teacher": search.teacher_dir.name, "scores": scores}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _teacher(view: RunView) -> str | None:
    return "teacher" if "teacher" in view.models else None


def _pair(featured: list[str], a: str | None, b: str | None, models: list[str]) -> tuple[str, str]:
    """The two columns whose moves are highlighted: given, else the first two featured."""
    default = (featured + featured)[:2]
    a = a if a in models else default[0]
    b = b if b in models else default[1]
    return a, b


def _ranked(items: Any, model: str, grades: tuple[str, ...]) -> list[dict[str, Any]]:
    order = items.sort_values(column("rank", model), kind="stable")
    score = column("score", model) if model != "label" else "label"
    return [
        {
            "product_id": str(row["product_id"]),
            "title": row["title"],
            "brand": row.get("brand") or "",
            "grade": row["grade"],
            "grade_index": grades.index(row["grade"]),
            "score": float(row[score]),
        }
        for _, row in order.iterrows()
    ]


def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("shoprel.explore", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _page_or_json(pages: Environment) -> Any:
    """Errors on pages answered with a page; on ``/api/`` with the service's JSON error body."""

    def respond(request: Request, status: int, message: str, headers: Any) -> Response:
        if request.url.path.startswith("/api/"):
            return error_response(status, message, headers=headers)
        page = pages.get_template("error.html").render(status=status, message=printable(message))
        return HTMLResponse(page, status_code=status, headers=headers)

    return respond


def serve(settings: ExploreSettings) -> None:
    import uvicorn

    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
