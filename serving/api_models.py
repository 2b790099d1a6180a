"""Request and response models of the HTTP service, with descriptions for the OpenAPI document.

Requests are validated strictly (``"reasons": 0`` is not a boolean, a number is not a time) and
with the same limits wherever the same kind of value appears (ids, names, texts, list sizes), so
that what the OpenAPI document promises is exactly what the service accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, WrapValidator, \
    field_validator

MAX_BATCH = 1000
MAX_POSTED_EVENTS = 1000
MAX_ATTRIBUTES = 200
REASON_CODES = ("no_budget", "no_authority", "no_need", "bad_timing", "not_our_profile", "other")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""No time before this is plausible for a lead (a year-1 date is a typo or an attack, not history)."""

LeadId = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Text = Annotated[str, Field(max_length=1000)]
Number = Annotated[float, Field(allow_inf_nan=False)]
STRICT = ConfigDict(extra="forbid", strict=True)


def _one_reasons_error(value: object, handler: ValidatorFunctionWrapHandler) -> bool | str:
    """One refusal for the field, not one per member of the union (``reasons.bool: ...; reasons.literal...``)."""
    try:
        return handler(value)
    except ValidationError:
        raise ValueError('Input should be true, false or "tiers"') from None


ReasonsChoice = Annotated[bool | Literal["tiers"], WrapValidator(_one_reasons_error)]


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{field} needs a time zone (for example 2026-01-31T12:00:00Z)")
    if value is not None and value < EARLIEST:
        raise ValueError(f"{field} is before 1970-01-01: not a plausible time for a lead")
    return value


class _AsOf(BaseModel):
    as_of: datetime | None = Field(None, description="Score as of this moment (with time zone); default: now.")

    @field_validator("as_of")
    @classmethod
    def _as_of_aware(cls, value: datetime | None) -> datetime | None:
        return _aware(value, "as_of")


class ScoreRequest(_AsOf):
    model_config = STRICT

    lead_id: LeadId = Field(description="The lead to score, as known to the store.")


class BatchRequest(_AsOf):
    model_config = STRICT

    lead_ids: list[LeadId] = Field(min_length=1, description=f"Up to {MAX_BATCH} lead ids (more: 422).")
    reasons: ReasonsChoice = Field(
        True, description="Which leads get reasons: true, all; false, none (the per-feature contributions are most of "
                          "the cost of a large batch); \"tiers\", the prospect-ready and warming leads only (what a "
                          "CRM page shows). Each score's with_reasons says whether it carries them.")
    criteria: bool = Field(
        True, description="Whether to evaluate the explicit criteria (budget, authority, ...); false leaves each "
                          "score's criteria empty: a nightly re-ranking that needs the score and tier only "
                          "(with reasons false) skips a sixth of the work and gets under a third of the bytes.")


class PayloadEvent(BaseModel):
    model_config = STRICT

    ts: datetime = Field(description="When it happened (with time zone).")
    type: Name = Field(description="Event type from the taxonomy.")
    channel: Name | None = Field(None, description="Channel; default: the taxonomy's for the type.")

    @field_validator("ts")
    @classmethod
    def _ts_aware(cls, value: datetime) -> datetime:
        return _aware(value, "ts")


class PayloadLead(BaseModel):
    model_config = STRICT

    lead_id: LeadId = Field("payload", description="Echoed back; not looked up.")
    created_at: datetime = Field(description="When the lead entered the funnel (with time zone).")
    source: Name | None = Field(None, description="Origin channel, e.g. paid_search.")
    attributes: dict[Name, Text | Number | None] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES,
        description="Profile and criteria attributes by name (industry, budget, ...): text or finite numbers.")

    @field_validator("created_at")
    @classmethod
    def _created_aware(cls, value: datetime) -> datetime:
        return _aware(value, "created_at")


class PayloadRequest(_AsOf):
    """A lead the caller keeps itself: scored from the given data, nothing stored."""

    model_config = STRICT

    lead: PayloadLead
    events: list[PayloadEvent] = Field(default_factory=list, description="The lead's events, any order "
                                                   "(at most PROSPECT_MAX_PAYLOAD_EVENTS, default 5,000: more is 422).")


class EventIn(PayloadEvent):
    event_id: LeadId | None = Field(None, description="Id that makes resending safe; default: a hash of the content.")
    lead_id: LeadId = Field(description="A lead the store knows.")


class EventsRequest(BaseModel):
    model_config = STRICT

    events: list[EventIn] = Field(min_length=1, description=f"Up to {MAX_POSTED_EVENTS} events a call (more: 422).")


class StoredResponse(BaseModel):
    stored: int = Field(description="New records stored.")
    duplicates: int = Field(description="Records already stored with the same id and content (resends).")


class FeedbackRequest(BaseModel):
    model_config = STRICT

    lead_id: LeadId = Field(description="The lead sales answered about.")
    outcome: Literal["prospect", "not_prospect"] = Field(description="What sales decided.")
    reason: Literal[REASON_CODES] | None = Field(  # type: ignore[valid-type]
        None, description="Why not, for not_prospect: " + ", ".join(REASON_CODES) + ".")
    ts: datetime | None = Field(None, description="When sales answered (with time zone); default: now.")
    feedback_id: LeadId | None = Field(None, description="Id that makes resending safe; default: derived from lead "
                                                      "and time.")

    @field_validator("ts")
    @classmethod
    def _ts_aware(cls, value: datetime | None) -> datetime | None:
        return _aware(value, "ts")


class ReasonOut(BaseModel):
    feature: str = Field(description="Feature name in the model's feature set.")
    text: str = Field(description="The reason in plain words, with the value behind it.")
    impact: float = Field(description="Contribution to the log-odds; positive raises the probability.")


class CriterionOut(BaseModel):
    name: str = Field(description="budget, authority, need, timing or ideal_customer_fit (as the rule file names).")
    label: str
    status: Literal["met", "not_met", "unknown"]
    evidence: str = Field(description="What decided it, e.g. 'budget is yes' or 'Requested a demo 2 days ago'.")


class ScoreResponse(BaseModel):
    score_id: str | None = Field(None, description="Id of this score in the score log (`prospect replay` "
                                                   "recomputes it); null when the service runs without the log.")
    lead_id: str
    as_of: datetime = Field(description="The moment the features describe (UTC).")
    probability: float = Field(description="Calibrated probability of becoming a prospect within the horizon.")
    score: int = Field(description="0-100: the share of validation leads this lead beats.")
    tier: str = Field(description="prospect-ready, warming or early lead.")
    reasons_for: list[ReasonOut] = Field(description="The strongest reasons raising the probability.")
    reasons_against: list[ReasonOut] = Field(description="The strongest reasons lowering it.")
    with_reasons: bool = Field(description="Whether reasons were computed for this lead (a batch with reasons false "
                                           "or \"tiers\" leaves some out); empty lists then mean no reason that way.")
    model_version: str | None = Field(description="Registry version of the model that scored.")
    score_week_ago: int | None = Field(description="The score as of seven days earlier (same events, same model).")
    trend: Literal["improving", "steady", "fading", "new"] = Field(
        description="Score against a week earlier: up or down 5 points or more, else steady; new when the lead "
                    "is younger than a week.")
    criteria: list[CriterionOut] = Field(description="Explicit criteria from the rule file, beside the score "
                                                     "(they never change it); empty when a batch asked for none "
                                                     "(criteria false).")


class BatchResponse(BaseModel):
    scores: list[ScoreResponse]
    unknown_lead_ids: list[str] = Field(description="Requested ids the store does not know (not scored).")
    created_after_as_of: list[str] = Field(description="Requested ids of leads created after as_of: nothing was "
                                                       "known about them then (not scored).")


class ErrorOut(BaseModel):
    """Every refusal (4xx) has this shape; a 400 for a malformed request also lists each problem."""

    error: str = Field(description="What is wrong, naming the request field; never lead data.")
    detail: list[dict] | None = Field(None, description="For 400: one entry per problem (loc, msg, type).")


class ModelInfo(BaseModel):
    version: str | None
    trained_at: str
    data_window: list[str]
    feature_set_version: str
    horizon_days: float
    thresholds: dict[str, float]
    tier_policy: str = Field("percentiles", description="What set the tier cut-offs: percentiles of validation "
                                                        "leads, or the sales team's weekly capacity.")
    split: str
    metrics: dict[str, dict[str, float | None]]


class ReplayRequest(BaseModel):
    model_config = STRICT

    score_id: str = Field(min_length=1, max_length=64, description="A score id from an earlier response.")


class ReplayResponse(BaseModel):
    score_id: str
    equal: bool = Field(description="The recomputation gave the same probability to the bit, score, tier, reasons "
                                    "and criteria.")
    reason: str | None = Field(description="Why it could not be recomputed (model version pruned, lead deleted).")
    differences: list[str] = Field(description="What differs, and the likely cause.")
    served_at: datetime
    as_of: datetime
    caller: str
    model_version: str | None
    rules_version: str | None
    served_probability: float
    recomputed_probability: float | None
    served_tier: str
    recomputed_tier: str | None
