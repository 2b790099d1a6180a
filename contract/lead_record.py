"""A lead as scoring reads it: its id, when it entered the funnel, its source and its profile attributes.

The store's readers give one per lead, a caller's payload becomes one, and the vectoriser and the
criteria read it. A typed record rather than a dict with agreed keys: a misspelt field is an error
where it is written, not a silent ``None`` three modules later, and the attributes can never be
mistaken for the id or the creation time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class LeadRecord:
    lead_id: str
    created_at_us: int  # UTC microseconds since the epoch, as the store keeps timestamps
    source: str | None
    attributes: Mapping[str, object] = field(default_factory=dict)  # profile attributes by name

    @property
    def profile(self) -> dict[str, object]:
        """The values features and criteria look up by name: ``source`` and every attribute."""
        return {"source": self.source, **self.attributes}

    @classmethod
    def given(cls, lead_id: str, created_at_us: int, source: str | None, attributes: Mapping[str, object]) -> LeadRecord:
        """A lead a caller describes itself: its ``source`` field is the source, whatever the attributes say."""
        return cls(lead_id, created_at_us, source, {k: v for k, v in attributes.items() if k != "source"})

    def with_attributes(self, attributes: Mapping[str, object]) -> LeadRecord:
        """The same lead with other attribute values (as they were at some moment)."""
        return replace(self, attributes=attributes)
