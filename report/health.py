"""The model-health page: one self-contained HTML file (inline SVG and CSS, no scripts), in the report's style."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from report.charts import BLUE, GREY, ORANGE, _short, _svg
from report.page import _table
from training.monitor import Health

TOP = 15


def drift_chart(h: Health, limit: float) -> str:
    rows = h.drift.head(TOP).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1))
    ax.barh([_short(d) for d in rows["description"]], rows["psi"],
            color=[ORANGE if v > limit else BLUE for v in rows["psi"]])
    ax.axvline(limit, color=GREY, ls="--", lw=1, label=f"alarm above {limit:g}")
    ax.set(xlabel="population stability index (live against training)", title="The features that moved most")
    ax.legend()
    return _svg(fig)


def score_chart(h: Health) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.quantile(h.reference_p, np.linspace(0, 1, 21))
    bins = np.unique(np.concatenate([[0.0], bins, [1.0]]))
    ax.hist(h.reference_p, bins=bins, density=True, histtype="step", lw=2, color=GREY, label="training window")
    ax.hist(h.live_p, bins=bins, density=True, histtype="step", lw=2, color=BLUE, label="live period")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set(xlabel="probability (log scale above 0.01)", ylabel="density", title=f"Probabilities (PSI {h.score_psi:.2f})")
    ax.legend()
    return _svg(fig)


def calibration_chart(h: Health) -> str:
    c = h.calibration
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    top = float(max(c["predicted"].max(), c["observed"].max(), 1e-3)) if len(c) else 1.0
    ax.plot([0, top], [0, top], "--", color=GREY, label="perfect")
    if len(c):
        ax.plot(c["predicted"], c["observed"], "o-", color=BLUE, label="served scores")
    ax.set(xlabel="probability served", ylabel="share marked prospect within the horizon",
           title="Calibration on feedback")
    ax.legend()
    return _svg(fig)


def render(h: Health, feature_limit: float) -> str:
    env = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["j2", "html"]))
    share = "{:.1%}"
    drift = h.drift.head(TOP)[["description", "psi", "reference_missing", "live_missing"]].rename(columns={
        "description": "feature", "reference_missing": "missing (training)", "live_missing": "missing (live)"})
    m = h.metrics
    figures = {"scores with feedback": f"{m['n']:,}", "of them prospects": f"{m['prospects']:,}",
               "ROC AUC on feedback": _fmt(m.get("roc_auc")), "validation ROC AUC": _fmt(m["validation_roc_auc"]),
               "calibration error": _fmt(m.get("ece")), "median feedback delay (days)": _fmt(m.get("delay_days"), 1)}
    return env.get_template("health.html.j2").render(
        h=h, figures=figures,
        charts={"drift": drift_chart(h, feature_limit), "scores": score_chart(h), "calibration": calibration_chart(h)},
        tables={"drift": _table(drift, "drift-table", {"psi": "{:.3f}", "missing (training)": share,
                                                         "missing (live)": share}),
                "tiers": _table(h.tiers, "tier-share-table", {"training share": share, "live share": share}),
                "feedback": _table(h.feedback, "feedback-table", {"scores": "{:,}", "prospect": share,
                                                                  "not prospect": share, "unanswered": share})},
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def write(h: Health, path: Path, feature_limit: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(h, feature_limit), encoding="utf-8")
    return path
