"""Bulk scoring of a lake: every lead as of one moment, bucket by bucket, into partitioned Parquet.

Each bucket is read, its leads that existed at the as-of time are vectorised by the bundle's own
vectoriser and scored by the bundle (calibrated probability, 0-100 score, tier), exactly as the
per-lead scorer does; reasons (TreeSHAP) are optional because they cost about a hundred
predictions per lead. One file per bucket: ``<out>/bucket=NNNN.parquet``. The per-bucket function
is picklable, so it runs here or on Dask workers alike.

The score log of a bulk run is Parquet in the lake, written by the same per-bucket function (so
memory stays bounded by a bucket): ``<lake>/score_log/run=<run id>/part-NNNN.parquet``, one row per
score with the store log's columns and wording (endpoint ``bulk``); each score file row carries its
``score_id``. A run folder can be deleted as a whole; ``prune_bulk_logs`` deletes those older than
the retention at the start of a run. Bulk runs evaluate no criteria, so ``rules_version`` is empty.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.partitioned import Engine
from contract.timeunits import timestamp_micros
from features.vectorizer import FeatureInput
from lake.layout import bucket_of, read_manifest
from lake.reader import FEATURE_COLUMNS, read_bucket_table
from serving.scoring import CreatedAfterAsOf, Scored, Scorer
from store.score_log import Served, arrow_schema, new_block_id, parse_entry, to_rows
from runtime.bundle import load_bundle

SCORE_LOG_DIR = "score_log"
"""The lake folder holding the score logs of bulk runs, one ``run=<run id>`` folder per run."""
ENDPOINT = "bulk"


@dataclass(frozen=True)
class BulkCount:
    scored: int
    created_after_as_of: int


@dataclass(frozen=True)
class BulkLog:
    """Where and as whom a bulk run logs its scores."""

    folder: str  # <lake>/score_log/run=<run id>
    caller: str


def new_run(root: Path, caller: str, now: pd.Timestamp | None = None) -> BulkLog:
    """The log of a new bulk run of the lake at ``root``; the run id starts with its UTC start time."""
    now = now or pd.Timestamp.now(tz="UTC")
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    return BulkLog(str(Path(root) / SCORE_LOG_DIR / f"run={run_id}"), caller)


def prune_bulk_logs(root: Path, retention_days: float, now: pd.Timestamp | None = None) -> int:
    """Delete the log folders of bulk runs started more than ``retention_days`` ago; returns how many."""
    now = now or pd.Timestamp.now(tz="UTC")
    cutoff = now - pd.Timedelta(days=retention_days)
    removed = 0
    for folder in sorted((Path(root) / SCORE_LOG_DIR).glob("run=*")):
        try:
            started = pd.Timestamp(folder.name.removeprefix("run=").split("-")[0])
        except ValueError:
            continue  # not a run folder this code wrote: left alone
        if started.tz is None:
            started = started.tz_localize("UTC")
        if started < cutoff:
            shutil.rmtree(folder)
            removed += 1
    return removed


@lru_cache(maxsize=2)
def _scorer(bundle_dir: str) -> Scorer:
    """One loaded bundle per worker process, reused by every bucket it scores."""
    return Scorer(load_bundle(Path(bundle_dir)))


def _bucket_scores(root: str, scorer: Scorer, as_of: pd.Timestamp, reasons: bool, bucket: int,
                   only: str | None = None, as_scored: bool = True) -> tuple[pd.DataFrame, list[Scored], int]:
    """The scores of a bucket's leads that existed at ``as_of`` (of the lead ``only`` when given), as a
    frame and (``as_scored``, or with reasons) as :class:`Scored`, and how many leads were created later.

    A plain run needs only the frame: building a :class:`Scored` per lead cost more than the model."""
    manifest = read_manifest(Path(root))
    leads = read_bucket_table(Path(root), "leads", bucket, manifest)
    events = read_bucket_table(Path(root), "events", bucket, manifest, FEATURE_COLUMNS["events"])
    moment = timestamp_micros(as_of, "as_of")
    existed = pd.DatetimeIndex(leads["created_at"]).as_unit("us").asi8 <= moment
    if only is not None:
        mine = (leads["lead_id"] == only).to_numpy()
        if not mine.any():
            raise KeyError(only)
        if not existed[mine].all():
            raise CreatedAfterAsOf(only)
        existed &= mine
    ids = leads.loc[existed, "lead_id"]
    moments = pd.to_datetime(np.full(len(ids), moment, dtype=np.int64), unit="us", utc=True)
    snapshots = pd.DataFrame({"lead_id": ids.to_numpy(), "as_of": moments})
    matrix = scorer.bundle.vectorizer.transform_matrix(FeatureInput(snapshots, leads, events))
    p = scorer.bundle.probability(matrix)
    frame = pd.DataFrame({"lead_id": snapshots["lead_id"], "as_of": snapshots["as_of"], "probability": p,
                          "score": scorer.bundle.score(p), "tier": scorer.bundle.thresholds.tier(p).astype(str),
                          "model_version": scorer.version})
    if not (as_scored or reasons):
        return frame, [], int((~existed).sum()) if only is None else 0
    scored = scorer.score_matrix(matrix, ids.tolist(), pd.DatetimeIndex(snapshots["as_of"]), reasons, p)
    if reasons:
        frame["reasons_for"] = [" | ".join(r.text for r in s.reasons_for) for s in scored]
        frame["reasons_against"] = [" | ".join(r.text for r in s.reasons_against) for s in scored]
    return frame, scored, int((~existed).sum()) if only is None else 0


def score_bucket(root: str, bundle_dir: str, as_of: pd.Timestamp, reasons: bool, out: str, bucket: int,
                 log: BulkLog | None = None) -> BulkCount:
    """Score every lead of one bucket that existed at ``as_of``; write them to ``out/bucket=NNNN.parquet``
    and, with a ``log``, their score log rows to ``<log.folder>/part-NNNN.parquet`` first (so every
    score id in a score file has its log row)."""
    scorer = _scorer(bundle_dir)
    frame, scored, later = _bucket_scores(root, scorer, as_of, reasons, bucket, as_scored=log is not None)
    served = Served(new_block_id(), scored, time.time_ns() // 1000, log.caller, ENDPOINT) if log else None
    ids = served.score_ids if served is not None else [None] * len(frame)
    frame.insert(0, "score_id", pd.Series(ids, dtype="string"))
    if served is not None:
        rows = pd.DataFrame(to_rows(served), columns=arrow_schema().names)
        Path(log.folder).mkdir(parents=True, exist_ok=True)
        _write(pa.Table.from_pandas(rows, schema=arrow_schema(), preserve_index=False),
               Path(log.folder) / f"part-{bucket:04d}.parquet")
    Path(out).mkdir(parents=True, exist_ok=True)
    _write(pa.Table.from_pandas(frame, preserve_index=False), Path(out) / f"bucket={bucket:04d}.parquet")
    return BulkCount(len(frame), later)


def _write(table: pa.Table, path: Path) -> None:
    """Write then rename: a retried or killed task never leaves half a file."""
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    pq.write_table(table, staging)
    staging.replace(path)


def bulk_score(root: Path, bundle_dir: Path, as_of: pd.Timestamp, out: Path, engine: Engine,
               reasons: bool = False, log: BulkLog | None = None) -> BulkCount:
    """Score every lead of the lake as of ``as_of`` into ``out`` (one Parquet file per bucket), logging
    each score under ``log.folder`` when a log is given."""
    buckets = read_manifest(root).buckets
    counts = engine.map(partial(score_bucket, str(root), str(Path(bundle_dir).resolve()), as_of, reasons, str(out),
                                log=log),
                        list(range(buckets)), "scoring")
    return BulkCount(sum(c.scored for c in counts), sum(c.created_after_as_of for c in counts))


def read_scores(out: Path) -> pd.DataFrame:
    """All bulk scores written under ``out``, one row per lead."""
    files = sorted(Path(out).glob("bucket=*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def read_bulk_log(root: Path) -> pd.DataFrame:
    """Every score log row of the bulk runs of the lake at ``root`` (times as the store keeps them)."""
    files = sorted((Path(root) / SCORE_LOG_DIR).glob("run=*/part-*.parquet"))
    if not files:
        return arrow_schema().empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(f, schema=arrow_schema()) for f in files]).to_pandas()


def bulk_log_entry(root: Path, score_id: str) -> dict | None:
    """One score of a bulk run as :meth:`store.score_log.ScoreLog.entry` gives it, None if not logged."""
    for f in sorted((Path(root) / SCORE_LOG_DIR).glob("run=*/part-*.parquet")):
        rows = pq.read_table(f, schema=arrow_schema(), filters=[("score_id", "==", score_id)]).to_pylist()
        if rows:
            return parse_entry(rows[0])
    return None


def rescore(root: Path, scorer: Scorer, entry: dict) -> Scored:
    """Recompute a bulk-logged score through the batch path it was computed by (its lead's bucket).

    Raises KeyError when the lead is no longer in the lake, CreatedAfterAsOf when it now lies after
    the as-of time."""
    bucket = int(bucket_of([entry["lead_id"]], read_manifest(Path(root)).buckets)[0])
    as_of = pd.Timestamp(entry["as_of"] * 1000, tz="UTC")
    _, scored, _ = _bucket_scores(str(root), scorer, as_of, bool(entry["with_reasons"]), bucket, entry["lead_id"])
    return scored[0]
