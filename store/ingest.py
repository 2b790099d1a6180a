"""Ingestion: mapped source files -> validated canonical rows -> the event store, idempotently.

Each (source file, table) pair is one batch and one transaction: either all of its usable rows are
stored, or -- when reading fails part-way -- none are and the store is as it was. Usable rows are
never held back by unusable ones: those go to a quarantine CSV with the source row, the column and
the reason, next to the original values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping as MappingOf, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from pandas.core.util.hashing import combine_hash_arrays
from sqlalchemy import Connection, Dialect, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError

from contract import rules
from contract.mapping import (
    MapContext,
    Mapping,
    SourceMapping,
    TableMapping,
    display_text,
    keep_mask,
    map_chunk,
    required_source_columns,
)
from contract.tables import INGEST_ORDER, TABLES, TableSpec
from contract.taxonomy import Taxonomy
from contract.timeunits import datetimes_micros, latest_acceptable, to_micros
from store.event_store import TABLES as STORE_TABLES
from store.event_store import EventStore, attributes_table, bulk_insert, insert_events, leads_table
from store.sources import SourceError, read_chunks


@dataclass
class BatchSummary:
    """What one (file, table) batch did; ``error`` is set when the batch stored nothing because it failed."""

    file: str
    table: str
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    skipped: int = 0
    """Rows the mapping's ``keep`` filter leaves to other tables (not this table's rows; not an error)."""
    quarantine_file: Path | None = None
    error: str | None = None
    note: str | None = None
    """Why the batch was passed over without reading it (not an error), e.g. a table the target does not keep."""


@dataclass
class IngestSummary:
    batches: list[BatchSummary] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return sum(b.stored for b in self.batches)

    @property
    def usable(self) -> int:
        return sum(b.stored + b.duplicates for b in self.batches)

    @property
    def failed(self) -> list[BatchSummary]:
        return [b for b in self.batches if b.error]

    @property
    def exit_code(self) -> int:
        """Non-zero only when a source could not be used at all, or nothing usable was found."""
        return 1 if self.failed or self.usable == 0 else 0


ProgressFn = Callable[[str, int], None]


def ingest(
    mapping: Mapping,
    data_dir: Path,
    store: EventStore,
    taxonomy: Taxonomy,
    quarantine_dir: Path,
    chunk_rows: int = 200_000,
    now: datetime | None = None,
    progress: ProgressFn | None = None,
    clock_skew: timedelta = timedelta(minutes=5),
) -> IngestSummary:
    """Load every table of every source of ``mapping``: leads first, then attribute history, events, feedback.

    Timestamps later than ``now`` plus ``clock_skew`` (drift between systems) are refused as future.
    A history row may name any attribute this mapping or an earlier ingest declared.
    """
    ctx = MapContext(taxonomy=taxonomy, now=latest_acceptable(clock_skew, now), clock_skew=clock_skew)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    summary = IngestSummary()
    for table_name in INGEST_ORDER:
        for source in mapping.sources:
            tm = source.table(table_name)
            if tm is None:
                continue
            if table_name == "history":
                specs = store.attribute_specs()
                declared = dict(zip(specs["name"], specs["kind"], strict=True))
                ctx = replace(ctx, attributes={**declared, **mapping.attribute_kinds()})
            batch = BatchSummary(file=source.file, table=table_name)
            summary.batches.append(batch)
            path = (data_dir / source.file) if not Path(source.file).is_absolute() else Path(source.file)
            try:
                quarantined = _ingest_batch(path, source, TABLES[table_name], tm, store, ctx, chunk_rows, batch,
                                            progress)
            except SourceError as exc:
                batch.error = str(exc)
                batch.stored = batch.duplicates = batch.quarantined = 0
                continue
            if quarantined:
                batch.quarantine_file = _write_quarantine(quarantined, quarantine_dir, path, table_name, stamp)
    return summary


def _ingest_batch(
    path: Path,
    source: SourceMapping,
    spec: TableSpec,
    tm: TableMapping,
    store: EventStore,
    ctx: MapContext,
    chunk_rows: int,
    batch: BatchSummary,
    progress: ProgressFn | None,
) -> list[pd.DataFrame]:
    quarantined: list[pd.DataFrame] = []
    needed = required_source_columns(tm)
    with store.transaction() as conn:
        if spec.has_attributes:
            _record_attributes(conn, tm)
        for raw in read_chunks(path, source, needed, chunk_rows):
            batch.read += len(raw)
            if tm.keep:
                mine = keep_mask(raw, tm)
                batch.skipped += int((~mine).sum())
                raw = raw[mine]
            mapped = map_chunk(raw, spec, tm, ctx)
            outcome = _store_rows(conn, _prepare_rows(mapped.frame, spec), spec, ctx.clock_skew,
                                  _map_issues(mapped.issues))
            batch.stored += outcome.stored
            batch.duplicates += outcome.duplicates
            bad = _quarantine_rows(raw, outcome.issue_frame() if outcome.issues else None, path, spec.name)
            if bad is not None:
                batch.quarantined += len(bad)
                quarantined.append(bad)
            if progress:
                progress(f"{path.name}:{spec.name}", len(raw))
    return quarantined


Issue = tuple[int, str, str, str]
"""One problem of one record: row (0-based), column, reason, kind (an :data:`IssueKind`)."""

ISSUE_COLUMNS = ["row", "column", "reason", "kind"]


def issue_frame(issues: list[Issue]) -> pd.DataFrame:
    return pd.DataFrame(issues, columns=ISSUE_COLUMNS).astype({"row": np.int64})


def _map_issues(issues: pd.DataFrame) -> list[Issue]:
    return [(int(r), str(c), str(t), "invalid") for r, c, t in
            zip(issues["row"], issues["column"], issues["reason"], strict=True)]


@dataclass
class ChunkOutcome:
    stored: int
    duplicates: int
    issues: list[Issue]
    """One entry per problem. Rows with an issue were not stored."""

    def issue_frame(self) -> pd.DataFrame:
        return issue_frame(self.issues)


@dataclass
class Rows:
    """Store rows of one table as columns of plain arrays, with the input row each came from.

    Arrays, not a DataFrame: an API call stores 20 records, and building frames for them cost
    more than the store's work (a file chunk of 200,000 rows does not mind either way).
    """

    row: np.ndarray
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.row)

    def take(self, which: np.ndarray) -> Rows:
        return Rows(self.row[which], {name: values[which] for name, values in self.columns.items()})

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"_row": self.row, **self.columns})


def _store_rows(conn: Connection, rows: Rows, spec: TableSpec, clock_skew: timedelta,
                issues: list[Issue]) -> ChunkOutcome:
    """Check prepared rows against each other and the store, insert the new ones (caller's transaction).

    Rows named in ``issues`` already (refused by the record rules) are left out first.
    """
    if issues:
        rows = rows.take(~np.isin(rows.row, [i[0] for i in issues]))
    rows, dup_issues, n_dup = _dedupe_within_chunk(rows, spec)
    insertable, store_issues, n_known = _check_against_store(conn, rows, spec, clock_skew)
    if len(insertable):
        _insert_rows(conn, spec, insertable)
    return ChunkOutcome(stored=len(insertable), duplicates=n_dup + n_known, issues=issues + dup_issues + store_issues)


def _insert_rows(conn: Connection, spec: TableSpec, rows: Rows) -> None:
    """The one place where ingestion writes rows (events included: file ingest and the API alike).

    Events also rewrite the packed record of each lead they touch, in the same transaction."""
    if spec.name == "events":
        insert_events(conn, rows.columns)
    else:
        bulk_insert(conn, STORE_TABLES[spec.name], rows.columns)


class RecordsRejected(ValueError):
    """Some records could not be stored, so none were: ``issues`` says which, where and why."""

    def __init__(self, issues: pd.DataFrame | list[Issue]) -> None:
        frame = issues if isinstance(issues, pd.DataFrame) else issue_frame(issues)
        self.issues = frame.sort_values("row", kind="stable").reset_index(drop=True)
        first = self.issues.iloc[0]
        super().__init__(f"record {int(first['row'])}, field {first['column']}: {first['reason']}")


def ingest_records(store: EventStore, table: str, records: pd.DataFrame, taxonomy: Taxonomy,
                   now: datetime | None = None, clock_skew: timedelta = timedelta(minutes=5)) -> ChunkOutcome:
    """Store records given as a DataFrame in canonical columns, all or nothing (see :func:`store_records`)."""
    frame = records.reset_index(drop=True)
    listed = [{name: (None if pd.isna(value) else value) for name, value in row.items()}
              for row in frame.astype(object).to_dict(orient="records")]
    return store_records(store, table, listed, taxonomy, now=now, clock_skew=clock_skew)


def store_records(store: EventStore, table: str, records: Sequence[MappingOf[str, object]], taxonomy: Taxonomy,
                  now: datetime | None = None, clock_skew: timedelta = timedelta(minutes=5), wait: bool = True
                  ) -> ChunkOutcome:
    """Store records already in canonical columns (what the HTTP service receives), all or nothing.

    Files go through :func:`ingest`, which quarantines bad rows and keeps the good ones; a caller of
    the API is still holding its data, so a single bad record rejects the whole call with the reasons
    (:class:`RecordsRejected`) and the client can fix and resend. Repeats of stored records with the
    same content are counted as duplicates, which makes resending safe. The records pass the same
    rules (``contract.rules``) and the same store checks as file rows, without pandas on the way.
    ``wait=False``: raise ``StoreBusy`` rather than queue behind another writer (nothing stored).
    """
    spec = TABLES[table]
    ctx = MapContext(taxonomy=taxonomy, now=latest_acceptable(clock_skew, now), clock_skew=clock_skew)
    rows, issues = _record_rows(records, spec, ctx)
    for _ in range(WRITE_ATTEMPTS - 1):
        try:
            return _store_records(store, spec, ctx, rows, issues, wait)
        except IntegrityError:
            # another writer stored one of these keys between our check and our insert (a server
            # database checks rows concurrently); the next attempt sees its row as already stored
            continue
    return _store_records(store, spec, ctx, rows, issues, wait)


def _store_records(store: EventStore, spec: TableSpec, ctx: MapContext, rows: Rows, issues: list[Issue],
                   wait: bool = True) -> ChunkOutcome:
    """The records' store checks and insert in one transaction; with any issue, nothing is written.

    Records the rules refused are still there for the store checks of the others (as in a file),
    so the caller hears of every problem of the call at once.
    """
    with store.transaction(wait) as conn:
        outcome = _store_rows(conn, rows, spec, ctx.clock_skew, list(issues))
        if outcome.issues:
            raise RecordsRejected(outcome.issues)  # rolls the transaction back
    return outcome


WRITE_ATTEMPTS = 3


def _record_rows(records: Sequence[MappingOf[str, object]], spec: TableSpec, ctx: MapContext) -> tuple[Rows, list[Issue]]:
    """API records -> store rows, checked by the rules file rows pass in ``map_chunk``."""
    issues: list[Issue] = []
    columns: dict[str, np.ndarray] = {}
    row = np.arange(len(records), dtype=np.int64)

    def flag(mask: np.ndarray, column: str, reasons: Callable[[np.ndarray], list[str]] | str,
             values: np.ndarray | None = None) -> None:
        """Record an issue for each masked record; ``reasons`` builds texts from the masked values only."""
        if mask.any():
            texts = [reasons] * int(mask.sum()) if isinstance(reasons, str) else reasons(values[mask])
            issues.extend((int(r), column, t, "invalid") for r, t in zip(row[mask], texts, strict=True))

    for col in spec.columns:
        raw = np.empty(len(records), dtype=object)
        raw[:] = [r.get(col.name) for r in records]
        values = datetimes_micros(raw) if col.kind == "timestamp" else rules.clean_text(raw)
        missing = np.fromiter((v is None for v in raw), bool, len(raw)) if col.kind == "timestamp" else \
            np.fromiter((v is None for v in values), bool, len(values))
        if col.required:
            flag(missing, col.name, rules.required_reason(spec.name, col.name))
        if col.kind == "timestamp":
            future = rules.in_future(values, ctx.now) & ~missing
            flag(future, col.name, lambda v: rules.future_reasons(v, ctx.now), values)
        if col.kind == "outcome":
            bad = rules.unknown_outcomes(values)
            flag(bad, col.name, lambda v, name=col.name: rules.unknown_outcome_reasons(v, name), values)
        columns[col.name] = values
    if spec.name == "events":
        bad = rules.unknown_types(columns["type"], ctx.taxonomy)
        flag(bad, "type", rules.unknown_type_reasons, columns["type"])
        columns["channel"] = rules.default_channels(columns["type"], columns["channel"], ctx.taxonomy)
    if spec.has_attributes:
        columns["attributes"] = _record_attribute_json(records)
    return _finish_rows(spec, row, columns), issues


def _record_attribute_json(records: Sequence[MappingOf[str, object]]) -> np.ndarray:
    """Lead records' ``attr:`` values as the JSON text file ingest stores (pandas' encoding, so equal
    leads hash equal whichever way they came); ``{}`` for a lead without attributes."""
    names = list(dict.fromkeys(k for r in records for k in r if k.startswith("attr:")))
    out = np.full(len(records), "{}", dtype=object)
    if names:
        attrs = pd.DataFrame([{n.removeprefix("attr:"): r.get(n) for n in names} for r in records])
        out[:] = attrs.to_json(orient="records", lines=True).splitlines()
    return out


def _record_attributes(conn: Connection, tm: TableMapping) -> None:
    for name, attr in tm.attributes.items():
        conn.execute(delete(attributes_table).where(attributes_table.c.name == name))
        conn.execute(insert(attributes_table).values(name=name, kind=attr.kind, role=attr.role,
                                                     description=attr.description))


def _hash_columns(columns: list[np.ndarray]) -> np.ndarray:
    """A 64-bit hash per row of some columns, stable across runs for equal values.

    The same values as ``pd.util.hash_pandas_object(frame, index=False)`` of a frame of these
    columns (SipHash with pandas' fixed key; stored hashes were made that way), without the frame.
    """
    n = len(columns[0]) if columns else 0
    # categorizing first only pays off on long arrays with repeats, and only it gives missing values
    # pandas' hash for them (the stored one); otherwise the hashes are the same either way
    hashes = (pd.util.hash_array(values, categorize=n > 1000 or bool(pd.isna(values).any())) for values in columns)
    return combine_hash_arrays(hashes, len(columns), n).view(np.int64)


def _prepare_rows(frame: pd.DataFrame, spec: TableSpec) -> Rows:
    """Mapped canonical frame -> store rows: integer timestamps, attributes as JSON, keys and content hash."""
    columns: dict[str, np.ndarray] = {}
    for col in spec.column_names:
        if col in spec.timestamps:
            columns[col] = to_micros(frame[col], col, check=False)  # the mapping has parsed and checked them
        else:
            columns[col] = frame[col].astype(object).where(frame[col].notna(), None).to_numpy(dtype=object)
    if spec.has_attributes:
        attr_cols = [c for c in frame.columns if c.startswith("attr:")]
        attrs = frame[attr_cols].rename(columns=lambda c: c.removeprefix("attr:"))
        lines = attrs.to_json(orient="records", lines=True).splitlines() if len(attrs) and attr_cols else \
            ["{}"] * len(frame)
        columns["attributes"] = np.array(lines, dtype=object)
    return _finish_rows(spec, frame.index.to_numpy(dtype=np.int64), columns)


def _finish_rows(spec: TableSpec, row: np.ndarray, columns: dict[str, np.ndarray]) -> Rows:
    """Derive the missing keys (a hash of ``spec.key_from``) and hash each row's content."""
    key = columns[spec.key]
    missing_key = np.fromiter((k is None for k in key), dtype=bool, count=len(key))
    if missing_key.any():
        derived = _hash_columns([columns[c][missing_key] for c in spec.key_from]).view(np.uint64)
        key = key.copy()
        key[missing_key] = [f"h{v:016x}" for v in derived]
        columns = {**columns, spec.key: key}
    content = [values for name, values in columns.items() if name != spec.key]
    columns["content_hash"] = _hash_columns(content) if len(row) else np.array([], dtype=np.int64)
    return Rows(row, columns)


IssueKind = Literal["invalid", "conflict", "unknown_lead"]
"""What an issue is, for callers that answer differently (the HTTP service: 422, 409, 404)."""


def _dedupe_within_chunk(rows: Rows, spec: TableSpec) -> tuple[Rows, list[Issue], int]:
    """Keep the first row per key; an exact repeat is a duplicate, a different one is quarantined."""
    first: dict[object, int] = {}
    keep = np.ones(len(rows), dtype=bool)
    issues: list[Issue] = []
    hashes = rows.columns["content_hash"]
    for i, k in enumerate(rows.columns[spec.key]):
        j = first.setdefault(k, i)
        if j != i:
            keep[i] = False
            if hashes[i] != hashes[j]:
                issues.append((int(rows.row[i]), spec.key, f"duplicate {spec.key} '{k}' with different content "
                               f"(first seen at row {int(rows.row[j]) + 1})", "conflict"))
    if keep.all():
        return rows, [], 0
    return rows.take(keep), issues, int((~keep).sum()) - len(issues)


def _check_against_store(conn: Connection, rows: Rows, spec: TableSpec, clock_skew: timedelta
                         ) -> tuple[Rows, list[Issue], int]:
    """Split rows into new ones, exact repeats of stored rows, conflicts, rows for unknown leads and
    rows dated before their lead was created (beyond the clock-skew tolerance).

    Only the keys and leads of these rows are looked up, through the primary keys.
    """
    if not len(rows):
        return rows, [], 0
    keys = rows.columns[spec.key]
    stored = dict(_lookup(conn, STORE_TABLES[spec.name], spec.key, "content_hash", keys))
    drop = np.fromiter((k in stored for k in keys), dtype=bool, count=len(keys))
    issues: list[Issue] = []
    n_known = 0
    for i in np.flatnonzero(drop):
        if stored[keys[i]] == rows.columns["content_hash"][i]:
            n_known += 1
        else:
            issues.append((int(rows.row[i]), spec.key, f"duplicate {spec.key} '{keys[i]}' with different content "
                           "than the stored row", "conflict"))
    if spec.name != "leads":
        leads = rows.columns["lead_id"]
        created = dict(_lookup(conn, leads_table, "lead_id", "created_at", leads[~drop]))
        unknown = ~drop & np.fromiter((lead not in created for lead in leads), dtype=bool, count=len(leads))
        issues += [(int(rows.row[i]), "lead_id", f"unknown lead_id '{leads[i]}' (no such lead in the store; "
                    "ingest its lead first)", "unknown_lead") for i in np.flatnonzero(unknown)]
        drop |= unknown
        if "ts" in rows.columns:
            created_us = np.fromiter((created.get(lead, 0) for lead in leads), dtype=np.int64, count=len(leads))
            early = ~drop & rules.before_creation(rows.columns["ts"], created_us, clock_skew // timedelta(microseconds=1))
            issues += [(int(r), "ts", rules.BEFORE_CREATION, "invalid") for r in rows.row[early]]
            drop |= early
    return rows.take(~drop), issues, n_known


LOOKUP_BATCH = 512
"""Ids per lookup query; smaller lists are padded to a power of two so a few compiled statements serve all."""


def _lookup(conn: Connection, table: Table, key: str, value: str, ids: np.ndarray) -> list[tuple]:
    """(key, value) of the stored rows among ``ids``: primary-key lookups of just these ids."""
    distinct = list(dict.fromkeys(ids.tolist()))
    found: list[tuple] = []
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        for lo in range(0, len(distinct), LOOKUP_BATCH):
            part = distinct[lo:lo + LOOKUP_BATCH]
            size = 1 << (len(part) - 1).bit_length()
            sql, order = _lookup_sql(conn.dialect, table, key, value, size)
            padded = part + [part[-1]] * (size - len(part))  # a repeated id matches the same row once
            cursor.execute(sql, tuple(padded[k] for k in order) if isinstance(order, tuple) else
                           {name: padded[k] for name, k in order.items()})
            found += cursor.fetchall()
    finally:
        cursor.close()
    return found


@lru_cache(maxsize=64)
def _lookup_sql(dialect: Dialect, t: Table, key: str, value: str, size: int) -> tuple[str, tuple | dict]:
    """``SELECT key, value FROM table WHERE key IN (<size> parameters)`` compiled once for this driver,
    with where each id goes: a tuple of positions (positional drivers) or names -> positions."""
    marks = [f"\x00{k}" for k in range(size)]
    compiled = select(t.c[key], t.c[value]).where(t.c[key].in_(marks)).compile(
        dialect=dialect, compile_kwargs={"render_postcompile": True})
    position = {name: int(v[1:]) for name, v in compiled.params.items()}
    if compiled.positiontup is not None:
        return str(compiled), tuple(position[name] for name in compiled.positiontup)
    return str(compiled), position


def _quarantine_rows(raw: pd.DataFrame, issues: pd.DataFrame | None, path: Path, table: str) -> pd.DataFrame | None:
    """One quarantine row per unusable source row: where, why, then the original values."""
    if issues is None or issues.empty:
        return None
    grouped = issues.groupby("row", sort=True).agg({"column": lambda s: "; ".join(dict.fromkeys(s)),
                                                    "reason": lambda s: "; ".join(dict.fromkeys(s))})
    original = raw.loc[grouped.index]
    head = pd.DataFrame({
        "_file": str(path),
        "_table": table,
        "_row": grouped.index.to_numpy() + 1,
        "_column": grouped["column"].to_numpy(),
        "_reason": grouped["reason"].to_numpy(),
    }, index=grouped.index)
    return pd.concat([head, display_text(original)], axis=1)


def _write_quarantine(parts: list[pd.DataFrame], folder: Path, path: Path, table: str, stamp: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{path.stem}.{table}.{stamp}.csv"
    pd.concat(parts).to_csv(target, index=False)
    return target
