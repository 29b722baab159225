"""The evaluation table: one row per model, the same columns for all."""

from __future__ import annotations

from typing import Any

from rich.table import Table

COLUMNS: list[tuple[str, str]] = [
    ("pairwise_accuracy", "pairwise acc"),
    ("auc", "AUC"),
    ("ndcg@10", "NDCG@10"),
    ("rmse", "RMSE"),
    ("macro_f1", "macro-F1"),
    ("accuracy", "accuracy"),
    ("over_recall", "over-recall"),
    ("ece", "ECE"),
]


def metrics_table(results: dict[str, dict[str, Any]], title: str = "evaluation") -> Table:
    """A rich table of ``{model name: metrics}``; a missing metric shows as a dash."""
    table = Table(title=title)
    table.add_column("model")
    for _, header in COLUMNS:
        table.add_column(header, justify="right")
    for name, result in results.items():
        cells = [result.get(key) for key, _ in COLUMNS]
        table.add_row(name, *("-" if v is None else f"{v:.3f}" for v in cells))
    return table
