"""Canonical tables (PRODUCT.md section 3), declared once and used by ingestion, store and features.

Every source is mapped onto these three tables. Timestamps are timezone-aware UTC in every
DataFrame the project passes around; the store keeps them as integer microseconds since the epoch
so that SQLite and PostgreSQL compare and index them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnKind = Literal["id", "timestamp", "text", "outcome"]

OUTCOMES = ("prospect", "not_prospect")
CRITERIA_FIELDS = ("budget", "authority", "need", "timeline")


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind
    required: bool
    description: str


@dataclass(frozen=True)
class TableSpec:
    """A canonical table: its columns, its key, and the columns its content hash covers."""

    name: str
    key: str
    columns: tuple[Column, ...]
    key_from: tuple[str, ...]
    """Columns whose values make the key when the source has no id column."""
    has_attributes: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def timestamps(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind == "timestamp")


LEADS = TableSpec(
    name="leads",
    key="lead_id",
    key_from=("lead_id",),
    has_attributes=True,
    columns=(
        Column("lead_id", "id", True, "Unique id of the lead in the source system."),
        Column("created_at", "timestamp", True, "When the lead entered the funnel."),
        Column("source", "text", False, "Origin channel that brought the lead (e.g. paid_search)."),
    ),
)

EVENTS = TableSpec(
    name="events",
    key="event_id",
    key_from=("lead_id", "ts", "type", "channel"),
    columns=(
        Column("event_id", "id", False, "Id for idempotent ingestion; a content hash when absent."),
        Column("lead_id", "id", True, "The lead who acted or was contacted."),
        Column("ts", "timestamp", True, "When it happened."),
        Column("type", "text", True, "Event type; must be in the taxonomy."),
        Column("channel", "text", False, "Channel; defaults to the taxonomy's channel for the type."),
    ),
)

FEEDBACK = TableSpec(
    name="feedback",
    key="feedback_id",
    key_from=("lead_id", "ts"),
    columns=(
        Column("feedback_id", "id", False, "Id of the answer; derived from lead and time when absent."),
        Column("lead_id", "id", True, "The lead sales answered about."),
        Column("ts", "timestamp", True, "When sales answered."),
        Column("outcome", "outcome", True, "prospect or not_prospect."),
        Column("reason", "text", False, "Optional reason code (no_budget, bad_timing, ...)."),
    ),
)

HISTORY = TableSpec(
    name="history",
    key="history_id",
    key_from=("lead_id", "attribute", "recorded_at"),
    columns=(
        Column("history_id", "id", False, "Id of the change; derived from lead, attribute and time when absent."),
        Column("lead_id", "id", True, "The lead whose attribute was written."),
        Column("attribute", "text", True, "Name of a lead attribute declared in a mapping (budget, industry, ...)."),
        Column("value", "text", False, "The value written; empty when the value was cleared."),
        Column("recorded_at", "timestamp", True, "When the value was written in the source system."),
    ),
)
"""Attribute history (optional): the shape of CRM property-history exports (HubSpot property history,
Salesforce LeadHistory). With it, an attribute is used as it was at each as-of time."""

TABLES: dict[str, TableSpec] = {t.name: t for t in (LEADS, EVENTS, FEEDBACK, HISTORY)}
INGEST_ORDER = ("leads", "history", "events", "feedback")
"""Leads first: history, events and feedback for a lead the store does not know are quarantined."""
