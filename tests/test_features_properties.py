"""Property tests: the fast features equal the slow reference, never see the future, ignore row order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.lead_record import LeadRecord
from contract.taxonomy import load_taxonomy
from features.registry import AttributeInfo
from features.vectorizer import FeatureInput, FeatureVectorizer, UnknownEventType
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


def lead_arrays(draw: list) -> tuple:
    """A draw as the store hands a batch over: lead records, and per event its lead, time, type and channel."""
    leads = [LeadRecord(f"L{i}", BASE + created, "web") for i, (created, _, _) in enumerate(draw)]
    rows = [(i, BASE + o, t, c) for i, (_, events, _) in enumerate(draw)
            for o, t, c in sorted(events, key=lambda e: e[0])]  # in time order per lead, as the store reads them
    owner, ts, types, channels = (list(col) for col in zip(*rows, strict=True)) if rows else ([], [], [], [])
    snaps = [(i, BASE + o) for i, (_, _, as_ofs) in enumerate(draw) for o in as_ofs]
    return (leads, np.array(owner, np.int64), np.array(ts, np.int64), np.array(types, dtype=object),
            np.array(channels, dtype=object), np.array([i for i, _ in snaps], np.int64),
            np.array([a for _, a in snaps], np.int64))


@settings(max_examples=150, deadline=None)
@given(st.lists(lead, min_size=1, max_size=3), st.randoms(use_true_random=False))
def test_categorical_names_give_the_features_the_names_give(draw: list, rnd) -> None:  # noqa: ANN001
    """Types and channels as pandas Categoricals (codes, any category order, unused categories, a missing
    channel as code -1) give exactly the matrix their names give, from arrays and from DataFrames."""
    leads, owner, ts, types, channels, snap, as_of = lead_arrays(draw)
    want = VEC.transform_leads(leads, owner, ts, types, channels, snap, as_of)
    type_categories = sorted(set(types.tolist()) | set(rnd.sample(TYPES, 3)))
    channel_categories = sorted({c for c in channels.tolist() if c is not None} | {"fax", "web"})
    rnd.shuffle(type_categories)
    rnd.shuffle(channel_categories)
    cat_types = pd.Categorical(types, categories=type_categories)
    cat_channels = pd.Categorical(channels, categories=channel_categories)
    assert (cat_channels.codes[channels == None] == -1).all()  # noqa: E711 - elementwise
    got = VEC.transform_leads(leads, owner, ts, cat_types, cat_channels, snap, as_of)
    assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)
    X = frames(draw)
    as_categories = FeatureInput(X.snapshots, X.leads, X.events.astype({"type": "category", "channel": "category"}))
    assert np.array_equal(VEC.transform_matrix(as_categories), VEC.transform_matrix(X), equal_nan=True)


@pytest.mark.parametrize("types, message", [
    (["page_view", "telepathy", "page_view", "carrier_pigeon", "telepathy"], "telepathy, carrier_pigeon"),
    ([None, "page_view", "telepathy"], "telepathy"),
    (["page_view", None], "(empty)"),
    ([f"t{k}" for k in (6, 2, 5, 2, 1, 4, 3)], "t6, t2, t5, t1, t4"),
])
def test_unknown_event_types_are_refused_alike_from_names_and_categoricals(types: list, message: str) -> None:
    """The first five unknown names in the order the events show them, or (empty) for a missing type alone."""
    values = np.array(types, dtype=object)
    n = len(types)
    for given_types in (values, pd.Categorical(values), pd.Categorical(values, categories=sorted(
            {t for t in types if t is not None} | {"zz_unused"}, reverse=True))):
        with pytest.raises(UnknownEventType) as refused:
            VEC.transform_leads([LeadRecord("L", BASE, "web")], np.zeros(n, np.int64), BASE + np.arange(n),
                                given_types, None, np.zeros(1, np.int64), np.array([BASE + DAY]))
        assert str(refused.value) == f"unknown event types (not in the taxonomy): {message}"


def test_an_unused_unknown_category_is_not_an_unknown_event() -> None:
    types = pd.Categorical(["page_view", "page_view"], categories=["telepathy", "page_view"])
    got = VEC.transform_leads([LeadRecord("L", BASE, "web")], np.zeros(2, np.int64), BASE + np.arange(2), types,
                              None, np.zeros(1, np.int64), np.array([BASE + DAY]))
    want = VEC.transform_leads([LeadRecord("L", BASE, "web")], np.zeros(2, np.int64), BASE + np.arange(2),
                               np.array(["page_view"] * 2, dtype=object), None, np.zeros(1, np.int64),
                               np.array([BASE + DAY]))
    assert np.array_equal(got, want, equal_nan=True)


PROFILED = FeatureVectorizer(taxonomy=TAXONOMY, attributes=(
    AttributeInfo("industry", "categorical"), AttributeInfo("size", "categorical"),
    AttributeInfo("employees", "numeric"))).fit(FeatureInput(
        pd.DataFrame({"lead_id": ["x", "y"], "as_of": pd.to_datetime([BASE + DAY] * 2, unit="us", utc=True)}),
        pd.DataFrame({"lead_id": ["x", "y"], "created_at": pd.to_datetime([BASE] * 2, unit="us", utc=True),
                      "source": ["web", "3"], "industry": ["retail", "True"], "size": ["1.5", "10"],
                      "employees": [3.0, 7.0]}),
        pd.DataFrame({"lead_id": ["x"], "ts": pd.to_datetime([BASE], unit="us", utc=True), "type": ["page_view"]})))
# what a lead record may hold: known texts, unseen ones, missing values, and values whose text is a category
profile_value = st.sampled_from(["retail", "True", "1.5", "10", "web", "3", "mining", "", None, float("nan"),
                                 np.nan, 3, 3.0, True, 1.5, 10, np.str_("retail"), ["retail"]])
record = st.tuples(st.sampled_from(["web", "3", None, "mail"]),
                   st.dictionaries(st.sampled_from(["industry", "size", "source", "other"]), profile_value),
                   st.one_of(st.none(), st.integers(0, 9), st.floats(0, 1e6), st.sampled_from(["12", "1e3"])))


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=6))
def test_profile_values_of_records_are_coded_by_their_text(records: list) -> None:
    """Each profile column is coded as the reference rule codes each value of each lead's profile (the
    attributes override ``source``): by its text for categoricals, unknown and missing as -1."""
    leads = [LeadRecord(f"L{i}", BASE, source, {**attrs, "employees": employees})
             for i, (source, attrs, employees) in enumerate(records)]
    got = PROFILED._record_values(leads)
    for name, column in PROFILED._profile_columns:
        raw = [lead.profile.get(column) for lead in leads]
        position = PROFILED._category_code.get(name)
        want = (np.array([np.nan if v is None else float(v) for v in raw]) if position is None else
                np.array([-1 if v is None or v != v else position.get(str(v), -1) for v in raw], dtype=np.int64))
        assert got[name].dtype == want.dtype and np.array_equal(got[name], want, equal_nan=True), name


@pytest.mark.parametrize("bad, message", [
    (pd.Timestamp("2025-02-01"), "snapshots.as_of must be timezone-aware"),
])
def test_naive_as_of_is_refused(bad, message) -> None:  # noqa: ANN001
    X = frames([(0, [(DAY, "page_view", None)], [2 * DAY])])
    X.snapshots["as_of"] = [bad]
    with pytest.raises(ValueError, match=message):
        VEC.transform(X)
