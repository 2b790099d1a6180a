"""The report's charts as inline SVG, so the page is one file that opens from disk."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from report.numbers import ReportNumbers  # noqa: E402
from runtime.tiers import TIERS  # noqa: E402

BLUE, GREY, ORANGE = "#2563eb", "#9ca3af", "#ea580c"
TIER_COLOURS = {TIERS[0]: "#15803d", TIERS[1]: "#ca8a04", TIERS[2]: "#6b7280"}


def _svg(fig: plt.Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog: the SVG sits inside HTML


def importance(f: ReportNumbers, top: int = 15) -> str:
    rows = f.importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1))
    ax.barh([_short(d) for d in rows["description"]], rows["mean_abs_contribution"], color=BLUE)
    ax.set(xlabel="mean absolute contribution to the log-odds", title=f"The {len(rows)} strongest drivers")
    return _svg(fig)


def families(f: ReportNumbers) -> str:
    fam = f.families
    fig, ax = plt.subplots(figsize=(7, 3.2))
    x = np.arange(len(fam))
    ax.bar(x - 0.2, fam["mean_abs_contribution"], 0.4, label="share of contributions", color=BLUE)
    ax.bar(x + 0.2, fam["gain"], 0.4, label="share of split gain", color=GREY)
    ax.set_xticks(x, [n.replace("_", " ") for n in fam["family"]], rotation=20)
    ax.set(ylabel="share of the total", title="What drives the score, by family")
    ax.legend()
    return _svg(fig)


def dependence(f: ReportNumbers, feature: str, description: str) -> str:
    d = f.dependence[feature].dropna(subset=["value"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.scatter(d["value"], d["contribution"], s=4, alpha=0.25, color=BLUE, rasterized=True)
    left.axhline(0, color=GREY, lw=1)
    left.set(xlabel=_short(description), ylabel="contribution (log-odds)", title="Effect on each lead")
    bins = pd.qcut(d["value"], q=min(10, max(d["value"].nunique(), 1)), duplicates="drop")
    binned = d.groupby(bins, observed=True).agg(value=("value", "median"), probability=("probability", "mean"))
    right.plot(binned["value"], binned["probability"], "o-", color=ORANGE)
    right.set(xlabel=_short(description), ylabel="mean predicted probability", title="Probability by value")
    fig.tight_layout()
    return _svg(fig)


def conversion(table: pd.DataFrame, by: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(table[by].astype(str), table["rate"], color=BLUE)
    for i, (rate, n) in enumerate(zip(table["rate"], table["snapshots"], strict=True)):
        ax.annotate(f"n={n:,}", (i, rate), ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="became prospects within the horizon", title=title)
    ax.tick_params(axis="x", rotation=20)
    return _svg(fig)


def calibration(f: ReportNumbers) -> str:
    c = f.calibration
    top = float(max(c["predicted"].max(), c["observed"].max(), 1e-3))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, top], [0, top], "--", color=GREY, label="perfect")
    ax.plot(c["predicted"], c["observed"], "o-", color=BLUE, label="model")
    ax.set(xlabel="predicted probability", ylabel="observed prospect rate", title="Calibration")
    ax.legend()
    return _svg(fig)


def gains(f: ReportNumbers) -> str:
    g = f.gains
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color=GREY, label="random order")
    ax.plot(g["share_of_leads"], g["share_of_prospects"], "o-", color=BLUE, label="by score")
    lift = g["share_of_prospects"] / g["share_of_leads"]
    ax.set(xlabel="share of leads worked, best first", ylabel="share of prospects found",
           title=f"Gains (lift {lift.iloc[1]:.1f}x in the top decile)")
    ax.legend()
    return _svg(fig)


def score_distribution(f: ReportNumbers) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.arange(0, 102, 2)
    for tier in TIERS:
        part = f.scores.loc[f.scores["tier"] == tier, "score"]
        ax.hist(part, bins=bins, color=TIER_COLOURS[tier], label=tier)
    ax.set(xlabel="score (0-100)", ylabel="held-out snapshots", title="Score distribution per tier", yscale="log")
    ax.legend()
    return _svg(fig)


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
