"""Attribute values as they were at each as-of time, from the attribute history (CRM property history).

A lead attribute with history takes, at an as-of time, the last value recorded strictly before it,
and is unknown before its first record: a budget typed in by sales after the first call must not
reach snapshots taken before that call. An attribute without history for a lead keeps the lead's
one static value (what the leads table holds), so sources without history behave as before.

The lookup is vectorised per attribute: history rows sorted by (lead, time), one segment per lead
found with ``searchsorted``, then one binary search per snapshot inside its lead's segment. Ten
million snapshot-attribute lookups cost a fraction of the behaviour scan.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd

from features.encode import factorize
from features.events import sort_order

HISTORY_COLUMNS = ("lead_id", "attribute", "value", "recorded_at")


@dataclass(frozen=True)
class HistoryCodes:
    """History rows as arrays ready for the lookup: lead position, profile column, time, coded value."""

    lead: np.ndarray  # int64 position of the lead in the leads being featurised
    column: np.ndarray  # int64 position of the attribute among the profile columns
    ts_us: np.ndarray  # int64 UTC microseconds: when the value was written
    value: np.ndarray  # float64: category position or number; NaN when unknown or cleared

    def select(self, mask: np.ndarray, lead_offset: int = 0) -> HistoryCodes:
        return HistoryCodes(self.lead[mask] - lead_offset, self.column[mask], self.ts_us[mask], self.value[mask])


def encode_history(lead: np.ndarray, attribute: pd.Series | np.ndarray, value: pd.Series | np.ndarray,
                   ts_us: np.ndarray, columns: dict[str, int], categories: dict[str, dict[str, int]]
                   ) -> HistoryCodes:
    """Code history rows for the lookup.

    ``columns`` gives the profile column of each attribute the features use (rows of other attributes
    and of unknown leads, ``lead < 0``, are dropped); ``categories`` the category positions of the
    categorical ones. Values are text as the store keeps them; a categorical value the model never
    saw is unknown, as it is in the static path.
    """
    lead = np.asarray(lead, np.int64)
    attr_code, attr_names = factorize(attribute) if len(lead) else (np.zeros(0, np.int64), [])
    column_of = np.array([columns.get(str(a), -1) for a in attr_names] + [-1], dtype=np.int64)
    column = column_of[attr_code]
    keep = (column >= 0) & (lead >= 0)
    value_code, distinct = factorize(pd.Series(value)[keep]) if keep.any() else (np.zeros(0, np.int64), [])
    names = [str(a) for a in attr_names]
    # one row per attribute name: its reading of each distinct value; the extra last column is "missing"
    table = np.full((len(names) + 1, len(distinct) + 1), np.nan)
    numbers = pd.to_numeric(pd.Series(distinct, dtype=object), errors="coerce").to_numpy(np.float64)
    for k, name in enumerate(names):
        if name not in columns:
            continue
        if name in categories:
            position = categories[name]
            table[k, :-1] = [position.get(str(v), np.nan) for v in distinct]
        else:
            table[k, :-1] = numbers
    value_out = table[attr_code[keep], value_code]
    return HistoryCodes(lead[keep], column[keep], np.asarray(ts_us, np.int64)[keep], value_out)


def apply_as_of(matrix: np.ndarray, first_column: int, history: HistoryCodes, n_leads: int,
                snap_lead: np.ndarray, as_of: np.ndarray) -> None:
    """Overwrite the profile columns of ``matrix`` (row i = snapshot i) with the values as of each snapshot.

    Only (lead, attribute) pairs with history are touched: the rest keep the static value.
    """
    for column in np.unique(history.column):
        rows = np.flatnonzero(history.column == column)
        lead, ts = history.lead[rows], history.ts_us[rows]
        order = sort_order(lead, ts)  # cheap when the rows come sorted by lead and time, as the store reads them
        start = np.searchsorted(lead[order], np.arange(n_leads + 1), side="left")
        _lookup(ts[order], history.value[rows][order], start, np.asarray(snap_lead, np.int64),
                np.asarray(as_of, np.int64), matrix, first_column + int(column))


@nb.njit(cache=True, nogil=True)
def _lookup(ts: np.ndarray, value: np.ndarray, start: np.ndarray, snap_lead: np.ndarray, as_of: np.ndarray,
            matrix: np.ndarray, col: int) -> None:
    for i in range(snap_lead.size):
        lo = start[snap_lead[i]]
        hi = start[snap_lead[i] + 1]
        if hi > lo:
            # side="left": a value written at the as-of moment itself is not yet known
            k = lo + np.searchsorted(ts[lo:hi], as_of[i])
            matrix[i, col] = value[k - 1] if k > lo else np.nan


def values_as_of(lead: dict, history: pd.DataFrame, as_of_us: int) -> dict:
    """A lead's attributes as they were at ``as_of_us``: what criteria and a salesperson see for that moment.

    ``history`` holds this lead's rows (attribute, value, recorded_at in UTC microseconds). An attribute
    with history takes its last value recorded strictly before the moment (None before the first).
    """
    if history.empty:
        return lead
    out = dict(lead)
    known = history[history["recorded_at"].to_numpy(np.int64) < as_of_us]
    for attribute in history["attribute"].unique():
        rows = known[known["attribute"] == attribute]
        out[str(attribute)] = None if rows.empty else rows.loc[rows["recorded_at"].idxmax(), "value"]
    return out


def first_sales_touch(leads: pd.DataFrame, events: pd.DataFrame, feedback: pd.DataFrame,
                      inbound_types: Collection[str]) -> np.ndarray:
    """Per lead (in ``leads`` order), UTC microseconds of its first outbound event or sales answer; int64 max if none."""
    ids = pd.Index(leads["lead_id"])
    touch = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
    outbound = events[~events["type"].isin(list(inbound_types))]
    for frame in (outbound, feedback):
        if len(frame):
            code = ids.get_indexer(frame["lead_id"])
            ts = frame["ts"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
            np.minimum.at(touch, code[code >= 0], ts[code >= 0])
    return touch


def first_recorded_after_touch(history: pd.DataFrame, lead_ids: pd.Series, first_touch_us: np.ndarray
                               ) -> dict[str, float]:
    """For each attribute with history: the share of its leads whose first value was written at or after
    the lead's first sales touch (``first_touch_us`` per lead in ``lead_ids``; int64 max when never).

    A value that sales types in after talking to the lead tells the model that sales talked to it:
    scored before contact, such an attribute is mostly unknown, and its presence leaks the contact.
    """
    if history.empty:
        return {}
    recorded = pd.DatetimeIndex(history["recorded_at"]).as_unit("us").asi8
    first = pd.DataFrame({"lead_id": history["lead_id"].to_numpy(), "attribute": history["attribute"].to_numpy(),
                          "recorded": recorded}).groupby(["lead_id", "attribute"], sort=False)["recorded"].min()
    touch = pd.Series(first_touch_us, index=pd.Index(lead_ids)).reindex(first.index.get_level_values("lead_id"))
    late = first.to_numpy() >= touch.fillna(np.iinfo(np.int64).max).to_numpy(np.int64)
    shares = pd.Series(late, index=first.index.get_level_values("attribute")).groupby(level=0).mean()
    return {str(k): float(v) for k, v in shares.items()}
