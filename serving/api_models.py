"""Request and response models of the HTTP service, with descriptions for the OpenAPI document."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_BATCH = 1000


class _AsOf(BaseModel):
    as_of: datetime | None = Field(None, description="Score as of this moment (with time zone); default: now.")

    @field_validator("as_of")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("as_of needs a time zone (for example 2026-01-31T12:00:00Z)")
        return value


class ScoreRequest(_AsOf):
    model_config = ConfigDict(extra="forbid")

    lead_id: str = Field(min_length=1, max_length=200, description="The lead to score, as known to the store.")


class BatchRequest(_AsOf):
    model_config = ConfigDict(extra="forbid")

    lead_ids: list[str] = Field(min_length=1, description=f"Up to {MAX_BATCH} lead ids (more: 422).")


class ReasonOut(BaseModel):
    feature: str = Field(description="Feature name in the model's feature set.")
    text: str = Field(description="The reason in plain words, with the value behind it.")
    impact: float = Field(description="Contribution to the log-odds; positive raises the probability.")


class ScoreResponse(BaseModel):
    lead_id: str
    as_of: datetime = Field(description="The moment the features describe (UTC).")
    probability: float = Field(description="Calibrated probability of becoming a prospect within the horizon.")
    score: int = Field(description="0-100: the share of validation leads this lead beats.")
    tier: str = Field(description="prospect-ready, warming or early lead.")
    reasons_for: list[ReasonOut] = Field(description="The strongest reasons raising the probability.")
    reasons_against: list[ReasonOut] = Field(description="The strongest reasons lowering it.")
    model_version: str | None = Field(description="Registry version of the model that scored.")


class BatchResponse(BaseModel):
    scores: list[ScoreResponse]
    unknown_lead_ids: list[str] = Field(description="Requested ids the store does not know (not scored).")


class ModelInfo(BaseModel):
    version: str | None
    trained_at: str
    data_window: list[str]
    feature_set_version: str
    horizon_days: float
    thresholds: dict[str, float]
    split: str
    metrics: dict[str, dict[str, float | None]]
