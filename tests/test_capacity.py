"""Capacity-aware tiers: `--capacity N/week` sets the prospect-ready cut-off so about N leads a week reach it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from prospect.cli import app
from runtime.bundle import load_bundle
from training.tiers import arrivals_per_week, capacity_thresholds


def test_cut_off_sends_the_capacity_at_the_arrival_rate() -> None:
    rng = np.random.default_rng(3)
    leads = np.repeat([f"L{i}" for i in range(2000)], 4)  # four weekly snapshots per lead
    p = rng.beta(1, 30, leads.size)
    t = capacity_thresholds(p, leads, per_week=30, arrivals_per_week=200)
    highs = pd.Series(p).groupby(leads).max()
    # 200 leads arrive a week; the share of leads whose best snapshot reaches the cut-off, times 200, is 30
    assert abs((highs >= t.ready).mean() * 200 - 30) < 0.5
    assert t.warming <= t.ready and t.capacity_per_week == 30 and "30 prospect-ready leads a week" in t.policy
    assert t.ready_share == pytest.approx((p >= t.ready).mean())
    # capacity beyond the arrivals: every lead is prospect-ready
    assert capacity_thresholds(p, leads, 500, 200).ready == pytest.approx(highs.min())
    with pytest.raises(ValueError, match="positive"):
        capacity_thresholds(p, leads, 0, 200)


def test_arrival_rate_is_the_last_eight_weeks() -> None:
    end = pd.Timestamp("2025-06-01T00:00:00Z")
    created = pd.Series([end - pd.Timedelta(days=d) for d in range(0, 200)])  # one lead a day
    assert arrivals_per_week(created) == pytest.approx(7.0, abs=0.2)


def test_train_with_capacity_sends_about_that_many_a_week_and_says_so_in_the_card(tmp_path, taxonomy) -> None:  # noqa: ANN001
    from tests.conftest import generated_store

    store = generated_store(tmp_path, 2500, 17, taxonomy)
    runner = CliRunner()
    env = {"PROSPECT_HOME": str(tmp_path), "PROSPECT_STORE_URL": store.url, "MLFLOW_TRACKING_URI": "",
           "PROSPECT_MODELS_DIR": str(tmp_path / "models")}
    bad = runner.invoke(app, ["train", "--capacity", "lots", "--home", str(tmp_path)], env=env)
    assert bad.exit_code == 2 and "--capacity 'lots'" in " ".join(bad.output.split())
    result = runner.invoke(app, ["train", "--capacity", "12/week", "--home", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    assert "tiers set by capacity: about 12 prospect-ready leads a week" in " ".join(result.output.split())
    promoted = runner.invoke(app, ["promote", "--home", str(tmp_path)], env=env)
    assert promoted.exit_code == 0, promoted.output
    bundle = load_bundle(tmp_path / "models" / "champion")
    assert bundle.thresholds.capacity_per_week == 12
    assert "Set by capacity: about 12 prospect-ready leads a week" in (
        tmp_path / "models" / "champion" / "MODEL_CARD.md").read_text()
    # the outcome sales sees: leads a week whose probability first reaches the cut-off, over the last
    # twelve weeks of arrivals (every lead scored weekly, up to its first answer)
    from features.dataset import load_frames
    from features.vectorizer import FeatureInput
    from training.monitor import all_snapshots

    frames = load_frames(store)
    snaps = all_snapshots(frames, 7.0)
    p = bundle.probability(bundle.vectorizer.transform_matrix(FeatureInput(snaps[["lead_id", "as_of"]], frames.leads,
                                                                           frames.events)))
    first = snaps.loc[p >= bundle.thresholds.ready].groupby("lead_id")["as_of"].min()
    end = frames.leads["created_at"].max()
    weekly = ((first > end - pd.Timedelta(weeks=12)) & (first <= end)).sum() / 12
    assert 6 <= weekly <= 24, weekly
