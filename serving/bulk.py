"""Bulk scoring of a lake: every lead as of one moment, bucket by bucket, into partitioned Parquet.

Each bucket is read, its leads that existed at the as-of time are vectorised by the bundle's own
vectoriser and scored by the bundle (calibrated probability, 0-100 score, tier), exactly as the
per-lead scorer does; reasons (TreeSHAP) are optional because they cost about a hundred
predictions per lead. One file per bucket: ``<out>/bucket=NNNN.parquet``. The per-bucket function
is pure and picklable, so it runs here or on Dask workers alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.partitioned import Engine
from features.vectorizer import FeatureInput, timestamp_micros
from lake.layout import read_manifest
from lake.reader import FEATURE_COLUMNS, read_bucket_table
from serving.scoring import Scorer
from training.bundle import load_bundle


@dataclass(frozen=True)
class BulkCount:
    scored: int
    created_later: int


@lru_cache(maxsize=2)
def _scorer(bundle_dir: str) -> Scorer:
    """One loaded bundle per worker process, reused by every bucket it scores."""
    return Scorer(load_bundle(Path(bundle_dir)))


def score_bucket(root: str, bundle_dir: str, as_of: pd.Timestamp, reasons: bool, out: str, bucket: int) -> BulkCount:
    """Score every lead of one bucket that existed at ``as_of``; write them to ``out/bucket=NNNN.parquet``."""
    scorer = _scorer(bundle_dir)
    manifest = read_manifest(Path(root))
    leads = read_bucket_table(Path(root), "leads", bucket, manifest)
    events = read_bucket_table(Path(root), "events", bucket, manifest, FEATURE_COLUMNS["events"])
    moment = timestamp_micros(as_of, "as_of")
    existed = pd.DatetimeIndex(leads["created_at"]).as_unit("us").asi8 <= moment
    ids = leads.loc[existed, "lead_id"]
    moments = pd.to_datetime(np.full(len(ids), moment, dtype=np.int64), unit="us", utc=True)
    snapshots = pd.DataFrame({"lead_id": ids.to_numpy(), "as_of": moments})
    matrix = scorer.bundle.vectorizer.transform_matrix(FeatureInput(snapshots, leads, events))
    p = scorer.bundle.probability(matrix)
    frame = pd.DataFrame({"lead_id": snapshots["lead_id"], "as_of": snapshots["as_of"], "probability": p,
                          "score": scorer.bundle.score(p), "tier": scorer.bundle.thresholds.tier(p).astype(str),
                          "model_version": scorer.version})
    if reasons:
        scored = scorer.score_matrix(matrix, ids.tolist(), pd.DatetimeIndex(snapshots["as_of"]), True, p)
        frame["reasons_for"] = [" | ".join(r.text for r in s.reasons_for) for s in scored]
        frame["reasons_against"] = [" | ".join(r.text for r in s.reasons_against) for s in scored]
    Path(out).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), Path(out) / f"bucket={bucket:04d}.parquet")
    return BulkCount(len(frame), int((~existed).sum()))


def bulk_score(root: Path, bundle_dir: Path, as_of: pd.Timestamp, out: Path, engine: Engine,
               reasons: bool = False) -> BulkCount:
    """Score every lead of the lake as of ``as_of`` into ``out`` (one Parquet file per bucket)."""
    buckets = read_manifest(root).buckets
    counts = engine.map(partial(score_bucket, str(root), str(Path(bundle_dir).resolve()), as_of, reasons, str(out)),
                        list(range(buckets)), "scoring")
    return BulkCount(sum(c.scored for c in counts), sum(c.created_later for c in counts))


def read_scores(out: Path) -> pd.DataFrame:
    """All bulk scores written under ``out``, one row per lead."""
    files = sorted(Path(out).glob("bucket=*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()
