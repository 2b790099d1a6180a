"""The shift scenario: behaviour and lead mix change at a given moment, after a model was trained.

From ``at`` on, three things move, each visible in one named feature, so a monitor can be checked
against a known answer:

- leads act in the evening instead of in office hours (``share_business_hours``);
- a trade-fair campaign brings most new leads in through ``events`` (``origin``);
- new leads come from small companies (``attr_company_size``).

Nothing else changes: the latent intent, conversions and feedback are the same draws as without the
shift, so the unshifted and shifted runs of one seed differ only in these three respects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHIFTED_FEATURES = ("share_business_hours", "origin", "attr_company_size")
OUTBOUND = ("email_sent", "call_attempt", "linkedin_message_sent")
"""Our own touches keep their office hours: only what the leads do moves."""
EVENING_HOURS = (19.0, 23.5)
NEW_ORIGIN, NEW_ORIGIN_SHARE = "events", 0.7
SMALL_SIZES, SMALL_P = ("1-10", "11-50"), (0.6, 0.4)


def apply_shift(leads: pd.DataFrame, events: pd.DataFrame, at: pd.Timestamp,
                rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leads and events of one simulated chunk with the shift applied from ``at`` on."""
    leads = leads.copy()
    new = (leads["created_at"] >= at).to_numpy()
    campaign = new & (rng.random(len(leads)) < NEW_ORIGIN_SHARE)
    leads.loc[campaign, "source"] = NEW_ORIGIN
    leads.loc[new, "company_size"] = rng.choice(SMALL_SIZES, int(new.sum()), p=SMALL_P)

    events = events.copy()
    moved = ((events["ts"] >= at) & ~events["type"].isin(OUTBOUND)).to_numpy()
    hours = rng.uniform(*EVENING_HOURS, int(moved.sum()))
    evening = events.loc[moved, "ts"].dt.floor("D") + pd.to_timedelta(hours, unit="h")
    created = events.loc[moved, "lead_id"].map(leads.set_index("lead_id")["created_at"])
    # an evening action never lands before the lead existed, nor before the shift itself
    evening = np.maximum(evening, np.maximum(created, at) + pd.Timedelta(minutes=1))
    events.loc[moved, "ts"] = evening.dt.as_unit("us")
    events = events.sort_values(["lead_id", "ts"], kind="stable").reset_index(drop=True)
    return leads, events
