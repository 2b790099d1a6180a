"""From the event store to a labelled feature table: the entry point training and reports build on."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from contract.taxonomy import Taxonomy
from features.registry import AttributeInfo
from features.snapshots import SnapshotConfig, build_snapshots
from features.vectorizer import FeatureInput, FeatureVectorizer
from store.event_store import EventStore


@dataclass
class StoreFrames:
    leads: pd.DataFrame
    events: pd.DataFrame
    feedback: pd.DataFrame
    attributes: tuple[AttributeInfo, ...]
    history: pd.DataFrame | None = None
    """Attribute history (lead_id, attribute, value, recorded_at); None or empty when the sources have none."""


def load_frames(store: EventStore) -> StoreFrames:
    """Read the canonical tables and the declared attributes from the store, once."""
    specs = store.attribute_specs()
    attributes = tuple(AttributeInfo(r.name, r.kind, r.role, r.description) for r in specs.itertuples())
    return StoreFrames(leads=store.read_table("leads"), events=store.read_table("events"),
                       feedback=store.read_table("feedback"), attributes=attributes,
                       history=_history(store))


def _history(store: EventStore) -> pd.DataFrame:
    """The attribute history in time order per lead, attribute and value as categories.

    A few distinct texts over millions of rows: as categories they take a fraction of the memory,
    and the features read their codes instead of hashing every text again.
    """
    history = store.read_table("history").sort_values(["lead_id", "recorded_at"], kind="stable", ignore_index=True)
    return history.astype({"attribute": "category", "value": "category"})


@dataclass
class TrainingSet:
    snapshots: pd.DataFrame  # lead_id, as_of, label
    features: pd.DataFrame  # one row per snapshot, the vectoriser's columns
    vectorizer: FeatureVectorizer


def store_snapshots(frames: StoreFrames, taxonomy: Taxonomy, config: SnapshotConfig = SnapshotConfig()) -> pd.DataFrame:
    """The labelled (lead, as-of) snapshots of the store's data: what training, evaluation and promotion share."""
    return build_snapshots(frames.leads, frames.events, frames.feedback, config, inbound_types=taxonomy.inbound_types)


def training_set(frames: StoreFrames, taxonomy: Taxonomy, config: SnapshotConfig = SnapshotConfig()) -> TrainingSet:
    """Labelled snapshots and their features, with the vectoriser fitted on them."""
    snapshots = store_snapshots(frames, taxonomy, config)
    X = FeatureInput(snapshots[["lead_id", "as_of"]], frames.leads, frames.events, frames.history)
    vectorizer = FeatureVectorizer(taxonomy=taxonomy, attributes=frames.attributes).fit(X)
    return TrainingSet(snapshots=snapshots, features=vectorizer.transform(X), vectorizer=vectorizer)
