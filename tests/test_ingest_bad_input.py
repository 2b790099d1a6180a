"""Every kind of bad input gets a message naming file, row and column; usable rows are still stored."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import Sources


def quarantine_of(summary, table: str) -> pd.DataFrame:  # noqa: ANN001
    batch = next(b for b in summary.batches if b.table == table)
    assert batch.quarantine_file is not None, "expected a quarantine file"
    return pd.read_csv(batch.quarantine_file, dtype=str)


def test_missing_required_column_names_file_and_column(sources: Sources) -> None:
    sources.write("leads.csv", "lead_id,source,industry,employees\nL1,web,software,3\n")
    summary = sources.ingest({"leads": "leads.csv"})
    batch = summary.batches[0]
    assert "leads.csv" in batch.error and "missing required column 'created_at'" in batch.error
    assert summary.exit_code == 1
    assert sources.store.counts().leads == 0


def test_unparseable_timestamp_is_quarantined_with_row_and_column(with_leads: Sources) -> None:
    with_leads.write("events.csv", "event_id,lead_id,ts,type\n"
                                   "e1,L1,2025-02-01T10:00:00Z,page_view\n"
                                   "e2,L1,yesterday-ish,page_view\n"
                                   "e3,L2,2025-02-02T10:00:00Z,demo_request\n")
    summary = with_leads.ingest({"events": "events.csv"})
    batch = summary.batches[0]
    assert (batch.read, batch.stored, batch.quarantined) == (3, 2, 1)
    q = quarantine_of(summary, "events")
    assert q.loc[0, "_row"] == "2" and q.loc[0, "_column"] == "ts"
    assert "cannot parse timestamp 'yesterday-ish'" in q.loc[0, "_reason"]
    assert q.loc[0, "event_id"] == "e2" and q.loc[0, "_file"].endswith("events.csv")
    assert summary.exit_code == 0


def test_wrong_type_for_numeric_attribute(sources: Sources) -> None:
    sources.write("leads.csv", "lead_id,created_at,source,industry,employees\n"
                               "L1,2025-01-01,web,software,120\nL2,2025-01-01,web,retail,lots\n")
    summary = sources.ingest({"leads": "leads.csv"})
    q = quarantine_of(summary, "leads")
    assert q.loc[0, "_row"] == "2" and q.loc[0, "_column"] == "employees"
    assert "not a number (attribute employees is numeric): 'lots'" in q.loc[0, "_reason"]
    leads = sources.store.read_table("leads")
    assert leads["lead_id"].tolist() == ["L1"] and leads["employees"].tolist() == [120.0]


def test_unknown_event_type(with_leads: Sources) -> None:
    with_leads.write("events.csv", "event_id,lead_id,ts,type\ne1,L1,2025-02-01,page_view\n"
                                   "e2,L1,2025-02-01,carrier_pigeon\n")
    summary = with_leads.ingest({"events": "events.csv"})
    q = quarantine_of(summary, "events")
    assert q.loc[0, "_column"] == "type" and "unknown event type 'carrier_pigeon'" in q.loc[0, "_reason"]
    assert summary.batches[0].stored == 1


def test_duplicate_id_with_different_content_within_file_and_against_store(with_leads: Sources) -> None:
    with_leads.write("events.csv", "event_id,lead_id,ts,type\ne1,L1,2025-02-01,page_view\n"
                                   "e1,L1,2025-02-01,page_view\ne1,L1,2025-02-03,demo_request\n")
    summary = with_leads.ingest({"events": "events.csv"})
    batch = summary.batches[0]
    assert (batch.stored, batch.duplicates, batch.quarantined) == (1, 1, 1)
    q = quarantine_of(summary, "events")
    assert q.loc[0, "_row"] == "3"
    assert "duplicate event_id 'e1' with different content (first seen at row 1)" in q.loc[0, "_reason"]

    with_leads.write("events2.csv", "event_id,lead_id,ts,type\ne1,L1,2025-02-05,chat\ne9,L2,2025-02-05,chat\n")
    summary = with_leads.ingest({"events": "events2.csv"})
    q = quarantine_of(summary, "events")
    assert "duplicate event_id 'e1' with different content than the stored row" in q.loc[0, "_reason"]
    stored = with_leads.store.lead_events("L1").to_frame()
    assert stored["type"].tolist() == ["page_view"], "the stored row must not be overwritten"


def test_event_for_unknown_lead(with_leads: Sources) -> None:
    with_leads.write("events.csv", "event_id,lead_id,ts,type\ne1,L1,2025-02-01,page_view\n"
                                   "e2,L404,2025-02-01,page_view\n")
    summary = with_leads.ingest({"events": "events.csv"})
    q = quarantine_of(summary, "events")
    assert q.loc[0, "_column"] == "lead_id" and "unknown lead_id 'L404'" in q.loc[0, "_reason"]
    assert summary.batches[0].stored == 1


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("lead_id,created_at,source,industry,employees\n", "the file has a header but no data rows"),
])
def test_empty_file(sources: Sources, content: str, message: str) -> None:
    sources.write("leads.csv", content)
    summary = sources.ingest({"leads": "leads.csv"})
    assert message in summary.batches[0].error and "leads.csv" in summary.batches[0].error
    assert summary.exit_code == 1


def test_wrong_delimiter_is_named(sources: Sources) -> None:
    sources.write("leads.csv", "lead_id;created_at;source;industry;employees\nL1;2025-01-01;web;software;3\n")
    summary = sources.ingest({"leads": "leads.csv"})
    error = summary.batches[0].error
    assert "missing required columns" in error
    assert "seems to use ';' as delimiter" in error and "set `delimiter:`" in error
    assert sources.store.counts().leads == 0


def test_wrong_encoding_names_row_and_suggests_fix(sources: Sources) -> None:
    text = "lead_id,created_at,source,industry,employees\nL1,2025-01-01,web,software,3\nL2,2025-01-01,web,caf\xe9,4\n"
    sources.write("leads.csv", text.encode("latin-1"))
    summary = sources.ingest({"leads": "leads.csv"})
    error = summary.batches[0].error
    assert "leads.csv: row 2 (line 3" in error and "not valid utf-8" in error and "latin-1" in error
    assert sources.store.counts().leads == 0, "a batch that fails part-way stores nothing"
    # with the encoding the error suggests, the same file loads
    summary = sources.ingest({"leads": "leads.csv"}, leads={"encoding": "latin-1"})
    assert summary.batches[0].stored == 2
    assert sources.store.read_table("leads").set_index("lead_id").loc["L2", "industry"] == "café"


def test_timestamp_in_the_future(with_leads: Sources) -> None:
    with_leads.write("events.csv", "event_id,lead_id,ts,type\ne1,L1,2025-02-01,page_view\n"
                                   "e2,L1,2031-02-01T00:00:00Z,page_view\n")
    summary = with_leads.ingest({"events": "events.csv"})
    q = quarantine_of(summary, "events")
    assert q.loc[0, "_row"] == "2" and q.loc[0, "_column"] == "ts"
    assert "timestamp 2031-02-01 00:00:00+00:00 is in the future" in q.loc[0, "_reason"]


def test_unknown_outcome_and_required_empty(with_leads: Sources) -> None:
    with_leads.write("feedback.csv", "lead_id,ts,outcome,reason\nL1,2025-03-01,prospect,\n"
                                     "L2,2025-03-01,maybe,\n,2025-03-01,prospect,\n")
    summary = with_leads.ingest({"feedback": "feedback.csv"})
    q = quarantine_of(summary, "feedback").set_index("_row")
    assert "unknown outcome 'maybe'" in q.loc["2", "_reason"] and q.loc["2", "_column"] == "outcome"
    assert "required feedback.lead_id is empty" in q.loc["3", "_reason"]
    assert summary.batches[0].stored == 1


def test_row_with_several_problems_is_quarantined_once_with_every_reason(with_leads: Sources) -> None:
    with_leads.write("events.csv", "event_id,lead_id,ts,type\ne1,L1,not-a-date,carrier_pigeon\n"
                                   "e2,L1,2025-02-01,page_view\n")
    summary = with_leads.ingest({"events": "events.csv"})
    q = quarantine_of(summary, "events")
    assert len(q) == 1
    assert q.loc[0, "_column"] == "ts; type"
    assert "cannot parse timestamp" in q.loc[0, "_reason"] and "unknown event type" in q.loc[0, "_reason"]


def test_row_numbers_continue_across_chunks(with_leads: Sources) -> None:
    rows = [f"e{i},L1,2025-02-01T00:{i:02d}:00Z,page_view" for i in range(10)]
    rows[7] = "e7,L1,2025-02-01T00:07:00Z,bogus"
    with_leads.write("events.csv", "event_id,lead_id,ts,type\n" + "\n".join(rows) + "\n")
    summary = with_leads.ingest({"events": "events.csv"}, chunk_rows=3)
    q = quarantine_of(summary, "events")
    assert q["_row"].tolist() == ["8"] and q.loc[0, "event_id"] == "e7"
    assert summary.batches[0].stored == 9


def test_clock_skew_tolerance_for_timestamps_just_ahead(with_leads: Sources) -> None:
    from datetime import timedelta

    from store.ingest import ingest
    from tests.conftest import NOW, mapping_for

    with_leads.write("events.csv", "event_id,lead_id,ts,type\n"
                                   "e1,L1,2026-01-01T00:03:00Z,page_view\ne2,L1,2026-01-01T00:10:00Z,page_view\n")

    def run(skew: timedelta):  # noqa: ANN202
        return ingest(mapping_for({"events": "events.csv"}), with_leads.folder, with_leads.store, with_leads.taxonomy,
                      with_leads.folder / "quarantine", now=NOW, clock_skew=skew)

    strict = run(timedelta(0)).batches[0]
    assert (strict.stored, strict.quarantined) == (0, 2)
    tolerant = run(timedelta(minutes=5)).batches[0]
    assert (tolerant.stored, tolerant.quarantined) == (1, 1), "3 minutes ahead is clock drift, 10 is the future"


def test_events_and_feedback_before_the_lead_was_created_are_quarantined(with_leads: Sources) -> None:
    # L1 was created 2025-01-01T09:00Z; the clock-skew tolerance (5 minutes) lets 08:57 through
    with_leads.write("events.csv", "event_id,lead_id,ts,type\ne1,L1,0001-01-01T00:00:00Z,page_view\n"
                                   "e2,L1,2024-12-31T09:00:00Z,page_view\ne3,L1,2025-01-01T08:57:00Z,page_view\n"
                                   "e4,L1,2025-02-01T00:00:00Z,page_view\n")
    with_leads.write("feedback.csv", "lead_id,ts,outcome,reason\nL1,2024-06-01,prospect,\nL2,2025-03-01,prospect,\n")
    summary = with_leads.ingest({"events": "events.csv", "feedback": "feedback.csv"})
    events = quarantine_of(summary, "events")
    assert events["event_id"].tolist() == ["e1", "e2"] and set(events["_column"]) == {"ts"}
    assert set(events["_reason"]) == {"dated before the lead was created"}
    feedback = quarantine_of(summary, "feedback")
    assert feedback["_row"].tolist() == ["1"] and feedback.loc[0, "_reason"] == "dated before the lead was created"
    assert [(b.table, b.stored) for b in summary.batches] == [("events", 2), ("feedback", 1)]
    stored = with_leads.store.read_table("events")
    assert sorted(stored["event_id"]) == ["e3", "e4"]
