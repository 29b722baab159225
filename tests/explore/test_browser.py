"""The explorer in headless Chromium (Debian's, driven by Playwright): sort, open a query, search
live, judge, and a screenshot that is not blank."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from shoprel.explore.app import ExploreSettings, create_app
from shoprel.explore.search import SearchConfig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"
)
SCREENSHOT = Path(__file__).parents[2] / "docs" / "explore-query.png"


@pytest.fixture(scope="module")
def browser_page(
    explore_run: Path, tiny_bi_encoder: Path, tmp_path_factory: pytest.TempPathFactory, live_app
) -> Iterator[tuple[object, str, Path]]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright")
    run = tmp_path_factory.mktemp("browser") / "run"
    shutil.copytree(explore_run, run, ignore=shutil.ignore_patterns("judgments.jsonl"))
    settings = ExploreSettings(run=run, search=SearchConfig(encoder=str(tiny_bi_encoder)))
    with live_app(create_app(settings)) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.set_default_timeout(60_000)
        try:
            yield page, url, run
        finally:
            browser.close()


def test_overview_sorts_in_the_browser(browser_page) -> None:
    page, url, run = browser_page
    page.goto(url)
    queries = pd.read_parquet(run / "data" / "test.parquet").groupby("query_id").size()
    assert page.locator("#queries tbody tr").count() == len(queries)
    page.get_by_role("link", name="items", exact=True).click()  # ascending
    page.get_by_role("link", name="items ▲").click()  # again: descending
    page.get_by_role("link", name="items ▼").wait_for()
    page.wait_for_url("**desc=true**")
    ids = page.locator("#queries tbody tr").evaluate_all("rows => rows.map(r => r.dataset.queryId)")
    assert list(queries[ids]) == sorted(queries, reverse=True)


def test_query_page_judging_and_screenshot(browser_page, backwards: str) -> None:
    page, url, run = browser_page
    page.goto(f"{url}/query/{backwards}")
    assert page.locator("section.ranking").count() == 4
    assert page.locator("li.item.moved").count() >= 2
    png = page.screenshot(full_page=False)
    _assert_not_blank(png)
    if os.environ.get("SHOPREL_UPDATE_DOCS"):
        SCREENSHOT.write_bytes(_small(png))
    form = page.locator("form.judge").first
    product = form.get_attribute("data-product")
    form.locator("select").select_option("substitute")
    page.fill("#rater", "browser-rater")
    form.get_by_role("button", name="judge").click()
    assert form.locator("output").inner_text(timeout=30_000) in ("saving…", "saved")
    page.wait_for_function("document.querySelector('form.judge output').textContent === 'saved'")
    rows = [json.loads(line) for line in (run / "judgments.jsonl").read_text().splitlines()]
    assert [(r["product_id"], r["label"], r["rater"]) for r in rows] == [
        (product, "substitute", "browser-rater")
    ]


def test_live_search_fills_in_the_teacher(browser_page) -> None:
    page, url, run = browser_page
    query = pd.read_parquet(run / "data" / "test.parquet")["query"].iloc[0]
    page.goto(url)
    page.get_by_label("live search").fill(query)
    page.get_by_label("live search").press("Enter")
    page.wait_for_selector("#hits")
    page.wait_for_function(
        "[...document.querySelectorAll('#hits td.teacher')].every(td => td.textContent !== '…')"
    )
    cells = page.locator("#hits td.teacher").all_inner_texts()
    assert cells and all(float(text) == float(text) for text in cells)  # numbers, none missing
    assert page.locator("#teacher-status").inner_text().startswith("teacher:")


def _assert_not_blank(png: bytes) -> None:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colors = image.getcolors(maxcolors=1_000_000)
    assert colors is not None and len(colors) > 50, "the screenshot is (nearly) one colour"
    dark = sum(count for count, rgb in colors if sum(rgb) < 200)
    assert dark > 0.005 * image.width * image.height, "no text drawn"


def _small(png: bytes) -> bytes:
    """The screenshot as a 128-colour PNG, for the README."""
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").quantize(128).save(out, "PNG", optimize=True)
    return out.getvalue()
