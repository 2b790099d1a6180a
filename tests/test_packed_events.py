"""The packed per-lead event records batch scoring reads stay exactly equal to the event rows.

Random event streams go through the ingest path in several writes (late and out-of-order events,
events at the same instant, re-sent duplicates, rejected conflicting batches); after every write the
packed records must give the same events, in the same order, and the same features, as the rows, and
be byte for byte what packing the rows afresh gives. A small write appends to a lead's record when
its events come at or after the lead's last one and repacks it otherwise: both paths are checked
explicitly too (on SQLite and PostgreSQL).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

import store.event_store as event_store_module
import store.packed as packed_module
from features.registry import AttributeInfo
from features.vectorizer import FeatureInput, FeatureVectorizer
from store.event_store import EventStore, packed_events_table
from store.ingest import RecordsRejected, ingest_records, store_records
from store.packed import append, names_of, pack, pack_many, unpack_many
from tests.conftest import NOW as SOURCES_NOW
from tests.conftest import Sources

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


def _stored_record(store: EventStore, lead_id: str) -> tuple[int, bytes] | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(packed_events_table.c.n, packed_events_table.c.blob)
                           .where(packed_events_table.c.lead_id == lead_id)).first()
    return None if row is None else (int(row[0]), bytes(row[1]))


def _assert_records_are_fresh_packs(store: EventStore, ids: tuple[str, ...]) -> None:
    """Each lead's record is byte for byte ``pack`` of its event rows (on SQLite, rows of one instant
    come in the order they were stored), whichever way the writes went (appended or repacked)."""
    for lead_id in ids:
        events = store.lead_events(lead_id)
        want = (len(events), pack(events.ts_us, events.type.tolist(), events.channel.tolist())) if len(events) else None
        assert _stored_record(store, lead_id) == want, lead_id


def _assert_packed_equals_rows(store: EventStore, vectorizer: FeatureVectorizer, ids: list[str]) -> None:
    """The batch read equals the rows, with its names as object arrays and (as a large batch gets them) as
    categoricals: the same names, the categories in order of first appearance, features unchanged."""
    for coded_from in (10**9, 1):
        with patch.object(packed_module, "CODED_FROM", coded_from):
            _assert_read_equals_rows(store, vectorizer, ids, categorical=coded_from == 1)


def _assert_read_equals_rows(store: EventStore, vectorizer: FeatureVectorizer, ids: list[str],
                             categorical: bool) -> None:
    packed_leads, packed_owner, packed = store.leads_with_events(ids)
    row_leads, row_owner, rows = store.leads_with_event_rows(ids)
    assert packed_leads == row_leads
    np.testing.assert_array_equal(packed_owner, row_owner)
    np.testing.assert_array_equal(packed.ts_us, rows.ts_us)
    assert names_of(packed.type).tolist() == rows.type.tolist()
    assert names_of(packed.channel).tolist() == rows.channel.tolist()
    for got, want in ((packed.type, rows.type), (packed.channel, rows.channel)):
        assert isinstance(got, pd.Categorical) == (categorical and len(want) > 0)
        if isinstance(got, pd.Categorical):
            assert got.categories.tolist() == pd.unique(want[pd.notna(want)]).tolist()
            assert got.categories.dtype == object and not got.categories.hasnans
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
                _assert_packed_equals_rows(store, vectorizer, ["missing", "L1", "L1"])
                _assert_records_are_fresh_packs(store, LEADS)
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


names = st.sampled_from(["page_view", "demo_request", "email_sent", "vidéo_vue", 'quote"d'])
timed = st.tuples(st.integers(-5, 5), names, st.sampled_from([None, "web", "e-mail", "partenaire"]))


@settings(max_examples=200, deadline=None)
@given(events=st.lists(timed, min_size=1, max_size=30), cuts=st.lists(st.integers(1, 30), max_size=4))
def test_appending_in_steps_packs_what_packing_at_once_does(events, cuts) -> None:  # noqa: ANN001
    """Time-ordered events appended to a record part by part (new names on the way, ties at a part's
    boundary) give the bytes of one pack of them all."""
    events = sorted(events, key=lambda e: e[0])  # stable: ties keep their order, as the store's rows do
    bounds = sorted({min(c, len(events)) for c in cuts} | {len(events)})
    n, blob = bounds[0], pack(np.array([e[0] for e in events[:bounds[0]]]), [e[1] for e in events[:bounds[0]]],
                              [e[2] for e in events[:bounds[0]]])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        part = events[a:b]
        blob, n = append(blob, n, [e[0] for e in part], [e[1] for e in part], [e[2] for e in part]), b
    assert blob == pack(np.array([e[0] for e in events]), [e[1] for e in events], [e[2] for e in events])


@settings(max_examples=200, deadline=None)
@given(leads=st.lists(st.lists(timed, max_size=12), max_size=6), coded_from=st.sampled_from([0, 1, 20, 10**9]))
def test_a_batch_unpacks_to_the_names_it_packed(leads, coded_from) -> None:  # noqa: ANN001
    """Records packed lead by lead and all at once (new names, missing channels, quotes, non-ASCII names)
    read back as the same times and names; as categoricals (from ``CODED_FROM`` events), the categories
    are the names in order of first appearance and a missing channel is code -1, never a category."""
    leads = [sorted(events, key=lambda e: e[0]) for events in leads if events]  # records hold their events in order
    ts = np.array([e[0] for events in leads for e in events], dtype=np.int64)
    types = np.array([e[1] for events in leads for e in events], dtype=object)
    channels = np.array([e[2] for events in leads for e in events], dtype=object)
    counts = [len(events) for events in leads]
    one_by_one = [pack(np.array([e[0] for e in events]), [e[1] for e in events], [e[2] for e in events])
                  for events in leads]
    bounds = np.cumsum([0, *counts])
    assert pack_many(bounds, ts, types, channels) == one_by_one
    with patch.object(packed_module, "CODED_FROM", coded_from):
        got_ts, got_types, got_channels = unpack_many(counts, one_by_one)
    np.testing.assert_array_equal(got_ts, ts)
    assert names_of(got_types).tolist() == types.tolist() and names_of(got_channels).tolist() == channels.tolist()
    for got, want in ((got_types, types), (got_channels, channels)):
        assert isinstance(got, pd.Categorical) == (len(want) >= coded_from and len(want) > 0)
        if isinstance(got, pd.Categorical):
            assert got.categories.tolist() == list(dict.fromkeys(v for v in want.tolist() if v is not None))
            np.testing.assert_array_equal(got.codes == -1, [v is None for v in want.tolist()])


def _event(event_id: str, lead_id: str, hours: float, type_: str, channel: str) -> dict:
    return {"event_id": event_id, "lead_id": lead_id, "ts": datetime(2025, 2, 1, tzinfo=UTC) + timedelta(hours=hours),
            "type": type_, "channel": channel}


def test_a_write_appends_a_late_event_repacks_and_later_writes_append_again(with_leads: Sources,
                                                                            monkeypatch) -> None:  # noqa: ANN001
    """The append path and the repack path, one after the other, each leaving every record equal to
    a fresh pack of all the lead's events (time order; one instant's events in the order stored)."""
    repacked: list[list[str]] = []
    real = event_store_module._repacked_records

    def spy(stored, stored_ids, lead, *rest):  # noqa: ANN001, ANN202
        repacked.append(sorted(set(stored_ids) | set(lead.tolist())))
        return real(stored, stored_ids, lead, *rest)

    monkeypatch.setattr(event_store_module, "_repacked_records", spy)
    sent: list[dict] = []
    writes = [
        ([_event("a1", "L1", 10, "page_view", "web"), _event("a2", "L1", 12, "email_sent", "email"),
          _event("a3", "L2", 11, "page_view", "web")], []),  # new records
        ([_event("b1", "L1", 15, "demo_request", "web"), _event("b2", "L1", 12, "page_view", "partner"),  # a tie
          _event("b3", "L1", 13, "email_reply", "email"), _event("b4", "L2", 20, "page_view", "web")], []),
        ([_event("c1", "L1", 5, "pricing_page_view", "web"), _event("c2", "L2", 25, "email_sent", "email")],
         [["L1"]]),  # L1's event is late: its record is repacked; L2's is appended
        ([_event("d1", "L1", 30, "page_view", "web"), _event("d2", "L1", 15, "email_sent", "partner")], []),
    ]
    for records, want_repacked in writes:
        repacked.clear()
        outcome = store_records(with_leads.store, "events", records, with_leads.taxonomy, now=SOURCES_NOW)
        assert outcome.stored == len(records)
        assert repacked == want_repacked
        sent += records
        for lead_id in ("L1", "L2", "L3"):
            mine = sorted((e for e in sent if e["lead_id"] == lead_id), key=lambda e: e["ts"])  # stable
            ts = np.array([(e["ts"] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) for e in mine])
            want = (len(mine), pack(ts, [e["type"] for e in mine], [e["channel"] for e in mine])) if mine else None
            assert _stored_record(with_leads.store, lead_id) == want, lead_id
