"""The score log: write-behind in batches, nothing acknowledged ever lost, retention, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pandas as pd

from serving.criteria import CriterionResult
from serving.scoring import Reason, Scored
from store.event_store import EventStore, bulk_insert
from store.score_log import (
    ScoreLog,
    ScoreLogWriter,
    Served,
    block_entries,
    new_block_id,
    parse_entry,
    score_log_table,
    to_block,
    to_rows,
)

AS_OF = pd.Timestamp("2025-09-01T12:00:00Z")


def _scored(i: int) -> Scored:
    return Scored(lead_id=f"L{i}", as_of=AS_OF, probability=0.1 + i / 3e4 + 1e-17 * i, score=i % 101,
                  tier="warming", reasons_for=[Reason("days_since_last_intent", "Days since: 2 days", 0.123456789)],
                  reasons_against=[Reason("actions_30d", "Actions: 0", -1 / 3)],
                  criteria=[CriterionResult("budget", "Budget", "met", "budget is yes")], model_version="4",
                  feature_set_version="fs-abc", rules_version="rules-123")


def _served(first: int, n: int, served_at_us: int = 1_760_000_000_000_000) -> Served:
    return Served(new_block_id(), [_scored(i) for i in range(first, first + n)], served_at_us,
                  "crm", "score_batch")


def test_acknowledged_entries_are_written_on_close_not_lost(store: EventStore) -> None:
    log = ScoreLog(store)
    # a flush interval far longer than the test: only close() can have written the entries
    writer = ScoreLogWriter(log, flush_seconds=600)
    batches = [_served(k * 100, 100) for k in range(7)]
    for b in batches:
        writer.submit(b)
    assert log.count() == 0
    writer.close()
    assert log.count() == 700 and writer.written == 700
    b = batches[3]
    entry = log.entry(b.score_ids[5])
    s = b.scored[5]
    assert entry["lead_id"] == s.lead_id and entry["probability"] == s.probability  # bit-equal round trip
    assert entry["as_of"] == AS_OF.value // 1000 and entry["caller"] == "crm" and entry["model_version"] == "4"
    assert entry["reasons"] == {"for": [["days_since_last_intent", "Days since: 2 days", 0.123456789]],
                                "against": [["actions_30d", "Actions: 0", -1 / 3]]}
    assert entry["criteria"] == [["budget", "met", "budget is yes"]]
    assert entry["rules_version"] == "rules-123" and entry["feature_set_version"] == "fs-abc"
    assert log.entry("no-such-id") is None


def test_writer_flushes_in_the_background_and_retries_failed_writes(tmp_path) -> None:  # noqa: ANN001
    store = EventStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    log = ScoreLog(store)
    real_write, failures = log.write, []

    def flaky(served: list[Served]) -> None:
        if len(failures) < 2:
            failures.append(sum(len(s.scored) for s in served))
            raise OSError("database is locked")
        real_write(served)

    log.write = flaky
    writer = ScoreLogWriter(log, flush_seconds=0.05)
    writer.submit(_served(0, 10))
    deadline = time.time() + 10
    while log.count() < 10 and time.time() < deadline:
        time.sleep(0.05)
    assert log.count() == 10 and failures == [10, 10]  # written by the thread, before any close
    writer.submit(_served(10, 5))
    writer.close()
    assert log.count() == 15


def test_retention_deletes_only_entries_older_than_configured(store: EventStore) -> None:
    log = ScoreLog(store)
    now = pd.Timestamp("2026-01-01T00:00:00Z")
    old = _served(0, 3, (now - pd.Timedelta(days=40)).value // 1000)
    new = _served(3, 2, (now - pd.Timedelta(days=10)).value // 1000)
    writer = ScoreLogWriter(log)
    writer.submit(old)
    writer.submit(new)
    writer.close()
    assert log.prune(30, now=now) == 3
    assert sorted(log.frame()["lead_id"]) == ["L3", "L4"]
    assert log.entry(old.score_ids[0]) is None and log.entry(new.score_ids[0]) is not None


def test_a_block_gives_back_each_score_as_a_row_of_its_own_would(store: EventStore) -> None:
    """Blocks are an encoding: every entry equals what a per-score row (``to_rows``, the bulk log's
    form) holds, field by field -- shared and distinct criteria results, scores with and without
    reasons, a payload."""
    shared = CriterionResult("budget", "Budget", "met", "budget is yes")
    scored = []
    for i in range(40):
        s = _scored(i)
        s.criteria = [shared, CriterionResult("need", "Need", "unknown", f"Demo request {i % 7} days ago")]
        if i % 3 == 0:
            s.reasons_for, s.reasons_against, s.with_reasons = [], [], False
        scored.append(s)
    served = Served(new_block_id(), scored, 1_760_000_000_000_000, "crm", "score_payload", payload='{"lead": {}}')
    log = ScoreLog(store)
    log.write([served])
    expected = [parse_entry(row) for row in to_rows(served)]
    assert [log.entry(i) for i in served.score_ids] == expected
    assert block_entries(to_block(served)) == expected
    assert log.count() == 40
    frame = log.frame()
    assert frame["score_id"].tolist() == served.score_ids and frame["probability"].tolist() == [
        s.probability for s in scored]
    assert list(frame.columns) == [c.name for c in score_log_table.c if c.name not in ("reasons", "criteria", "payload")]


def test_score_ids_are_32_hex_digits_unique_and_past_a_block_unknown(store: EventStore) -> None:
    log = ScoreLog(store)
    a, b = _served(0, 3), _served(3, 2)
    log.write([a, b])
    ids = a.score_ids + b.score_ids
    assert all(len(i) == 32 and set(i) <= set("0123456789abcdef") for i in ids) and len(set(ids)) == 5
    assert [log.entry(i)["lead_id"] for i in ids] == ["L0", "L1", "L2", "L3", "L4"]
    assert log.entry(a.block_id + "000003") is None  # the block holds three scores
    assert log.entry(a.block_id + "zzzzzz") is None


def test_rows_written_one_per_score_by_earlier_versions_are_still_read(store: EventStore) -> None:
    """A store logged into before blocks keeps its entries: read, counted, framed and pruned with the blocks."""
    log = ScoreLog(store)
    now = pd.Timestamp("2026-01-01T00:00:00Z")
    legacy = _served(0, 2, (now - pd.Timedelta(days=40)).value // 1000)
    rows = to_rows(legacy)
    with store.transaction() as conn:
        bulk_insert(conn, score_log_table, {c.name: [row[c.name] for row in rows] for c in score_log_table.c})
    recent = _served(2, 3, (now - pd.Timedelta(days=1)).value // 1000)
    log.write([recent])
    assert log.entry(legacy.score_ids[1]) == parse_entry(rows[1])
    assert log.count() == 5 and sorted(log.frame()["lead_id"]) == ["L0", "L1", "L2", "L3", "L4"]
    assert len(log.frame(since=now - pd.Timedelta(days=2))) == 3
    assert log.prune(30, now=now) == 2 and log.count() == 3
    assert log.entry(legacy.score_ids[0]) is None and log.entry(recent.score_ids[2])["lead_id"] == "L4"
