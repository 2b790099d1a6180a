"""Where a lake keeps its files, and which partition (bucket) a lead belongs to.

Every row of a lead -- the lead, its events, its feedback -- lands in the same bucket, so one bucket
holds everything the features of its leads need and buckets can be processed one at a time, or on
different machines, without looking at each other. The bucket is a hash of the lead id with pandas'
SipHash under a fixed key (never Python's ``hash()``, which is salted per process): the same lead
goes to the same bucket in every process, on every machine, in every export.

Layout::

    <lake>/manifest.json                      buckets, attributes, what was exported and when
    <lake>/<table>/bucket=0007/part-00002.parquet  one file per export run that had rows for the bucket
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.registry import AttributeInfo

TABLES = ("leads", "events", "feedback")
HASH_KEY = "prospect-lake-v1"[:16]
"""SipHash key: 16 characters, fixed for ever (changing it would move leads between buckets)."""
MANIFEST = "manifest.json"
SORT = {"leads": ["lead_id"], "events": ["lead_id", "ts"], "feedback": ["lead_id", "ts"]}
"""Inside each part file rows are sorted by lead and time: the order the feature scan walks."""

TS = pa.timestamp("us", tz="UTC")
BASE_SCHEMAS = {
    "leads": [("lead_id", pa.string()), ("created_at", TS), ("source", pa.string())],
    "events": [("event_id", pa.string()), ("lead_id", pa.string()), ("ts", TS), ("type", pa.string()),
               ("channel", pa.string())],
    "feedback": [("feedback_id", pa.string()), ("lead_id", pa.string()), ("ts", TS), ("outcome", pa.string()),
                 ("reason", pa.string())],
}


class LakeError(ValueError):
    """A lake that cannot be read or written as asked; the message says which folder and why."""


def bucket_of(lead_ids: pd.Series | np.ndarray | list, buckets: int) -> np.ndarray:
    """Bucket number of each lead id: stable across processes and machines."""
    values = np.asarray(lead_ids, dtype=object)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    hashed = pd.util.hash_array(values.astype(str).astype(object), hash_key=HASH_KEY, categorize=True)
    return (hashed % np.uint64(buckets)).astype(np.int64)


def schema(table: str, attributes: tuple[AttributeInfo, ...] = ()) -> pa.Schema:
    """The Parquet schema of a table; leads carry one column per declared attribute."""
    fields = list(BASE_SCHEMAS[table])
    if table == "leads":
        fields += [(a.name, pa.float64() if a.kind == "numeric" else pa.string()) for a in attributes]
    return pa.schema(fields)


@dataclass
class Manifest:
    """What a lake holds: its bucket count, the attributes, and one entry per export run."""

    buckets: int
    attributes: list[dict] = field(default_factory=list)
    watermarks: dict[str, int] = field(default_factory=dict)
    """Per table, the highest store row number exported so far: the next export starts after it."""
    max_ts_us: dict[str, int] = field(default_factory=dict)
    """Per table, the latest timestamp in the lake: the end of the observed data, without reading it all."""
    runs: list[dict] = field(default_factory=list)
    format: int = 1

    @property
    def attribute_infos(self) -> tuple[AttributeInfo, ...]:
        return tuple(AttributeInfo(**a) for a in self.attributes)

    @property
    def next_run(self) -> int:
        return len(self.runs) + 1

    @property
    def observed_until(self) -> pd.Timestamp | None:
        """The latest moment anything in the lake happened (what a whole-table read would find)."""
        if not self.max_ts_us:
            return None
        return pd.Timestamp(max(self.max_ts_us.values()), unit="us", tz="UTC")


def read_manifest(root: Path) -> Manifest:
    path = Path(root) / MANIFEST
    if not path.exists():
        raise LakeError(f"{root}: not an event lake (no {MANIFEST}); create one with `prospect lake export`")
    return Manifest(**json.loads(path.read_text()))


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically: a reader sees the old or the new one, never half of one."""
    path = Path(root) / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(manifest), indent=1))
    tmp.replace(path)


def bucket_dir(root: Path, table: str, bucket: int) -> Path:
    return Path(root) / table / f"bucket={bucket:04d}"


def part_files(root: Path, table: str, bucket: int) -> list[Path]:
    return sorted(bucket_dir(root, table, bucket).glob("part-*.parquet"))


def open_lake(root: Path, buckets: int, attributes: tuple[AttributeInfo, ...]) -> Manifest:
    """The lake's manifest, or a new one; the bucket count of an existing lake never changes."""
    root = Path(root)
    if (root / "manifest.json").exists():
        manifest = read_manifest(root)
        known = {a["name"] for a in manifest.attributes}
        manifest.attributes += [a.__dict__ for a in attributes if a.name not in known]
        return manifest
    if root.exists() and any(root.iterdir()):
        raise LakeError(f"{root}: folder is not empty and holds no lake manifest; choose an empty or new folder")
    root.mkdir(parents=True, exist_ok=True)
    return Manifest(buckets=buckets, attributes=[a.__dict__ for a in attributes])
