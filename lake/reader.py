"""Reading a lake: one bucket at a time, as the same frames the store gives, without any database."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.dataset import StoreFrames
from lake.layout import TABLES, Manifest, part_files, read_manifest, schema


def read_bucket_table(root: Path, table: str, bucket: int, manifest: Manifest,
                      columns: list[str] | None = None) -> pd.DataFrame:
    """One table of one bucket, all export runs together (an empty frame of the right columns if none).

    ``columns`` reads only those: the row ids, unique strings per row, cost more to read than the rest.
    """
    target = schema(table, manifest.attribute_infos)
    if columns is not None:
        target = pa.schema([target.field(c) for c in columns])
    files = part_files(root, table, bucket)
    # attributes declared after a part was written are null in it: read each part, then conform
    parts = [_conformed(pq.read_table(f, columns=[c for c in target.names if c in pq.read_schema(f).names]), target)
             for f in files]
    return (pa.concat_tables(parts) if parts else target.empty_table()).to_pandas()


def _conformed(data: pa.Table, target: pa.Schema) -> pa.Table:
    missing = [n for n in target.names if n not in data.column_names]
    for name in missing:
        data = data.append_column(target.field(name), pa.nulls(len(data), target.field(name).type))
    return data.select(target.names).cast(target)


FEATURE_COLUMNS = {"events": ["lead_id", "ts", "type", "channel"], "feedback": ["lead_id", "ts", "outcome"]}
"""What snapshots and features read of each table (leads: every column)."""


def read_bucket(root: Path, bucket: int, manifest: Manifest | None = None) -> StoreFrames:
    """Leads, events and feedback of one bucket, with the columns snapshots and features use."""
    manifest = manifest or read_manifest(root)
    frames = {t: read_bucket_table(root, t, bucket, manifest, FEATURE_COLUMNS.get(t)) for t in TABLES}
    return StoreFrames(leads=frames["leads"], events=frames["events"], feedback=frames["feedback"],
                       attributes=manifest.attribute_infos)
