import pytest

from shoprel.eval.table import COLUMNS
from shoprel.report.html import metric_rows

KEYS = [key for key, _ in COLUMNS]


def _bold(rows: list[tuple[str, list[dict[str, str]]]], column: int) -> list[str]:
    return [name for name, cells in rows if cells[column]["css"] == "best"]


def test_the_best_value_is_bold_and_lower_is_better_for_errors() -> None:
    models = {
        "a": {"auc": 0.7, "rmse": 0.5},
        "b": {"auc": 0.8, "rmse": 0.6},
    }
    rows = metric_rows(models)
    assert _bold(rows, KEYS.index("auc")) == ["b"]
    assert _bold(rows, KEYS.index("rmse")) == ["a"]


def test_a_column_where_every_model_ties_has_nothing_bold() -> None:
    models = {"a": {"over_recall": 1.0, "auc": 0.7}, "b": {"over_recall": 1.0, "auc": 0.6}}
    rows = metric_rows(models)
    assert _bold(rows, KEYS.index("over_recall")) == []
    assert _bold(rows, KEYS.index("auc")) == ["a"]
    assert rows[0][1][KEYS.index("over_recall")]["text"] == "1.000"


def test_models_that_tie_as_shown_are_all_bold() -> None:
    models = {"a": {"auc": 0.78201}, "b": {"auc": 0.78204}, "c": {"auc": 0.7}, "d": {}}
    rows = metric_rows(models)
    assert _bold(rows, KEYS.index("auc")) == ["a", "b"]
    assert rows[3][1][KEYS.index("auc")]["text"] == "–"


def test_lref_notes_name_the_kinds_and_a_guard_that_kept_the_start(tmp_path) -> None:
    import json

    from shoprel.report.html import lref_notes

    assert lref_notes(tmp_path) == []
    (tmp_path / "dpo").mkdir()
    record = {
        "pairs": 12,
        "kinds": {"irrelevant<partial": 8, "partial<exact": 4},
        "guard": {"kept_start": False, "reason": "dev macro-F1 change +0.004, top grade share 61%"},
    }
    (tmp_path / "dpo" / "metrics.json").write_text(json.dumps(record))
    assert lref_notes(tmp_path) == [
        "DPO: 12 preference pairs (chosen<rejected: irrelevant<partial 8, partial<exact 4)."
    ]
    record["guard"] = {"kept_start": True, "reason": "dev macro-F1 fell by 0.050 (> 0.01)"}
    (tmp_path / "dpo" / "metrics.json").write_text(json.dumps(record))
    notes = lref_notes(tmp_path)
    assert len(notes) == 2 and notes[1].startswith("DPO guard: dev macro-F1 fell by 0.050")
    (tmp_path / "cot").mkdir()
    cot = {"guard": {"kept_start": True, "reason": "100% of dev predictions are 'exact' (> 90%)"}}
    (tmp_path / "cot" / "metrics.json").write_text(json.dumps(cot))
    assert lref_notes(tmp_path)[0] == (
        "Multi-CoT guard: 100% of dev predictions are 'exact' (> 90%); the judge after Multi-CoT "
        "is the judge it started from."
    )


def test_lref_notes_name_the_stages_that_ran_and_those_left_off(tmp_path) -> None:
    import json

    from shoprel.report.html import lref_notes

    summary = {"stages": {"select": {"seconds": 44.7}, "sft": {"seconds": 185.5}}, "final": "sft"}
    (tmp_path / "lref.json").write_text(json.dumps(summary))
    assert lref_notes(tmp_path) == [
        "The judge's LREF stages: selection 45 s, SFT 186 s; off in this run's config: "
        "Multi-CoT, DPO."
    ]
    summary["stages"] |= {"cot": {"seconds": 68.0}, "dpo": {"seconds": 43.9}}
    (tmp_path / "lref.json").write_text(json.dumps(summary))
    assert lref_notes(tmp_path)[0].endswith("Multi-CoT 68 s, DPO 44 s.")


def test_a_baselines_curve_uses_the_dev_fitted_map_its_metrics_used(tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from shoprel.data.schema import get_scale
    from shoprel.eval.evaluate import evaluate_scores, predicted_labels
    from shoprel.report.html import _dev_fit

    scale = get_scale("homedepot")
    rng = np.random.default_rng(0)

    def split(n: int, prefix: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        labels = rng.choice([1.0, 2.0, 3.0], size=n)
        pairs = pd.DataFrame(
            {
                "pair_id": [f"{prefix}{i}" for i in range(n)],
                "query_id": [f"q{i % 8}" for i in range(n)],
                "label": labels,
            }
        )
        scores = pd.DataFrame(
            {"pair_id": pairs["pair_id"], "score": 10 * labels + rng.normal(size=n)}
        )
        return pairs, scores

    (tmp_path / "data").mkdir()
    (tmp_path / "scores").mkdir()
    dev_pairs, dev_scores = split(64, "d")
    test_pairs, test_scores = split(64, "t")
    dev_pairs.to_parquet(tmp_path / "data" / "dev.parquet")
    dev_scores.to_parquet(tmp_path / "scores" / "bm25.dev.parquet")
    metrics = evaluate_scores(test_pairs, test_scores, scale, (dev_pairs, dev_scores))
    assert metrics["label_map"] == "linear, fitted on dev"
    dev = _dev_fit(tmp_path, "bm25", metrics)
    predicted, _, how = predicted_labels(test_pairs, test_scores, scale, dev)
    assert how == "linear, fitted on dev"
    rmse = float(np.sqrt(np.mean((predicted - test_pairs["label"]) ** 2)))
    assert rmse == pytest.approx(metrics["rmse"], abs=1e-6)
    assert _dev_fit(tmp_path, "bm25", {"label_map": "linear, cross-fitted by query"}) is None
