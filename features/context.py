"""What every feature family needs about a batch of snapshots, computed once and shared.

A ``Context`` holds the sorted inbound and outbound events and, per snapshot, where its as-of time
and its look-back windows fall in them. Families are pure functions of a Context; the Context only
memoises lookups that several families use (positions, running indexes), so no work is repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from features.events import US_PER_DAY, EventArrays, last_index_where, locate, prefix_sum

SESSION_GAP_US = 30 * 60 * 1_000_000
"""A gap of 30 minutes or more between two actions starts a new session (the web-analytics convention)."""


@dataclass(frozen=True)
class Vocabulary:
    """The fixed names behind the per-stage and per-channel features, learned once and saved with a model."""

    stages: tuple[str, ...]
    channels: tuple[str, ...]

    @property
    def deep_level(self) -> int:
        """Actions at this stage level or deeper are 'deep' (the last two stages: consideration and intent)."""
        return max(1, len(self.stages) - 1)


@dataclass
class Context:
    inbound: EventArrays
    outbound: EventArrays
    lead: np.ndarray  # int64 lead code per snapshot
    as_of: np.ndarray  # int64 microseconds per snapshot
    created: np.ndarray  # int64 microseconds: when each snapshot's lead was created
    vocab: Vocabulary
    _windows: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.lead.size

    # --- positions in the inbound events: [start, pos) are the lead's actions strictly before as-of
    @cached_property
    def start(self) -> np.ndarray:
        return self.inbound.start[self.lead]

    @cached_property
    def pos(self) -> np.ndarray:
        return locate(self.inbound, self.lead, self.as_of)

    @cached_property
    def has_events(self) -> np.ndarray:
        return self.pos > self.start

    @cached_property
    def last(self) -> np.ndarray:
        """Index of the last action before as-of (clamped to 0 where there is none; mask with has_events)."""
        return np.maximum(self.pos - 1, 0)

    def window_start(self, days: int) -> np.ndarray:
        """Position of the first action at or after as-of minus ``days``: [window_start, pos) is the window."""
        if days not in self._windows:
            self._windows[days] = locate(self.inbound, self.lead, self.as_of - days * US_PER_DAY)
        return self._windows[days]

    def days_since(self, ts: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return np.where(valid, (self.as_of - ts) / US_PER_DAY, np.nan)

    def latest_where(self, running_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Given a ``last_index_where`` array, return (index, valid) of the latest match before as-of."""
        idx = running_last[self.last] if running_last.size else np.zeros(self.n, dtype=np.int64)
        return idx, self.has_events & (idx >= self.start)

    # --- per-event helpers on the inbound events, each computed once
    @cached_property
    def lead_first(self) -> np.ndarray:
        """True for each lead's first action."""
        first = np.zeros(self.inbound.size, dtype=bool)
        first[self.inbound.start[:-1][self.inbound.start[:-1] < self.inbound.start[1:]]] = True
        return first

    @cached_property
    def new_session(self) -> np.ndarray:
        gap = np.diff(self.inbound.ts, prepend=np.iinfo(np.int64).min // 2)
        return self.lead_first | (gap >= SESSION_GAP_US)

    @cached_property
    def session_starts(self) -> np.ndarray:
        return prefix_sum(self.new_session.astype(np.int64))

    def level_prefix(self, level: int) -> np.ndarray:
        return self._level_prefix[level]

    @cached_property
    def _level_prefix(self) -> dict[int, np.ndarray]:
        return {k: prefix_sum((self.inbound.level == k).astype(np.int64)) for k in range(1, len(self.vocab.stages) + 1)}

    @cached_property
    def deep(self) -> np.ndarray:
        return self.inbound.level >= self.vocab.deep_level

    @cached_property
    def deep_prefix(self) -> np.ndarray:
        return prefix_sum(self.deep.astype(np.int64))

    @cached_property
    def last_deep(self) -> np.ndarray:
        return last_index_where(self.deep)
