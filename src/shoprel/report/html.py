"""``RUN/report.html``: the data card, one metrics table for every model, and the plots.

Self-contained: the figures are PNGs embedded as data URIs and the style is inline, so the file
opens offline and can be mailed. It reads what the pipeline's stages wrote:

- ``data/card.json`` and ``data/test.parquet``;
- ``eval/metrics.json``: ``{"split", "models": {name: metrics}, "scores": {name: file}}``;
- optional ``eval/data_size.json`` (the distillation curve: ``points``, ``label_only``,
  ``teacher``) and ``export/latency.json`` (``{scorer: {items: p50_ms}}``).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pandas as pd

from shoprel.data.schema import get_scale
from shoprel.eval import plots
from shoprel.eval.evaluate import align_scores, predicted_labels
from shoprel.eval.table import COLUMNS
from shoprel.io import atomic_path, read_json
from shoprel.serve.calibration import CHECK_FILE

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shoprel report: {{ name }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figcaption { font-size: 12px; color: #555; max-width: 600px; }
.best { font-weight: bold; }
</style></head><body>
<h1>shoprel report: {{ name }}</h1>
<h2>Data</h2>
<table id="data-card"><tr><th>field</th><th>value</th></tr>
{% for key, value in card %}<tr><td>{{ key }}</td><td>{{ value }}</td></tr>{% endfor %}
</table>
<table id="splits"><tr><th>split</th><th>pairs</th><th>queries</th><th>products</th>
{% for grade in grades %}<th>{{ grade }}</th>{% endfor %}</tr>
{% for row in splits %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>
<h2>Metrics on the {{ split }} split</h2>
<table id="metrics"><tr><th>model</th>
{% for _, title in columns %}<th>{{ title }}</th>{% endfor %}</tr>
{% for model, cells in rows %}<tr><td>{{ model }}</td>
{% for cell in cells %}<td class="{{ cell.css }}">{{ cell.text }}</td>{% endfor %}</tr>
{% endfor %}</table>
<p>Pairwise accuracy, AUC and NDCG use the raw scores; RMSE, macro-F1, accuracy and over-recall
use the grade distribution where a model has one, else a linear map of its score: fitted on its
dev scores for the baselines, cross-fitted by query for the others. Best value per column in bold;
none where every model ties.</p>
<h2>Plots</h2>
{% for fig in figures %}<figure id="{{ fig.id }}"><img alt="{{ fig.caption }}"
 src="data:image/png;base64,{{ fig.png }}"><figcaption>{{ fig.caption }}</figcaption></figure>
{% endfor %}
{% for note in notes %}<p class="note">{{ note }}</p>{% endfor %}
</body></html>
"""


def _card_rows(card: dict[str, Any]) -> list[tuple[str, str]]:
    keys = ("source", "scale", "pairs", "queries", "products", "rows_read", "rows_rejected")
    rows = [
        (k, f"{card[k]:,}" if isinstance(card[k], int) else str(card[k])) for k in keys if k in card
    ]
    if card.get("rejects_by_reason"):
        rows.append(("rejects_by_reason", json.dumps(card["rejects_by_reason"])))
    return rows


def _split_rows(card: dict[str, Any], grades: list[str]) -> list[list[str]]:
    """One row per split (pairs, queries, products, pairs per grade), then the total."""
    parts = [*card.get("splits", {}).items(), ("all", card)]
    return [_size_row(name, facts, grades) for name, facts in parts]


def _size_row(name: str, facts: dict[str, Any], grades: list[str]) -> list[str]:
    counts = facts.get("grade_counts", {})
    sizes = [facts.get(k, 0) for k in ("pairs", "queries", "products")]
    return [name, *(f"{n:,}" for n in sizes + [counts.get(g, 0) for g in grades])]


def metric_rows(models: dict[str, dict[str, Any]]) -> list[tuple[str, list[dict[str, str]]]]:
    """Each model's cells as shown (3 decimals); the best shown value per column is bold."""
    lower_is_better = {"rmse", "over_recall", "ece"}
    shown = {
        name: {k: f"{m[k]:.3f}" for k, _ in COLUMNS if isinstance(m.get(k), (int, float))}
        for name, m in models.items()
    }
    best = {}
    for key, _ in COLUMNS:
        values = {float(cells[key]) for cells in shown.values() if key in cells}
        if len(values) > 1:  # a column where every model ties has no best
            best[key] = f"{min(values) if key in lower_is_better else max(values):.3f}"
    return [
        (name, [_cell(cells.get(key), best.get(key)) for key, _ in COLUMNS])
        for name, cells in shown.items()
    ]


def _cell(text: str | None, best: str | None) -> dict[str, str]:
    return {"text": text or "–", "css": "best" if text is not None and text == best else ""}


def _encoded(figure: Any, fig_id: str, caption: str) -> dict[str, str]:
    png = base64.b64encode(plots.figure_png(figure)).decode()
    return {"id": fig_id, "caption": caption, "png": png}


def _model_figures(run: Path, evaluation: dict[str, Any], pairs: pd.DataFrame, scale) -> list:
    labels = pairs["label"].to_numpy(float)
    curves, figures = {}, []
    focus = evaluation.get("focus") or list(evaluation["scores"])[-2:]
    for name, path in evaluation["scores"].items():
        scores = align_scores(pairs, pd.read_parquet(run / path), path)
        dev = _dev_fit(run, name, evaluation["models"].get(name, {}))
        predicted, probs, _ = predicted_labels(pairs, scores, scale, dev)
        curves[name] = plots.label_reliability(predicted, labels, scale)
        if name not in focus:
            continue
        raw = scores["score"].to_numpy(float)
        figure = plots.score_distribution_figure(raw, labels, scale, f"{name}: scores by grade")
        figures.append(_encoded(figure, f"scores-{name}", f"{name}: score distribution per grade"))
        grades = probs.argmax(axis=1) if probs is not None else scale.nearest_grade(predicted)
        figure = plots.confusion_figure(
            scale.nearest_grade(labels), grades, list(scale.grades), f"{name}: grades"
        )
        figures.append(_encoded(figure, f"confusion-{name}", f"{name}: confusion matrix"))
    title = f"reliability on {evaluation['split']}"
    figures.insert(0, _encoded(plots.reliability_figure(curves, title), "reliability", title))
    return figures


def _dev_fit(
    run: Path, name: str, metrics: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The dev pairs and scores a model's label map was fitted on, where the metrics say it was
    (the baselines), so that its reliability curve uses the table's map."""
    dev_scores = run / "scores" / f"{name}.dev.parquet"
    if metrics.get("label_map") != "linear, fitted on dev" or not dev_scores.is_file():
        return None
    dev_pairs = pd.read_parquet(run / "data" / "dev.parquet")
    return dev_pairs, align_scores(dev_pairs, pd.read_parquet(dev_scores), str(dev_scores))


def _optional_figures(run: Path) -> tuple[list[dict[str, str]], list[str]]:
    figures, notes = [], []
    curve = run / "eval" / "data_size.json"
    if curve.is_file():
        data = read_json(curve)
        references = {k: data[k] for k in ("teacher", "label_only") if data.get(k)}
        for metric in ("pairwise_accuracy", "auc"):
            figure = plots.data_size_figure(data["points"], references, metric)
            caption = f"student {metric.replace('_', ' ')} against augmented pairs"
            figures.append(_encoded(figure, f"data-size-{metric}", caption))
    else:
        notes.append("No data-size curve in this run (eval/data_size.json is absent).")
    figures += _calibration_figures(run / "export" / CHECK_FILE, notes)
    latency = run / "export" / "latency.json"
    if latency.is_file():
        by_scorer = {k: {int(n): v for n, v in d.items()} for k, d in read_json(latency).items()}
        title = "rerank latency (p50)"
        figures.append(_encoded(plots.latency_figure(by_scorer, title), "latency", title))
    else:
        notes.append("No serving latency in this run (export/latency.json is absent).")
    return figures, notes


def _calibration_figures(path: Path, notes: list[str]) -> list[dict[str, str]]:
    """The exported student's P(relevant) on test, before and after its dev calibration."""
    if not path.is_file():
        notes.append(f"No calibration check in this run (export/{path.name} is absent).")
        return []
    check = read_json(path)
    before, after = check["before"], check["after"]
    curves = {"raw score read on 0-1": before, "calibrated P(relevant)": after}
    ece = f"ECE {before['calibration_error']:.3f} before, {after['calibration_error']:.3f} after"
    title = f"student P(relevant) on test: {ece} calibration"
    figure = plots.reliability_figure(curves, title.replace(": ", "\n"), plots.PROBABILITY_AXES)
    for name, cut in check["thresholds"].items():
        notes.append(
            f"The dev cut for {name.replace('_', ' ')} (relevance >= {cut['relevance']:.3f}) "
            f"gives precision {cut['precision']}, recall {cut['recall']} on test."
        )
    return [_encoded(figure, "calibration", title)]


STAGE_NAMES = {"select": "selection", "sft": "SFT", "cot": "Multi-CoT", "dpo": "DPO"}


def lref_notes(judge_dir: Path) -> list[str]:
    """What the judge's stages did: which ran (and their seconds) and which the config left off,
    DPO's preference pairs by kind, and where the guard of Multi-CoT or DPO kept the judge the
    stage started from."""
    from shoprel.teacher.train import STAGES, SUMMARY_FILE

    notes = []
    if (judge_dir / SUMMARY_FILE).is_file():
        ran = read_json(judge_dir / SUMMARY_FILE).get("stages") or {}
        done = ", ".join(f"{STAGE_NAMES[k]} {v['seconds']:.0f} s" for k, v in ran.items())
        off = [STAGE_NAMES[name] for name in STAGES if name not in ran]
        notes.append(
            f"The judge's LREF stages: {done}"
            + (f"; off in this run's config: {', '.join(off)}." if off else ".")
        )
    for stage, name in (("cot", "Multi-CoT"), ("dpo", "DPO")):
        path = judge_dir / stage / "metrics.json"
        if not path.is_file():
            continue
        record = read_json(path)
        if stage == "dpo":
            kinds = record.get("kinds") or {}
            mix = ", ".join(f"{kind} {n}" for kind, n in kinds.items()) or "none"
            notes.append(
                f"DPO: {record.get('pairs', 0)} preference pairs (chosen<rejected: {mix})."
            )
        guard = record.get("guard")
        if guard and guard.get("kept_start"):
            notes.append(
                f"{name} guard: {guard['reason']}; the judge after {name} is the judge it "
                "started from."
            )
    return notes


def build_report(run: str | Path, name: str | None = None) -> Path:
    """Write ``RUN/report.html`` from the run's outputs and return its path."""
    from jinja2 import Template

    run = Path(run)
    card = read_json(run / "data" / "card.json")
    evaluation = read_json(run / "eval" / "metrics.json")
    pairs = pd.read_parquet(run / "data" / f"{evaluation['split']}.parquet")
    scale = get_scale(card["scale"])
    figures = _model_figures(run, evaluation, pairs, scale)
    extra, notes = _optional_figures(run)
    notes += lref_notes(run / "teacher" / "judge")
    page = Template(TEMPLATE, autoescape=True).render(
        name=name or run.name,
        card=_card_rows(card),
        grades=list(scale.grades),
        splits=_split_rows(card, list(scale.grades)),
        split=evaluation["split"],
        columns=COLUMNS,
        rows=metric_rows(evaluation["models"]),
        figures=figures + extra,
        notes=notes,
    )
    path = run / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
