"""Property tests: the fast features equal the slow reference, never see the future, ignore row order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.lead_record import LeadRecord
from contract.taxonomy import load_taxonomy
from features.vectorizer import FeatureInput, FeatureVectorizer
from tests.feature_reference import DAY, reference_features

TAXONOMY = load_taxonomy()
TYPES = sorted(TAXONOMY.types)
BASE = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z in microseconds
# offsets that make ties and edges likely: same microsecond, same millisecond, 30-minute and window edges
EDGES = [0, 1, 999, 1_000, 1_001, 30 * 60 * 1_000_000 - 1, 30 * 60 * 1_000_000, DAY - 1, DAY, 7 * DAY, 30 * DAY]
offset = st.one_of(st.sampled_from(EDGES), st.integers(0, 120 * DAY), st.integers(0, 3 * DAY))
event = st.tuples(offset, st.sampled_from(TYPES), st.sampled_from([None, None, "web", "email", "partner"]))
lead = st.tuples(st.integers(0, 2 * DAY), st.lists(event, max_size=25), st.lists(offset, min_size=1, max_size=3))


def fitted() -> FeatureVectorizer:
    """A vectoriser with a fixed vocabulary, so results do not depend on what a draw happens to contain."""
    leads = pd.DataFrame({"lead_id": ["x"], "created_at": [pd.Timestamp(BASE, unit="us", tz="UTC")],
                          "source": ["web"]})
    events = pd.DataFrame({"lead_id": ["x"], "ts": [pd.Timestamp(BASE, unit="us", tz="UTC")],
                           "type": ["page_view"], "channel": ["partner"]})
    snaps = pd.DataFrame({"lead_id": ["x"], "as_of": [pd.Timestamp(BASE + DAY, unit="us", tz="UTC")]})
    return FeatureVectorizer(taxonomy=TAXONOMY, attributes=()).fit(FeatureInput(snaps, leads, events))


VEC = fitted()
BEHAVIOUR = [s.name for s in VEC.feature_set_.specs if s.family != "profile" and s.name != "origin"]


def frames(draw: list) -> FeatureInput:
    lead_rows, event_rows, snap_rows = [], [], []
    for i, (created, events, as_ofs) in enumerate(draw):
        lead_rows.append({"lead_id": f"L{i}", "created_at": BASE + created, "source": "web"})
        event_rows += [{"lead_id": f"L{i}", "ts": BASE + o, "type": t, "channel": c} for o, t, c in events]
        snap_rows += [{"lead_id": f"L{i}", "as_of": BASE + o} for o in as_ofs]
    leads = pd.DataFrame(lead_rows)
    leads["created_at"] = pd.to_datetime(leads["created_at"], unit="us", utc=True)
    events = pd.DataFrame(event_rows, columns=["lead_id", "ts", "type", "channel"])
    events["ts"] = pd.to_datetime(events["ts"].astype("int64"), unit="us", utc=True)
    snaps = pd.DataFrame(snap_rows)
    snaps["as_of"] = pd.to_datetime(snaps["as_of"], unit="us", utc=True)
    return FeatureInput(snaps, leads, events)


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), rtol=1e-9, atol=1e-9)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lead, min_size=1, max_size=3))
def test_equals_the_slow_reference(draw: list) -> None:
    X = frames(draw)
    got = VEC.transform(X)
    for row, snap in enumerate(X.snapshots.itertuples()):
        i = int(snap.lead_id[1:])
        created, events, _ = draw[i]
        evs = [(BASE + o, t, c if c is not None else TAXONOMY.types[t].channel) for o, t, c in events]
        want = reference_features(evs, BASE + created, snap.as_of.value // 1000, TAXONOMY, VEC.feature_set_.vocab)
        for name in BEHAVIOUR:
            g, w = got.loc[row, name], want[name]
            # features are stored as float32: equal to the reference at that precision
            assert (np.isnan(g) and np.isnan(w)) or np.isclose(g, w, rtol=1e-6, atol=1e-6), (name, g, w)


@settings(max_examples=100, deadline=None)
@given(st.lists(lead, min_size=1, max_size=3), st.lists(st.tuples(st.integers(0, 2), event), max_size=10))
def test_events_at_or_after_the_as_of_time_change_nothing(draw: list, later: list) -> None:
    X = frames(draw)
    before = VEC.transform(X)
    # each snapshot alone, with extra events at or after its as-of time
    for row, snap in enumerate(X.snapshots.itertuples()):
        extra = pd.DataFrame([{"lead_id": snap.lead_id, "ts": snap.as_of + pd.Timedelta(microseconds=int(o)),
                               "type": t, "channel": c} for _, (o, t, c) in later],
                             columns=["lead_id", "ts", "type", "channel"])
        extra["ts"] = pd.to_datetime(extra["ts"], utc=True)
        one = FeatureInput(X.snapshots.iloc[[row]], X.leads, pd.concat([X.events, extra], ignore_index=True))
        assert_same(VEC.transform(one), before.iloc[[row]])


@settings(max_examples=100, deadline=None)
@given(st.lists(lead, min_size=1, max_size=3), st.randoms(use_true_random=False))
def test_row_order_changes_nothing(draw: list, rnd) -> None:  # noqa: ANN001
    X = frames(draw)
    before = VEC.transform(X)
    ev = X.events.sample(frac=1.0, random_state=rnd.randint(0, 2**31))
    leads = X.leads.sample(frac=1.0, random_state=rnd.randint(0, 2**31))
    perm = np.array(rnd.sample(range(len(X.snapshots)), len(X.snapshots)))
    after = VEC.transform(FeatureInput(X.snapshots.iloc[perm], leads, ev))
    assert_same(after, before.iloc[perm])


def test_one_lead_from_arrays_equals_the_dataframe_path() -> None:
    rng = np.random.default_rng(3)
    n = 200
    ts = BASE + np.sort(rng.integers(0, 90 * DAY, n))
    types = rng.choice(TYPES, n)
    X = FeatureInput(
        pd.DataFrame({"lead_id": ["L"], "as_of": [pd.Timestamp(BASE + 91 * DAY, unit="us", tz="UTC")]}),
        pd.DataFrame({"lead_id": ["L"], "created_at": [pd.Timestamp(BASE, unit="us", tz="UTC")], "source": ["web"]}),
        pd.DataFrame({"lead_id": "L", "ts": pd.to_datetime(ts, unit="us", utc=True), "type": types}))
    batch = VEC.transform(X)
    one = VEC.to_frame(VEC.transform_leads([LeadRecord("L", BASE, "web")], np.zeros(n, np.int64), ts,
                                           np.asarray(types, dtype=object), None, np.zeros(1, np.int64),
                                           np.array([BASE + 91 * DAY])))
    assert_same(one, batch)


@pytest.mark.parametrize("bad, message", [
    (pd.Timestamp("2025-02-01"), "snapshots.as_of must be timezone-aware"),
])
def test_naive_as_of_is_refused(bad, message) -> None:  # noqa: ANN001
    X = frames([(0, [(DAY, "page_view", None)], [2 * DAY])])
    X.snapshots["as_of"] = [bad]
    with pytest.raises(ValueError, match=message):
        VEC.transform(X)
