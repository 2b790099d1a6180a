"""The leakage guard on attribute history, and the simulator's history against its own truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.dataset import load_frames
from tests.conftest import generated_store
from training.guards import TrainingStopped, check_leakage
from training.train import prepare


@pytest.fixture(scope="module")
def frames(tmp_path_factory, taxonomy):  # noqa: ANN001, ANN201
    store = generated_store(tmp_path_factory.mktemp("history-guard"), 3000, 17, taxonomy)
    yield load_frames(store)
    store.close()


def _first_touch(frames, taxonomy) -> pd.Series:  # noqa: ANN001
    """Plainly: each lead's first outbound event or sales answer."""
    outbound = frames.events[~frames.events["type"].isin(list(taxonomy.inbound_types))]
    both = pd.concat([outbound[["lead_id", "ts"]], frames.feedback[["lead_id", "ts"]]])
    return both.groupby("lead_id")["ts"].min()


def test_generated_history_passes_the_guard_and_a_sales_typed_budget_is_stopped(frames, taxonomy) -> None:  # noqa: ANN001
    prepared = prepare(frames, taxonomy)
    assert set(prepared.late_recorded) == {"budget", "authority", "need", "timeline"}
    # the simulator has sales learn some values after the first call, but most come from the form
    assert all(0.1 < share < 0.5 for share in prepared.late_recorded.values()), prepared.late_recorded
    check_leakage(prepared.matrix, prepared.y, prepared.vectorizer.feature_set_,
                  late_recorded=prepared.late_recorded)

    # now every budget is typed in by sales an hour after its first touch
    touch = _first_touch(frames, taxonomy)
    history = frames.history.copy()
    budget = history["attribute"] == "budget"
    when = history.loc[budget, "lead_id"].map(touch)
    history.loc[budget & history["lead_id"].isin(touch.index), "recorded_at"] = when.dropna() + pd.Timedelta(hours=1)
    expected = history.loc[budget, "lead_id"].isin(touch.index).mean()
    late = prepare(dataclasses.replace(frames, history=history), taxonomy)
    assert late.late_recorded["budget"] == pytest.approx(expected)
    with pytest.raises(TrainingStopped) as info:
        check_leakage(late.matrix, late.y, late.vectorizer.feature_set_, late_recorded=late.late_recorded)
    assert (f"attr_budget: the history shows {expected:.0%} of its values were first recorded after the lead's "
            "first sales touch") in str(info.value)
    assert "attr_need" not in str(info.value)
    allowed = check_leakage(late.matrix, late.y, late.vectorizer.feature_set_, allow=("attr_budget",),
                            late_recorded=late.late_recorded)
    assert set(allowed) == {"attr_budget"}


def test_no_snapshot_sees_a_criterion_before_the_truth_says_it_became_known(frames, taxonomy, tmp_path) -> None:  # noqa: ANN001
    from simulator.funnel import FunnelConfig, generate

    paths = generate(FunnelConfig(n_leads=3000, seed=17), tmp_path, taxonomy)
    truth = pd.read_parquet(paths["truth"]).set_index("lead_id")
    prepared = prepare(frames, taxonomy)
    names = prepared.vectorizer.feature_set_.names
    snaps = prepared.snapshots
    for attribute in ("budget", "need"):
        values = prepared.matrix[:, names.index(f"attr_{attribute}")]
        known_at = truth.loc[snaps["lead_id"], f"{attribute}_known_at"].to_numpy()
        before = pd.DatetimeIndex(snaps["as_of"]) <= pd.DatetimeIndex(known_at)
        assert np.isnan(values[before & pd.notna(known_at)]).all()
        after = ~before & pd.notna(known_at)
        assert after.sum() > 100 and not np.isnan(values[after]).any()
