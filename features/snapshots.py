"""Training examples: (lead, as-of time) snapshots labelled by what sales said within the horizon.

As-of times run on a cadence from the lead's first touch until its outcome (sales' first answer
about it) or the end of the observed data. The label is 1 when sales marked the lead ``prospect``
within the horizon after the as-of time. A ``not_prospect`` answer, or a whole horizon observed
without an answer, is a 0. A snapshot whose horizon reaches past the observed data is *censored*
and left out, whatever sales has said so far: calling the unanswered ones negative would teach the
model that recent leads never convert, and keeping only the answered ones would add positives
exactly in the most recent (out-of-time) window. How many were left out is in
``snapshots.attrs["censored"]``.

Data without timestamps (one row a lead, every lead created at the same nominal moment) has no
horizon to observe: it gets exactly one snapshot per lead at its creation, labelled by its answer.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from contract.timeunits import US_PER_DAY, to_micros


@dataclass(frozen=True)
class SnapshotConfig:
    cadence_days: float = 7.0
    horizon_days: float = 30.0


def build_snapshots(leads: pd.DataFrame, events: pd.DataFrame, feedback: pd.DataFrame,
                    config: SnapshotConfig = SnapshotConfig(), observed_until: pd.Timestamp | None = None,
                    inbound_types: Collection[str] | None = None) -> pd.DataFrame:
    """Return lead_id, as_of and label (0/1) for every labelled snapshot, ordered by lead then as_of.

    That order is the one the feature scan walks, so vectorising the result needs no sort.

    ``observed_until`` is the end of the data window; by default the latest event or answer.
    ``inbound_types`` limits the events that count as a first touch (outbound touches are ours).
    """
    lead_ids = pd.Index(leads["lead_id"])
    created = to_micros(leads["created_at"], "leads.created_at")
    first_touch = created.copy()
    ev = events if inbound_types is None else events[events["type"].isin(list(inbound_types))]
    if len(ev):
        codes = lead_ids.get_indexer(ev["lead_id"])
        ts = to_micros(ev["ts"], "events.ts")
        known = codes >= 0
        np.minimum.at(first_touch, codes[known], ts[known])

    never = np.iinfo(np.int64).max
    first_answer = np.full(len(leads), never, dtype=np.int64)
    first_prospect = np.full(len(leads), never, dtype=np.int64)
    if len(feedback):
        codes = lead_ids.get_indexer(feedback["lead_id"])
        ts = to_micros(feedback["ts"], "feedback.ts")
        known = codes >= 0
        np.minimum.at(first_answer, codes[known], ts[known])
        positive = known & (feedback["outcome"].to_numpy() == "prospect")
        np.minimum.at(first_prospect, codes[positive], ts[positive])

    if observed_until is None:
        candidates = [created.max(initial=0)]
        if len(events):
            candidates.append(to_micros(events["ts"], "events.ts").max())
        if len(feedback):
            candidates.append(to_micros(feedback["ts"], "feedback.ts").max())
        end_of_data = int(max(candidates))
    else:
        end_of_data = int(to_micros(pd.DatetimeIndex([observed_until]), "observed_until")[0])

    cadence = int(config.cadence_days * US_PER_DAY)
    horizon = int(config.horizon_days * US_PER_DAY)
    stop = np.minimum(first_answer, end_of_data)
    count = np.where(stop > first_touch, -(-(stop - first_touch) // cadence), 0)
    lead_code = np.repeat(np.arange(len(leads)), count)
    step = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    as_of = first_touch[lead_code] + step * cadence

    horizon_end = as_of + horizon
    prospect = first_prospect[lead_code] <= horizon_end
    answered = first_answer[lead_code] <= horizon_end
    observed = horizon_end <= end_of_data
    untimed = len(leads) > 0 and created.min() == created.max() and end_of_data - created.min() < horizon
    labelled = observed | (answered if untimed else False)
    out = pd.DataFrame({
        "lead_id": lead_ids.to_numpy()[lead_code[labelled]],
        "as_of": pd.to_datetime(as_of[labelled], unit="us", utc=True),
        "label": prospect[labelled].astype(np.int8),
    })
    out.attrs["censored"] = int((~labelled).sum())
    return out
