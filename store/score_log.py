"""The score log: every score handed out, on record, so that it can be replayed and monitored later.

Each score is on record with its id, the lead, the as-of and served-at times, the caller (the API
key's name, never the key), the model, feature-set and criteria-rules versions, and what the caller
saw (probability, score, tier, reasons, criteria). The criteria rule files are kept by content
version beside it, so a score can be replayed with the rules it was served with.

A response is written as one *block*: one row holding its scores column by column, with each
distinct criteria result once. A score's id is its block's id and its position in the block, so a
replay finds it by one primary-key read. One row per score cost a 1,000-lead bulk-ranking call
about a quarter of its CPU (three index updates a row, ~360 bytes of criteria JSON a row, of which
998 in 1,000 were distinct lists although each single result repeats); a block costs one insert.
Readers see one entry per score either way: :meth:`ScoreLog.entry`, :meth:`ScoreLog.frame`,
``count`` and ``prune`` read the blocks and the per-score rows earlier versions wrote.

Writing is behind the response: :class:`ScoreLogWriter` queues what was served and a thread inserts
it in batches, so a request pays for a queue append only. ``close()`` drains the queue before it
returns, which is what the service's shutdown hook calls: an entry acknowledged to a caller is on
disk before the process exits.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

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
from pydantic_core import to_json

from contract.timeunits import from_micros
from store.event_store import EventStore, bulk_insert

log = logging.getLogger(__name__)

score_metadata = MetaData()


def _served_columns() -> list[Column]:
    """When, to whom, through which endpoint and by which versions a score was served: a score's row and
    a block hold the same (new objects each call: a column belongs to one table)."""
    return [Column("served_at", BigInteger, nullable=False), Column("caller", String, nullable=False),
            Column("endpoint", String, nullable=False, doc="score, score_payload, score_batch, cli or bulk."),
            Column("model_version", String), Column("feature_set_version", String, nullable=False),
            Column("rules_version", String)]


score_log_table = Table(
    "score_log",  # one row per score: what versions before the blocks wrote, and the columns of an entry
    score_metadata,
    Column("score_id", String, primary_key=True),
    Column("lead_id", String, nullable=False),
    Column("as_of", BigInteger, nullable=False),
    *_served_columns(),
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

score_blocks_table = Table(
    "score_blocks",
    score_metadata,
    Column("block_id", String, primary_key=True, doc="The first BLOCK_ID_HEX characters of its scores' ids."),
    *_served_columns(),
    Column("n", Integer, nullable=False, doc="How many scores the block holds."),
    Column("scores", Text, nullable=False, doc="JSON, column by column: see to_block."),
    Column("payload", Text, doc="JSON of a /score_payload request (the lead is not in the store)."),
    Index("ix_score_blocks_served", "served_at"),
)
"""One row per response: its scores column by column (see the module docstring)."""

rules_table = Table(
    "criteria_rules",
    score_metadata,
    Column("version", String, primary_key=True),
    Column("text", Text, nullable=False),
)


BLOCK_ID_HEX = 26
POSITION_HEX = 6
"""A score id is 32 hex digits, as a uuid4's: 26 random ones name the block (104 bits), 6 the position."""
MAX_BLOCK = 16 ** POSITION_HEX
BLOCK_CONSTANTS = ("model_version", "feature_set_version", "rules_version")
"""What every score of one response shares (one scorer answered it): kept once, on the block."""


def new_block_id() -> str:
    return secrets.token_hex(BLOCK_ID_HEX // 2)


def block_score_ids(block_id: str, n: int) -> list[str]:
    """The ids of a block's ``n`` scores, in order."""
    if n > MAX_BLOCK:
        raise ValueError(f"{n:,} scores in one block; at most {MAX_BLOCK:,}")
    return [f"{block_id}{k:0{POSITION_HEX}x}" for k in range(n)]


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
    """What one response handed out, as queued for the log (encoded off the request path)."""

    block_id: str
    scored: list  # serving.scoring.Scored, in the order of score_ids
    served_at_us: int
    caller: str
    endpoint: str
    payload: str | None = None

    @cached_property
    def score_ids(self) -> list[str]:
        return block_score_ids(self.block_id, len(self.scored))


def _reasons(items: Iterable) -> list:
    return [[r.feature, r.text, r.impact] for r in items]


def to_rows(served: Served) -> list[dict]:
    """One row per score of a response: what a bulk run's Parquet log holds, and what
    :func:`block_entries` gives back from a block (tested equal).

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


def to_block(served: Served) -> dict:
    """The block row of one response: its scores column by column, each distinct criteria result once.

    ``scores`` holds ``lead_id``, ``as_of`` (UTC microseconds), ``probability``, ``score``, ``tier``,
    ``with_reasons`` and ``reasons`` (null for none, else as a per-score row holds it) as lists in
    score order, ``criteria_results`` (``[name, status, evidence]`` each) and ``criteria`` (per
    score, its results' positions in ``criteria_results``).
    """
    scored = served.scored
    first = scored[0]
    constants = {name: getattr(first, name) for name in BLOCK_CONSTANTS}
    if any(getattr(s, name) != value for name, value in constants.items() for s in scored):
        raise ValueError(f"the scores of one response differ in {', '.join(BLOCK_CONSTANTS)}: one scorer answers")
    results: list[list[str]] = []
    position: dict[int, int] = {}  # by object: a batch shares one result object between leads decided alike
    index = []
    for s in scored:
        row = []
        for c in s.criteria:
            k = position.get(id(c))
            if k is None:
                k = position[id(c)] = len(results)
                results.append([c.name, c.status, c.evidence])
            row.append(k)
        index.append(row)
    scores = {
        "lead_id": [s.lead_id for s in scored], "as_of": [s.as_of.value // 1000 for s in scored],
        "probability": [float(s.probability) for s in scored], "score": [int(s.score) for s in scored],
        "tier": [s.tier for s in scored], "with_reasons": [int(s.with_reasons) for s in scored],
        "reasons": [{"for": _reasons(s.reasons_for), "against": _reasons(s.reasons_against)}
                    if s.reasons_for or s.reasons_against else None for s in scored],
        "criteria_results": results, "criteria": index}
    return {"block_id": served.block_id, "served_at": served.served_at_us, "caller": served.caller,
            "endpoint": served.endpoint, **constants, "n": len(scored), "scores": to_json(scores).decode(),
            "payload": served.payload}


def block_entries(block: Mapping, only: int | None = None) -> list[dict]:
    """The entries of a block row (just its ``only``-th when given), as :meth:`ScoreLog.entry` gives one."""
    scores = json.loads(block["scores"])
    results = scores["criteria_results"]
    positions = range(block["n"]) if only is None else [only]
    return [{"score_id": f"{block['block_id']}{k:0{POSITION_HEX}x}", "lead_id": scores["lead_id"][k],
             "as_of": scores["as_of"][k], "served_at": block["served_at"], "caller": block["caller"],
             "endpoint": block["endpoint"], "model_version": block["model_version"],
             "feature_set_version": block["feature_set_version"], "rules_version": block["rules_version"],
             "probability": scores["probability"][k], "score": scores["score"][k], "tier": scores["tier"][k],
             "with_reasons": scores["with_reasons"][k],
             "reasons": scores["reasons"][k] or {"for": [], "against": []},
             "criteria": [results[j] for j in scores["criteria"][k]], "payload": block["payload"]}
            for k in positions]


FRAME_COLUMNS = [c.name for c in score_log_table.c if c.name not in ("reasons", "criteria", "payload")]


class ScoreLog:
    """Reads and writes the score log in an event store: blocks, and the per-score rows of earlier versions."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        score_metadata.create_all(store.engine)

    def write(self, served: list[Served]) -> None:
        """Write responses' scores, a block each, in one transaction."""
        blocks = [to_block(s) for s in served if s.scored]
        if not blocks:
            return
        # plain columns straight to the driver, without a DataFrame in between
        columns = {c.name: [b[c.name] for b in blocks] for c in score_blocks_table.c}
        with self.store.transaction() as conn:
            bulk_insert(conn, score_blocks_table, columns)

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
        block_id, position = score_id[:BLOCK_ID_HEX], score_id[BLOCK_ID_HEX:]
        with self.store.engine.connect() as conn:
            if len(position) == POSITION_HEX and all(ch in "0123456789abcdef" for ch in position):
                block = conn.execute(select(score_blocks_table).where(score_blocks_table.c.block_id == block_id)
                                     ).mappings().first()
                if block is not None:
                    k = int(position, 16)
                    return block_entries(block, k)[0] if k < block["n"] else None
            row = conn.execute(select(score_log_table).where(score_log_table.c.score_id == score_id)).mappings().first()
        return None if row is None else parse_entry(row)

    def frame(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """Logged scores served at or after ``since`` (all when None), without reasons, criteria and payloads."""
        rows_query = select(*(score_log_table.c[name] for name in FRAME_COLUMNS))
        blocks_query = select(score_blocks_table)
        if since is not None:
            rows_query = rows_query.where(score_log_table.c.served_at >= int(since.value // 1000))
            blocks_query = blocks_query.where(score_blocks_table.c.served_at >= int(since.value // 1000))
        with self.store.engine.connect() as conn:
            rows = conn.execute(rows_query).fetchall()
            blocks = conn.execute(blocks_query).mappings().fetchall()
        columns = {name: [row[k] for row in rows] for k, name in enumerate(FRAME_COLUMNS)}
        for block in blocks:
            scores = json.loads(block["scores"])
            for name in FRAME_COLUMNS:
                columns[name] += scores[name] if name in scores else (
                    [f"{block['block_id']}{k:0{POSITION_HEX}x}" for k in range(block["n"])] if name == "score_id"
                    else [block[name]] * block["n"])
        frame = pd.DataFrame(columns, columns=FRAME_COLUMNS)
        for col in ("as_of", "served_at"):
            frame[col] = from_micros(frame[col].to_numpy()) if len(frame) else pd.Series([], dtype="datetime64[us, UTC]")
        return frame

    def count(self) -> int:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(score_log_table)).scalar_one()
            in_blocks = conn.execute(select(func.coalesce(func.sum(score_blocks_table.c.n), 0))).scalar_one()
        return int(rows) + int(in_blocks)

    def prune(self, retention_days: float, now: pd.Timestamp | None = None) -> int:
        """Delete entries served more than ``retention_days`` ago; returns how many."""
        now = now or pd.Timestamp.now(tz="UTC")
        cutoff = int((now - pd.Timedelta(days=retention_days)).value // 1000)
        old_blocks = score_blocks_table.c.served_at < cutoff
        with self.store.transaction() as conn:
            in_blocks = conn.execute(select(func.coalesce(func.sum(score_blocks_table.c.n), 0)).where(old_blocks)
                                     ).scalar_one()
            conn.execute(delete(score_blocks_table).where(old_blocks))
            rows = conn.execute(delete(score_log_table).where(score_log_table.c.served_at < cutoff)).rowcount
        return int(in_blocks) + rows


_STOP = object()


class ScoreLogWriter:
    """Write-behind, batched appends to the score log from a background thread.

    ``submit`` only queues (the request path); the thread encodes what was served, a block per
    response, and inserts a batch of them in one transaction. A failed insert (a locked SQLite file,
    a dropped database connection) is retried with the responses kept in memory, never dropped. ``close`` drains
    the queue and returns once everything submitted is written.
    """

    def __init__(self, log: ScoreLog, flush_seconds: float = 0.2, batch_scores: int = 2000,
                 retention_days: float | None = None) -> None:
        self.log = log
        self.flush_seconds = flush_seconds
        self.batch_scores = batch_scores
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
        pending: list[Served] = []
        stopping = False
        next_prune = 0.0
        while not stopping:
            deadline = time.monotonic() + self.flush_seconds
            while sum(len(s.scored) for s in pending) < self.batch_scores:
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
                pending.append(item)
            pending = self._flush(pending, stopping)
            if self.retention_days and time.monotonic() >= next_prune:
                next_prune = time.monotonic() + 3600
                self._prune()

    def _flush(self, served: list[Served], stopping: bool) -> list[Served]:
        attempts = 0
        while served:
            try:
                self.log.write(served)
                self.written += sum(len(s.scored) for s in served)
                return []
            except Exception as exc:  # noqa: BLE001 - kept and retried: an entry is never dropped
                attempts += 1
                log.warning("score log: writing %d responses failed (%s); retrying", len(served), type(exc).__name__)
                if not stopping and attempts >= 3:
                    return served  # keep them; the next round retries with whatever arrived meanwhile
                time.sleep(min(0.1 * 2 ** attempts, 5.0))
        return served

    def _prune(self) -> None:
        try:
            removed = self.log.prune(self.retention_days)
        except Exception as exc:  # noqa: BLE001 - pruning again in an hour is harmless
            log.warning("score log: pruning failed (%s)", type(exc).__name__)
            return
        if removed:
            log.info("score log: removed %d entries older than %s days", removed, self.retention_days)
