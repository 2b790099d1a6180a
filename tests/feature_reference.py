"""A slow, obviously correct reference for the behaviour features: a plain loop over one lead's events.

Written straight from the feature definitions, with no prefix sums or sorting tricks, so that the
fast vectoriser can be checked against it on random inputs.
"""

from __future__ import annotations

import math

import numpy as np

from contract.taxonomy import Taxonomy
from features.registry import Vocabulary

DAY = 86_400_000_000
HOUR = 3_600_000_000
SESSION_GAP = 30 * 60 * 1_000_000


def reference_features(events: list[tuple[int, str, str]], created: int, as_of: int, taxonomy: Taxonomy,
                       vocab: Vocabulary) -> dict[str, float]:
    """events: (ts_us, type, channel) of one lead, in any order; times in UTC microseconds."""
    deep = vocab.deep_level
    inbound_all = sorted(ts for ts, t, _ in events if taxonomy.types[t].direction == "inbound")
    E = sorted((ts, taxonomy.stage_level(t), c) for ts, t, c in events
               if taxonomy.types[t].direction == "inbound" and ts < as_of)
    O = sorted(ts for ts, t, _ in events if taxonomy.types[t].direction == "outbound" and ts < as_of)
    nan = math.nan

    def since(ts: int | None) -> float:
        return nan if ts is None else (as_of - ts) / DAY

    def last(pred) -> int | None:  # noqa: ANN001
        hits = [ts for ts, lvl, ch in E if pred(lvl, ch)]
        return max(hits) if hits else None

    f: dict[str, float] = {
        "days_since_last_event": since(E[-1][0] if E else None),
        "days_since_first_event": since(E[0][0] if E else None),
        "days_since_created": (as_of - created) / DAY,
    }
    for level, stage in enumerate(vocab.stages, start=1):
        f[f"days_since_{stage}"] = since(last(lambda lvl, ch, level=level: lvl == level))
    for channel in vocab.channels:
        f[f"days_since_channel_{channel}"] = since(last(lambda lvl, ch, channel=channel: ch == channel))

    f["events_total"] = len(E)
    for w in (7, 30, 90):
        f[f"events_{w}d"] = sum(1 for ts, _, _ in E if ts >= as_of - w * DAY)
    f["active_days"] = len({ts // DAY for ts, _, _ in E})
    f["active_days_30d"] = len({ts // DAY for ts, _, _ in E if ts >= as_of - 30 * DAY})
    starts = [ts for i, (ts, _, _) in enumerate(E) if i == 0 or ts - E[i - 1][0] >= SESSION_GAP]
    f["sessions"] = len(starts)
    f["return_visits"] = max(len(starts) - 1, 0)
    gaps = [(b - a) / DAY for a, b in zip(starts, starts[1:], strict=False)]
    mean = sum(gaps) / len(gaps) if gaps else nan
    f["visit_gap_mean_days"] = mean
    f["visit_gap_cv"] = float(np.std(gaps)) / mean if len(gaps) >= 2 and mean > 0 else nan

    deepest = max((lvl for _, lvl, _ in E), default=0)
    f["deepest_stage"] = deepest
    f["days_since_deepest_stage_reached"] = since(min(ts for ts, lvl, _ in E if lvl == deepest) if E else None)
    for level, stage in enumerate(vocab.stages, start=1):
        f[f"events_{stage}"] = sum(1 for _, lvl, _ in E if lvl == level)
    f["distinct_channels"] = len({ch for _, _, ch in E})
    deep_times = [ts for ts, lvl, _ in E if lvl >= deep]
    f["days_first_touch_to_deep"] = (min(deep_times) - E[0][0]) / DAY if deep_times else nan
    recent = [lvl for ts, lvl, _ in E if ts >= as_of - 30 * DAY]
    f["share_deep_30d"] = sum(1 for lvl in recent if lvl >= deep) / len(recent) if recent else nan

    for d in (7, 14):
        if not E:
            f[f"momentum_{d}d"] = nan
            continue
        n_recent = sum(1 for ts, _, _ in E if ts >= as_of - d * DAY)
        prior = len(E) - n_recent
        prior_days = max((as_of - d * DAY - E[0][0]) / DAY, d)
        prior_rate = prior / prior_days if prior > 0 else 0.0
        f[f"momentum_{d}d"] = math.log((n_recent / d + 0.1) / (prior_rate + 0.1))
    f["days_since_deep_action"] = since(max(deep_times) if deep_times else None)

    answers = []
    for o in O:
        later = [ts for ts in inbound_all if ts >= o]
        if later and later[0] < as_of:
            answers.append((later[0] - o) / HOUR)
    f["outbound_touches"] = len(O)
    f["answered_share"] = len(answers) / len(O) if O else nan
    f["answer_hours_mean"] = sum(answers) / len(answers) if answers else nan
    f["touches_since_last_answer"] = len(O) - len(answers)

    def business(ts: int) -> bool:
        weekday = (ts // DAY + 3) % 7
        hour = (ts % DAY) // HOUR
        return weekday < 5 and 8 <= hour < 18

    f["share_business_hours"] = sum(business(ts) for ts, _, _ in E) / len(E) if E else nan
    f["share_weekend"] = sum(((ts // DAY + 3) % 7) >= 5 for ts, _, _ in E) / len(E) if E else nan
    return f
