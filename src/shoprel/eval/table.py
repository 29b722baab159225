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


def metrics_table(
    results: dict[str, dict[str, Any]],
    title: str = "evaluation",
    extra: list[tuple[str, str]] | None = None,
) -> Table:
    """A rich table of ``{model name: metrics}`` (plus ``extra`` (key, header) columns such as
    training seconds); a missing value shows as a dash."""
    columns = COLUMNS + (extra or [])
    table = Table(title=title)
    table.add_column("model")
    for _, header in columns:
        table.add_column(header, justify="right")
    for name, result in results.items():
        table.add_row(name, *(_cell(result.get(key)) for key, _ in columns))
    return table


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}"
