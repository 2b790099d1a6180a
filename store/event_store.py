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
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    bindparam,
    delete,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import OperationalError

from contract.lead_record import LeadRecord
from contract.timeunits import from_micros
from store.packed import append, last_time, merge_order, names_of, pack, pack_many, unpack_many

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

packed_events_table = Table(
    "lead_events_packed",
    metadata,
    Column("lead_id", String, primary_key=True),
    Column("n", BigInteger, nullable=False, doc="How many events the record holds."),
    Column("blob", LargeBinary, nullable=False, doc="The lead's events packed by store.packed, in time order."),
)
"""Derived from the events table, one row per lead with events: what batch scoring reads. Written only
by :func:`insert_events`, in the transaction that writes the event rows."""

TABLES = {"leads": leads_table, "events": events_table, "feedback": feedback_table, "history": history_table}


def _python_values(series: pd.Series) -> list:
    """Column -> list of plain Python values with None for missing (what DBAPI drivers bind)."""
    if series.dtype.kind in "iuf" and not series.isna().any():
        return series.to_numpy().tolist()
    values = series.astype(object)
    return values.where(series.notna(), None).tolist()


def bulk_insert(conn: Connection, table: Table, frame: pd.DataFrame | Mapping[str, np.ndarray | list]) -> None:
    """Insert a DataFrame (or columns of plain arrays or lists, None for missing) through the driver's executemany.

    SQLAlchemy's generic executemany builds a parameter dict per row, which costs more than the
    insert itself at a million rows; positional tuples go straight to the driver. The statement is
    compiled once per table and columns (compiling cost more than inserting 20 rows).
    """
    names = list(frame.columns) if isinstance(frame, pd.DataFrame) else list(frame)
    if isinstance(frame, pd.DataFrame):
        columns = {name: _python_values(frame[name]) for name in names}
    else:
        columns = {name: values if isinstance(values, list) else np.asarray(values).tolist()
                   for name, values in frame.items()}
    if not names or not len(columns[names[0]]):
        return
    sql, positional = _insert_sql(conn.dialect, table, tuple(names))
    conn.exec_driver_sql(sql, _driver_params(columns, positional))


def _driver_params(columns: Mapping[str, list], positional: tuple[str, ...] | None) -> list:
    """Columns of plain values -> executemany parameters: tuples in ``positional`` order, or dicts by name."""
    if positional is not None:
        return list(zip(*(columns[name] for name in positional), strict=True))
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


@lru_cache(maxsize=64)
def _insert_sql(dialect: Dialect, table: Table, names: tuple[str, ...]) -> tuple[str, tuple[str, ...] | None]:
    compiled = insert(table).compile(dialect=dialect, column_keys=list(names))
    return str(compiled), None if compiled.positiontup is None else tuple(compiled.positiontup)


PACKED_IN_CHUNK = 900
"""Lead ids per IN list when packed records are read (old SQLite allows 999 parameters)."""
APPEND_UP_TO = 2_000
"""Writes of up to this many events append to records lead by lead in Python; larger ones (file chunks)
repack their leads' records with array operations, cheaper per event at that size."""


def insert_events(conn: Connection, rows: pd.DataFrame | Mapping[str, np.ndarray]) -> None:
    """Insert event rows (store columns, ``ts`` in UTC microseconds; a frame or columns of plain
    arrays) and rewrite the packed record of every lead they touch, inside the caller's
    transaction: the records never differ from the rows.

    A small write (an API call) appends its events to the records of leads whose new events are
    none earlier than their last stored one (the live case); a lead with a late event, and every
    lead of a large write (a file chunk, packed with array operations), gets its record repacked.
    """
    def column(name: str) -> np.ndarray:
        return rows[name].to_numpy(dtype=object) if isinstance(rows, pd.DataFrame) else np.asarray(rows[name], object)

    lead = column("lead_id")
    if not lead.size:
        return
    bulk_insert(conn, events_table, rows)
    channel = column("channel") if "channel" in rows else np.full(lead.size, None, dtype=object)
    ts, types, channels = column("ts").astype(np.int64), column("type"), np.where(pd.isna(channel), None, channel)
    touched = list(dict.fromkeys(lead.tolist()))
    stored = _stored_records(conn, touched)
    appended = _appended_records(stored, lead, ts, types, channels) if lead.size <= APPEND_UP_TO else {}
    ids, counts, blobs = list(appended), [n for n, _ in appended.values()], [b for _, b in appended.values()]
    if len(appended) < len(touched):
        late = [i for i in touched if i in stored and i not in appended]
        mine = np.fromiter((i not in appended for i in lead.tolist()), dtype=bool, count=lead.size) if appended \
            else slice(None)
        repacked = _repacked_records([stored[i] for i in late], late, lead[mine], ts[mine], types[mine], channels[mine])
        ids, counts, blobs = ids + repacked[0], counts + repacked[1], blobs + repacked[2]
    records = list(zip(ids, counts, blobs, strict=True))
    _update_packed(conn, *_columns([r for r in records if r[0] in stored], 3))
    _insert_packed(conn, *_columns([r for r in records if r[0] not in stored], 3))


def _columns(rows: list[tuple], width: int) -> list[list]:
    """Rows -> ``width`` lists of values (empty lists for no rows)."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _stored_records(conn: Connection, ids: list[str]) -> dict[str, tuple[int, bytes]]:
    """The packed records of these leads: {lead: (n, blob)}, leads without events absent."""
    stored = {}
    for lo in range(0, len(ids), PACKED_IN_CHUNK):
        chunk = ids[lo:lo + PACKED_IN_CHUNK]
        stored.update((lead_id, (int(n), bytes(blob)))  # bytes, not a driver's memoryview (psycopg2 gives them)
                      for lead_id, n, blob in _rows_of_leads(conn, _PACKED_ROWS, packed_events_table.c.lead_id, chunk))
    return stored


def _appended_records(stored: Mapping[str, tuple[int, bytes]], lead: np.ndarray, ts: np.ndarray, types: np.ndarray,
                      channels: np.ndarray) -> dict[str, tuple[int, bytes]]:
    """The new records ({lead: (n, blob)}) of the leads whose new events all come at or after their
    last stored one, each the stored record with the new events added (see ``packed.append``);
    leads with a late event are left out, for a full repack.

    A tie with the last stored event appends too: events at the same instant keep the order they
    were stored in, and the new ones are stored after.
    """
    rows_of: dict[str, list[int]] = {}
    for i, lead_id in enumerate(lead.tolist()):
        rows_of.setdefault(lead_id, []).append(i)
    ts_list, type_list, channel_list = ts.tolist(), types.tolist(), channels.tolist()
    out = {}
    for lead_id, rows in rows_of.items():
        rows.sort(key=ts_list.__getitem__)  # stable: events of one instant keep the order they are written in
        new_ts = [ts_list[i] for i in rows]
        n, blob = stored.get(lead_id, (0, b""))
        if n and new_ts[0] < last_time(blob, n):
            continue
        new_types, new_channels = [type_list[i] for i in rows], [channel_list[i] for i in rows]
        out[lead_id] = (n + len(rows), append(blob, n, new_ts, new_types, new_channels) if n else
                        pack(np.array(new_ts, dtype=np.int64), new_types, new_channels))
    return out


def _repacked_records(stored: list[tuple[int, bytes]], stored_ids: list[str], lead: np.ndarray, ts: np.ndarray,
                      types: np.ndarray, channels: np.ndarray) -> tuple[list[str], list[int], list[bytes]]:
    """The records of leads packed again from their stored records' events and the new ones (stored first)."""
    counts = [n for n, _ in stored]
    old_ts, old_types, old_channels = unpack_many(counts, [b for _, b in stored])
    return _packed_records(np.concatenate([np.repeat(np.array(stored_ids, dtype=object), counts), lead]),
                           np.concatenate([old_ts, ts]), np.concatenate([names_of(old_types), types]),
                           np.concatenate([names_of(old_channels), channels]))


def _packed_records(lead: np.ndarray, ts: np.ndarray, types: np.ndarray, channels: np.ndarray
                    ) -> tuple[list[str], list[int], list[bytes]]:
    """The packed record of each lead in ``lead`` from all of its events (earlier-stored ones first)."""
    code, ids = pd.factorize(lead)  # ids hashed, not sorted: sorting many strings is slow
    order = merge_order(code, ts)
    code, ts, types, channels = code[order], ts[order], types[order], channels[order]
    bounds = np.searchsorted(code, np.arange(ids.size + 1), side="left")
    return list(ids), np.diff(bounds).tolist(), pack_many(bounds, ts, types, channels)


def _update_packed(conn: Connection, ids: list[str], counts: list[int], blobs: list[bytes]) -> None:
    """Replace stored packed records. An update in place: deleting and inserting the rows again (with
    their key index entries) cost twice the time, a sixth of a 20-event write."""
    if ids:
        sql, positional = _update_packed_sql(conn.dialect)
        conn.exec_driver_sql(sql, _driver_params({"key": ids, "new_n": counts, "new_blob": blobs}, positional))


@lru_cache(maxsize=8)
def _update_packed_sql(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    table = packed_events_table
    compiled = (update(table).where(table.c.lead_id == bindparam("key"))
                .values(n=bindparam("new_n"), blob=bindparam("new_blob")).compile(dialect=dialect))
    return str(compiled), None if compiled.positiontup is None else tuple(compiled.positiontup)


def _insert_packed(conn: Connection, ids: list[str], counts: list[int], blobs: list[bytes]) -> int:
    """Insert packed records of leads that have none stored."""
    packed = np.empty(len(blobs), dtype=object)  # bytes kept as objects: a bytes dtype would drop trailing NULs
    packed[:] = blobs
    # plain arrays, not a frame: building and converting one cost a third of a 20-event /events call
    bulk_insert(conn, packed_events_table, {"lead_id": np.array(ids, dtype=object),
                                            "n": np.array(counts, dtype=np.int64), "blob": packed})
    return len(ids)


def _rebuild_packed(conn: Connection) -> int:
    conn.execute(delete(packed_events_table))
    # no ORDER BY: the rows come in the order they were stored, which breaks ties between equal times
    with _collector_paused():  # millions of row tuples: see _collector_paused
        rows = _fetch_tuples(conn, select(events_table.c.lead_id, events_table.c.ts, events_table.c.type,
                                          events_table.c.channel))
        if not rows:
            return 0
        lead, ts, types, channels = (np.array(c, dtype=object) for c in zip(*rows, strict=True))
    return _insert_packed(conn, *_packed_records(lead, ts.astype(np.int64), types, channels))


def _build_packed_if_missing(engine: Engine) -> None:
    """A store with events but no packed records was written before they existed: build them once."""
    with engine.connect() as conn:
        has_events = conn.execute(select(events_table.c.event_id).limit(1)).first() is not None
        has_packed = conn.execute(select(packed_events_table.c.lead_id).limit(1)).first() is not None
    if not has_events or has_packed:
        return
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.execute(select(packed_events_table.c.lead_id).limit(1)).first() is None:
                _rebuild_packed(conn)


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
    """Events as parallel arrays; ``ts_us`` is UTC microseconds since the epoch.

    ``type`` and ``channel`` are object arrays of names (None for a missing channel), or, from
    :meth:`EventStore.leads_with_events` with many events, categoricals (a missing channel is code
    -1, never a category): the batch's names already coded.
    """

    ts_us: np.ndarray
    type: np.ndarray | pd.Categorical
    channel: np.ndarray | pd.Categorical

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
                _build_packed_if_missing(self._engine)
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

    def lead(self, lead_id: str) -> LeadRecord | None:
        """One lead: id, ``created_at_us``, ``source`` and its attributes by name; None if unknown."""
        return self.lead_with_events(lead_id, events=False)[0]

    def lead_with_events(self, lead_id: str, lead: bool = True, events: bool = True
                         ) -> tuple[LeadRecord | None, LeadEvents]:
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
        found = None if row is None else _lead_record(lead_id, *row)
        if not rows:
            return found, LeadEvents(np.empty(0, dtype=np.int64), np.empty(0, dtype=object), np.empty(0, dtype=object))
        ts, types, channels = zip(*rows, strict=True)
        return found, LeadEvents(np.fromiter(ts, dtype=np.int64, count=len(ts)), np.array(types, dtype=object),
                                 np.array(channels, dtype=object))

    def leads_with_events(self, lead_ids: list[str]) -> tuple[list[LeadRecord], np.ndarray, LeadEvents]:
        """Many leads and their events in one indexed query: the batch-scoring path (one id is a batch of one).

        Returns the known leads (as :meth:`lead` gives them, in request order; unknown ids are simply
        absent), then for each event the position of its lead in that list, then the events (types
        and channels as categoricals from ``packed.CODED_FROM`` events on); events are ordered by that
        position and by time. The events come from each lead's packed record (one row a lead, not
        ~50, read in the same row as the lead), which :func:`insert_events` keeps equal to the event rows.
        """
        ids = list(dict.fromkeys(lead_ids))
        with _collector_paused():  # a 1,000-lead batch makes some 10,000 rows, records, dicts and lists
            with self.engine.connect() as conn:
                found = {r[0]: r for r in _rows_of_leads(conn, _LEAD_AND_EVENT_ROWS, leads_table.c.lead_id, ids)}
            known = [found[i] for i in ids if i in found]
            if not known:
                return [], np.empty(0, np.int64), LeadEvents(*unpack_many([], []))
            lead_id, created, source, attributes, counts, blobs = zip(*known, strict=True)
            # one JSON document for all the leads' attributes: a thousand json.loads calls cost twice as much
            leads = list(map(LeadRecord, lead_id, map(int, created), source,
                             json.loads("[" + ",".join(attributes) + "]")))
            has = [k for k, n in enumerate(counts) if n]  # a lead without events has no packed record
            n = [int(counts[k]) for k in has]
            ts, types, channels = unpack_many(n, [blobs[k] for k in has])
        return leads, np.repeat(np.array(has, dtype=np.int64), n), LeadEvents(ts, types, channels)

    def leads_with_event_rows(self, lead_ids: list[str]) -> tuple[list[LeadRecord], np.ndarray, LeadEvents]:
        """What :meth:`leads_with_events` gives, read from the event rows themselves (the source of truth
        the packed records are checked against)."""
        leads = [lead for lead in (self.lead(i) for i in dict.fromkeys(lead_ids)) if lead is not None]
        parts = [self.lead_events(lead.lead_id) for lead in leads]
        owner = np.repeat(np.arange(len(leads), dtype=np.int64), [len(e) for e in parts])
        if not parts:
            return leads, owner, LeadEvents(np.empty(0, np.int64), np.empty(0, dtype=object),
                                            np.empty(0, dtype=object))
        return leads, owner, LeadEvents(*(np.concatenate([getattr(e, f) for e in parts])
                                          for f in ("ts_us", "type", "channel")))

    def rebuild_packed(self) -> int:
        """Rebuild every lead's packed record from the event rows; returns how many leads have one.

        Done once on opening a store written before the packed records existed; safe to run again.
        """
        with self.transaction() as conn:
            return _rebuild_packed(conn)

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
        with _collector_paused(), self.engine.connect() as conn:  # thousands of row tuples
            rows = _rows_of_leads(conn, _HISTORY_COLUMNS, history_table.c.lead_id, ids)
        return history_of(rows)

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


def history_of(rows: list[tuple]) -> LeadHistory:
    """History rows (lead, attribute, value, recorded_at) -> arrays in (lead, time) order, rows of one
    lead and moment in the order given (a stable sort).

    Rows read through the (lead_id, recorded_at) index come in that order already (SQLite's do), and
    are only checked: a comparison a row, where sorting by the lead ids, Python strings, cost three
    times as much (2,000 rows: 1.4 ms against 0.45).
    """
    if not rows:
        empty = np.empty(0, dtype=object)
        return LeadHistory(empty, empty, empty, np.empty(0, dtype=np.int64))
    lead, attribute, value, recorded = zip(*rows, strict=True)
    history = LeadHistory(np.array(lead, dtype=object), np.array(attribute, dtype=object),
                          np.array(value, dtype=object), np.array(recorded, dtype=np.int64))
    lead, recorded = history.lead_id, history.recorded_at
    if np.all((lead[1:] > lead[:-1]) | ((lead[1:] == lead[:-1]) & (recorded[1:] >= recorded[:-1]))):
        return history
    return history.take(np.lexsort((recorded, lead)))


def _lead_record(lead_id: str, created_at: int, source: str | None, attributes: str) -> LeadRecord:
    """A stored lead row as scoring reads it (the attributes are stored as one JSON object)."""
    return LeadRecord(lead_id, int(created_at), source, json.loads(attributes))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while thousands of row tuples (or records, dicts, lists) are made.

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


def _rows_of_leads(conn: Connection, statement: Select, column: Column, ids: list[str]) -> list[tuple]:
    """Rows of ``statement`` whose ``column`` is one of ``ids``, as the driver's plain tuples.

    One id (a lead scored alone, the service's hot path) is an equality compiled once, run on the
    driver's cursor; many ids on SQLite travel as one JSON array (:func:`_id_list_sql`).
    """
    if len(ids) == 1:
        sql, positional = _one_id_sql(conn, statement, column)
        params: tuple | dict = (ids[0],) if positional else {"lead_id": ids[0]}
    elif conn.dialect.name == "sqlite":
        sql, params = _id_list_sql(conn, statement, column), (json.dumps(ids),)
    else:
        return _fetch_tuples(conn, statement.where(column.in_(ids)))
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        cursor.close()


def _one_id_sql(conn: Connection, statement: Select, column: Column) -> tuple[str, bool]:
    """``statement`` restricted to ``column = :lead_id`` for this dialect, compiled once: (SQL, positional?)."""
    key = (id(statement), column.key, conn.dialect.name)
    if key not in _ONE_ID_SQL:
        compiled = statement.where(column == bindparam("lead_id")).compile(dialect=conn.dialect)
        _ONE_ID_SQL[key] = (str(compiled), compiled.positiontup is not None)
    return _ONE_ID_SQL[key]


_ONE_ID_SQL: dict[tuple[int, str, str], tuple[str, bool]] = {}


def _id_list_sql(conn: Connection, statement: Select, column: Column) -> str:
    """SQLite SQL for ``statement`` restricted to ``column IN (SELECT value FROM json_each(?))``, compiled once.

    The ids travel as one JSON array: rendering a thousand bound parameters took longer than running
    the query.
    """
    key = (id(statement), column.key)
    if key not in _ID_LIST_SQL:
        listed = func.json_each(bindparam("ids")).table_valued("value")
        _ID_LIST_SQL[key] = str(statement.where(column.in_(select(listed.c.value))).compile(dialect=conn.dialect))
    return _ID_LIST_SQL[key]


_ID_LIST_SQL: dict[tuple[int, str], str] = {}

_PACKED_ROWS = select(packed_events_table.c.lead_id, packed_events_table.c.n, packed_events_table.c.blob)

_LEAD_AND_EVENT_ROWS = select(leads_table.c.lead_id, leads_table.c.created_at, leads_table.c.source,
                              leads_table.c.attributes, packed_events_table.c.n, packed_events_table.c.blob
                              ).select_from(leads_table.outerjoin(
                                  packed_events_table, packed_events_table.c.lead_id == leads_table.c.lead_id))


_HISTORY_COLUMNS = select(history_table.c.lead_id, history_table.c.attribute, history_table.c.value,
                          history_table.c.recorded_at)

_LEAD = select(leads_table.c.created_at, leads_table.c.source, leads_table.c.attributes).where(
    leads_table.c.lead_id == bindparam("lead_id"))
