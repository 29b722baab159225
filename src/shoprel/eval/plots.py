"""Figures for benchmarks and reports (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shoprel.data.schema import GradeScale
from shoprel.eval.metrics import reliability_curve
from shoprel.io import atomic_path


def label_reliability(
    predicted: np.ndarray, labels: np.ndarray, scale: GradeScale, n_bins: int = 10
) -> dict[str, list[float]]:
    """Mean predicted vs mean true label per bin of the prediction, on the 0–1 unit scale."""
    span = scale.high - scale.low
    unit_pred = (np.asarray(predicted, float) - scale.low) / span
    unit_true = (np.asarray(labels, float) - scale.low) / span
    mean_pred, mean_true, counts = reliability_curve(unit_pred, unit_true, n_bins)
    keep = counts > 0
    error = float(np.sum(np.abs(mean_pred[keep] - mean_true[keep]) * counts[keep]) / counts.sum())
    return {
        "predicted": mean_pred[keep].round(4).tolist(),
        "observed": mean_true[keep].round(4).tolist(),
        "counts": counts[keep].tolist(),
        "calibration_error": round(error, 4),
    }


def plot_reliability(curves: dict[str, dict[str, list[float]]], path: str | Path, title: str):
    """One line per model: observed vs predicted label (unit scale), marker size by bin count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, curve in curves.items():
        sizes = 8 + 120 * np.asarray(curve["counts"]) / max(sum(curve["counts"]), 1)
        label = f"{name} (error {curve['calibration_error']:.3f})"
        axes.plot(curve["predicted"], curve["observed"], linewidth=1.2, label=label)
        axes.scatter(curve["predicted"], curve["observed"], s=sizes)
    axes.set(xlabel="predicted relevance (0 = lowest grade, 1 = highest)", ylabel="observed")
    axes.set(xlim=(0, 1), ylim=(0, 1), title=title)
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(figure)
