"""What every feature family needs about a batch of snapshots, computed once and shared.

A ``Context`` holds the sorted inbound and outbound events and, per snapshot, where its as-of time
and its look-back windows fall in them. Families are pure functions of a Context; the Context only
memoises lookups that several families use (positions, per-stage and per-channel groups), so no
pass over the events is made twice.

Per-stage and per-channel questions ("how many before as-of", "the last one before as-of", "the
first one of this lead") are answered by a ``Group``: the members' positions and a prefix count.
Each answer is then a gather per snapshot, not another pass over all events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from features.events import US_PER_DAY, EventArrays, Group, diff, locate, prefix_sum

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

    @cached_property
    def first(self) -> np.ndarray:
        """Index of the lead's first action (clamped; mask with has_events)."""
        return np.minimum(self.start, max(self.inbound.size - 1, 0))

    def window_start(self, days: int) -> np.ndarray:
        """Position of the first action at or after as-of minus ``days``: [window_start, pos) is the window."""
        if days not in self._windows:
            self._windows[days] = locate(self.inbound, self.lead, self.as_of - days * US_PER_DAY)
        return self._windows[days]

    def ts_at(self, idx: np.ndarray) -> np.ndarray:
        return self.inbound.ts[idx] if self.inbound.size else self.as_of

    def days_since(self, idx: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Days from the action at ``idx`` to as-of, NaN where not ``valid``."""
        return np.where(valid, (self.as_of - self.ts_at(idx)) / US_PER_DAY, np.nan)

    # --- groups of actions
    def count(self, group: Group, lo: np.ndarray, hi: np.ndarray | None = None) -> np.ndarray:
        """Members among actions [lo, hi) (hi defaults to the as-of position)."""
        return group.prefix[self.pos if hi is None else hi] - group.prefix[lo]

    def latest(self, group: Group) -> tuple[np.ndarray, np.ndarray]:
        """(index, valid) of the group's last action before as-of."""
        before = group.prefix[self.pos]
        valid = before > group.prefix[self.start]
        idx = group.positions[np.maximum(before - 1, 0)] if group.positions.size else np.zeros(self.n, np.int64)
        return idx, valid

    def earliest(self, group: Group) -> tuple[np.ndarray, np.ndarray]:
        """(index, valid) of the lead's first action in the group, if it happened before as-of."""
        at = group.prefix[self.start]
        valid = group.prefix[self.pos] > at
        idx = group.positions[np.minimum(at, max(group.positions.size - 1, 0))] if group.positions.size \
            else np.zeros(self.n, np.int64)
        return idx, valid

    @cached_property
    def stages(self) -> dict[int, Group]:
        """One group per stage level, 1 = shallowest."""
        return {k: Group.of(self.inbound.level == k) for k in range(1, len(self.vocab.stages) + 1)}

    @cached_property
    def channels(self) -> dict[int, Group]:
        """One group per distinct channel value among the inbound actions (any_channel code)."""
        codes = np.unique(self.inbound.any_channel) if self.inbound.size else np.zeros(0, np.int32)
        return {int(c): Group.of(self.inbound.any_channel == c) for c in codes}

    @cached_property
    def channel_by_feature_code(self) -> dict[int, Group]:
        """Channel groups keyed by their code in the feature vocabulary (channels outside it left out)."""
        out = {}
        for group in self.channels.values():
            code = int(self.inbound.channel[group.positions[0]])
            if code >= 0:
                out[code] = group
        return out

    @cached_property
    def deep_levels(self) -> range:
        return range(self.vocab.deep_level, len(self.vocab.stages) + 1)

    # --- per-action flags, each computed once
    @cached_property
    def lead_first(self) -> np.ndarray:
        """True for each lead's first action."""
        first = np.zeros(self.inbound.size, dtype=bool)
        starts = self.inbound.start[:-1]
        first[starts[starts < self.inbound.start[1:]]] = True
        return first

    @cached_property
    def day(self) -> np.ndarray:
        return self.inbound.ts // US_PER_DAY

    @cached_property
    def sessions(self) -> Group:
        return Group.of(self.lead_first | (diff(self.inbound.ts, SESSION_GAP_US) >= SESSION_GAP_US))

    def flag_prefix(self, flags: np.ndarray) -> np.ndarray:
        return prefix_sum(flags)
