"""The score log: every score handed out, on record, so that it can be replayed and monitored later.

One row per score: its id, the lead, the as-of and served-at times, the caller (the API key's
name, never the key), the model, feature-set and criteria-rules versions, and what the caller saw
(probability, score, tier, reasons, criteria). The table lives in the event store, indexed by
(lead_id, served_at). The criteria rule files are kept by content version beside it, so a score can
be replayed with the rules it was served with.

Writing is behind the response: :class:`ScoreLogWriter` queues entries and a thread inserts them in
batches, so a request pays for a queue append only. ``close()`` drains the queue before it
returns, which is what the service's shutdown hook calls: an entry acknowledged to a caller is on
disk before the process exits.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)

from contract.timeunits import from_micros
from store.event_store import EventStore, bulk_insert

log = logging.getLogger(__name__)

score_metadata = MetaData()

score_log_table = Table(
    "score_log",
    score_metadata,
    Column("score_id", String, primary_key=True),
    Column("lead_id", String, nullable=False),
    Column("as_of", BigInteger, nullable=False),
    Column("served_at", BigInteger, nullable=False),
    Column("caller", String, nullable=False),
    Column("endpoint", String, nullable=False, doc="score, score_payload, score_batch, cli or bulk."),
    Column("model_version", String),
    Column("feature_set_version", String, nullable=False),
    Column("rules_version", String),
    Column("probability", Double, nullable=False),
    Column("score", Integer, nullable=False),
    Column("tier", String, nullable=False),
    Column("with_reasons", Integer, nullable=False),
    Column("reasons", Text, nullable=False, doc="JSON: {'for': [[feature, text, impact]], 'against': [...]}"),
    Column("criteria", Text, nullable=False, doc="JSON: [[name, status, evidence]]"),
    Column("payload", Text, doc="JSON of a /score_payload request (the lead is not in the store)."),
    Index("ix_score_log_lead_served", "lead_id", "served_at"),
    Index("ix_score_log_served", "served_at"),
)

rules_table = Table(
    "criteria_rules",
    score_metadata,
    Column("version", String, primary_key=True),
    Column("text", Text, nullable=False),
)


def new_score_id() -> str:
    return uuid.uuid4().hex


_ARROW_TYPES = {BigInteger: "int64", Integer: "int64", Double: "float64", String: "string", Text: "string"}


def arrow_schema():  # noqa: ANN201 - a pyarrow.Schema (pyarrow is imported only by those who write Parquet)
    """The score log's columns as a Parquet schema: bulk runs log to the lake with the table's own columns."""
    import pyarrow as pa

    return pa.schema([pa.field(c.name, getattr(pa, _ARROW_TYPES[type(c.type)])(), nullable=bool(c.nullable))
                      for c in score_log_table.c])


def parse_entry(row: dict) -> dict:
    """A log row as :meth:`ScoreLog.entry` gives it: reasons and criteria parsed from their JSON."""
    entry = dict(row)
    entry["reasons"] = json.loads(entry["reasons"])
    entry["criteria"] = json.loads(entry["criteria"])
    return entry


@dataclass(frozen=True)
class Served:
    """What one response handed out, as queued for the log (turned into rows off the request path)."""

    score_ids: list[str]
    scored: list  # serving.scoring.Scored, in the order of score_ids
    served_at_us: int
    caller: str
    endpoint: str
    payload: str | None = None


def _reasons(items: Iterable) -> list:
    return [[r.feature, r.text, r.impact] for r in items]


def to_rows(served: Served) -> list[dict]:
    """Log rows for one response.

    The criteria results of a batch are shared between leads that were decided alike, so each
    distinct list is written as JSON once; so is the empty reasons object of a score without reasons.
    """
    rows = []
    criteria_json: dict[tuple[int, ...], str] = {}
    no_reasons = json.dumps({"for": [], "against": []})
    for score_id, s in zip(served.score_ids, served.scored, strict=True):
        key = tuple(map(id, s.criteria))
        criteria = criteria_json.get(key)
        if criteria is None:
            criteria = criteria_json[key] = json.dumps([[c.name, c.status, c.evidence] for c in s.criteria])
        reasons = no_reasons if not (s.reasons_for or s.reasons_against) else json.dumps(
            {"for": _reasons(s.reasons_for), "against": _reasons(s.reasons_against)})
        rows.append({
            "score_id": score_id, "lead_id": s.lead_id, "as_of": int(s.as_of.value // 1000),
            "served_at": served.served_at_us, "caller": served.caller, "endpoint": served.endpoint,
            "model_version": s.model_version, "feature_set_version": s.feature_set_version,
            "rules_version": s.rules_version, "probability": float(s.probability), "score": int(s.score),
            "tier": s.tier, "with_reasons": int(s.with_reasons), "reasons": reasons, "criteria": criteria,
            "payload": served.payload,
        })
    return rows


class ScoreLog:
    """Reads and writes the score log table in an event store."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        score_metadata.create_all(store.engine)

    def write(self, rows: list[dict]) -> None:
        if not rows:
            return
        # plain columns straight to the driver, without a DataFrame in between
        columns = {c.name: [row[c.name] for row in rows] for c in score_log_table.c}
        with self.store.transaction() as conn:
            bulk_insert(conn, score_log_table, columns)

    def keep_rules(self, version: str, text: str) -> None:
        """Store a criteria rule file under its content version (once)."""
        with self.store.transaction() as conn:
            known = conn.execute(select(rules_table.c.version).where(rules_table.c.version == version)).first()
            if known is None:
                conn.execute(insert(rules_table).values(version=version, text=text))

    def rules_text(self, version: str) -> str | None:
        with self.store.engine.connect() as conn:
            return conn.execute(select(rules_table.c.text).where(rules_table.c.version == version)).scalar()

    def entry(self, score_id: str) -> dict | None:
        """One logged score as a dict (reasons and criteria parsed), None if the id is unknown."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(score_log_table).where(score_log_table.c.score_id == score_id)).mappings().first()
        return None if row is None else parse_entry(row)

    def frame(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """Logged scores served at or after ``since`` (all when None), without reasons and payloads."""
        columns = [c for c in score_log_table.c if c.name not in ("reasons", "criteria", "payload")]
        query = select(*columns)
        if since is not None:
            query = query.where(score_log_table.c.served_at >= int(since.value // 1000))
        with self.store.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).fetchall(), columns=[c.name for c in columns])
        for col in ("as_of", "served_at"):
            frame[col] = from_micros(frame[col].to_numpy()) if len(frame) else pd.Series([], dtype="datetime64[us, UTC]")
        return frame

    def count(self) -> int:
        with self.store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(score_log_table)).scalar_one()

    def prune(self, retention_days: float, now: pd.Timestamp | None = None) -> int:
        """Delete entries served more than ``retention_days`` ago; returns how many."""
        now = now or pd.Timestamp.now(tz="UTC")
        cutoff = int((now - pd.Timedelta(days=retention_days)).value // 1000)
        with self.store.transaction() as conn:
            return conn.execute(delete(score_log_table).where(score_log_table.c.served_at < cutoff)).rowcount


_STOP = object()


class ScoreLogWriter:
    """Write-behind, batched appends to the score log from a background thread.

    ``submit`` only queues (the request path); the thread turns what was served into rows and
    inserts them in one transaction per batch. A failed insert (a locked SQLite file, a dropped
    database connection) is retried with the rows kept in memory, never dropped. ``close`` drains
    the queue and returns once everything submitted is written.
    """

    def __init__(self, log: ScoreLog, flush_seconds: float = 0.2, batch_rows: int = 2000,
                 retention_days: float | None = None) -> None:
        self.log = log
        self.flush_seconds = flush_seconds
        self.batch_rows = batch_rows
        self.retention_days = retention_days
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="score-log-writer", daemon=True)
        self._thread.start()

    def submit(self, served: Served) -> None:
        self.queue.put(served)

    def close(self, timeout: float = 60.0) -> None:
        """Write everything submitted so far, then stop the thread."""
        if self._thread.is_alive():
            self.queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[dict] = []
        stopping = False
        next_prune = 0.0
        while not stopping:
            deadline = time.monotonic() + self.flush_seconds
            while len(pending) < self.batch_rows:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                try:
                    item = self.queue.get(timeout=wait)
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                pending += to_rows(item)
            pending = self._flush(pending, stopping)
            if self.retention_days and time.monotonic() >= next_prune:
                next_prune = time.monotonic() + 3600
                self._prune()

    def _flush(self, rows: list[dict], stopping: bool) -> list[dict]:
        attempts = 0
        while rows:
            try:
                self.log.write(rows)
                self.written += len(rows)
                return []
            except Exception as exc:  # noqa: BLE001 - kept and retried: an entry is never dropped
                attempts += 1
                log.warning("score log: writing %d entries failed (%s); retrying", len(rows), type(exc).__name__)
                if not stopping and attempts >= 3:
                    return rows  # keep them; the next round retries with whatever arrived meanwhile
                time.sleep(min(0.1 * 2 ** attempts, 5.0))
        return rows

    def _prune(self) -> None:
        try:
            removed = self.log.prune(self.retention_days)
        except Exception as exc:  # noqa: BLE001 - pruning again in an hour is harmless
            log.warning("score log: pruning failed (%s)", type(exc).__name__)
            return
        if removed:
            log.info("score log: removed %d entries older than %s days", removed, self.retention_days)
