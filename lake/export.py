"""Store -> lake, incrementally: each export writes only the rows stored since the previous one.

SQLite numbers every row it stores (``rowid``, increasing as rows are inserted); the manifest
remembers the highest number exported per table, and the next export reads the rows after it, in
chunks, so memory stays bounded whatever the size of the store. Other databases have no such row
number: their first export copies everything, and a later one is refused with a clear message
rather than silently duplicating rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import text

from features.registry import AttributeInfo
from lake.layout import TABLES, LakeError
from lake.writer import LakeRun
from store.event_store import EventStore, canonical_frame

DEFAULT_BUCKETS = 64


@dataclass
class ExportSummary:
    run: int
    new_rows: dict[str, int] = field(default_factory=dict)
    first: bool = True

    @property
    def total(self) -> int:
        return sum(self.new_rows.values())


def _attributes(store: EventStore) -> tuple[AttributeInfo, ...]:
    specs = store.attribute_specs()
    return tuple(AttributeInfo(r.name, r.kind, r.role, r.description) for r in specs.itertuples())


def _chunks(store: EventStore, table: str, after: int, chunk_rows: int):  # noqa: ANN202 - generator
    """(last rowid, canonical frame) chunks of the rows stored after row ``after``, in storage order."""
    sql = text(f"SELECT rowid AS _rowid, * FROM {table} WHERE rowid > :after ORDER BY rowid LIMIT :n")  # noqa: S608
    while True:
        with store.engine.connect() as conn:
            frame = pd.read_sql(sql, conn, params={"after": after, "n": chunk_rows})
        if frame.empty:
            return
        after = int(frame.pop("_rowid").max())
        yield after, canonical_frame(table, frame)


def export_store(store: EventStore, root: Path, buckets: int = DEFAULT_BUCKETS, chunk_rows: int = 500_000,
                 progress: Callable[[str, int], None] | None = None) -> ExportSummary:
    """Copy the store's new leads, events and feedback into the lake at ``root``; return what was added."""
    run = LakeRun(root, buckets, _attributes(store), "store")
    summary = ExportSummary(run=run.run, first=not run.manifest.runs)
    sqlite = store.engine.dialect.name == "sqlite"
    if not sqlite and run.manifest.runs:
        raise LakeError(f"{root}: incremental export needs SQLite's row numbers; this store is "
                        f"{store.engine.dialect.name}: export into a new, empty lake folder instead")
    watermarks = {}
    for table in TABLES:
        last = run.manifest.watermarks.get(table, 0)
        frames = _chunks(store, table, last, chunk_rows) if sqlite else [(0, store.read_table(table))]
        for last, frame in frames:
            run.write(table, frame)
            if progress:
                progress(table, len(frame))
        watermarks[table] = last
    summary.new_rows = run.finish(watermarks)
    return summary
