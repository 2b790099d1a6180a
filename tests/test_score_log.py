"""The score log: write-behind in batches, nothing acknowledged ever lost, retention, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pandas as pd

from serving.criteria import CriterionResult
from serving.scoring import Reason, Scored
from store.event_store import EventStore
from store.score_log import ScoreLog, ScoreLogWriter, Served, new_score_id

AS_OF = pd.Timestamp("2025-09-01T12:00:00Z")


def _scored(i: int) -> Scored:
    return Scored(lead_id=f"L{i}", as_of=AS_OF, probability=0.1 + i / 3e4 + 1e-17 * i, score=i % 101,
                  tier="warming", reasons_for=[Reason("days_since_last_intent", "Days since: 2 days", 0.123456789)],
                  reasons_against=[Reason("actions_30d", "Actions: 0", -1 / 3)],
                  criteria=[CriterionResult("budget", "Budget", "met", "budget is yes")], model_version="4",
                  feature_set_version="fs-abc", rules_version="rules-123")


def _served(first: int, n: int, served_at_us: int = 1_760_000_000_000_000) -> Served:
    return Served([new_score_id() for _ in range(n)], [_scored(i) for i in range(first, first + n)], served_at_us,
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

    def flaky(rows: list[dict]) -> None:
        if len(failures) < 2:
            failures.append(len(rows))
            raise OSError("database is locked")
        real_write(rows)

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
