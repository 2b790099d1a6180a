"""The behaviour features, computed in one time-ordered pass per lead.

For each lead, its actions, our outbound touches and its snapshots are walked together in time
order. Each action updates a small running state (counts, last time per stage and channel,
sessions, touches still waiting for an answer); at each snapshot the state -- which has seen only
what happened strictly before the as-of time -- is written out as one row of features. The cost is
one step per event plus one row per snapshot, whatever the number of snapshots per lead, and the
same compiled loop serves a single lead in microseconds.

The columns are written in the order of ``features.registry.behaviour_specs``: the fixed columns of
``FIXED``, then per-stage recency, per-stage counts and per-channel recency.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

DAY = 86_400_000_000
HOUR = 3_600_000_000
SESSION_GAP = 30 * 60 * 1_000_000
"""A gap of 30 minutes or more between two actions starts a new session (the web-analytics convention)."""
SMOOTHING = 0.1
"""Actions per day added to both momentum rates, so one action after a quiet month reads as a rise, not infinity."""
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)

FIXED = (
    # recency
    "days_since_last_event", "days_since_first_event", "days_since_created",
    # repetition
    "events_total", "events_7d", "events_30d", "events_90d", "active_days", "active_days_30d", "sessions",
    "return_visits", "visit_gap_mean_days", "visit_gap_cv",
    # channel depth
    "deepest_stage", "days_since_deepest_stage_reached", "distinct_channels", "days_first_touch_to_deep",
    "share_deep_30d",
    # momentum
    "momentum_7d", "momentum_14d", "days_since_deep_action",
    # responsiveness
    "outbound_touches", "answered_share", "answer_hours_mean", "touches_since_last_answer",
    # origin and timing
    "share_business_hours", "share_weekend",
)


def columns(stages: tuple[str, ...], channels: tuple[str, ...]) -> list[str]:
    """Names of the columns ``scan`` writes, in order."""
    return [*FIXED, *(f"days_since_{s}" for s in stages), *(f"events_{s}" for s in stages),
            *(f"days_since_channel_{c}" for c in channels)]


@nb.njit(cache=True, nogil=True)
def _window(ts: np.ndarray, w: int, end: int, since: int) -> int:
    """Advance a window's start pointer past the actions before ``since``."""
    while w < end and ts[w] < since:
        w += 1
    return w


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
    nan = np.nan
    n_fixed = 27
    stage_count = np.zeros(n_stages + 1, np.int64)
    stage_last = np.zeros(n_stages + 1, np.int64)
    channel_last = np.full(n_channels, -1, np.int64)
    any_seen = np.zeros(n_any + 1, np.bool_)
    seen = np.empty(n_any + 1, np.int64)
    day_start = np.zeros(in_ts.size + 1, np.int32)  # per lead: day-start actions among [lead start, i)
    is_day_start = np.zeros(in_ts.size + 1, np.bool_)
    deep_so_far = np.zeros(in_ts.size + 1, np.int32)

    s = 0
    n_snap = snap_lead.size
    while s < n_snap:
        lead = snap_lead[s]
        i0, i_end = in_start[lead], in_start[lead + 1]
        j, j_end = out_start[lead], out_start[lead + 1]
        i = i0
        base = created[lead]
        # running state of this lead
        first_t = prev_t = last_day = 0
        days = sessions = 0
        session_t = 0
        gap_sum = gap_sq = 0.0
        deepest = 0
        reached_t = first_deep = last_deep = 0
        n_deep = 0
        n_seen = 0
        business = weekend = 0
        touches = answered = pending = 0
        pending_offset = 0
        answer_us = 0.0
        w7 = w14 = w30 = w90 = i0
        day_start[i0] = 0
        deep_so_far[i0] = 0

        while s < n_snap and snap_lead[s] == lead:
            a = snap_as_of[s]
            # consume everything strictly before as-of, touches before actions at the same instant
            while True:
                has_in = i < i_end and in_ts[i] < a
                has_out = j < j_end and out_ts[j] < a
                if not has_in and not has_out:
                    break
                if has_out and (not has_in or out_ts[j] <= in_ts[i]):
                    touches += 1
                    pending += 1
                    pending_offset += out_ts[j] - base
                    j += 1
                    continue
                t = in_ts[i]
                level = in_level[i]
                if pending > 0:  # this action answers every touch still waiting
                    answer_us += float(pending * (t - base) - pending_offset)
                    answered += pending
                    pending = 0
                    pending_offset = 0
                day = t // DAY
                new_day = i == i0 or day != last_day
                if new_day:
                    days += 1
                is_day_start[i] = new_day
                day_start[i + 1] = day_start[i] + (1 if new_day else 0)
                if i == i0:
                    first_t = t
                    sessions = 1
                    session_t = t
                elif t - prev_t >= SESSION_GAP:
                    gap = (t - session_t) / DAY
                    gap_sum += gap
                    gap_sq += gap * gap
                    sessions += 1
                    session_t = t
                stage_count[level] += 1
                stage_last[level] = t
                if level > deepest:
                    deepest = level
                    reached_t = t
                deep = level >= deep_level
                if deep:
                    if n_deep == 0:
                        first_deep = t
                    last_deep = t
                    n_deep += 1
                deep_so_far[i + 1] = deep_so_far[i] + (1 if deep else 0)
                c = in_channel[i]
                if c >= 0:
                    channel_last[c] = t
                k = in_any[i]
                if not any_seen[k]:
                    any_seen[k] = True
                    seen[n_seen] = k
                    n_seen += 1
                weekday = (day + EPOCH_WEEKDAY) % 7
                hour = (t - day * DAY) // HOUR
                if weekday >= 5:
                    weekend += 1
                elif 8 <= hour < 18:
                    business += 1
                last_day = day
                prev_t = t
                i += 1

            w7 = _window(in_ts, w7, i, a - 7 * DAY)
            w14 = _window(in_ts, w14, i, a - 14 * DAY)
            w30 = _window(in_ts, w30, i, a - 30 * DAY)
            w90 = _window(in_ts, w90, i, a - 90 * DAY)
            n = i - i0
            row = result[snap_row[s]]
            has = n > 0
            # recency
            row[0] = (a - prev_t) / DAY if has else nan
            row[1] = (a - first_t) / DAY if has else nan
            row[2] = (a - base) / DAY
            # repetition
            row[3] = n
            row[4] = i - w7
            row[5] = i - w30
            row[6] = i - w90
            row[7] = days
            carried = 1 if (w30 < i and not is_day_start[w30]) else 0
            row[8] = day_start[i] - day_start[w30] + carried
            row[9] = sessions
            row[10] = max(sessions - 1, 0)
            n_gaps = sessions - 1
            mean = gap_sum / n_gaps if n_gaps >= 1 else nan
            row[11] = mean
            if n_gaps >= 2 and mean > 0:
                row[12] = math.sqrt(max(gap_sq / n_gaps - mean * mean, 0.0)) / mean
            else:
                row[12] = nan
            # channel depth
            row[13] = deepest
            row[14] = (a - reached_t) / DAY if has else nan
            row[15] = n_seen
            row[16] = (first_deep - first_t) / DAY if n_deep > 0 else nan
            recent = i - w30
            row[17] = (deep_so_far[i] - deep_so_far[w30]) / recent if recent > 0 else nan
            # momentum
            for col, span, w in ((18, 7, w7), (19, 14, w14)):
                if has:
                    prior = w - i0
                    prior_days = max((a - span * DAY - first_t) / DAY, float(span))
                    prior_rate = prior / prior_days if prior > 0 else 0.0
                    row[col] = math.log(((i - w) / span + SMOOTHING) / (prior_rate + SMOOTHING))
                else:
                    row[col] = nan
            row[20] = (a - last_deep) / DAY if n_deep > 0 else nan
            # responsiveness
            row[21] = touches
            row[22] = answered / touches if touches > 0 else nan
            row[23] = answer_us / answered / HOUR if answered > 0 else nan
            row[24] = pending
            # origin and timing
            row[25] = business / n if has else nan
            row[26] = weekend / n if has else nan
            # per stage and per channel
            for level in range(1, n_stages + 1):
                row[n_fixed + level - 1] = (a - stage_last[level]) / DAY if stage_count[level] > 0 else nan
                row[n_fixed + n_stages + level - 1] = stage_count[level]
            for c in range(n_channels):
                last = channel_last[c]
                row[n_fixed + 2 * n_stages + c] = (a - last) / DAY if last >= 0 else nan
            n_behaviour = n_fixed + 2 * n_stages + n_channels
            for p in range(lead_profile.shape[1]):
                row[n_behaviour + p] = lead_profile[lead, p]
            s += 1

        # reset what this lead touched
        for level in range(n_stages + 1):
            stage_count[level] = 0
        for c in range(n_channels):
            channel_last[c] = -1
        for q in range(n_seen):
            any_seen[seen[q]] = False
