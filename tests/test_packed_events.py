"""The packed per-lead event records batch scoring reads stay exactly equal to the event rows.

Random event streams go through the ingest path in several writes (late and out-of-order events,
events at the same instant, re-sent duplicates, rejected conflicting batches); after every write the
packed records must give the same events, in the same order, and the same features, as the rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from features.registry import AttributeInfo
from features.vectorizer import FeatureInput, FeatureVectorizer
from store.event_store import EventStore, packed_events_table
from store.ingest import RecordsRejected, ingest_records

START = pd.Timestamp("2025-03-01", tz="UTC")
NOW = START.to_pydatetime() + pd.Timedelta(days=30).to_pytimedelta()
LEADS = ("L0", "L1", "L2")
TYPES = ("page_view", "pricing_page_view", "demo_request", "email_sent", "email_reply", "webinar_attendance")
CHANNELS = (None, "web", "email", "partner")

event = st.tuples(st.integers(0, 30), st.sampled_from(LEADS), st.integers(0, 40), st.sampled_from(TYPES),
                  st.sampled_from(CHANNELS))
stream = st.lists(st.tuples(st.lists(event, max_size=12), st.lists(st.integers(0, 200), max_size=4)),
                  min_size=1, max_size=5)


def _frame(events: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame({"event_id": [f"e{k}" for k, *_ in events], "lead_id": [e[1] for e in events],
                         "ts": [START + pd.Timedelta(hours=e[2]) for e in events],
                         "type": [e[3] for e in events], "channel": [e[4] for e in events]})


def _new_store(folder: Path, taxonomy) -> EventStore:  # noqa: ANN001
    store = EventStore(f"sqlite:///{folder / 'store.sqlite'}")
    ingest_records(store, "leads", pd.DataFrame({"lead_id": list(LEADS), "created_at": [START] * len(LEADS),
                                                 "source": ["web"] * len(LEADS)}), taxonomy, now=NOW)
    return store


def _vectorizer(taxonomy) -> FeatureVectorizer:  # noqa: ANN001
    leads = pd.DataFrame({"lead_id": list(LEADS), "created_at": [START] * 3, "source": ["web"] * 3})
    events = _frame([(0, "L0", 1, "page_view", "web"), (1, "L1", 2, "email_reply", "email")])
    snapshots = pd.DataFrame({"lead_id": list(LEADS), "as_of": [START + pd.Timedelta(days=3)] * 3})
    return FeatureVectorizer(taxonomy, attributes=(AttributeInfo(name="unused", kind="numeric"),)).fit(
        FeatureInput(snapshots, leads, events))


def _assert_packed_equals_rows(store: EventStore, vectorizer: FeatureVectorizer, ids: list[str]) -> None:
    packed_leads, packed_owner, packed = store.leads_with_events(ids)
    row_leads, row_owner, rows = store.leads_with_event_rows(ids)
    assert packed_leads == row_leads
    np.testing.assert_array_equal(packed_owner, row_owner)
    np.testing.assert_array_equal(packed.ts_us, rows.ts_us)
    assert packed.type.tolist() == rows.type.tolist() and packed.channel.tolist() == rows.channel.tolist()
    # features at as-of times that fall on, between and after the event times (strictly-before cut-offs)
    moments = (START + pd.to_timedelta([0, 5, 12.5, 20, 41, 24 * 40], unit="h")).as_unit("us").asi8
    n = len(packed_leads)
    snap_lead, as_of = np.repeat(np.arange(n), moments.size), np.tile(moments, n)
    got = vectorizer.transform_leads(packed_leads, packed_owner, packed.ts_us, packed.type, packed.channel,
                                     snap_lead, as_of)
    want = vectorizer.transform_leads(row_leads, row_owner, rows.ts_us, rows.type, rows.channel, snap_lead, as_of)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=stream)
def test_packed_records_equal_the_event_rows_after_every_write(taxonomy, writes) -> None:  # noqa: ANN001
    vectorizer = _vectorizer(taxonomy)
    sent: list[tuple] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = _new_store(Path(tmp), taxonomy)
        try:
            for new, resend in writes:
                batch = new + [sent[k % len(sent)] for k in resend if sent]  # re-sent events are duplicates
                try:
                    ingest_records(store, "events", _frame(batch), taxonomy, now=NOW)
                    sent += new
                except RecordsRejected:
                    pass  # an id re-used with other content rejects the whole write: nothing changes
                _assert_packed_equals_rows(store, vectorizer, ["L2", "missing", *LEADS])
            stored = store.counts().events
            assert sum(len(e) for e in (store.leads_with_events(list(LEADS))[2],)) == stored
            # rebuilt from the rows (what opening an older store does), the records are the same
            before = store.leads_with_events(list(LEADS))
            store.rebuild_packed()
            after = store.leads_with_events(list(LEADS))
            assert after[0] == before[0] and np.array_equal(after[1], before[1])
            assert after[2].ts_us.tolist() == before[2].ts_us.tolist()
            assert after[2].type.tolist() == before[2].type.tolist()
            assert after[2].channel.tolist() == before[2].channel.tolist()
        finally:
            store.close()


def test_a_store_written_before_packed_records_gets_them_on_opening(tmp_path, taxonomy) -> None:  # noqa: ANN001
    store = _new_store(tmp_path, taxonomy)
    ingest_records(store, "events", _frame([(1, "L0", 3, "page_view", None), (2, "L0", 1, "demo_request", "web"),
                                           (3, "L1", 2, "email_sent", None)]), taxonomy, now=NOW)
    with store.engine.begin() as conn:  # as an older version left it: rows, no packed records
        conn.execute(delete(packed_events_table))
    assert store.leads_with_events(list(LEADS))[2].ts_us.size == 0
    store.close()
    reopened = EventStore(store.url)
    try:
        leads, owner, events = reopened.leads_with_events(list(LEADS))
        assert owner.tolist() == [0, 0, 1]
        assert events.type.tolist() == ["demo_request", "page_view", "email_sent"]
        _assert_packed_equals_rows(reopened, _vectorizer(taxonomy), list(LEADS))
    finally:
        reopened.close()
