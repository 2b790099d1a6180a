"""The snapshot builder: cadence, labels within the horizon, censoring, and data without timestamps."""

from __future__ import annotations

import pandas as pd
import pytest

from features.snapshots import SnapshotConfig, build_snapshots
from tests.conftest import REAL_DATA, REPO

T0 = pd.Timestamp("2025-01-01T09:00:00Z")


def day(d: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=d)


def test_labels_cadence_and_censoring() -> None:
    leads = pd.DataFrame({"lead_id": list("ABCD"), "created_at": [day(0)] * 4})
    events = pd.DataFrame({"lead_id": ["A", "D"], "ts": [day(1), day(-2)], "type": ["page_view", "page_view"]})
    feedback = pd.DataFrame({"lead_id": ["A", "C", "D", "D"], "ts": [day(20), day(10), day(40), day(50)],
                             "outcome": ["prospect", "not_prospect", "not_prospect", "prospect"]})
    snaps = build_snapshots(leads, events, feedback, SnapshotConfig(cadence_days=7, horizon_days=30),
                            observed_until=day(60))
    got = {lead: [((a - T0) / pd.Timedelta(days=1), y) for a, y in zip(g["as_of"], g["label"], strict=True)]
           for lead, g in snaps.groupby("lead_id")}
    # A: prospect at day 20, every snapshot before it sees the answer within 30 days
    assert got["A"] == [(0, 1), (7, 1), (14, 1)]
    # B: no answer; horizons complete up to day 30 are negatives, later ones are censored
    assert got["B"] == [(0, 0), (7, 0), (14, 0), (21, 0), (28, 0)]
    # C: not_prospect at day 10 ends its snapshots; both are negatives
    assert got["C"] == [(0, 0), (7, 0)]
    # D: first touch two days before creation; first answer (not_prospect, day 40) ends it;
    # the prospect answer at day 50 labels the snapshots whose horizon reaches it; the one at day 33
    # has its horizon (to day 63) past the data, so it is censored although sales has answered
    assert got["D"] == [(-2, 0), (5, 0), (12, 0), (19, 0), (26, 1)]
    assert snaps.groupby("lead_id")["as_of"].apply(lambda a: a.is_monotonic_increasing).all()


def test_censoring_does_not_depend_on_the_label() -> None:
    """A horizon past the end of the data is unknown for answered and unanswered leads alike.

    Keeping the answered ones (as before) adds positives exactly in the latest, out-of-time window.
    """
    leads = pd.DataFrame({"lead_id": list("PNS"), "created_at": [day(0)] * 3})
    events = pd.DataFrame({"lead_id": list("PNS"), "ts": [day(1)] * 3, "type": ["page_view"] * 3})
    feedback = pd.DataFrame({"lead_id": ["P", "N"], "ts": [day(50), day(50)], "outcome": ["prospect", "not_prospect"]})
    snaps = build_snapshots(leads, events, feedback, SnapshotConfig(cadence_days=7, horizon_days=30),
                            observed_until=day(60))
    per_lead = snaps.groupby("lead_id")["as_of"].max().map(lambda a: (a - T0) / pd.Timedelta(days=1))
    assert per_lead.to_dict() == {"P": 28, "N": 28, "S": 28}, "the same as-of times survive for every lead"
    assert snaps.loc[snaps["lead_id"] == "P", "label"].tolist() == [0, 0, 0, 1, 1]
    # P and N: as-of 35, 42, 49 (horizons to 65, 72, 79); S: as-of 35 ... 56
    assert snaps.attrs["censored"] == 3 + 3 + 4


def test_outbound_touches_are_not_a_first_touch() -> None:
    leads = pd.DataFrame({"lead_id": ["A"], "created_at": [day(0)]})
    events = pd.DataFrame({"lead_id": ["A"], "ts": [day(-5)], "type": ["email_sent"]})
    snaps = build_snapshots(leads, events, pd.DataFrame(columns=["lead_id", "ts", "outcome"]),
                            observed_until=day(40), inbound_types={"page_view"})
    assert snaps["as_of"].iloc[0] == day(0)


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data sets live in {REAL_DATA} (absent here)")
def test_data_without_timestamps_gets_one_snapshot_per_lead(store, taxonomy, tmp_path) -> None:  # noqa: ANN001
    from contract.mapping import load_mapping
    from store.ingest import ingest

    ingest(load_mapping(REPO / "mappings" / "x_education.yaml"), REAL_DATA, store, taxonomy, tmp_path / "q")
    leads, feedback = store.read_table("leads"), store.read_table("feedback")
    snaps = build_snapshots(leads, store.read_table("events"), feedback)
    assert len(snaps) == 9237 and snaps["lead_id"].is_unique
    assert round(snaps["label"].mean(), 3) == 0.385
    assert (snaps["as_of"] == leads["created_at"].iloc[0]).all()


def test_generated_funnel_snapshots_never_reach_past_the_answer(tmp_path, taxonomy) -> None:  # noqa: ANN001
    from simulator.funnel import FunnelConfig, generate

    paths = generate(FunnelConfig(n_leads=3000, seed=4), tmp_path, taxonomy)
    leads, events, feedback = (pd.read_parquet(paths[n]) for n in ("leads", "events", "feedback"))
    snaps = build_snapshots(leads, events, feedback)
    first_answer = feedback.groupby("lead_id")["ts"].min()
    answered = snaps["lead_id"].isin(first_answer.index)
    assert (snaps.loc[answered, "as_of"].to_numpy() < first_answer.loc[snaps.loc[answered, "lead_id"]].to_numpy()).all()
    end = max(events["ts"].max(), feedback["ts"].max())
    unlabelled_tail = (snaps["as_of"] + pd.Timedelta(days=30) > end) & ~answered
    assert not unlabelled_tail.any(), "censored snapshots must be left out"
    assert 0.01 < snaps["label"].mean() < 0.2
    positives = snaps[snaps["label"] == 1]["lead_id"].unique()
    assert set(positives) <= set(feedback.query("outcome == 'prospect'")["lead_id"])
