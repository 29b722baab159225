"""Label-scale reliability and its figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoprel.data.schema import get_scale
from shoprel.eval.plots import (
    confusion_figure,
    data_size_figure,
    figure_png,
    label_reliability,
    latency_figure,
    plot_reliability,
    score_distribution_figure,
)


def test_a_calibrated_prediction_has_no_error_and_a_biased_one_has_its_bias() -> None:
    scale = get_scale("homedepot")  # labels 1..3
    rng = np.random.default_rng(0)
    labels = rng.choice([1.0, 2.0, 3.0], size=3000)
    exact = label_reliability(labels, labels, scale)
    assert exact["calibration_error"] == pytest.approx(0.0)
    assert exact["predicted"] == pytest.approx(exact["observed"])
    shifted = label_reliability(np.clip(labels + 0.5, 1, 3), labels, scale)
    # +0.5 on a span of 2 is 0.25 on the unit scale, except where the clip at 3 eats it
    assert shifted["calibration_error"] == pytest.approx(0.25 * 2 / 3, abs=0.02)
    assert sum(shifted["counts"]) == 3000


def test_plot_writes_a_png(tmp_path: Path) -> None:
    scale = get_scale("esci")
    labels = np.arange(12, dtype=float) % 4
    curve = label_reliability(labels * 0.9, labels, scale)
    plot_reliability({"model": curve}, tmp_path / "reliability.png", "test")
    assert (tmp_path / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_report_figure_renders() -> None:
    scale = get_scale("esci")
    rng = np.random.default_rng(0)
    labels = rng.choice(scale.values, size=200)
    scores = labels + rng.normal(0, 0.5, size=200)
    grades = scale.nearest_grade(labels)
    point = {"augmented_pairs": 0, "pairwise_accuracy": 0.6, "auc": 0.7, "rmse": 0.5}
    figures = [
        score_distribution_figure(scores, labels, scale, "scores"),
        confusion_figure(grades, scale.nearest_grade(scores), list(scale.grades), "confusion"),
        data_size_figure([point, point | {"augmented_pairs": 100}], {"teacher": point}, "auc"),
        latency_figure({"int8": {20: 3.0, 100: 9.0}}, "latency"),
    ]
    for figure in figures:
        assert figure_png(figure)[:4] == b"\x89PNG"


def test_figures_leave_out_undefined_values_instead_of_failing() -> None:
    scale = get_scale("homedepot")
    scores = np.array([0.1, np.nan, 0.7, np.inf, 0.9])
    labels = np.array([1.0, 2.0, 3.0, 3.0, 3.0])
    figure = score_distribution_figure(scores, labels, scale, "scores")
    drawn = sum(patch.get_height() > 0 for patch in figure.axes[0].patches)
    assert drawn == 3  # the three finite scores, one bar each
    points = [{"augmented_pairs": 0, "auc": 0.7}, {"augmented_pairs": 100, "auc": None}]
    references = {"teacher": {"auc": 0.8}, "one-class test split": {"auc": None}}
    figure = data_size_figure(points, references, "auc")
    student, *lines = figure.axes[0].get_lines()
    assert list(student.get_xdata()) == [0] and len(lines) == 1
