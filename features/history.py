"""Attribute values as they were at each as-of time, from the attribute history (CRM property history).

A lead attribute with history takes, at an as-of time, the last value recorded strictly before it,
and is unknown before its first record: a budget typed in by sales after the first call must not
reach snapshots taken before that call. An attribute without history for a lead keeps the lead's
one static value (what the leads table holds), so sources without history behave as before.

The lookup is compiled and vectorised over (lead, attribute, time): a linear counting sort groups the
history rows by lead and attribute (keeping their time order), then each snapshot binary-searches
(``searchsorted``) its lead's segment of each attribute for its as-of time. Five attributes for a
million snapshots cost a fraction of the behaviour scan.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd

from features.encode import factorize

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


def _codes(values: pd.Series | np.ndarray) -> tuple[np.ndarray, list]:
    """Integer codes (-1 for missing) and the values they stand for; free for categorical columns.

    History's attribute and value columns hold a handful of distinct texts over millions of rows, so
    :func:`features.dataset.load_frames` reads them as categories; hashing them again would cost
    more than the whole as-of lookup.
    """
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        return values.cat.codes.to_numpy(np.int64), list(values.cat.categories)
    return factorize(values) if len(values) else (np.zeros(0, np.int64), [])


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
    attr_code, attr_names = _codes(attribute)
    value_code, distinct = _codes(value)
    names = [str(a) for a in attr_names]
    column_of = np.array([columns.get(a, -1) for a in names] + [-1], dtype=np.int64)
    # one row per attribute name: its reading of each distinct value; the extra last column is "missing"
    table = np.full((len(names) + 1, len(distinct) + 1), np.nan)
    numbers = pd.to_numeric(pd.Series(distinct, dtype=object), errors="coerce").to_numpy(np.float64)
    for k, name in enumerate(names):
        if name in categories:
            position = categories[name]
            table[k, :-1] = [position.get(str(v), np.nan) for v in distinct]
        elif name in columns:
            table[k, :-1] = numbers
    column = column_of[attr_code]
    value_out = table[attr_code, value_code]
    keep = (column >= 0) & (lead >= 0)
    if keep.all():
        return HistoryCodes(lead, column, np.asarray(ts_us, np.int64), value_out)
    return HistoryCodes(lead[keep], column[keep], np.asarray(ts_us, np.int64)[keep], value_out[keep])


def apply_as_of(matrix: np.ndarray, first_column: int, history: HistoryCodes, n_leads: int,
                snap_lead: np.ndarray, as_of: np.ndarray) -> None:
    """Overwrite the profile columns of ``matrix`` (row i = snapshot i) with the values as of each snapshot.

    Only (lead, attribute) pairs with history are touched: the rest keep the static value.
    """
    present = np.flatnonzero(np.bincount(history.column))
    compact = np.full(int(present.max()) + 1, -1, np.int64)
    compact[present] = np.arange(present.size)
    order, start = _group(history.lead, compact[history.column], history.ts_us, n_leads, present.size)
    _lookup(history.ts_us[order], history.value[order], start, present.size, first_column + present,
            np.asarray(snap_lead, np.int64), np.asarray(as_of, np.int64), matrix)


@nb.njit(cache=True, nogil=True)
def _group(lead: np.ndarray, column: np.ndarray, ts: np.ndarray, n_leads: int, n_columns: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Order rows by (lead, column, time) with a counting sort: ``start[g]..start[g + 1]`` is group g.

    Linear in the rows; rows that come in time order per lead (as the store reads them) stay so,
    and a group that does not is sorted on its own.
    """
    n_groups = n_leads * n_columns
    start = np.zeros(n_groups + 1, np.int64)
    for r in range(lead.size):
        start[lead[r] * n_columns + column[r] + 1] += 1
    for g in range(n_groups):
        start[g + 1] += start[g]
    fill = start[:-1].copy()
    order = np.empty(lead.size, np.int64)
    for r in range(lead.size):
        g = lead[r] * n_columns + column[r]
        order[fill[g]] = r
        fill[g] += 1
    for g in range(n_groups):
        lo, hi = start[g], start[g + 1]
        for k in range(lo + 1, hi):
            if ts[order[k]] < ts[order[k - 1]]:
                rows = order[lo:hi]
                order[lo:hi] = rows[np.argsort(ts[rows], kind="mergesort")]
                break
    return order, start


@nb.njit(cache=True, nogil=True)
def _lookup(ts: np.ndarray, value: np.ndarray, start: np.ndarray, n_columns: int, matrix_column: np.ndarray,
            snap_lead: np.ndarray, as_of: np.ndarray, matrix: np.ndarray) -> None:
    for i in range(snap_lead.size):
        for c in range(n_columns):
            g = snap_lead[i] * n_columns + c
            lo, hi = start[g], start[g + 1]
            if hi > lo:
                # side="left": a value written at the as-of moment itself is not yet known
                k = lo + np.searchsorted(ts[lo:hi], as_of[i])
                matrix[i, matrix_column[c]] = value[k - 1] if k > lo else np.nan


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
