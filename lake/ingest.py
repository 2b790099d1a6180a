"""Bulk history loads straight into the lake, through the same mapping files and row checks as the store.

Each chunk of each source is mapped and checked exactly as ``store.ingest`` does (required fields,
timestamps, event types in the taxonomy, nothing in the future, keys derived when the source has
none, repeats within a chunk); unusable rows go to the same quarantine CSV with file, row, column
and reason. Each (file, table) pair is one batch with part files of its own: a file that fails
part-way leaves nothing in the lake, as it would leave nothing in the store. What a lake cannot
check without a database -- keys already loaded by an earlier run, events of leads it has not seen
-- is left to the reader: the lake is an append-only history, loaded once per source.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from contract.mapping import MapContext, Mapping, map_chunk, required_source_columns
from contract.tables import INGEST_ORDER, TABLES
from lake.layout import TABLES as LAKE_TABLES
from contract.taxonomy import Taxonomy
from contract.timeunits import latest_acceptable
from features.registry import AttributeInfo
from lake.writer import LakeRun
from store.event_store import canonical_frame
from store.ingest import (
    BatchSummary,
    IngestSummary,
    ProgressFn,
    _dedupe_within_chunk,
    _prepare_rows,
    _quarantine_rows,
    _write_quarantine,
    issue_frame,
)
from store.sources import SourceError, read_chunks


def mapping_attributes(mapping: Mapping) -> tuple[AttributeInfo, ...]:
    """The lead attributes a mapping declares, as the store's attribute table would hold them."""
    out: dict[str, AttributeInfo] = {}
    for source in mapping.sources:
        tm = source.table("leads")
        for name, a in (tm.attributes.items() if tm is not None else ()):
            out[name] = AttributeInfo(name, a.kind, a.role, a.description or "")
    return tuple(out.values())


def ingest_to_lake(mapping: Mapping, data_dir: Path, root: Path, taxonomy: Taxonomy, quarantine_dir: Path,
                   buckets: int, chunk_rows: int = 200_000, now: datetime | None = None,
                   progress: ProgressFn | None = None, clock_skew: timedelta = timedelta(minutes=5)) -> IngestSummary:
    """Load every table of every source of ``mapping`` into the lake at ``root`` as one run."""
    ctx = MapContext(taxonomy=taxonomy, now=latest_acceptable(clock_skew, now), clock_skew=clock_skew)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    run = LakeRun(root, buckets, mapping_attributes(mapping), f"ingest {mapping.name}")
    summary = IngestSummary()
    for table_name in INGEST_ORDER:
        for k, source in enumerate(mapping.sources):
            tm = source.table(table_name)
            if tm is None:
                continue
            spec = TABLES[table_name]
            batch = BatchSummary(file=source.file, table=table_name)
            summary.batches.append(batch)
            if table_name not in LAKE_TABLES:
                batch.note = (f"the lake does not keep {table_name} yet: load it into the store with `prospect "
                              "ingest` (without --lake); features from a lake use each lead's static attributes")
                continue
            path = (data_dir / source.file) if not Path(source.file).is_absolute() else Path(source.file)
            writer = run.writer(table_name, f"-{k:03d}")
            quarantined = []
            try:
                for raw in read_chunks(path, source, required_source_columns(tm), chunk_rows):
                    batch.read += len(raw)
                    mapped = map_chunk(raw, spec, tm, ctx)
                    rows, dup_issues, n_dup = _dedupe_within_chunk(_prepare_rows(mapped.frame, spec), spec)
                    writer.write(canonical_frame(table_name, rows.to_frame().drop(columns=["_row"])))
                    batch.stored += len(rows)
                    batch.duplicates += n_dup
                    issues = [i for i in (mapped.issues, issue_frame(dup_issues)) if len(i)]
                    bad = _quarantine_rows(raw, pd.concat(issues) if issues else None, path,
                                           table_name)
                    if bad is not None:
                        batch.quarantined += len(bad)
                        quarantined.append(bad)
                    if progress:
                        progress(f"{path.name}:{table_name}", len(raw))
            except SourceError as exc:
                writer.discard()
                batch.error = str(exc)
                batch.stored = batch.duplicates = batch.quarantined = 0
                continue
            if quarantined:
                batch.quarantine_file = _write_quarantine(quarantined, quarantine_dir, path, table_name, stamp)
    run.finish()
    return summary
