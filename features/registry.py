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
from typing import Literal

from contract.taxonomy import Taxonomy
from features.scan import FIXED, columns

FAMILIES = ("recency", "repetition", "channel_depth", "momentum", "responsiveness", "origin_timing", "profile")
UNDESCRIBED = "(lead attribute; its mapping gives no description)"
CODE_VERSION = 1
"""Bump when a feature's definition changes, so saved feature sets from older code no longer match."""


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
        payload = json.dumps({"code": CODE_VERSION, **self.to_dict()}, sort_keys=True).encode()
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
    deep = " or ".join(vocab.stages[vocab.deep_level - 1:])
    levels = ", ".join(f"{i} = {n}" for i, n in enumerate(vocab.stages, 1))
    fixed = {
        "days_since_last_event": ("recency", "Days since the lead's last action", "days"),
        "days_since_first_event": ("recency", "Days since the lead's first action", "days"),
        "days_since_created": ("recency", "Days since the lead entered the funnel", "days"),
        "events_total": ("repetition", "Actions so far", "count"),
        "events_7d": ("repetition", "Actions in the last 7 days", "count"),
        "events_30d": ("repetition", "Actions in the last 30 days", "count"),
        "events_90d": ("repetition", "Actions in the last 90 days", "count"),
        "active_days": ("repetition", "Distinct days with activity so far", "count"),
        "active_days_30d": ("repetition", "Distinct days with activity in the last 30 days", "count"),
        "sessions": ("repetition", "Visits (activity separated by 30 minutes or more)", "count"),
        "return_visits": ("repetition", "Times the lead came back after the first visit", "count"),
        "visit_gap_mean_days": ("repetition", "Average days between visits", "days"),
        "visit_gap_cv": ("repetition", "How irregular the visits are (spread of the gaps relative to their average)",
                         "ratio"),
        "deepest_stage": ("channel_depth", f"Deepest stage reached ({levels})", "level"),
        "days_since_deepest_stage_reached": ("channel_depth", "Days since the lead first reached its deepest stage",
                                             "days"),
        "distinct_channels": ("channel_depth", "Different channels the lead has used", "count"),
        "days_first_touch_to_deep": ("channel_depth", f"Days from the first action to the first {deep} action",
                                     "days"),
        "share_deep_30d": ("channel_depth", f"Share of the last 30 days' actions at the {deep} stage", "share"),
        "momentum_7d": ("momentum", "Activity in the last 7 days against the lead's earlier pace "
                                    "(above 0: speeding up)", "ratio"),
        "momentum_14d": ("momentum", "Activity in the last 14 days against the lead's earlier pace "
                                     "(above 0: speeding up)", "ratio"),
        "days_since_deep_action": ("momentum", f"Days since the last {deep} action", "days"),
        "outbound_touches": ("responsiveness", "Emails, calls and messages we sent the lead", "count"),
        "answered_share": ("responsiveness", "Share of our outreach the lead answered", "share"),
        "answer_hours_mean": ("responsiveness", "Average hours the lead took to answer us", "hours"),
        "touches_since_last_answer": ("responsiveness", "Outreach since the lead last answered us", "count"),
        "share_business_hours": ("origin_timing", "Share of actions in business hours (Mon-Fri 08-18 UTC)", "share"),
        "share_weekend": ("origin_timing", "Share of actions at weekends", "share"),
    }
    specs = [FeatureSpec(name, "float", *fixed[name]) for name in FIXED]
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
