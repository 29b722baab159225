"""The explorer over HTTP: pages, judging, live search, bad input and the API key."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from shoprel.explore.app import ExploreSettings, create_app
from shoprel.explore.search import SearchConfig
from shoprel.scoring import load_scorer


@pytest.fixture(scope="module")
def settings(explore_run: Path, tiny_bi_encoder: Path) -> ExploreSettings:
    return ExploreSettings(run=explore_run, search=SearchConfig(encoder=str(tiny_bi_encoder)))


@pytest.fixture(scope="module")
def client(settings: ExploreSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def test_pairs(explore_run: Path) -> pd.DataFrame:
    return pd.read_parquet(explore_run / "data" / "test.parquet")


def test_overview_lists_every_query_and_sorts_them(
    client: TestClient, test_pairs: pd.DataFrame, backwards: str
) -> None:
    page = client.get("/").text
    for query_id in test_pairs["query_id"].unique():
        assert f'data-query-id="{query_id}"' in page
    disagree = page[page.index('id="disagree"') :]
    assert disagree.index(f"/query/{backwards}") < disagree.index("</ol>")
    by_items = client.get("/", params={"sort": "items", "desc": "true"}).text
    counts = test_pairs.groupby("query_id").size()
    shown = [q for q in counts.index if f'data-query-id="{q}"' in by_items]
    order = sorted(shown, key=lambda q: by_items.index(f'data-query-id="{q}"'))
    assert list(counts[order]) == sorted(counts[order], reverse=True)


def test_query_page_ranks_side_by_side_and_highlights_moves(
    client: TestClient, backwards: str
) -> None:
    page = client.get(f"/query/{backwards}").text
    sections = page.split('<section class="ranking"')[1:]
    assert [s.split('"')[1] for s in sections] == [
        "label",
        "teacher",
        "student (distilled)",
        "bm25",
    ]

    def order(section: str) -> list[str]:
        return [part.split('"')[0] for part in section.split('data-product="')[1:]]

    teacher, student = order(sections[1]), order(sections[2])
    assert student == teacher[::-1]
    assert 'class="item moved"' in sections[1] and 'class="item moved"' in sections[2]
    assert 'class="item moved"' not in sections[0] + sections[3]
    # the student's column carries the calibrated export's P(relevant), the others do not
    assert sections[2].count('class="relevance"') == len(student)
    assert 'class="relevance"' not in sections[0] + sections[1] + sections[3]


def test_html_in_a_title_shows_as_text(
    client: TestClient, test_pairs: pd.DataFrame, hostile_title: str
) -> None:
    assert test_pairs["title"].iloc[0] == hostile_title
    page = client.get(f"/query/{test_pairs['query_id'].iloc[0]}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "<script>alert" not in page and "<b>bold" not in page


@pytest.mark.parametrize(
    "path",
    [
        "/query/no-such-query",
        "/query/..%2F..%2Fdata%2Fcard.json",
        "/static/..%2Fjudgments.py",
        "/static/../app.py",
        "/compare",  # no --compare run
        "/nowhere",
    ],
)
def test_unknown_ids_and_paths_are_404_pages(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "import" not in response.text and '"scale"' not in response.text


def _judgment(product_id: str, grade: str = "exact", **extra: object) -> dict:
    return {"query": "cordless drill", "product_id": product_id, "grade": grade, **extra}


def test_judging_appends_once_and_bad_grades_are_422(
    client: TestClient, explore_run: Path, test_pairs: pd.DataFrame
) -> None:
    product = str(test_pairs["product_id"].iloc[1])
    body = _judgment(product, rater="ann", judgment_id=str(uuid.uuid4()))
    first = client.post("/api/judgments", json=body)
    again = client.post("/api/judgments", json=body)  # a retried submission
    assert first.status_code == again.status_code == 201
    assert first.json()["written"] and not again.json()["written"]
    rows = [json.loads(line) for line in (explore_run / "judgments.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r["judgment_id"] == body["judgment_id"]]
    assert len(mine) == 1
    assert mine[0]["label"] == "exact" and mine[0]["rater"] == "ann"
    assert mine[0]["title"] == test_pairs["title"].iloc[1]
    for bad, field in (
        (_judgment(product, grade="great"), "grade"),
        (_judgment("no-such-product"), "product_id"),
        (_judgment(product, query="  "), "query"),
        ({"product_id": product, "grade": "exact"}, "query"),
    ):
        response = client.post("/api/judgments", json=bad)
        assert response.status_code == 422, bad
        assert field in response.json()["error"]["message"]
    counts = client.get("/api/judgments/counts").json()
    assert counts["judgments"] == len(rows)
    assert f"Judgments: {len(rows)} on" in client.get("/").text


def test_live_search_reranks_with_the_student_and_the_teacher_scores_on_demand(
    client: TestClient, explore_run: Path, test_pairs: pd.DataFrame
) -> None:
    query = test_pairs["query"].iloc[0]
    page = client.get("/search", params={"q": query}).text
    products = [p.split('"')[0] for p in page.split('<tr data-product="')[1:]]
    scores = [float(s.split("<")[0]) for s in page.split('<td class="score">')[1:]]
    assert len(products) >= 5 and scores == sorted(scores, reverse=True)
    assert test_pairs["product_id"].iloc[0] in products  # BM25 finds the product of the query
    answer = client.post("/api/teacher-scores", json={"query": query, "product_ids": products})
    assert answer.status_code == 200
    catalog = pd.concat(
        pd.read_parquet(explore_run / "data" / f"{s}.parquet") for s in ("train", "dev", "test")
    )
    items = (
        catalog.drop_duplicates("product_id").set_index("product_id").loc[products].reset_index()
    )
    expected = load_scorer(explore_run / "teacher" / "ensemble").predict(
        items.assign(query=query, pair_id=items["product_id"])
    )
    got = answer.json()["scores"]
    for pair_id, score in zip(expected["pair_id"], expected["score"], strict=True):
        assert got[pair_id] == pytest.approx(score, abs=1e-5)
    assert client.get("/search", params={"q": "zzqqxx"}).status_code == 200


def test_the_api_key_guards_judging_but_not_the_pages(settings: ExploreSettings) -> None:
    keyed = ExploreSettings(run=settings.run, api_key="s3cret", search=settings.search)
    with TestClient(create_app(keyed)) as client:
        product = str(pd.read_parquet(settings.run / "data" / "test.parquet")["product_id"].iloc[0])
        assert client.post("/api/judgments", json=_judgment(product)).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (
            client.post("/api/judgments", json=_judgment(product), headers=wrong).status_code == 401
        )
        right = {"Authorization": "Bearer s3cret"}
        assert (
            client.post("/api/judgments", json=_judgment(product), headers=right).status_code == 201
        )
        assert client.get("/").status_code == 200


def test_eight_raters_at_once_each_judgment_once(
    settings: ExploreSettings, tmp_path: Path, live_app
) -> None:
    run = tmp_path / "run"
    shutil.copytree(settings.run, run, ignore=shutil.ignore_patterns("judgments.jsonl"))
    app = create_app(ExploreSettings(run=run, search=settings.search))
    products = pd.read_parquet(run / "data" / "test.parquet")["product_id"].astype(str).tolist()
    sent: list[str] = []

    def rater(url: str, n: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for k in range(15):
                body = _judgment(products[(n * 15 + k) % len(products)], rater=f"r{n}")
                body["judgment_id"] = str(uuid.uuid4())
                for _ in range(2):  # every judgment sent twice, as a client retrying would
                    assert http.post("/api/judgments", json=body).status_code == 201
                sent.append(body["judgment_id"])

    with live_app(app) as url:
        raters = [threading.Thread(target=rater, args=(url, n)) for n in range(8)]
        for r in raters:
            r.start()
        for r in raters:
            r.join(120)
    lines = (run / "judgments.jsonl").read_text().splitlines()
    assert len(sent) == 120
    assert sorted(json.loads(line)["judgment_id"] for line in lines) == sorted(sent)


def test_the_overview_can_show_every_model(client: TestClient, explore_run: Path) -> None:
    models = json.loads((explore_run / "eval" / "metrics.json").read_text())["models"]
    assert "student (labels only)" in models  # a model the featured columns leave out
    featured = client.get("/").text
    every = client.get("/", params={"every": "true"}).text
    for model in models:
        assert f">{model} pairwise</a>" in every
    assert ">student (labels only) pairwise</a>" not in featured


def test_live_search_scores_with_the_teacher_the_run_recorded_and_404s_without_one(
    explore_run: Path, tiny_bi_encoder: Path, tmp_path: Path
) -> None:
    run = Path(shutil.copytree(explore_run, tmp_path / "run"))
    (run / "teacher" / "ensemble").rename(run / "teacher" / "judge")  # a one-member teacher
    (run / "stages").mkdir(exist_ok=True)
    record = {"result": {"teacher": "runs/elsewhere/teacher/judge"}}  # relative to another cwd
    (run / "stages" / "teacher.json").write_text(json.dumps(record))
    settings = ExploreSettings(run=run, search=SearchConfig(encoder=str(tiny_bi_encoder)))
    product = pd.read_parquet(run / "data" / "test.parquet")["product_id"].iloc[0]
    body = {"query": "drill", "product_ids": [product]}
    with TestClient(create_app(settings)) as client:
        answer = client.post("/api/teacher-scores", json=body)
        assert answer.status_code == 200 and answer.json()["teacher"] == "judge"
        assert set(answer.json()["scores"]) == {product}
    shutil.rmtree(run / "teacher" / "judge")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        missing = client.post("/api/teacher-scores", json=body)
        assert missing.status_code == 404 and "no teacher to score with" in missing.text
