"""BM25 with the shop tokenizer: sizes stay whole, and queries with no token never crash."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from shoprel.eval.baselines import bm25_scores
from shoprel.eval.bm25 import Bm25, _stopwords, tokenize

TITLES = [
    "2x4 stud 8 ft. pressure treated lumber",
    "1/2 in. copper pipe coupling",
    "4 in. x 6 in. ceramic wall tile",
    "18v cordless drill by dewalt",
    "white interior paint",
]


def test_tokens_keep_sizes_units_and_dimension_words() -> None:
    stop = _stopwords()
    assert tokenize("2x4 Stud", stop) == ["2x4", "stud"]
    assert tokenize("1/2 in. Copper 3.5in", stop) == ["1/2", "in", "copper", "3.5in"]
    assert tokenize("2 by 8 x 8", stop) == ["2", "by", "8", "x", "8"]
    assert tokenize("drill for the deck", stop) == ["drill", "deck"]
    assert tokenize("To", stop) == [] and tokenize("", stop) == []


@pytest.mark.parametrize("query", ["4 x 6", "1 by 2", "2 x 8 x 8", "To", "", "the of"])
def test_any_query_scores_without_error(query: str) -> None:
    index = Bm25(TITLES)
    scores = index.scores(query)
    assert scores.shape == (len(TITLES),) and np.isfinite(scores).all()
    has_tokens = bool(index.query_tokens(query))
    assert index.empty_queries == (0 if has_tokens else 1)
    if not has_tokens:
        assert (scores == 0).all()


def test_sizes_rank_the_item_that_has_them() -> None:
    index = Bm25(TITLES)
    assert index.scores("2x4").argmax() == 0
    assert index.scores("1/2 in coupling").argmax() == 1
    rows = index.top_k(["2x4 lumber", "To", "dewalt drill"], k=2)
    assert rows[0, 0] == 0 and rows[2, 0] == 3
    assert (rows[1] == -1).all()  # no token: no candidates
    assert index.empty_queries == 1


def test_baseline_gives_zero_to_queries_without_tokens(caplog: pytest.LogCaptureFixture) -> None:
    corpus = pd.DataFrame(
        {
            "product_id": [str(i) for i in range(len(TITLES))],
            "title": TITLES,
            "brand": "",
            "category": "",
        }
    )
    pairs = pd.DataFrame(
        {
            "query_id": ["a", "a", "b", "b"],
            "query": ["2x4", "2x4", "To", "To"],
            "product_id": ["0", "4", "0", "1"],
        }
    )
    with caplog.at_level("WARNING", logger="shoprel.eval.baselines"):
        scores = bm25_scores(pairs, corpus)
    assert scores[0] > 0 and scores[1] == 0 and (scores[2:] == 0).all()
    assert "1 of 2 queries have no token" in caplog.text


FAKE_JAX_LAX = """
import os

def top_k(scores, k):
    with open(os.environ["JAX_RECORD"], "a") as record:
        record.write(os.environ.get("JAX_PLATFORMS", "unset") + "\\n")
    return scores[:k], list(range(k))
"""


def test_bm25s_meets_jax_on_the_cpu_only(tmp_path) -> None:
    """Where JAX is installed, bm25s calls it at import; on a GPU JAX would take most of its
    memory. A stand-in JAX records the platform it is started with."""
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text("from . import lax\n")
    (tmp_path / "jax" / "lax.py").write_text(FAKE_JAX_LAX)
    record = tmp_path / "record.txt"
    script = (
        "import os; from shoprel.eval.bm25 import Bm25; "
        "index = Bm25(['copper pipe', 'wall tile']); "
        "assert 'JAX_PLATFORMS' not in os.environ; print(index.top_k(['pipe'], 1).tolist())"
    )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "JAX_RECORD": str(record)}
    env.pop("JAX_PLATFORMS", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[[0]]"
    assert record.read_text().splitlines() == ["cpu"]
