"""The feature registry: every output column with its type, family and a sentence a marketer understands.

The report and the per-lead reasons read their words from here, so a feature without a description
is a defect (a test enforces it). A ``FeatureSet`` -- the names, the vocabulary behind the per-stage
and per-channel columns, and the categories of categorical columns -- is versioned by content and
saved with every model, so a model is always served the columns it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib.resources import files
from typing import Literal

from contract.taxonomy import Taxonomy

FAMILIES = ("recency", "repetition", "channel_depth", "momentum", "responsiveness", "origin_timing", "profile")
UNDESCRIBED = "(lead attribute; its mapping gives no description)"


@dataclass(frozen=True)
class BehaviourFeature:
    """One fixed behaviour column. ``description`` may name ``{deep}`` (the deep stages) and ``{levels}``."""

    name: str
    family: str
    description: str
    unit: str


BEHAVIOUR = (
    BehaviourFeature("days_since_last_event", "recency", "Days since the lead's last action", "days"),
    BehaviourFeature("days_since_first_event", "recency", "Days since the lead's first action", "days"),
    BehaviourFeature("days_since_created", "recency", "Days since the lead entered the funnel", "days"),
    BehaviourFeature("events_total", "repetition", "Actions so far", "count"),
    BehaviourFeature("events_7d", "repetition", "Actions in the last 7 days", "count"),
    BehaviourFeature("events_30d", "repetition", "Actions in the last 30 days", "count"),
    BehaviourFeature("events_90d", "repetition", "Actions in the last 90 days", "count"),
    BehaviourFeature("active_days", "repetition", "Distinct days with activity so far", "count"),
    BehaviourFeature("active_days_30d", "repetition", "Distinct days with activity in the last 30 days", "count"),
    BehaviourFeature("sessions", "repetition", "Visits (activity separated by 30 minutes or more)", "count"),
    BehaviourFeature("return_visits", "repetition", "Times the lead came back after the first visit", "count"),
    BehaviourFeature("visit_gap_mean_days", "repetition", "Average days between visits", "days"),
    BehaviourFeature("visit_gap_cv", "repetition",
                     "How irregular the visits are (spread of the gaps relative to their average)", "ratio"),
    BehaviourFeature("deepest_stage", "channel_depth", "Deepest stage reached ({levels})", "level"),
    BehaviourFeature("days_since_deepest_stage_reached", "channel_depth",
                     "Days since the lead first reached its deepest stage", "days"),
    BehaviourFeature("distinct_channels", "channel_depth", "Different channels the lead has used", "count"),
    BehaviourFeature("days_first_touch_to_deep", "channel_depth",
                     "Days from the first action to the first {deep} action", "days"),
    BehaviourFeature("share_deep_30d", "channel_depth", "Share of the last 30 days' actions at the {deep} stage",
                     "share"),
    BehaviourFeature("momentum_7d", "momentum",
                     "Activity in the last 7 days against the lead's earlier pace (above 0: speeding up)", "ratio"),
    BehaviourFeature("momentum_14d", "momentum",
                     "Activity in the last 14 days against the lead's earlier pace (above 0: speeding up)", "ratio"),
    BehaviourFeature("days_since_deep_action", "momentum", "Days since the last {deep} action", "days"),
    BehaviourFeature("outbound_touches", "responsiveness", "Emails, calls and messages we sent the lead", "count"),
    BehaviourFeature("answered_share", "responsiveness", "Share of our outreach the lead answered", "share"),
    BehaviourFeature("answer_hours_mean", "responsiveness", "Average hours the lead took to answer us", "hours"),
    BehaviourFeature("touches_since_last_answer", "responsiveness", "Outreach since the lead last answered us",
                     "count"),
    BehaviourFeature("share_business_hours", "origin_timing", "Share of actions in business hours (Mon-Fri 08-18 UTC)",
                     "share"),
    BehaviourFeature("share_weekend", "origin_timing", "Share of actions at weekends", "share"),
)
"""The fixed behaviour features, in the order of the scan's columns, each family's together: the one list.
Adding a feature is an entry here, its value in its family's function in ``features.scan`` (a named
tuple field made from this list) and a line in the tests' reference; the feature-set version follows
by itself. The per-stage and per-channel columns that follow them are made from the vocabulary."""


@cache
def _kernel_digest() -> str:
    """A digest of the scan's source: any change to how features are computed changes the feature-set version."""
    return hashlib.sha256(files("features").joinpath("scan.py").read_bytes()).hexdigest()[:12]


@dataclass(frozen=True)
class Vocabulary:
    """The fixed names behind the per-stage and per-channel features, learned once and saved with a model."""

    stages: tuple[str, ...]
    channels: tuple[str, ...]

    @property
    def deep_level(self) -> int:
        """Actions at this stage level or deeper are 'deep' (the last two stages: consideration and intent)."""
        return max(1, len(self.stages) - 1)


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: Literal["float", "category"]
    family: str
    description: str
    unit: str = ""
    role: Literal["behaviour", "profile", "criteria", "after_contact"] = "behaviour"


@dataclass(frozen=True)
class AttributeInfo:
    """A lead attribute as the mapping declared it (store table ``attributes``)."""

    name: str
    kind: Literal["categorical", "numeric"]
    role: Literal["profile", "criteria", "after_contact"] = "profile"
    description: str = ""


@dataclass(frozen=True)
class FeatureSet:
    vocab: Vocabulary
    specs: tuple[FeatureSpec, ...]
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def version(self) -> str:
        payload = json.dumps({"code": _kernel_digest(), **self.to_dict()}, sort_keys=True).encode()
        return "fs-" + hashlib.sha256(payload).hexdigest()[:12]

    def spec(self, name: str) -> FeatureSpec:
        return next(s for s in self.specs if s.name == name)

    def to_dict(self) -> dict:
        return {"vocab": asdict(self.vocab), "specs": [asdict(s) for s in self.specs],
                "categories": {k: list(v) for k, v in self.categories.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSet:
        vocab = Vocabulary(stages=tuple(data["vocab"]["stages"]), channels=tuple(data["vocab"]["channels"]))
        return cls(vocab=vocab, specs=tuple(FeatureSpec(**s) for s in data["specs"]),
                   categories={k: tuple(v) for k, v in data["categories"].items()})


def _stage_examples(taxonomy: Taxonomy, stage: str) -> str:
    names = [t.description.lower() for t in taxonomy.types.values() if t.stage == stage][:4]
    return ", ".join(names)


def behaviour_specs(vocab: Vocabulary, taxonomy: Taxonomy) -> list[FeatureSpec]:
    """Specs of the behaviour features, in the order ``features.scan`` writes them."""
    words = {"deep": " or ".join(vocab.stages[vocab.deep_level - 1:]),
             "levels": ", ".join(f"{i} = {n}" for i, n in enumerate(vocab.stages, 1))}
    specs = [FeatureSpec(f.name, "float", f.family, f.description.format(**words), f.unit) for f in BEHAVIOUR]
    for stage in vocab.stages:
        specs.append(FeatureSpec(f"days_since_{stage}", "float", "recency",
                                 f"Days since the last {stage}-stage action ({_stage_examples(taxonomy, stage)})",
                                 "days"))
    for stage in vocab.stages:
        specs.append(FeatureSpec(f"events_{stage}", "float", "channel_depth", f"Actions at the {stage} stage", "count"))
    for channel in vocab.channels:
        specs.append(FeatureSpec(f"days_since_channel_{channel}", "float", "recency",
                                 f"Days since the last action on the {channel} channel", "days"))
    return specs


def profile_specs(attributes: list[AttributeInfo]) -> list[FeatureSpec]:
    s = [FeatureSpec("origin", "category", "origin_timing", "Channel that brought the lead in", "", "profile")]
    for a in attributes:
        description = a.description or f"{a.name.replace('_', ' ').capitalize()} {UNDESCRIBED}"
        s.append(FeatureSpec(f"attr_{a.name}", "category" if a.kind == "categorical" else "float", "profile",
                             description, "", a.role))
    return s
