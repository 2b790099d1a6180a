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
from features.context import Vocabulary

FAMILIES = ("recency", "repetition", "channel_depth", "momentum", "responsiveness", "origin_timing", "profile")
UNDESCRIBED = "(lead attribute; its mapping gives no description)"
CODE_VERSION = 1
"""Bump when a feature's definition changes, so saved feature sets from older code no longer match."""


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
    """Specs of the behaviour families, in the order the vectoriser emits them."""
    deep = " or ".join(vocab.stages[vocab.deep_level - 1:])
    s: list[FeatureSpec] = [
        FeatureSpec("days_since_last_event", "float", "recency", "Days since the lead's last action", "days"),
        FeatureSpec("days_since_first_event", "float", "recency", "Days since the lead's first action", "days"),
        FeatureSpec("days_since_created", "float", "recency", "Days since the lead entered the funnel", "days"),
    ]
    for stage in vocab.stages:
        s.append(FeatureSpec(f"days_since_{stage}", "float", "recency",
                             f"Days since the last {stage}-stage action ({_stage_examples(taxonomy, stage)})", "days"))
    for channel in vocab.channels:
        s.append(FeatureSpec(f"days_since_channel_{channel}", "float", "recency",
                             f"Days since the last action on the {channel} channel", "days"))
    s += [
        FeatureSpec("events_total", "float", "repetition", "Actions so far", "count"),
        FeatureSpec("events_7d", "float", "repetition", "Actions in the last 7 days", "count"),
        FeatureSpec("events_30d", "float", "repetition", "Actions in the last 30 days", "count"),
        FeatureSpec("events_90d", "float", "repetition", "Actions in the last 90 days", "count"),
        FeatureSpec("active_days", "float", "repetition", "Distinct days with activity so far", "count"),
        FeatureSpec("active_days_30d", "float", "repetition", "Distinct days with activity in the last 30 days",
                    "count"),
        FeatureSpec("sessions", "float", "repetition", "Visits (activity separated by 30 minutes or more)", "count"),
        FeatureSpec("return_visits", "float", "repetition", "Times the lead came back after the first visit",
                    "count"),
        FeatureSpec("visit_gap_mean_days", "float", "repetition", "Average days between visits", "days"),
        FeatureSpec("visit_gap_cv", "float", "repetition",
                    "How irregular the visits are (spread of the gaps relative to their average)", "ratio"),
        FeatureSpec("deepest_stage", "float", "channel_depth",
                    "Deepest stage reached (" + ", ".join(f"{i} = {n}" for i, n in enumerate(vocab.stages, 1)) + ")",
                    "level"),
        FeatureSpec("days_since_deepest_stage_reached", "float", "channel_depth",
                    "Days since the lead first reached its deepest stage", "days"),
    ]
    for stage in vocab.stages:
        s.append(FeatureSpec(f"events_{stage}", "float", "channel_depth", f"Actions at the {stage} stage", "count"))
    s += [
        FeatureSpec("distinct_channels", "float", "channel_depth", "Different channels the lead has used", "count"),
        FeatureSpec("days_first_touch_to_deep", "float", "channel_depth",
                    f"Days from the first action to the first {deep} action", "days"),
        FeatureSpec("share_deep_30d", "float", "channel_depth",
                    f"Share of the last 30 days' actions at the {deep} stage", "share"),
        FeatureSpec("momentum_7d", "float", "momentum",
                    "Activity in the last 7 days against the lead's earlier pace (above 0: speeding up)", "ratio"),
        FeatureSpec("momentum_14d", "float", "momentum",
                    "Activity in the last 14 days against the lead's earlier pace (above 0: speeding up)", "ratio"),
        FeatureSpec("days_since_deep_action", "float", "momentum", f"Days since the last {deep} action", "days"),
        FeatureSpec("outbound_touches", "float", "responsiveness", "Emails, calls and messages we sent the lead",
                    "count"),
        FeatureSpec("answered_share", "float", "responsiveness", "Share of our outreach the lead answered", "share"),
        FeatureSpec("answer_hours_mean", "float", "responsiveness", "Average hours the lead took to answer us",
                    "hours"),
        FeatureSpec("touches_since_last_answer", "float", "responsiveness",
                    "Outreach since the lead last answered us", "count"),
        FeatureSpec("share_business_hours", "float", "origin_timing",
                    "Share of actions in business hours (Mon-Fri 08-18 UTC)", "share"),
        FeatureSpec("share_weekend", "float", "origin_timing", "Share of actions at weekends", "share"),
    ]
    return s


def profile_specs(attributes: list[AttributeInfo]) -> list[FeatureSpec]:
    s = [FeatureSpec("origin", "category", "origin_timing", "Channel that brought the lead in", "", "profile")]
    for a in attributes:
        description = a.description or f"{a.name.replace('_', ' ').capitalize()} {UNDESCRIBED}"
        s.append(FeatureSpec(f"attr_{a.name}", "category" if a.kind == "categorical" else "float", "profile",
                             description, "", a.role))
    return s
