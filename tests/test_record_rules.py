"""File ingest and the API's records pass the same rules: same refusals, same reasons, same duplicates.

Each bad record is sent both ways after a good one: as a CSV row (quarantined, the good row stored)
and as an API record (the call refused with the reasons, nothing stored). Both run on SQLite and
PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from store.ingest import RecordsRejected, _hash_columns, store_records
from tests.conftest import NOW, Sources

EVENT_HEADER = "event_id,lead_id,ts,type"
FEEDBACK_HEADER = "lead_id,ts,outcome,reason"
GOOD_EVENT = "g1,L1,2025-02-01T10:00:00Z,page_view"
GOOD_FEEDBACK = "L2,2025-03-01T00:00:00Z,prospect,"


def _record(table: str, line: str) -> dict:
    """A CSV line of the tables above as the API's validated record (times parsed, blanks as given)."""
    names = (EVENT_HEADER if table == "events" else FEEDBACK_HEADER).split(",")
    record = dict(zip(names, line.split(","), strict=True))
    record["ts"] = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")) if record["ts"] else None
    if table == "events":
        record["channel"] = None
        record["event_id"] = record["event_id"] or None
    else:
        record["reason"] = record["reason"] or None
        record["feedback_id"] = None
    return record


# (table, bad line, column, words of the reason, kind); L1 was created 2025-01-01T09:00Z
BAD = [
    ("events", "b1,L1,2025-02-01T10:00:00Z,carrier_pigeon", "type", "unknown event type 'carrier_pigeon'", "invalid"),
    ("events", "b1,L1,2031-02-01T00:00:00Z,page_view", "ts", "timestamp 2031-02-01 00:00:00+00:00 is in the future",
     "invalid"),
    ("events", "b1,L404,2025-02-01T10:00:00Z,page_view", "lead_id", "unknown lead_id 'L404'", "unknown_lead"),
    ("events", "b1,L1,2024-12-31T09:00:00Z,page_view", "ts", "dated before the lead was created", "invalid"),
    ("events", "b1,L1,0001-01-01T00:00:00Z,page_view", "ts", "dated before the lead was created", "invalid"),
    ("events", "b1, ,2025-02-01T10:00:00Z,page_view", "lead_id", "required events.lead_id is empty", "invalid"),
    ("events", "b1,L1,2025-02-01T10:00:00Z,  ", "type", "required events.type is empty", "invalid"),
    ("events", "g1,L1,2025-02-01T10:00:00Z,demo_request", "event_id",
     "duplicate event_id 'g1' with different content (first seen at row 1)", "conflict"),
    ("events", "s1,L2,2025-02-01T10:00:00Z,demo_request", "event_id",
     "duplicate event_id 's1' with different content than the stored row", "conflict"),
    ("feedback", "L2,2025-03-02T00:00:00Z,maybe,", "outcome", "unknown outcome 'maybe'", "invalid"),
    ("feedback", "L1,2024-06-01T00:00:00Z,prospect,", "ts", "dated before the lead was created", "invalid"),
    ("feedback", "L3,2025-03-02T00:00:00Z,,", "outcome", "required feedback.outcome is empty", "invalid"),
    ("feedback", "L404,2025-03-02T00:00:00Z,prospect,", "lead_id", "unknown lead_id 'L404'", "unknown_lead"),
]


@pytest.mark.parametrize("table, line, column, words, kind", BAD, ids=[f"{b[0]}-{b[2]}-{b[4]}-{i}" for i, b in
                                                                       enumerate(BAD)])
def test_the_file_and_the_api_refuse_the_same_records_for_the_same_reason(
        with_leads: Sources, table: str, line: str, column: str, words: str, kind: str) -> None:
    stored_first = "s1,L2,2025-02-01T10:00:00Z,page_view"  # what the "than the stored row" case conflicts with
    with_leads.write("stored.csv", f"{EVENT_HEADER}\n{stored_first}\n")
    assert with_leads.ingest({"events": "stored.csv"}).batches[0].stored == 1
    header, good = (EVENT_HEADER, GOOD_EVENT) if table == "events" else (FEEDBACK_HEADER, GOOD_FEEDBACK)
    before = with_leads.store.counts()

    with pytest.raises(RecordsRejected) as refused:
        store_records(with_leads.store, table, [_record(table, good), _record(table, line)], with_leads.taxonomy,
                      now=NOW)
    assert with_leads.store.counts() == before, "a refused call stores nothing"
    api = refused.value.issues
    assert api["row"].tolist() == [1] and api.loc[0, "kind"] == kind

    with_leads.write(f"{table}.csv", f"{header}\n{good}\n{line}\n")
    batch = with_leads.ingest({table: f"{table}.csv"}).batches[0]
    assert (batch.stored, batch.quarantined) == (1, 1), "the good row is stored, the bad one quarantined"
    file = pd.read_csv(batch.quarantine_file, dtype=str)
    assert file["_row"].tolist() == ["2"]
    assert (file.loc[0, "_column"], file.loc[0, "_reason"]) == (api.loc[0, "column"], api.loc[0, "reason"])
    assert api.loc[0, "column"] == column and words in api.loc[0, "reason"]


def test_an_accepted_event_is_stored_once_whichever_way_it_comes_again(with_leads: Sources) -> None:
    """Resent through the API, or in a file, with or without an id: a duplicate, never a second row or a conflict."""
    records = [_record("events", "a1,L1,2025-02-01T10:00:00Z,page_view"),
               _record("events", ",L2,2025-02-02T10:00:00.123456Z,demo_request")]  # no id: a content key
    first = store_records(with_leads.store, "events", records, with_leads.taxonomy, now=NOW)
    assert (first.stored, first.duplicates) == (2, 0)
    again = store_records(with_leads.store, "events", records, with_leads.taxonomy, now=NOW)
    assert (again.stored, again.duplicates) == (0, 2)
    with_leads.write("events.csv", f"{EVENT_HEADER}\na1,L1,2025-02-01T10:00:00Z,page_view\n"
                                   ",L2,2025-02-02T10:00:00.123456Z,demo_request\n")
    batch = with_leads.ingest({"events": "events.csv"}).batches[0]
    assert (batch.stored, batch.duplicates, batch.quarantined) == (0, 2, 0)
    stored = with_leads.store.read_table("events")
    assert len(stored) == 2 and stored["event_id"].is_unique
    derived = stored.loc[stored["lead_id"] == "L2"].iloc[0]
    assert derived["event_id"].startswith("h") and derived["channel"] == with_leads.taxonomy.types["demo_request"].channel
    assert derived["ts"] == pd.Timestamp("2025-02-02T10:00:00.123456Z")


def test_a_record_repeated_within_one_call_is_stored_once(with_leads: Sources) -> None:
    record = _record("events", "r1,L1,2025-02-01T10:00:00Z,page_view")
    outcome = store_records(with_leads.store, "events", [record, dict(record)], with_leads.taxonomy, now=NOW)
    assert (outcome.stored, outcome.duplicates) == (1, 1)
    assert with_leads.store.read_table("events")["event_id"].tolist() == ["r1"]


@pytest.mark.parametrize("n", [3, 2500])
def test_row_hashes_are_the_hashes_the_store_already_holds(n: int) -> None:
    """Stored content hashes were made with pandas' frame hash: the array version must give the same values."""
    rng = np.random.default_rng(n)
    text = np.array([None if v == 0 else f"v{v}" for v in rng.integers(0, 5, n)], dtype=object)
    ints = rng.integers(-2**62, 2**62, n, dtype=np.int64)
    columns = {"a": text, "b": ints, "c": np.array([f"é{v}" for v in rng.integers(0, 3, n)], dtype=object)}
    expected = pd.util.hash_pandas_object(pd.DataFrame(columns), index=False).to_numpy().view(np.int64)
    assert np.array_equal(_hash_columns(list(columns.values())), expected)


def test_times_of_the_api_are_stored_as_file_times_are(with_leads: Sources) -> None:
    """An aware time in another zone is stored in UTC microseconds, as the file path stores it."""
    record = _record("events", "z1,L1,2025-02-01T10:00:00Z,page_view")
    record["ts"] = datetime(2025, 2, 1, 12, 30, 0, 1, tzinfo=UTC).astimezone(pd.Timestamp("2025-02-01", tz="Asia/Kolkata").tz)
    store_records(with_leads.store, "events", [record], with_leads.taxonomy, now=NOW)
    assert with_leads.store.read_table("events")["ts"].tolist() == [pd.Timestamp("2025-02-01T12:30:00.000001Z")]


def test_feedback_without_a_reason_sent_again_in_a_file_is_a_duplicate(with_leads: Sources) -> None:
    """A missing value hashes as pandas hashes it in a file row (a different hash would read as a conflict)."""
    record = _record("feedback", "L2,2025-03-01T00:00:00Z,prospect,")
    assert record["reason"] is None
    assert store_records(with_leads.store, "feedback", [record], with_leads.taxonomy, now=NOW).stored == 1
    with_leads.write("feedback.csv", f"{FEEDBACK_HEADER}\nL2,2025-03-01T00:00:00Z,prospect,\n")
    batch = with_leads.ingest({"feedback": "feedback.csv"}).batches[0]
    assert (batch.stored, batch.duplicates, batch.quarantined) == (0, 1, 0)
    assert len(with_leads.store.read_table("feedback")) == 1


def test_a_writer_that_must_not_wait_hears_the_store_is_busy(tmp_path, taxonomy) -> None:  # noqa: ANN001
    """The service's event loop writes only when the lock is free; otherwise StoreBusy, and nothing stored."""
    import threading

    from store.event_store import EventStore, StoreBusy

    url = f"sqlite:///{tmp_path / 'busy.sqlite'}"
    holder, other = EventStore(url), EventStore(url)  # two stores: two processes' connections
    sources = Sources(tmp_path, holder, taxonomy)
    sources.write("leads.csv", "lead_id,created_at,source,industry,employees\nL1,2025-01-01T09:00:00Z,web,x,1\n")
    assert sources.ingest({"leads": "leads.csv"}).batches[0].stored == 1
    record = _record("events", "w1,L1,2025-02-01T10:00:00Z,page_view")
    with holder.transaction():
        with pytest.raises(StoreBusy):
            store_records(other, "events", [record], taxonomy, now=NOW, wait=False)
        seen = []

        def try_to_write() -> None:  # another thread of the holder's process
            try:
                with holder.transaction(wait=False):
                    seen.append("wrote")
            except StoreBusy:
                seen.append("busy")

        same_process = threading.Thread(target=try_to_write)
        same_process.start()
        same_process.join()
        assert seen == ["busy"]
    assert other.counts().events == 0
    assert store_records(other, "events", [record], taxonomy, now=NOW, wait=False).stored == 1
    assert store_records(holder, "events", [record], taxonomy, now=NOW, wait=False).duplicates == 1
    holder.close()
    other.close()
