"""A lead a caller describes itself (``/score_payload`` and its replay): its record, its events, and what is checked.

The checks belong to scoring, not to the HTTP layer, so that whatever scores a payload refuses the
same payloads for the same reasons; :class:`PayloadRefused` says which rule and which event, and the
service only words it as an HTTP error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from contract.lead_record import LeadRecord
from contract.taxonomy import Taxonomy
from contract.timeunits import latest_acceptable, timestamp_micros
from store.event_store import LeadEvents

TOO_MANY = "too_many"
UNKNOWN_EVENT_TYPE = "unknown_type"
IN_THE_FUTURE = "in_the_future"
BEFORE_CREATED = "before_created"


class PayloadRefused(ValueError):
    """A payload the scorer will not score: ``kind`` names the rule, ``index`` the event (request order)."""

    def __init__(self, kind: str, index: int | None = None, count: int | None = None) -> None:
        super().__init__(kind if index is None else f"{kind} at events[{index}]")
        self.kind, self.index, self.count = kind, index, count


@dataclass(frozen=True)
class Payload:
    """The lead and its events as the caller sent them (events in request order, so refusals can name them)."""

    lead: LeadRecord
    events: LeadEvents

    @classmethod
    def of(cls, lead_id: str, created_at: datetime | str, source: str | None, attributes: dict,
           events: Iterable[tuple[datetime | str, str, str | None]]) -> Payload:
        """From the request's fields (the service) or the logged request's JSON (a replay) alike."""
        rows = list(events)
        ts, types, channels = zip(*rows, strict=True) if rows else ((), (), ())
        lead = LeadRecord.given(lead_id, timestamp_micros(created_at, "lead.created_at"), source, attributes)
        return cls(lead, LeadEvents(np.array([timestamp_micros(t, "events.ts") for t in ts], dtype=np.int64),
                                    np.array(types, dtype=object), np.array(channels, dtype=object)))

    def in_time_order(self) -> LeadEvents:
        """The events by time; events at the same moment keep the caller's order."""
        order = np.argsort(self.events.ts_us, kind="stable")
        return LeadEvents(self.events.ts_us[order], self.events.type[order], self.events.channel[order])


@dataclass(frozen=True)
class PayloadRules:
    """How many events a payload may carry, and the clock drift tolerated on its times."""

    max_events: int
    clock_skew: timedelta

    def check_size(self, n_events: int) -> None:
        """Before anything is read: a payload over the limit is refused whole."""
        if n_events > self.max_events:
            raise PayloadRefused(TOO_MANY, count=n_events)

    def check_events(self, payload: Payload, taxonomy: Taxonomy, as_of_us: int) -> None:
        """The first event, in request order, of a type the model does not know, in the future, or before the
        lead existed. A lead created after ``as_of_us`` is left to the scorer, which refuses it as such."""
        skew_us = self.clock_skew // timedelta(microseconds=1)
        latest_us = latest_acceptable(self.clock_skew).value // 1000
        created_us = payload.lead.created_at_us
        earliest_us = created_us - skew_us if created_us <= as_of_us else None
        for i, (ts, kind) in enumerate(zip(payload.events.ts_us.tolist(), payload.events.type, strict=True)):
            if kind not in taxonomy.types:
                raise PayloadRefused(UNKNOWN_EVENT_TYPE, i)
            if ts > latest_us:
                raise PayloadRefused(IN_THE_FUTURE, i)
            if earliest_us is not None and ts < earliest_us:
                raise PayloadRefused(BEFORE_CREATED, i)
