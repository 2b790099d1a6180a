"""Snapshots and features over an event lake, one partition at a time, with the same compiled scan.

A lake bucket holds every row of its leads, and features are per lead, so a bucket's features
computed alone are the features the whole data would give -- provided the two things that are
global are global: the end of the observed data (from the lake's manifest, not from the bucket)
and the vectoriser's vocabulary (fitted once from every bucket's summary). Each bucket is then
read, snapshotted and vectorised by the one :class:`FeatureVectorizer`; memory is bounded by the
largest bucket, not by the data. The per-bucket functions are pure and picklable, so the same
code runs on a Dask worker (``engines.dask_cluster``) or here (``engines.local``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contract.taxonomy import Taxonomy
from features.registry import AttributeInfo
from features.snapshots import SnapshotConfig, build_snapshots
from features.vectorizer import FeatureInput, FeatureVectorizer, VocabularySummary
from lake.layout import LakeError, read_manifest
from lake.reader import read_bucket, read_bucket_table


class Engine(Protocol):
    name: str

    def map(self, fn: Callable, items: list, what: str = "partitions") -> list: ...


@dataclass(frozen=True)
class LakeJob:
    """Everything a worker needs to process one bucket: picklable, and no database."""

    root: str
    taxonomy: Taxonomy
    snapshots: SnapshotConfig
    observed_until: pd.Timestamp | None
    attributes: tuple[AttributeInfo, ...]
    buckets: int

    @classmethod
    def open(cls, root: Path, taxonomy: Taxonomy, snapshots: SnapshotConfig = SnapshotConfig(),
             drop_after_contact: bool = False) -> LakeJob:
        manifest = read_manifest(root)
        if not manifest.runs:
            raise LakeError(f"{root}: the lake holds no rows yet; run `prospect lake export` first")
        attributes = tuple(a for a in manifest.attribute_infos
                           if not (drop_after_contact and a.role == "after_contact"))
        return cls(str(root), taxonomy, snapshots, manifest.observed_until, attributes, manifest.buckets)


def bucket_summary(job: LakeJob, bucket: int) -> VocabularySummary:
    manifest = read_manifest(Path(job.root))
    leads = read_bucket_table(Path(job.root), "leads", bucket, manifest)
    events = read_bucket_table(Path(job.root), "events", bucket, manifest, ["type", "channel"])
    X = FeatureInput(pd.DataFrame(columns=["lead_id", "as_of"]), leads, events)
    return FeatureVectorizer(taxonomy=job.taxonomy, attributes=job.attributes).summarize(X)


def bucket_features(job: LakeJob, vectorizer: FeatureVectorizer, bucket: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Labelled snapshots of one bucket (lead_id, as_of, label) and their feature matrix."""
    frames = read_bucket(Path(job.root), bucket)
    snapshots = build_snapshots(frames.leads, frames.events, frames.feedback, job.snapshots,
                                observed_until=job.observed_until, inbound_types=job.taxonomy.inbound_types)
    matrix = vectorizer.transform_matrix(FeatureInput(snapshots[["lead_id", "as_of"]], frames.leads, frames.events))
    return snapshots, matrix


@dataclass(frozen=True)
class BucketCount:
    snapshots: int
    leads: int
    positives: int


def write_bucket_features(job: LakeJob, vectorizer: FeatureVectorizer, out: str, bucket: int) -> BucketCount:
    """Features of one bucket written to ``out/bucket=NNNN.parquet``; only the counts come back."""
    snapshots, matrix = bucket_features(job, vectorizer, bucket)
    table = pa.Table.from_pandas(snapshots, preserve_index=False)
    for name, column in zip(vectorizer.feature_set_.names, matrix.T, strict=True):
        table = table.append_column(name, pa.array(column))
    Path(out).mkdir(parents=True, exist_ok=True)
    # float columns gain nothing from dictionaries, and building them doubled the write time
    pq.write_table(table, Path(out) / f"bucket={bucket:04d}.parquet", use_dictionary=["lead_id"])
    return BucketCount(len(snapshots), int(snapshots["lead_id"].nunique()), int(snapshots["label"].sum()))


def fit_vectorizer(job: LakeJob, engine: Engine) -> FeatureVectorizer:
    """The vectoriser fitted on every bucket, as one fit on all the data would be."""
    summaries = engine.map(partial(bucket_summary, job), list(range(job.buckets)), "vocabulary")
    return FeatureVectorizer(taxonomy=job.taxonomy, attributes=job.attributes).fit_summaries(summaries)


def lake_features(job: LakeJob, engine: Engine) -> tuple[pd.DataFrame, np.ndarray, FeatureVectorizer]:
    """All labelled snapshots of the lake and their features (bucket after bucket), with the fitted vectoriser."""
    vectorizer = fit_vectorizer(job, engine)
    parts = engine.map(partial(bucket_features, job, vectorizer), list(range(job.buckets)), "features")
    snapshots = pd.concat([p[0] for p in parts], ignore_index=True)
    matrix = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, len(vectorizer.feature_set_.names)))
    return snapshots, matrix, vectorizer


def write_lake_features(job: LakeJob, engine: Engine, out: Path) -> tuple[BucketCount, FeatureVectorizer]:
    """Features of every bucket written under ``out`` (one Parquet file per bucket); the totals come back."""
    vectorizer = fit_vectorizer(job, engine)
    counts = engine.map(partial(write_bucket_features, job, vectorizer, str(out)), list(range(job.buckets)),
                        "features")
    total = BucketCount(sum(c.snapshots for c in counts), sum(c.leads for c in counts),
                        sum(c.positives for c in counts))
    return total, vectorizer
