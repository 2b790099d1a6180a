"""Hands every score the product gives out to the score log, and returns the ids callers see.

The service and ``prospect score`` share it. What a request pays is one block id, the score ids
derived from it, and a queue append; the block is encoded and inserted by the write-behind thread
(see ``store.score_log``).
"""

from __future__ import annotations

import time

from config.settings import Settings
from serving.criteria import Criteria
from store.event_store import EventStore
from store.score_log import ScoreLog, ScoreLogWriter, Served, new_block_id


class ScoreRecorder:
    """Logs what was served; with the score log switched off it hands out no ids and logs nothing."""

    def __init__(self, settings: Settings, store: EventStore, criteria: Criteria | None) -> None:
        self.writer: ScoreLogWriter | None = None
        if not settings.score_log:
            return
        log = ScoreLog(store)
        if criteria is not None and criteria.text is not None:
            log.keep_rules(criteria.version, criteria.text)
        self.writer = ScoreLogWriter(log, settings.score_log_flush_seconds,
                                     retention_days=settings.score_log_retention_days)

    def record(self, scored: list, caller: str, endpoint: str, payload: str | None = None) -> list[str | None]:
        """Queue the scores of one response for the log; returns their score ids (None when not logging)."""
        if self.writer is None:
            return [None] * len(scored)
        if not scored:
            return []
        served_at = time.time_ns() // 1000  # UTC microseconds, as the store keeps times
        served = Served(new_block_id(), scored, served_at, caller, endpoint, payload)
        self.writer.submit(served)
        return served.score_ids

    def close(self) -> None:
        """Write everything recorded so far (the service's shutdown hook, the end of a CLI command)."""
        if self.writer is not None:
            self.writer.close()
