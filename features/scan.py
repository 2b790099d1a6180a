"""The behaviour features, computed in one time-ordered pass per lead.

For each lead, its actions, our outbound touches and its snapshots are walked together in time
order. Each action updates a small running state per feature family (visits, depth, timing,
outreach), one compiled update per family; at each snapshot one compiled function per family turns
that state -- which has seen only what happened strictly before the as-of time -- into the
family's columns, each value under its registry name (``Recency(days_since_last_event=...)``), and
the row is written family after family, then per-stage recency, per-stage counts and per-channel
recency. The cost is one step per event plus one row per snapshot, whatever the number of
snapshots per lead, and the same compiled loop serves a single lead in microseconds.

Adding a behaviour feature: an entry in ``features.registry.BEHAVIOUR`` (its family's named tuple
gets the field), the value in that family's function here, a line in the tests' reference.

Why named tuples everywhere (measured on 1M snapshots, 200k leads): compiled, tuples stay in
registers, while a state array was 30% slower; an array handed to an inlined helper costs
reference counting on every call, so family functions that wrote into the row (or read the
per-lead arrays) slowed the scan by about 30%, whereas returning a tuple of values, written by
``scan`` itself, costs nothing measurable. The same holds per action: the updates take and return
state only, and ``scan`` itself writes the per-action arrays (running counts, stage and channel
bookkeeping); a helper that took those five arrays doubled the cost of a 50k-event batch.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numba as nb
import numpy as np
from numba import literal_unroll

from contract.timeunits import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE
from features.registry import BEHAVIOUR

DAY = US_PER_DAY
HOUR = US_PER_HOUR
SESSION_GAP = 30 * US_PER_MINUTE
"""A gap of 30 minutes or more between two actions starts a new session (the web-analytics convention)."""
SMOOTHING = 0.1
"""Actions per day added to both momentum rates, so one action after a quiet month reads as a rise, not infinity."""
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)

N_FIXED = len(BEHAVIOUR)


def _family(family: str, title: str) -> type:
    """The values of one family's columns, named as in the registry and in its order."""
    return namedtuple(title, [f.name for f in BEHAVIOUR if f.family == family])


Recency = _family("recency", "Recency")
Repetition = _family("repetition", "Repetition")
ChannelDepth = _family("channel_depth", "ChannelDepth")
Momentum = _family("momentum", "Momentum")
Responsiveness = _family("responsiveness", "Responsiveness")
OriginTiming = _family("origin_timing", "OriginTiming")
FAMILY_ORDER = (Recency, Repetition, ChannelDepth, Momentum, Responsiveness, OriginTiming)
"""The order ``scan`` writes the families in: the registry's column order, checked below."""
if [name for fam in FAMILY_ORDER for name in fam._fields] != [f.name for f in BEHAVIOUR]:
    raise ImportError("features.registry.BEHAVIOUR must list each family's features together, in FAMILY_ORDER")

# The running state of one lead, per family; times in UTC microseconds.
Visits = namedtuple("Visits", ["first_t", "prev_t", "last_day", "days", "sessions", "session_t", "gap_sum", "gap_sq"])
Depth = namedtuple("Depth", ["deepest", "reached_t", "first_deep", "last_deep", "n_deep"])
Timing = namedtuple("Timing", ["business", "weekend"])
Outreach = namedtuple("Outreach", ["touches", "answered", "pending", "pending_offset", "answer_us"])
Windows = namedtuple("Windows", ["d7", "d14", "d30", "d90"])  # first action inside each trailing window

compiled = nb.njit(cache=True, nogil=True, inline="always")


# ---------------------------------------------------------------- updates: one action or touch
@compiled
def _visit(v: Visits, t: int, first: bool) -> tuple[Visits, bool]:
    """Days, sessions and the gaps between sessions after an action at ``t``, and whether it starts a day."""
    day = t // DAY
    new_day = first or day != v.last_day
    days = v.days + (1 if new_day else 0)
    if first:
        return Visits(t, t, day, days, 1, t, 0.0, 0.0), new_day
    if t - v.prev_t >= SESSION_GAP:
        gap = (t - v.session_t) / DAY
        return Visits(v.first_t, t, day, days, v.sessions + 1, t, v.gap_sum + gap, v.gap_sq + gap * gap), new_day
    return Visits(v.first_t, t, day, days, v.sessions, v.session_t, v.gap_sum, v.gap_sq), new_day


@compiled
def _deepen(d: Depth, t: int, level: int, deep: bool) -> Depth:
    """Deepest stage so far and the deep actions, after an action at ``level`` (``deep``: that deep or deeper)."""
    deepest, reached_t = (level, t) if level > d.deepest else (d.deepest, d.reached_t)
    if not deep:
        return Depth(deepest, reached_t, d.first_deep, d.last_deep, d.n_deep)
    return Depth(deepest, reached_t, t if d.n_deep == 0 else d.first_deep, t, d.n_deep + 1)


@compiled
def _time_of_day(m: Timing, t: int) -> Timing:
    day = t // DAY
    if (day + EPOCH_WEEKDAY) % 7 >= 5:
        return Timing(m.business, m.weekend + 1)
    hour = (t - day * DAY) // HOUR
    return Timing(m.business + (1 if 8 <= hour < 18 else 0), m.weekend)


@compiled
def _touch(o: Outreach, t: int, base: int) -> Outreach:
    """One of our outbound touches: it waits for the lead's next action."""
    return Outreach(o.touches + 1, o.answered, o.pending + 1, o.pending_offset + (t - base), o.answer_us)


@compiled
def _answer(o: Outreach, t: int, base: int) -> Outreach:
    """An action of the lead answers every touch still waiting."""
    if o.pending == 0:
        return o
    waited = float(o.pending * (t - base) - o.pending_offset)
    return Outreach(o.touches, o.answered + o.pending, 0, 0, o.answer_us + waited)


# ---------------------------------------------------------------- values derived from the state
@compiled
def _gap_mean(v: Visits) -> float:
    """Average days between the starts of consecutive sessions."""
    return v.gap_sum / (v.sessions - 1) if v.sessions >= 2 else np.nan


@compiled
def _gap_cv(v: Visits) -> float:
    """Spread of the gaps between sessions relative to their average (needs two gaps)."""
    mean = _gap_mean(v)
    if v.sessions < 3 or not mean > 0:
        return np.nan
    return math.sqrt(max(v.gap_sq / (v.sessions - 1) - mean * mean, 0.0)) / mean


@compiled
def _momentum(a: int, first_t: int, i: int, i0: int, w: int, span: int) -> float:
    """Log ratio of the last ``span`` days' rate of actions to the lead's rate before them."""
    prior = w - i0
    prior_days = max((a - span * DAY - first_t) / DAY, float(span))
    prior_rate = prior / prior_days if prior > 0 else 0.0
    return math.log(((i - w) / span + SMOOTHING) / (prior_rate + SMOOTHING))


@nb.njit(cache=True, nogil=True)
def _window(ts: np.ndarray, w: int, end: int, since: int) -> int:
    """Advance a window's start pointer past the actions before ``since``."""
    while w < end and ts[w] < since:
        w += 1
    return w


# ---------------------------------------------------------------- the columns of each family, by name
@compiled
def _recency(a: int, base: int, v: Visits, has: bool) -> Recency:
    return Recency(
        days_since_last_event=(a - v.prev_t) / DAY if has else np.nan,
        days_since_first_event=(a - v.first_t) / DAY if has else np.nan,
        days_since_created=(a - base) / DAY,
    )


@compiled
def _repetition(v: Visits, i: int, i0: int, w: Windows, day_starts_30d: int, starts_mid_day: bool) -> Repetition:
    """``day_starts_30d``: first actions of a day among the window's; ``starts_mid_day``: its first action is not one."""
    carried = 1 if (w.d30 < i and starts_mid_day) else 0  # the window starts inside an active day
    return Repetition(
        events_total=float(i - i0),
        events_7d=float(i - w.d7),
        events_30d=float(i - w.d30),
        events_90d=float(i - w.d90),
        active_days=float(v.days),
        active_days_30d=float(day_starts_30d + carried),
        sessions=float(v.sessions),
        return_visits=float(max(v.sessions - 1, 0)),
        visit_gap_mean_days=_gap_mean(v),
        visit_gap_cv=_gap_cv(v),
    )


@compiled
def _depth(a: int, v: Visits, d: Depth, n_seen: int, i: int, w: Windows, deep_30d: int, has: bool) -> ChannelDepth:
    recent = i - w.d30
    return ChannelDepth(
        deepest_stage=float(d.deepest),
        days_since_deepest_stage_reached=(a - d.reached_t) / DAY if has else np.nan,
        distinct_channels=float(n_seen),
        days_first_touch_to_deep=(d.first_deep - v.first_t) / DAY if d.n_deep > 0 else np.nan,
        share_deep_30d=deep_30d / recent if recent > 0 else np.nan,
    )


@compiled
def _pace(a: int, v: Visits, d: Depth, i: int, i0: int, w: Windows, has: bool) -> Momentum:
    return Momentum(
        momentum_7d=_momentum(a, v.first_t, i, i0, w.d7, 7) if has else np.nan,
        momentum_14d=_momentum(a, v.first_t, i, i0, w.d14, 14) if has else np.nan,
        days_since_deep_action=(a - d.last_deep) / DAY if d.n_deep > 0 else np.nan,
    )


@compiled
def _responsiveness(o: Outreach) -> Responsiveness:
    return Responsiveness(
        outbound_touches=float(o.touches),
        answered_share=o.answered / o.touches if o.touches > 0 else np.nan,
        answer_hours_mean=o.answer_us / o.answered / HOUR if o.answered > 0 else np.nan,
        touches_since_last_answer=float(o.pending),
    )


@compiled
def _timing(m: Timing, n: int) -> OriginTiming:
    return OriginTiming(
        share_business_hours=m.business / n if n > 0 else np.nan,
        share_weekend=m.weekend / n if n > 0 else np.nan,
    )


@nb.njit(cache=True, nogil=True)
def scan(in_ts: np.ndarray, in_level: np.ndarray, in_channel: np.ndarray, in_any: np.ndarray,
         in_start: np.ndarray, out_ts: np.ndarray, out_start: np.ndarray, snap_lead: np.ndarray,
         snap_as_of: np.ndarray, snap_row: np.ndarray, created: np.ndarray, lead_profile: np.ndarray,
         n_stages: int, n_channels: int, deep_level: int, n_any: int, result: np.ndarray) -> None:
    """Fill ``result`` from events and snapshots sorted by (lead, time).

    Snapshot ``s`` is written to row ``snap_row[s]`` (its place in the caller's order): behaviour
    columns first, then the lead's profile values copied from ``lead_profile``. Each row is written
    once, whole, while it is in cache.
    """
    stage_count = np.zeros(n_stages + 1, np.int64)
    stage_last = np.zeros(n_stages + 1, np.int64)
    channel_last = np.full(n_channels, -1, np.int64)
    any_seen = np.zeros(n_any + 1, np.bool_)
    seen = np.empty(n_any + 1, np.int64)
    day_start = np.zeros(in_ts.size + 1, np.int32)  # per lead: day-start actions among [lead start, i)
    is_day_start = np.zeros(in_ts.size + 1, np.bool_)
    deep_so_far = np.zeros(in_ts.size + 1, np.int32)
    n_behaviour = N_FIXED + 2 * n_stages + n_channels
    s = 0
    while s < snap_lead.size:
        lead = snap_lead[s]
        i0, i_end = in_start[lead], in_start[lead + 1]
        j, j_end = out_start[lead], out_start[lead + 1]
        i, base, n_seen = i0, created[lead], 0
        v, d, m, o = Visits(0, 0, 0, 0, 0, 0, 0.0, 0.0), Depth(0, 0, 0, 0, 0), Timing(0, 0), Outreach(0, 0, 0, 0, 0.0)
        w = Windows(i0, i0, i0, i0)
        day_start[i0] = 0
        deep_so_far[i0] = 0
        while s < snap_lead.size and snap_lead[s] == lead:
            a = snap_as_of[s]
            # consume everything strictly before as-of, touches before actions at the same instant
            while True:
                has_in = i < i_end and in_ts[i] < a
                has_out = j < j_end and out_ts[j] < a
                if not has_in and not has_out:
                    break
                if has_out and (not has_in or out_ts[j] <= in_ts[i]):
                    o = _touch(o, out_ts[j], base)
                    j += 1
                    continue
                t, level = in_ts[i], in_level[i]
                o = _answer(o, t, base)
                v, new_day = _visit(v, t, i == i0)
                deep = level >= deep_level
                d = _deepen(d, t, level, deep)
                m = _time_of_day(m, t)
                # running counts for the windows, and where the action happened (its stage and channel)
                is_day_start[i] = new_day
                day_start[i + 1] = day_start[i] + (1 if new_day else 0)
                deep_so_far[i + 1] = deep_so_far[i] + (1 if deep else 0)
                stage_count[level] += 1
                stage_last[level] = t
                if in_channel[i] >= 0:
                    channel_last[in_channel[i]] = t
                if not any_seen[in_any[i]]:
                    any_seen[in_any[i]] = True
                    seen[n_seen] = in_any[i]
                    n_seen += 1
                i += 1
            w = Windows(_window(in_ts, w.d7, i, a - 7 * DAY), _window(in_ts, w.d14, i, a - 14 * DAY),
                        _window(in_ts, w.d30, i, a - 30 * DAY), _window(in_ts, w.d90, i, a - 90 * DAY))
            row, has = result[snap_row[s]], i > i0
            col = 0  # the families in registry order, each column under its name
            for values in literal_unroll((_recency(a, base, v, has),
                                          _repetition(v, i, i0, w, day_start[i] - day_start[w.d30],
                                                      not is_day_start[w.d30]),
                                          _depth(a, v, d, n_seen, i, w, deep_so_far[i] - deep_so_far[w.d30], has),
                                          _pace(a, v, d, i, i0, w, has), _responsiveness(o), _timing(m, i - i0))):
                for k in range(len(values)):
                    row[col + k] = values[k]
                col += len(values)
            for level in range(1, n_stages + 1):  # per stage, then per channel
                row[N_FIXED + level - 1] = (a - stage_last[level]) / DAY if stage_count[level] > 0 else np.nan
                row[N_FIXED + n_stages + level - 1] = stage_count[level]
            for c in range(n_channels):
                row[N_FIXED + 2 * n_stages + c] = (a - channel_last[c]) / DAY if channel_last[c] >= 0 else np.nan
            for p in range(lead_profile.shape[1]):
                row[n_behaviour + p] = lead_profile[lead, p]
            s += 1
        # reset what this lead touched
        stage_count[:] = 0
        channel_last[:] = -1
        for q in range(n_seen):
            any_seen[seen[q]] = False
