"""Attribute history for the simulated funnel: which criteria the lead gave on its form, which sales learned later.

In a real CRM the explicit criteria are rarely known when a lead arrives: some come from the form,
the rest are typed in by sales after the first call. The simulator's leads table holds each lead's
values as they are at the end (what a CRM export shows today); this module says when each became
known, as a property-history export would, and writes the same moments into the ground truth
(``<attribute>_known_at``), so tests can check that no snapshot sees a value before it was written.

A share of the timelines sales learned was first given differently on the form and then revised:
those leads have two history rows for it (the form's answer at creation, the final one after the call).
It uses its own random stream, so leads, events and feedback stay the same bytes with or without history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from contract.taxonomy import Taxonomy
from features.history import first_sales_touch

FORM_SHARE = {"budget": 0.6, "authority": 0.7, "need": 0.6, "timeline": 0.55}
"""Share of each criterion's recorded values that the lead gave on the form, at creation; sales learns the rest."""
REVISED_TIMELINE = 0.35
"""Share of the timelines sales learned that the form had first recorded with another answer."""
FORM_DELAY_S = (1, 120)
SALES_DELAY_H = (0.5, 48.0)
"""Sales writes what it learned between half an hour and two days after its first touch."""


def attribute_history(rng: np.random.Generator, leads: pd.DataFrame, events: pd.DataFrame, feedback: pd.DataFrame,
                      end: pd.Timestamp, taxonomy: Taxonomy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the history rows (lead_id, attribute, value, recorded_at) and per lead ``<attribute>_known_at``."""
    n = len(leads)
    created = leads["created_at"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
    last = end.value // 1000 - 1_000_000  # one second before the simulation ends (value is in ns)
    touch = first_sales_touch(leads, events, feedback, taxonomy.inbound_types)
    sales_at = np.minimum(touch, last - int(SALES_DELAY_H[1] * 3.6e9)) + (
        rng.uniform(*SALES_DELAY_H, n) * 3.6e9).astype(np.int64)
    sales_at = np.maximum(sales_at, created + 1)
    form_at = created + (rng.uniform(*FORM_DELAY_S, n) * 1e6).astype(np.int64)
    parts, known = [], {}
    for attribute, share in FORM_SHARE.items():
        value = leads[attribute].to_numpy(dtype=object)
        recorded = pd.notna(value)
        from_form = rng.random(n) < share
        at = np.where(from_form, form_at, sales_at)
        parts.append(pd.DataFrame({"lead": np.flatnonzero(recorded), "attribute": attribute,
                                   "value": value[recorded], "recorded_at": at[recorded]}))
        known[f"{attribute}_known_at"] = pd.to_datetime(np.where(recorded, at, 0), unit="us", utc=True).where(recorded)
        if attribute == "timeline":
            revised = recorded & ~from_form & (rng.random(n) < REVISED_TIMELINE)
            choices = np.array(sorted(set(value[recorded])), dtype=object)
            if len(choices) < 2:
                continue
            # another answer than the final one, uniformly among the others
            pick = rng.integers(0, len(choices) - 1, n)
            final = np.searchsorted(choices, np.where(recorded, value, choices[0]))
            other = choices[pick + (pick >= final)]
            parts.append(pd.DataFrame({"lead": np.flatnonzero(revised), "attribute": attribute,
                                       "value": other[revised], "recorded_at": form_at[revised]}))
    rows = pd.concat(parts, ignore_index=True).sort_values(["lead", "recorded_at"], kind="stable")
    history = pd.DataFrame({
        "lead_id": leads["lead_id"].to_numpy()[rows["lead"].to_numpy()],
        "attribute": rows["attribute"].to_numpy(),
        "value": rows["value"].astype(str).to_numpy(),
        "recorded_at": pd.to_datetime(rows["recorded_at"].to_numpy(), unit="us", utc=True),
    })
    return history, pd.DataFrame(known, index=leads.index)
