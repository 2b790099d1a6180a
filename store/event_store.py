"""The event store: leads, events and feedback in an embedded SQLite file or any SQLAlchemy database.

Timestamps are stored as integer microseconds since the epoch (UTC): SQLite has no time type,
and an integer compares, sorts and indexes identically on SQLite and PostgreSQL. Each table keeps
a 64-bit content hash beside its key, so a re-sent row is recognised as a duplicate and a row that
reuses a key with different content is caught as a conflict.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Dialect,
    Engine,
    Index,
    MetaData,
    Select,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import OperationalError

metadata = MetaData()

leads_table = Table(
    "leads",
    metadata,
    Column("lead_id", String, primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("source", String),
    Column("attributes", Text, nullable=False, doc="JSON object of profile attributes and criteria."),
    Column("content_hash", BigInteger, nullable=False),
)

events_table = Table(
    "events",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("lead_id", String, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("type", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("content_hash", BigInteger, nullable=False),
    # Serving reads one lead's events ordered by time.
    Index("ix_events_lead_ts", "lead_id", "ts"),
)

feedback_table = Table(
    "feedback",
    metadata,
    Column("feedback_id", String, primary_key=True),
    Column("lead_id", String, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("outcome", String, nullable=False),
    Column("reason", String),
    Column("content_hash", BigInteger, nullable=False),
    Index("ix_feedback_lead_ts", "lead_id", "ts"),
)

attributes_table = Table(
    "attributes",
    metadata,
    Column("name", String, primary_key=True),
    Column("kind", String, nullable=False),
    Column("role", String, nullable=False),
    Column("description", Text, nullable=False),
)

history_table = Table(
    "attribute_history",
    metadata,
    Column("history_id", String, primary_key=True),
    Column("lead_id", String, nullable=False),
    Column("attribute", String, nullable=False),
    Column("value", Text, doc="The value written, as text (numbers in Python's float notation); NULL if cleared."),
    Column("recorded_at", BigInteger, nullable=False),
    Column("content_hash", BigInteger, nullable=False),
    # features and serving read a lead's values as of a moment
    Index("ix_history_lead_time", "lead_id", "recorded_at"),
)

TABLES = {"leads": leads_table, "events": events_table, "feedback": feedback_table, "history": history_table}


def to_micros(ts: pd.Series) -> np.ndarray:
    """UTC timestamps -> int64 microseconds since the epoch."""
    return ts.astype("datetime64[us, UTC]").to_numpy(dtype="datetime64[us]").astype(np.int64)


def from_micros(values: np.ndarray | pd.Series) -> pd.Series | pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(values, dtype=np.int64), unit="us", utc=True)


def _python_values(series: pd.Series) -> list:
    """Column -> list of plain Python values with None for missing (what DBAPI drivers bind)."""
    if series.dtype.kind in "iuf" and not series.isna().any():
        return series.to_numpy().tolist()
    values = series.astype(object)
    return values.where(series.notna(), None).tolist()


def bulk_insert(conn: Connection, table: Table, frame: pd.DataFrame | Mapping[str, np.ndarray]) -> None:
    """Insert a DataFrame (or columns of plain arrays, None for missing) through the driver's executemany.

    SQLAlchemy's generic executemany builds a parameter dict per row, which costs more than the
    insert itself at a million rows; positional tuples go straight to the driver. The statement is
    compiled once per table and columns (compiling cost more than inserting 20 rows).
    """
    names = list(frame.columns) if isinstance(frame, pd.DataFrame) else list(frame)
    if isinstance(frame, pd.DataFrame):
        columns = {name: _python_values(frame[name]) for name in names}
    else:
        columns = {name: np.asarray(values).tolist() for name, values in frame.items()}
    if not names or not len(columns[names[0]]):
        return
    sql, positional = _insert_sql(conn.dialect, table, tuple(names))
    if positional is not None:
        params = list(zip(*(columns[name] for name in positional), strict=True))
    else:
        params = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    conn.exec_driver_sql(sql, params)


@lru_cache(maxsize=64)
def _insert_sql(dialect: Dialect, table: Table, names: tuple[str, ...]) -> tuple[str, tuple[str, ...] | None]:
    compiled = insert(table).compile(dialect=dialect, column_keys=list(names))
    return str(compiled), None if compiled.positiontup is None else tuple(compiled.positiontup)


SQLITE_BUSY_SECONDS = 30.0
"""How long a SQLite write waits for another process's write lock before it fails."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI connection
    # SQLAlchemy, not the driver, starts transactions (see _sqlite_begin): the driver's own
    # implicit BEGIN is deferred, and a deferred transaction that later writes fails at once with
    # "database is locked" when another process writes, without waiting for the busy timeout.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets the service read while an ingest writes; NORMAL sync is durable across app crashes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    """Write transactions take SQLite's write lock up front (waiting for it), reads stay deferred."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


WRITE_OPTION = "prospect_write"


class StoreBusy(Exception):  # noqa: N818 - a state, not a failure: the caller queues and retries
    """Another writer holds the store's write lock (only from ``EventStore.transaction(wait=False)``)."""


@dataclass(frozen=True)
class LeadEvents:
    """One lead's events as parallel arrays; ``ts_us`` is UTC microseconds since the epoch."""

    ts_us: np.ndarray
    type: np.ndarray
    channel: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_us)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"ts": from_micros(self.ts_us), "type": self.type, "channel": self.channel})


@dataclass(frozen=True)
class LeadHistory:
    """Attribute-history rows as parallel arrays in (lead, time) order; ``recorded_at`` in UTC microseconds."""

    lead_id: np.ndarray
    attribute: np.ndarray
    value: np.ndarray
    recorded_at: np.ndarray

    def __len__(self) -> int:
        return len(self.recorded_at)

    def take(self, rows: np.ndarray | slice) -> LeadHistory:
        return LeadHistory(self.lead_id[rows], self.attribute[rows], self.value[rows], self.recorded_at[rows])


@dataclass
class StoreCounts:
    leads: int
    events: int
    feedback: int
    history: int = 0


class EventStore:
    """Access to the canonical tables; ingestion and serving both go through it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._read_sql: tuple[tuple[str, bool], tuple[str, bool]] | None = None
        self._write_lock = threading.RLock()
        self._history_sql: tuple[str, bool] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if self.url.startswith("sqlite:///"):
                db_path = self.url.removeprefix("sqlite:///")
                if db_path and db_path != ":memory:":
                    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            sqlite = self.url.startswith("sqlite")
            self._engine = create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_SECONDS} if sqlite else {})
            if sqlite:
                event.listen(self._engine, "connect", _sqlite_pragmas)
                event.listen(self._engine, "begin", _sqlite_begin)
            with self._write_lock:
                metadata.create_all(self._engine)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def transaction(self, wait: bool = True) -> Iterator[Connection]:
        """One all-or-nothing unit of work: a failure anywhere inside rolls every write back.

        Writers of one process take turns (a lock), and on SQLite each transaction takes the
        database's write lock when it begins, waiting up to SQLITE_BUSY_SECONDS for writers in other
        processes: concurrent writes queue instead of failing with "database is locked".
        With ``wait=False`` a writer that would have to queue raises :class:`StoreBusy` at once
        instead (the service's event loop must not sit in that queue; it retries in a thread).
        """
        if not self._write_lock.acquire(blocking=wait):
            raise StoreBusy
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with self._begin(conn, wait):
                    yield conn
        finally:
            self._write_lock.release()

    @contextmanager
    def _begin(self, conn: Connection, wait: bool) -> Iterator[None]:
        """``conn.begin()``; without waiting, a SQLite write lock held by another process is StoreBusy."""
        if wait or conn.dialect.name != "sqlite":
            with conn.begin():
                yield
            return
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA busy_timeout=0")
        try:
            transaction = conn.begin()  # BEGIN IMMEDIATE: fails at once if another process writes
        except OperationalError as exc:
            raise StoreBusy from exc
        finally:
            raw.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
        with transaction:
            yield

    def counts(self) -> StoreCounts:
        with self.engine.connect() as conn:
            n = {name: conn.execute(select(func.count()).select_from(t)).scalar_one() for name, t in TABLES.items()}
        return StoreCounts(**n)

    def lead_events(self, lead_id: str) -> LeadEvents:
        """Return one lead's events in time order, read through the (lead_id, ts) index."""
        return self.lead_with_events(lead_id, lead=False)[1]

    def lead(self, lead_id: str) -> dict | None:
        """One lead as a dict: ``created_at_us``, ``source`` and its attributes by name; None if unknown."""
        return self.lead_with_events(lead_id, events=False)[0]

    def lead_with_events(self, lead_id: str, lead: bool = True, events: bool = True
                         ) -> tuple[dict | None, LeadEvents]:
        """One lead (as :meth:`lead` gives it) and its events (as :meth:`lead_events`) in one visit.

        This is the serving hot path, so it takes one pooled connection and uses the driver's cursor
        directly: SQLAlchemy's connection and result objects cost more than the two indexed lookups.
        """
        (lead_sql, lead_positional), (events_sql, events_positional) = self._hot_sql()
        with self.engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                row, rows = None, []
                if lead:
                    cursor.execute(lead_sql, (lead_id,) if lead_positional else {"lead_id": lead_id})
                    row = cursor.fetchone()
                if events:
                    cursor.execute(events_sql, (lead_id,) if events_positional else {"lead_id": lead_id})
                    rows = cursor.fetchall()
            finally:
                cursor.close()
        found = None if row is None else _lead_dict(lead_id, *row)
        if not rows:
            return found, LeadEvents(np.empty(0, dtype=np.int64), np.empty(0, dtype=object), np.empty(0, dtype=object))
        ts, types, channels = zip(*rows, strict=True)
        return found, LeadEvents(np.fromiter(ts, dtype=np.int64, count=len(ts)), np.array(types, dtype=object),
                                 np.array(channels, dtype=object))

    def leads_with_events(self, lead_ids: list[str]) -> tuple[list[dict], np.ndarray, LeadEvents]:
        """Many leads and their events in two indexed queries: the batch-scoring path.

        Returns the known leads (as :meth:`lead` gives them, in request order; unknown ids are simply
        absent), then for each event the position of its lead in that list, then the events; events
        are ordered by that position and by time.
        """
        ids = list(dict.fromkeys(lead_ids))
        with self.engine.connect() as conn:
            found = {r[0]: r for r in conn.execute(
                select(leads_table.c.lead_id, leads_table.c.created_at, leads_table.c.source,
                       leads_table.c.attributes).where(leads_table.c.lead_id.in_(ids)))}
            # tens of thousands of event rows: the driver's tuples, not SQLAlchemy Row objects (4x faster)
            with _collector_paused():
                rows = _fetch_tuples(conn, select(events_table.c.lead_id, events_table.c.ts, events_table.c.type,
                                                  events_table.c.channel).where(events_table.c.lead_id.in_(list(found))))
                columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
        leads = [_lead_dict(*found[i]) for i in ids if i in found]
        position = {lead["lead_id"]: k for k, lead in enumerate(leads)}
        owner = np.fromiter((position[i] for i in columns[0]), dtype=np.int64, count=len(rows))
        ts = np.fromiter(columns[1], dtype=np.int64, count=len(rows))
        # sorted here, not in SQL: with ORDER BY, SQLite walks the whole (lead_id, ts) index instead of
        # looking up each id, which made a 1,000-lead read five times slower
        order = np.lexsort((ts, owner))
        return leads, owner[order], LeadEvents(ts[order], np.array(columns[2], dtype=object)[order],
                                               np.array(columns[3], dtype=object)[order])

    def _hot_sql(self) -> tuple[tuple[str, bool], tuple[str, bool]]:
        """The single-lead queries compiled once for this engine's driver: (SQL, positional?)."""
        if self._read_sql is None:
            compiled = [q.compile(dialect=self.engine.dialect) for q in (_LEAD, _LEAD_EVENTS)]
            self._read_sql = tuple((str(c), c.positiontup is not None) for c in compiled)
        return self._read_sql

    def read_table(self, name: str) -> pd.DataFrame:
        """Read a whole canonical table as a DataFrame with UTC timestamps and parsed attributes."""
        table = TABLES[name]
        with self.engine.connect() as conn:
            frame = pd.read_sql_table(table.name, conn)
        return canonical_frame(name, frame)

    def lead_history(self, lead_ids: list[str]) -> LeadHistory:
        """The attribute history of some leads, ordered by lead and time, read through the
        (lead_id, recorded_at) index: the serving path, so plain arrays and the driver's tuples."""
        ids = list(dict.fromkeys(lead_ids))
        with self.engine.connect() as conn:
            if len(ids) == 1:  # one lead scored: the statement compiled once, not per call
                if self._history_sql is None:
                    compiled = _LEAD_HISTORY.compile(dialect=self.engine.dialect)
                    self._history_sql = (str(compiled), compiled.positiontup is not None)
                sql, positional = self._history_sql
                cursor = conn.connection.dbapi_connection.cursor()
                try:
                    cursor.execute(sql, (ids[0],) if positional else {"lead_id": ids[0]})
                    rows = cursor.fetchall()
                finally:
                    cursor.close()
            else:
                rows = _fetch_tuples(conn, _HISTORY_COLUMNS.where(history_table.c.lead_id.in_(ids)))
        if not rows:
            empty = np.empty(0, dtype=object)
            return LeadHistory(empty, empty, empty, np.empty(0, dtype=np.int64))
        lead, attribute, value, recorded = (np.array(c, dtype=object) for c in zip(*rows, strict=True))
        recorded = recorded.astype(np.int64)
        order = np.lexsort((recorded, lead))
        return LeadHistory(lead[order], attribute[order], value[order], recorded[order])

    def attribute_specs(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql_table(attributes_table.name, conn)


def canonical_frame(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Stored rows of a table -> canonical columns: UTC timestamps, attributes parsed, no content hash."""
    for col in ("created_at", "ts", "recorded_at"):
        if col in frame:
            frame[col] = from_micros(frame[col].to_numpy(dtype=np.int64))
    if name == "leads":
        attrs = pd.DataFrame([json.loads(a) for a in frame.pop("attributes")], index=frame.index)
        frame = pd.concat([frame, attrs], axis=1)
    return frame.drop(columns=["content_hash"], errors="ignore")


_LEAD_EVENTS = (
    select(events_table.c.ts, events_table.c.type, events_table.c.channel)
    .where(events_table.c.lead_id == bindparam("lead_id"))
    .order_by(events_table.c.ts)
)

def _lead_dict(lead_id: str, created_at: int, source: str | None, attributes: str) -> dict:
    """A lead row as serving uses it: id, ``created_at_us``, ``source`` and the attributes by name."""
    return {"lead_id": lead_id, "created_at_us": int(created_at), "source": source, **json.loads(attributes)}


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while tens of thousands of row tuples are made.

    Tuples of plain values form no cycles, but allocating that many triggers collections that
    walk the whole heap (the loaded model included): 0.14 s of a 0.25 s read of 50,000 events.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fetch_tuples(conn: Connection, statement: Select) -> list[tuple]:
    """All rows of ``statement`` as the driver's plain tuples (IN lists rendered into the SQL)."""
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(str(compiled), tuple(params[k] for k in compiled.positiontup)
                       if compiled.positiontup is not None else params)
        return cursor.fetchall()
    finally:
        cursor.close()


_HISTORY_COLUMNS = select(history_table.c.lead_id, history_table.c.attribute, history_table.c.value,
                          history_table.c.recorded_at)
_LEAD_HISTORY = _HISTORY_COLUMNS.where(history_table.c.lead_id == bindparam("lead_id"))

_LEAD = select(leads_table.c.created_at, leads_table.c.source, leads_table.c.attributes).where(
    leads_table.c.lead_id == bindparam("lead_id"))
