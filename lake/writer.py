"""Writing rows into a lake's buckets: spill by bucket, then sort each bucket once.

Rows arrive in whatever order the source gives them (store row order, generator chunks). Each chunk
is split by bucket and appended to a staging file per bucket; when the run is finished, each
staging file is read back, sorted by lead and time, and written as that bucket's part file for the
run. Memory is bounded by one chunk plus one bucket, whatever the size of the data.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.registry import AttributeInfo
from lake.layout import SORT, TABLES, bucket_dir, bucket_of, open_lake, schema, write_manifest


def conform(frame: pd.DataFrame, table: str, attributes: tuple[AttributeInfo, ...]) -> pa.Table:
    """A canonical DataFrame as an Arrow table of the lake's declared schema (missing columns are null)."""
    target = schema(table, attributes)
    kinds = {a.name: a.kind for a in attributes}
    columns = []
    for field in target:
        values = frame[field.name] if field.name in frame else pd.Series(None, index=frame.index, dtype=object)
        if kinds.get(field.name) == "numeric":
            values = pd.to_numeric(values, errors="coerce").astype(np.float64)
        columns.append(_arrow(values, field.type))
    return pa.Table.from_arrays(columns, schema=target)


def _arrow(values: pd.Series, kind: pa.DataType) -> pa.Array:
    if not pa.types.is_string(kind):
        return pa.Array.from_pandas(values, type=kind)
    try:  # text already: straight to Arrow
        return pa.Array.from_pandas(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # attribute values of other types are kept as text, as the vectoriser reads categoricals (str of the value)
        text = values.astype(object).where(values.notna(), None)
        return pa.Array.from_pandas(text.map(lambda v: v if v is None or isinstance(v, str) else str(v)), type=kind)


class BucketWriter:
    """Writes one table's rows of one run into the lake's buckets (see the module docstring)."""

    def __init__(self, root: Path, table: str, buckets: int, run: int,
                 attributes: tuple[AttributeInfo, ...] = (), label: str = "") -> None:
        self.root, self.table, self.buckets, self.run = Path(root), table, buckets, run
        self.attributes = attributes
        self.name = f"part-{run:05d}{label}"
        self.staging = self.root / "_staging" / f"run-{run:05d}" / f"{table}{label}"
        self._writers: dict[int, pq.ParquetWriter] = {}
        self.rows = 0
        self.max_ts_us: int | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        data = conform(frame, self.table, self.attributes)
        bucket = bucket_of(frame["lead_id"].to_numpy(), self.buckets)
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(self.buckets + 1))
        for b in np.flatnonzero(np.diff(bounds)):
            part = data.take(pa.array(order[bounds[b]:bounds[b + 1]]))
            if b not in self._writers:
                self.staging.mkdir(parents=True, exist_ok=True)
                self._writers[b] = pq.ParquetWriter(self.staging / f"{b:04d}.parquet", data.schema)
            self._writers[b].write_table(part)
        self.rows += len(frame)
        ts = "created_at" if self.table == "leads" else "ts"
        latest = int(data.column(ts).cast(pa.int64()).to_numpy().max())
        self.max_ts_us = latest if self.max_ts_us is None else max(self.max_ts_us, latest)

    def finish(self) -> int:
        """Sort each staged bucket by lead and time and write it as this run's part file; return rows written."""
        for b, writer in self._writers.items():
            writer.close()
            staged = pq.read_table(self.staging / f"{b:04d}.parquet")
            ordered = staged.sort_by([(c, "ascending") for c in SORT[self.table]])
            target = bucket_dir(self.root, self.table, b)
            target.mkdir(parents=True, exist_ok=True)
            tmp = target / f".{self.name}.tmp"
            pq.write_table(ordered, tmp)
            tmp.replace(target / f"{self.name}.parquet")
        self._writers.clear()
        shutil.rmtree(self.staging, ignore_errors=True)
        return self.rows

    def discard(self) -> None:
        """Drop everything written so far (a source that failed part-way): nothing of it reaches the lake."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        shutil.rmtree(self.staging, ignore_errors=True)
        self.rows, self.max_ts_us = 0, None


class LakeRun:
    """One run of writes into a lake (an export, a bulk load): its three tables' rows, then the manifest.

    The manifest is written last and atomically, so a run that fails part-way leaves no trace in it;
    its part files, named by the run, are simply replaced by the next attempt.
    """

    def __init__(self, root: Path, buckets: int, attributes: tuple[AttributeInfo, ...], source: str) -> None:
        self.root, self.source = Path(root), source
        self.manifest = open_lake(self.root, buckets, attributes)
        self.run = self.manifest.next_run
        self.writers: list[BucketWriter] = []
        self._by_table: dict[str, BucketWriter] = {}

    def writer(self, table: str, label: str = "") -> BucketWriter:
        """A writer of its own (its own part files), for a batch that must be kept or dropped whole."""
        writer = BucketWriter(self.root, table, self.manifest.buckets, self.run, self.manifest.attribute_infos, label)
        self.writers.append(writer)
        return writer

    def write(self, table: str, frame: pd.DataFrame) -> None:
        if table not in self._by_table:
            self._by_table[table] = self.writer(table)
        self._by_table[table].write(frame)

    def finish(self, watermarks: dict[str, int] | None = None) -> dict[str, int]:
        """Sort and write every bucket, then record the run in the manifest; return the rows added per table."""
        rows = dict.fromkeys(TABLES, 0)
        manifest = self.manifest
        for writer in self.writers:
            rows[writer.table] += writer.finish()
            if writer.max_ts_us is not None:
                manifest.max_ts_us[writer.table] = max(writer.max_ts_us,
                                                       manifest.max_ts_us.get(writer.table, writer.max_ts_us))
        manifest.watermarks.update(watermarks or {})
        if sum(rows.values()):
            manifest.runs.append({"run": self.run, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                  "rows": rows, "source": self.source})
        write_manifest(self.root, manifest)
        return rows
