"""Event store: idempotent and transactional ingestion, indexed reads, UTC everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

import store.event_store as event_store_module
from contract.mapping import MappingError, load_mapping
from store.event_store import EventStore, history_of
from tests.conftest import Sources, write_yaml

EVENTS_CSV = (
    "event_id,lead_id,ts,type\n"
    "e3,L1,2025-02-03T10:00:00+02:00,demo_request\n"
    "e1,L1,2025-02-01T10:00:00Z,page_view\n"
    "e2,L1,2025-02-02T10:00:00Z,pricing_page_view\n"
    "e4,L2,2025-02-02T10:00:00Z,email_sent\n"
)


def test_ingesting_the_same_files_twice_adds_nothing(with_leads: Sources) -> None:
    with_leads.write("events.csv", EVENTS_CSV)
    first = with_leads.ingest({"leads": "leads.csv", "events": "events.csv"})
    assert [b.stored for b in first.batches] == [0, 4]  # leads were stored by the fixture
    before = with_leads.store.counts()
    again = with_leads.ingest({"leads": "leads.csv", "events": "events.csv"})
    assert [b.stored for b in again.batches] == [0, 0]
    assert [b.duplicates for b in again.batches] == [3, 4]
    assert with_leads.store.counts() == before
    assert again.exit_code == 0, "re-sending known rows is usable input, not an error"


def test_events_without_ids_get_a_content_key_and_stay_idempotent(with_leads: Sources) -> None:
    text = "lead_id,ts,type\nL1,2025-02-01T10:00:00Z,page_view\nL1,2025-02-01T11:00:00Z,page_view\n"
    with_leads.write("events.csv", text)
    mapping_cols = {"columns": {"lead_id": "lead_id", "ts": "ts", "type": "type"}}
    first = with_leads.ingest({"events": "events.csv"}, events={"events": mapping_cols})
    second = with_leads.ingest({"events": "events.csv"}, events={"events": mapping_cols})
    assert first.batches[0].stored == 2 and second.batches[0].duplicates == 2
    ids = with_leads.store.read_table("events")["event_id"]
    assert ids.str.match(r"^h[0-9a-f]{16}$").all() and ids.nunique() == 2


def test_a_batch_that_fails_part_way_leaves_the_store_as_it_was(with_leads: Sources, monkeypatch) -> None:
    rows = "\n".join(f"e{i},L1,2025-02-01T00:{i:02d}:00Z,page_view" for i in range(9))
    with_leads.write("events.csv", "event_id,lead_id,ts,type\n" + rows + "\n")
    before = with_leads.store.counts()
    real_insert = event_store_module.bulk_insert  # event rows go through insert_events, which calls it
    calls = {"events": 0}

    def failing_insert(conn, table, frame):  # noqa: ANN001, ANN202
        if table.name == "events":
            calls["events"] += 1
            if calls["events"] == 2:
                raise RuntimeError("disk full")
        return real_insert(conn, table, frame)

    monkeypatch.setattr(event_store_module, "bulk_insert", failing_insert)
    with pytest.raises(RuntimeError, match="disk full"):
        with_leads.ingest({"events": "events.csv"}, chunk_rows=3)
    assert calls["events"] == 2, "the first chunk was inserted before the failure"
    assert with_leads.store.counts() == before
    assert with_leads.store.leads_with_events(["L1"])[1].size == 0, "the packed record was rolled back too"
    monkeypatch.setattr(event_store_module, "bulk_insert", real_insert)
    assert with_leads.ingest({"events": "events.csv"}, chunk_rows=3).batches[0].stored == 9
    assert with_leads.store.leads_with_events(["L1"])[1].size == 9


def test_lead_events_are_ordered_in_utc_and_use_the_index(with_leads: Sources) -> None:
    with_leads.write("events.csv", EVENTS_CSV)
    with_leads.ingest({"events": "events.csv"})
    events = with_leads.store.lead_events("L1").to_frame()
    assert events["type"].tolist() == ["page_view", "pricing_page_view", "demo_request"]
    assert str(events["ts"].dt.tz) == "UTC"
    assert events["ts"].iloc[2] == pd.Timestamp("2025-02-03T08:00:00Z"), "+02:00 converted to UTC"
    assert events["channel"].tolist() == ["web", "web", "web"], "channel defaults from the taxonomy"
    assert len(with_leads.store.lead_events("nobody")) == 0
    indexes = inspect(with_leads.store.engine).get_indexes("events")
    assert any(ix["column_names"][:2] == ["lead_id", "ts"] for ix in indexes)


def test_many_leads_are_read_in_request_order_with_their_events_grouped(with_leads: Sources) -> None:
    with_leads.write("events.csv", EVENTS_CSV)
    with_leads.ingest({"events": "events.csv"})
    leads, owner, events = with_leads.store.leads_with_events(["L2", "nobody", "L3", "L1", "L2"])
    assert [lead.lead_id for lead in leads] == ["L2", "L3", "L1"], "request order, unknown and repeats dropped"
    assert leads[2].attributes["industry"] == "software" and leads[2].attributes["employees"] == 120
    assert leads[2] == with_leads.store.lead("L1"), "the same record as the single-lead read"
    assert owner.tolist() == [0, 2, 2, 2], "L2's event, then L1's three (L3 has none)"
    assert events.type.tolist() == ["email_sent", "page_view", "pricing_page_view", "demo_request"]
    assert events.ts_us.tolist()[1:] == with_leads.store.lead_events("L1").ts_us.tolist()


def test_naive_timestamps_are_read_in_the_mapping_timezone(with_leads: Sources) -> None:
    with_leads.write("events.csv", "event_id,lead_id,ts,type\ne1,L1,01/07/2025 09:30,page_view\n")
    options = {"events": {"columns": {"event_id": "event_id", "lead_id": "lead_id", "ts": "ts", "type": "type"},
                          "timestamps": {"ts": {"format": "%d/%m/%Y %H:%M", "timezone": "Europe/Amsterdam"}}}}
    summary = with_leads.ingest({"events": "events.csv"}, events=options)
    assert summary.batches[0].stored == 1
    assert with_leads.store.lead_events("L1").to_frame()["ts"].iloc[0] == pd.Timestamp("2025-07-01T07:30:00Z")


def test_attributes_are_recorded_with_their_kind(with_leads: Sources) -> None:
    specs = with_leads.store.attribute_specs().set_index("name")
    assert specs.loc["industry", "kind"] == "categorical" and specs.loc["employees", "kind"] == "numeric"
    leads = with_leads.store.read_table("leads").set_index("lead_id")
    assert leads.loc["L1", "employees"] == 120.0 and pd.isna(leads.loc["L3", "industry"])
    assert str(leads["created_at"].dt.tz) == "UTC"


@pytest.mark.parametrize("change, message", [
    ({"sources": [{"file": "a.csv", "leads": {"columns": {"lead_id": "id"}, "colour": "red"}}]},
     "Extra inputs are not permitted"),
    ({"sources": [{"file": "a.csv", "leads": {"columns": {"lead_id": "id"}}}]},
     "required column 'created_at' is neither mapped nor given a constant"),
    ({"sources": [{"file": "a.csv", "events": {"columns": {"lead_id": "l", "ts": "t", "typ": "x"},
                                               "constants": {"type": "chat"}}}]},
     "unknown canonical column 'typ'"),
    ({"sources": [{"file": "a.csv"}]}, "maps no table"),
])
def test_wrong_mappings_are_refused_with_the_reason(tmp_path, change, message) -> None:  # noqa: ANN001
    path = write_yaml(tmp_path / "m.yaml", {"name": "bad", **change})
    with pytest.raises(MappingError, match=message) as info:
        load_mapping(path)
    assert str(path) in str(info.value)


def test_store_url_from_settings_creates_the_sqlite_folder(tmp_path) -> None:  # noqa: ANN001
    store = EventStore(f"sqlite:///{tmp_path / 'deep' / 'er' / 'store.sqlite'}")
    assert store.counts().leads == 0
    assert (tmp_path / "deep" / "er" / "store.sqlite").exists()
    store.close()


history_row = st.tuples(st.sampled_from(["L1", "L10", "L2", "é"]), st.sampled_from(["industry", "budget"]),
                        st.one_of(st.none(), st.text(max_size=3)), st.integers(0, 4))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(history_row, max_size=12), ordered=st.booleans())
def test_history_rows_come_by_lead_then_time_ties_in_the_order_read(rows, ordered) -> None:  # noqa: ANN001
    """Rows already in (lead, time) order (as SQLite's index gives them) are kept as they are; others are
    sorted, rows of one lead and moment staying in the order the database gave them."""
    if ordered:
        rows = sorted(rows, key=lambda r: (r[0], r[3]))
    history = history_of(rows)
    want = sorted(rows, key=lambda r: (r[0], r[3]))  # stable: ties in the given order
    assert list(zip(history.lead_id.tolist(), history.attribute.tolist(), history.value.tolist(),
                    history.recorded_at.tolist(), strict=True)) == want
    assert history.recorded_at.dtype == np.int64 and history.lead_id.dtype == object
