"""Ingestion: mapped source files -> validated canonical rows -> the event store, idempotently.

Each (source file, table) pair is one batch and one transaction: either all of its usable rows are
stored, or -- when reading fails part-way -- none are and the store is as it was. Usable rows are
never held back by unusable ones: those go to a quarantine CSV with the source row, the column and
the reason, next to the original values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError

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
from store.event_store import TABLES as STORE_TABLES
from store.event_store import EventStore, attributes_table, bulk_insert, insert_events, leads_table, to_micros
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
    ctx = MapContext(taxonomy=taxonomy, now=(now or datetime.now(UTC)) + clock_skew, clock_skew=clock_skew)
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
        stage = _stage_table(conn, spec)
        for raw in read_chunks(path, source, needed, chunk_rows):
            batch.read += len(raw)
            if tm.keep:
                mine = keep_mask(raw, tm)
                batch.skipped += int((~mine).sum())
                raw = raw[mine]
            outcome = _store_chunk(conn, stage, raw, spec, tm, ctx)
            batch.stored += outcome.stored
            batch.duplicates += outcome.duplicates
            bad = _quarantine_rows(raw, outcome.issues if len(outcome.issues) else None, path, spec.name)
            if bad is not None:
                batch.quarantined += len(bad)
                quarantined.append(bad)
            if progress:
                progress(f"{path.name}:{spec.name}", len(raw))
        conn.execute(stage.delete())
    return quarantined


@dataclass
class ChunkOutcome:
    stored: int
    duplicates: int
    issues: pd.DataFrame
    """One row per problem: row (0-based), column, reason. Rows with an issue were not stored."""


def _store_chunk(conn: Connection, stage: Table, raw: pd.DataFrame, spec: TableSpec, tm: TableMapping,
                 ctx: MapContext) -> ChunkOutcome:
    """Map, check and insert one chunk of source rows inside the caller's transaction."""
    mapped = map_chunk(raw, spec, tm, ctx)
    rows = _prepare_rows(mapped.frame, spec)
    rows, dup_issues, n_dup = _dedupe_within_chunk(rows, spec)
    insertable, store_issues, n_known = _check_against_store(conn, stage, rows, spec, ctx.clock_skew)
    if len(insertable) and spec.name == "events":
        insert_events(conn, insertable.drop(columns=["_row"]))  # the rows and each lead's packed record
    elif len(insertable):
        bulk_insert(conn, STORE_TABLES[spec.name], insertable.drop(columns=["_row"]))
    issues = [i for i in (mapped.issues.assign(kind="invalid"), dup_issues, store_issues) if len(i)]
    return ChunkOutcome(stored=len(insertable), duplicates=n_dup + n_known,
                        issues=pd.concat(issues, ignore_index=True) if issues else
                        pd.DataFrame(columns=["row", "column", "reason", "kind"]))


class RecordsRejected(ValueError):
    """Some records could not be stored, so none were: ``issues`` says which, where and why."""

    def __init__(self, issues: pd.DataFrame) -> None:
        self.issues = issues.sort_values("row", kind="stable").reset_index(drop=True)
        first = self.issues.iloc[0]
        super().__init__(f"record {int(first['row'])}, field {first['column']}: {first['reason']}")


def ingest_records(store: EventStore, table: str, records: pd.DataFrame, taxonomy: Taxonomy,
                   now: datetime | None = None, clock_skew: timedelta = timedelta(minutes=5)) -> ChunkOutcome:
    """Store records already in canonical columns (what the HTTP service receives), all or nothing.

    Files go through :func:`ingest`, which quarantines bad rows and keeps the good ones; a caller of
    the API is still holding its data, so a single bad record rejects the whole call with the reasons
    (:class:`RecordsRejected`) and the client can fix and resend. Repeats of stored records with the
    same content are counted as duplicates, which makes resending safe.
    """
    spec = TABLES[table]
    tm = TableMapping(columns={c: c for c in spec.column_names if c in records.columns})
    ctx = MapContext(taxonomy=taxonomy, now=(now or datetime.now(UTC)) + clock_skew, clock_skew=clock_skew)
    raw = records.reset_index(drop=True)
    for _ in range(WRITE_ATTEMPTS - 1):
        try:
            return _store_records(store, spec, tm, ctx, raw)
        except IntegrityError:
            # another writer stored one of these keys between our check and our insert (a server
            # database checks rows concurrently); the next attempt sees its row as already stored
            continue
    return _store_records(store, spec, tm, ctx, raw)


def _store_records(store: EventStore, spec: TableSpec, tm: TableMapping, ctx: MapContext,
                   raw: pd.DataFrame) -> ChunkOutcome:
    with store.transaction() as conn:
        stage = _stage_table(conn, spec)
        outcome = _store_chunk(conn, stage, raw, spec, tm, ctx)
        if len(outcome.issues):
            raise RecordsRejected(outcome.issues)  # rolls the transaction back
        conn.execute(stage.delete())
    return outcome


WRITE_ATTEMPTS = 3


def _record_attributes(conn: Connection, tm: TableMapping) -> None:
    for name, attr in tm.attributes.items():
        conn.execute(delete(attributes_table).where(attributes_table.c.name == name))
        conn.execute(insert(attributes_table).values(name=name, kind=attr.kind, role=attr.role,
                                                     description=attr.description))


def _hash_rows(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row, stable across runs for equal values (pandas' SipHash with a fixed key)."""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy().view(np.int64)


def _prepare_rows(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Canonical frame -> store rows: integer timestamps, derived keys, content hash, source row."""
    rows = pd.DataFrame({"_row": frame.index.to_numpy()}, index=frame.index)
    for col in spec.column_names:
        if col in spec.timestamps:
            rows[col] = to_micros(frame[col])
        else:
            rows[col] = frame[col].astype(object).where(frame[col].notna(), None)
    if spec.has_attributes:
        attr_cols = [c for c in frame.columns if c.startswith("attr:")]
        attrs = frame[attr_cols].rename(columns=lambda c: c.removeprefix("attr:"))
        rows["attributes"] = (
            attrs.to_json(orient="records", lines=True).splitlines() if len(attrs) and attr_cols
            else ["{}"] * len(rows)
        )
    missing_key = rows[spec.key].isna()
    if missing_key.any():
        derived = _hash_rows(rows.loc[missing_key, list(spec.key_from)]).view(np.uint64)
        rows.loc[missing_key, spec.key] = [f"h{v:016x}" for v in derived]
    content = [c for c in rows.columns if c not in ("_row", spec.key)]
    rows["content_hash"] = _hash_rows(rows[content]) if len(rows) else np.array([], dtype=np.int64)
    return rows


IssueKind = Literal["invalid", "conflict", "unknown_lead"]
"""What an issue is, for callers that answer differently (the HTTP service: 422, 409, 404)."""


def _issue(rows: pd.DataFrame, column: str, reasons: list[str] | pd.Series, kind: IssueKind) -> pd.DataFrame:
    return pd.DataFrame({"row": rows["_row"].to_numpy(), "column": column, "reason": list(reasons), "kind": kind})


def _dedupe_within_chunk(rows: pd.DataFrame, spec: TableSpec) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Keep the first row per key; an exact repeat is a duplicate, a different one is quarantined."""
    repeat = rows.duplicated(spec.key, keep="first")
    if not repeat.any():
        return rows, pd.DataFrame(columns=["row", "column", "reason"]), 0
    first = rows[~repeat].set_index(spec.key)
    again = rows[repeat]
    first_hash = first.loc[again[spec.key], "content_hash"].to_numpy()
    first_row = first.loc[again[spec.key], "_row"].to_numpy()
    conflict = again["content_hash"].to_numpy() != first_hash
    bad = again[conflict]
    reasons = [f"duplicate {spec.key} '{k}' with different content (first seen at row {r + 1})"
               for k, r in zip(bad[spec.key], first_row[conflict], strict=True)]
    return rows[~repeat], _issue(bad, spec.key, reasons, "conflict"), int((~conflict).sum())


def _stage_table(conn: Connection, spec: TableSpec) -> Table:
    """A temporary table of the chunk's keys, so conflicts are found with one join, not per row."""
    stage = Table(
        f"stage_{spec.name}",
        MetaData(),
        Column("_row", Integer, nullable=False),
        Column("key", String, nullable=False),
        Column("lead_id", String),
        Column("content_hash", BigInteger, nullable=False),
        Column("ts", BigInteger),
        prefixes=["TEMPORARY"],
    )
    stage.create(conn, checkfirst=True)
    conn.execute(stage.delete())
    return stage


def _check_against_store(
    conn: Connection, stage: Table, rows: pd.DataFrame, spec: TableSpec, clock_skew: timedelta
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Split rows into new ones, exact repeats of stored rows, conflicts, rows for unknown leads and
    rows dated before their lead was created (beyond the clock-skew tolerance)."""
    empty = pd.DataFrame(columns=["row", "column", "reason"])
    if rows.empty:
        return rows, empty, 0
    conn.execute(stage.delete())
    bulk_insert(conn, stage, pd.DataFrame({
        "_row": rows["_row"].astype(np.int64),
        "key": rows[spec.key],
        "lead_id": rows["lead_id"],
        "content_hash": rows["content_hash"],
        "ts": rows["ts"] if "ts" in rows else None,
    }))
    main = STORE_TABLES[spec.name]
    key_col = main.c[spec.key]
    stored = conn.execute(
        select(stage.c._row, stage.c.content_hash, main.c.content_hash.label("stored_hash"))
        .join(main, key_col == stage.c.key)
    ).all()
    issues = [empty]
    drop: set[int] = set()
    n_known = 0
    conflicts = []
    for row, new_hash, old_hash in stored:
        drop.add(row)
        if new_hash == old_hash:
            n_known += 1
        else:
            conflicts.append(row)
    by_row = rows.set_index("_row", drop=False)
    if conflicts:
        bad = by_row.loc[conflicts]
        issues.append(_issue(bad, spec.key, [f"duplicate {spec.key} '{k}' with different content than the "
                                            "stored row" for k in bad[spec.key]], "conflict"))
    if spec.name != "leads":
        unknown = conn.execute(
            select(stage.c._row).where(~select(leads_table.c.lead_id)
                                       .where(leads_table.c.lead_id == stage.c.lead_id).exists())
        ).scalars().all()
        unknown = [r for r in unknown if r not in drop]
        if unknown:
            bad = by_row.loc[unknown]
            issues.append(_issue(bad, "lead_id", [f"unknown lead_id '{lead}' (no such lead in the store; "
                                                 "ingest its lead first)" for lead in bad["lead_id"]], "unknown_lead"))
            drop.update(unknown)
        drop.update(_before_creation(conn, stage, by_row, issues, drop, clock_skew))
    keep = ~rows["_row"].isin(drop)
    return rows[keep], pd.concat([i for i in issues if len(i)] or [empty]), n_known


def _before_creation(conn: Connection, stage: Table, by_row: pd.DataFrame, issues: list[pd.DataFrame],
                     drop: set[int], clock_skew: timedelta) -> list[int]:
    """Rows dated before their lead was created: nothing can happen to a lead before it exists
    (a year-1 event would otherwise read as "first action 739,945 days ago")."""
    skew_us = int(clock_skew / timedelta(microseconds=1))
    early = conn.execute(
        select(stage.c._row).join(leads_table, leads_table.c.lead_id == stage.c.lead_id)
        .where(stage.c.ts < leads_table.c.created_at - skew_us)
    ).scalars().all()
    early = [r for r in early if r not in drop]
    if early:
        issues.append(_issue(by_row.loc[early], "ts", ["dated before the lead was created"] * len(early), "invalid"))
    return early


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
