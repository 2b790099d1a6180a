"""Render the report numbers (report.numbers) as charts in one self-contained HTML page (inline SVG and CSS, no scripts)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from report import charts
from report.numbers import ReportNumbers

MODEL_LABELS = {"model": "LightGBM (this model)", "rule_score": "Rule score (points per event)",
                "logistic": "Logistic regression"}


def _table(frame: pd.DataFrame, table_id: str, formats: dict[str, str]) -> str:
    shown = frame.copy()
    for col, fmt in formats.items():
        if col not in shown:
            continue
        shown[col] = shown[col].map(lambda v, f=fmt: "–" if pd.isna(v) else f.format(v))
    return shown.to_html(index=False, table_id=table_id, border=0, escape=True)


def _figure(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.3f}"


def render(f: ReportNumbers) -> str:
    env = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["j2", "html"]))
    descriptions = dict(zip(f.importance["feature"], f.importance["description"], strict=True))
    families = dict(zip(f.importance["feature"], f.importance["family"], strict=True))
    rates = {"rate": "{:.1%}", "snapshots": "{:,}", "leads": "{:,}", "prospects": "{:,}"}
    metrics = [{"label": MODEL_LABELS.get(row["model"], row["model"]),
                **{k: _figure(row.get(k)) for k in ("roc_auc", "pr_auc", "lift_top_decile", "brier", "ece")}}
               for row in f.metrics.to_dict("records")]
    return env.get_template("template.html.j2").render(
        meta=f.metadata, f=f, metrics=metrics,
        importance=f.importance.head(25).to_dict("records"),
        charts={"families": charts.families(f), "importance": charts.importance(f),
                "origin": charts.conversion(f.by_origin, "origin", "By origin channel"),
                "stage": charts.conversion(f.by_stage, "deepest stage reached", "By deepest stage reached"),
                "calibration": charts.calibration(f), "gains": charts.gains(f),
                "scores": charts.score_distribution(f)},
        dependence=[{"family": families[name].replace("_", " "), "slug": families[name].replace("_", "-"),
                     "description": descriptions[name],
                     "svg": charts.dependence(f, name, descriptions[name])} for name in f.dependence],
        tables={"origin": _table(f.by_origin, "origin-table", rates),
                "stage": _table(f.by_stage, "stage-table", rates),
                "tiers": _table(f.tiers, "tier-table", {**rates, "share": "{:.1%}"}),
                "cutoffs": _table(f.cutoffs, "cutoff-table", {
                    "probability at least": "{:.3f}", "leads a week to sales": "{:,.0f}",
                    "become prospects": "{:.1%}", "share of all prospects": "{:.1%}"})},
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write(f: ReportNumbers, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(f), encoding="utf-8")
    return path
