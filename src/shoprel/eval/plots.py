"""Figures for benchmarks and reports (matplotlib, no display needed).

Each ``*_figure`` function returns a matplotlib figure; ``save_figure`` writes one atomically and
``figure_png`` gives its PNG bytes (for a self-contained HTML report).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from shoprel.data.schema import GradeScale
from shoprel.eval.metrics import reliability_summary
from shoprel.io import atomic_path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path) -> None:
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    _pyplot().close(figure)


def figure_png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    _pyplot().close(figure)
    return buffer.getvalue()


def label_reliability(
    predicted: np.ndarray, labels: np.ndarray, scale: GradeScale, n_bins: int = 10
) -> dict[str, list[float]]:
    """Mean predicted vs mean true label per bin of the prediction, on the 0–1 unit scale."""
    span = scale.high - scale.low
    unit_pred = (np.asarray(predicted, float) - scale.low) / span
    unit_true = (np.asarray(labels, float) - scale.low) / span
    return reliability_summary(unit_pred, unit_true, n_bins)


LABEL_AXES = ("predicted relevance (0 = lowest grade, 1 = highest)", "observed")
PROBABILITY_AXES = ("predicted P(relevant)", "observed share relevant")


def reliability_figure(
    curves: dict[str, dict[str, list[float]]], title: str, axis_labels: tuple[str, str] = LABEL_AXES
) -> Any:
    """One line per curve: observed vs predicted (unit scale), marker size by bin count."""
    figure, axes = _pyplot().subplots(figsize=(5.5, 5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, curve in curves.items():
        sizes = 8 + 120 * np.asarray(curve["counts"]) / max(sum(curve["counts"]), 1)
        label = f"{name} (error {curve['calibration_error']:.3f})"
        axes.plot(curve["predicted"], curve["observed"], linewidth=1.2, label=label)
        axes.scatter(curve["predicted"], curve["observed"], s=sizes)
    axes.set(xlabel=axis_labels[0], ylabel=axis_labels[1])
    axes.set(xlim=(0, 1), ylim=(0, 1), title=title)
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    return figure


def plot_reliability(curves: dict[str, dict[str, list[float]]], path: str | Path, title: str):
    save_figure(reliability_figure(curves, title), path)


def score_distribution_figure(
    scores: np.ndarray, labels: np.ndarray, scale: GradeScale, title: str
) -> Any:
    """Histograms of one model's scores, one per true grade (nearest grade of the label)."""
    figure, axes = _pyplot().subplots(figsize=(5.5, 3.6))
    scores = np.asarray(scores, float)
    finite = np.isfinite(scores)  # a NaN or inf score is left out, not the figure
    grades = scale.nearest_grade(np.asarray(labels, float))[finite]
    scores = scores[finite]
    edges = np.histogram_bin_edges(scores, bins=30) if len(scores) else np.linspace(0, 1, 31)
    for index, name in enumerate(scale.grades):
        chosen = scores[grades == index]
        if len(chosen):
            axes.hist(chosen, bins=edges, alpha=0.45, density=True, label=f"{name} ({len(chosen)})")
    axes.set(xlabel="score", ylabel="density", title=title)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def confusion_figure(
    true_grades: np.ndarray, predicted_grades: np.ndarray, names: list[str], title: str
):
    """Row-normalised confusion matrix of grades with counts in the cells."""
    n = len(names)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (np.asarray(true_grades), np.asarray(predicted_grades)), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = _pyplot().subplots(figsize=(4.2, 3.8))
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            colour = "white" if shares[i, j] > 0.6 else "black"
            axes.text(
                j,
                i,
                f"{counts[i, j]}\n{shares[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=7,
                color=colour,
            )
    axes.set_xticks(range(n), names, rotation=30, fontsize=7)
    axes.set_yticks(range(n), names, fontsize=7)
    axes.set(xlabel="predicted grade", ylabel="true grade", title=title)
    figure.tight_layout()
    return figure


def data_size_figure(
    points: list[dict[str, float]], references: dict[str, dict[str, float]], metric: str
) -> Any:
    """A metric against the number of augmented pairs, references as horizontal lines."""
    figure, axes = _pyplot().subplots(figsize=(5.5, 3.6))
    shown = [p for p in points if p.get(metric) is not None]  # undefined (NaN) left out
    xs = [p["augmented_pairs"] for p in shown]
    axes.plot(xs, [p[metric] for p in shown], marker="o", label="distilled student")
    for index, (name, values) in enumerate(references.items()):
        if values.get(metric) is not None:
            axes.axhline(values[metric], linestyle="--", color=f"C{index + 1}", label=name)
    axes.set(xlabel="augmented pairs labeled by the teacher", ylabel=metric.replace("_", " "))
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def latency_figure(latency_ms: dict[str, dict[int, float]], title: str) -> Any:
    """p50 latency against items per request, one line per scorer."""
    figure, axes = _pyplot().subplots(figsize=(5.5, 3.6))
    for name, by_items in latency_ms.items():
        items = sorted(by_items)
        axes.plot(items, [by_items[i] for i in items], marker="o", label=name)
    axes.set(xlabel="items reranked per request", ylabel="p50 latency (ms)", title=title)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def frontier_figure(points: list[dict[str, Any]], title: str) -> Any:
    """AUC against rerank latency, one labeled dot per model: the speed-quality frontier."""
    figure, axes = _pyplot().subplots(figsize=(6.0, 4.0))
    by_latency = sorted(points, key=lambda p: p["p50_ms_100"])
    for index, point in enumerate(by_latency):  # labels of neighbours staggered, not stacked
        axes.scatter(point["p50_ms_100"], point["auc"], color="C0" if point["layers"] else "C1")
        axes.annotate(point["name"], (point["p50_ms_100"], point["auc"]), fontsize=7,
                      xytext=(4, 2 - 10 * (index % 3)), textcoords="offset points")  # fmt: skip
    axes.set(xlabel="p50 latency, 100 items (ms)", ylabel="test AUC", title=title)
    axes.set_xscale("log")
    figure.tight_layout()
    return figure
