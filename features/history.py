"""Attribute values as they were at each as-of time, from the attribute history (CRM property history).

A lead attribute with history takes, at an as-of time, the last value recorded strictly before it,
and is unknown before its first record: a budget typed in by sales after the first call must not
reach snapshots taken before that call. An attribute without history for a lead keeps the lead's
one static value (what the leads table holds), so sources without history behave as before.

The lookup walks each lead's history and its snapshots together in time order, as the behaviour
scan walks events: one compiled pass over the history rows (which the store reads grouped by lead
in time order; others are sorted once) and one over the snapshots, whatever their number per lead.
Five attributes with three changes each for a million leads cost a fraction of the behaviour scan.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

import numba as nb
import numpy as np
import pandas as pd

from contract.lead_record import LeadRecord
from features.encode import factorize
from features.event_order import sort_order


class HistoryRows(Protocol):
    """History rows by column: a DataFrame, or the store's LeadHistory arrays."""

    attribute: object
    value: object
    recorded_at: object


SMALL = 256
"""Up to this many rows (one lead's history, as serving reads it) are coded with a dict, not Arrow."""


@dataclass(frozen=True)
class HistoryCodes:
    """History rows as codes ready for the lookup, and the small tables that read them.

    Per row: the lead's position, the attribute's code, the value's code, the time. Per attribute
    code: its profile column (-1 when the features do not use it) and its reading of each value code
    (a category position or a number; NaN when the model never saw it).
    """

    lead: np.ndarray  # int64 position of the lead in the leads being featurised; -1 when unknown
    attribute: np.ndarray  # integer code of the attribute name; -1 when missing
    value: np.ndarray  # integer code of the value text; -1 when missing (cleared)
    ts_us: np.ndarray  # int64 UTC microseconds: when the value was written
    column: np.ndarray  # int64 profile column per attribute code; -1 when not a feature
    reading: np.ndarray  # float64 [attribute code, value code]

    def select(self, mask: np.ndarray, lead_offset: int = 0) -> HistoryCodes:
        return HistoryCodes(self.lead[mask] - lead_offset, self.attribute[mask], self.value[mask], self.ts_us[mask],
                            self.column, self.reading)


def _codes(values: pd.Series | np.ndarray) -> tuple[np.ndarray, list]:
    """Integer codes (-1 for missing) and the values they stand for; free for categorical columns.

    History's attribute and value columns hold a handful of distinct texts over millions of rows, so
    :func:`features.dataset.load_frames` reads them as categories; hashing them again would cost
    more than the whole as-of lookup.
    """
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), list(values.cat.categories)
    if len(values) <= SMALL:  # one lead's rows when serving: a dict costs less than setting up Arrow
        seen: dict = {}
        codes = [-1 if pd.isna(v) else seen.setdefault(v, len(seen)) for v in values]
        return np.array(codes, dtype=np.int64), list(seen)
    return factorize(values)


def encode_history(lead: np.ndarray, attribute: pd.Series | np.ndarray, value: pd.Series | np.ndarray,
                   ts_us: np.ndarray, columns: dict[str, int], categories: dict[str, dict[str, int]]
                   ) -> HistoryCodes:
    """Code history rows for the lookup.

    ``columns`` gives the profile column of each attribute the features use (rows of other attributes
    and of unknown leads, ``lead < 0``, are ignored); ``categories`` the category positions of the
    categorical ones. Values are text as the store keeps them; a categorical value the model never
    saw is unknown, as it is in the static path.
    """
    attr_code, attr_names = _codes(attribute)
    value_code, distinct = _codes(value)
    names = [str(a) for a in attr_names]
    reading = np.full((max(len(names), 1), max(len(distinct), 1)), np.nan)
    for k, name in enumerate(names):
        if name in categories:
            position = categories[name]
            reading[k, :len(distinct)] = [position.get(str(v), np.nan) for v in distinct]
        elif name in columns:
            reading[k, :len(distinct)] = pd.to_numeric(np.array(distinct, dtype=object), errors="coerce")
    return HistoryCodes(np.asarray(lead, np.int64), attr_code, value_code, np.asarray(ts_us, np.int64),
                        np.array([columns.get(a, -1) for a in names], dtype=np.int64), reading)


def apply_as_of(matrix: np.ndarray, first_column: int, history: HistoryCodes, n_leads: int,
                snap_lead: np.ndarray, as_of: np.ndarray, snap_row: np.ndarray) -> None:
    """Overwrite the profile columns of ``matrix`` with each attribute's value as of each snapshot.

    Snapshots come sorted by (lead, as-of time), snapshot ``s`` being row ``snap_row[s]`` of the
    matrix (the order the behaviour scan walks). Only (lead, attribute) pairs with history are
    touched: the others keep the static value.
    """
    used = np.flatnonzero(history.column >= 0)
    if used.size == 0:
        return
    slot = np.full(history.column.size, -1, np.int64)  # attribute code -> position among the used ones
    slot[used] = np.arange(used.size)
    h = history
    start, end, has = _segments(h.lead, h.attribute, h.ts_us, slot, n_leads, used.size)
    if start[0] == -2:  # not grouped by lead in time order (the store reads it so): sort once
        order = sort_order(np.where(h.lead >= 0, h.lead, n_leads - 1), h.ts_us)  # unknown leads' rows are skipped
        h = HistoryCodes(h.lead[order], h.attribute[order], h.value[order], h.ts_us[order], h.column, h.reading)
        start, end, has = _segments(h.lead, h.attribute, h.ts_us, slot, n_leads, used.size)
    _walk(h.lead, h.attribute, h.value, h.ts_us, slot, h.reading, start, end, has,
          first_column + history.column[used], np.asarray(snap_lead, np.int64), np.asarray(as_of, np.int64),
          np.asarray(snap_row, np.int64), matrix)


@nb.njit(cache=True, nogil=True)
def _segments(lead: np.ndarray, attribute: np.ndarray, ts: np.ndarray, slot: np.ndarray, n_leads: int,
              n_slots: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each lead's run of rows ``start[l]..end[l]`` and whether it has history per used attribute.

    Returns ``start[0] == -2`` when a lead's rows are not one run in time order.
    """
    start = np.full(n_leads, -1, np.int64)
    end = np.zeros(n_leads, np.int64)
    has = np.zeros(n_leads * n_slots, np.bool_)
    previous = -1
    for r in range(lead.size):
        a = attribute[r]
        if lead[r] < 0 or a < 0 or slot[a] < 0:
            continue
        current = lead[r]
        if current != previous:
            if start[current] >= 0:  # this lead already had a run
                start[0] = -2
                return start, end, has
            start[current] = r
        elif ts[r] < ts[end[current] - 1]:
            start[0] = -2
            return start, end, has
        end[current] = r + 1
        has[current * n_slots + slot[a]] = True
        previous = current
    return start, end, has


@nb.njit(cache=True, nogil=True)
def _walk(lead: np.ndarray, attribute: np.ndarray, value: np.ndarray, ts: np.ndarray, slot: np.ndarray,
          reading: np.ndarray, start: np.ndarray, end: np.ndarray, has: np.ndarray, matrix_column: np.ndarray,
          snap_lead: np.ndarray, as_of: np.ndarray, snap_row: np.ndarray, matrix: np.ndarray) -> None:
    """Walk each lead's history and its snapshots together in time order, like the behaviour scan."""
    n_slots = matrix_column.size
    current = np.full(n_slots, np.nan)
    h, h_end = 0, 0
    for s in range(snap_lead.size):
        l = snap_lead[s]
        if s == 0 or l != snap_lead[s - 1]:
            current[:] = np.nan
            h, h_end = (start[l], end[l]) if start[l] >= 0 else (0, 0)
        # strictly before: a value written at the as-of moment itself is not yet known
        while h < h_end:
            a = attribute[h]
            if lead[h] == l and a >= 0 and slot[a] >= 0:  # rows the features do not use may sit in a run
                if ts[h] >= as_of[s]:
                    break
                current[slot[a]] = reading[a, value[h]] if value[h] >= 0 else np.nan
            h += 1
        for c in range(n_slots):
            if has[l * n_slots + c]:
                matrix[snap_row[s], matrix_column[c]] = current[c]


def profiles_as_of(leads: list[LeadRecord], position: np.ndarray, history: HistoryRows, as_of_us: int
                   ) -> list[dict]:
    """Every lead's profile (``source`` and attributes) as it was at ``as_of_us``: what criteria look at.

    ``position`` gives each history row's lead in ``leads`` (-1 for none). An attribute with history
    takes its last value recorded strictly before the moment (None before the first). One pass over
    all rows, not a sort, a dict copy and a record per lead: those cost a 1,000-lead batch more than
    its model.
    """
    profiles = [lead.profile for lead in leads]
    recorded = np.asarray(history.recorded_at, np.int64)
    if recorded.size == 0:
        return profiles
    position = np.asarray(position, np.int64)
    attributes = [str(a) for a in np.asarray(history.attribute, dtype=object).tolist()]
    values = np.asarray(history.value, dtype=object)
    for p, a in zip(position.tolist(), attributes):
        if p >= 0:
            profiles[p][a] = None  # an attribute with history is unknown before its first value
    earlier = np.flatnonzero((recorded < as_of_us) & (position >= 0))
    # by lead, then time; stable, so values recorded at the same moment apply in the given order
    earlier = earlier[np.lexsort((recorded[earlier], position[earlier]))]
    for p, k, v in zip(position[earlier].tolist(), earlier.tolist(), values[earlier].tolist()):
        profiles[p][attributes[k]] = v
    return profiles


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
    position = pd.Index(lead_ids).get_indexer(first.index.get_level_values("lead_id"))
    touch = np.append(np.asarray(first_touch_us, np.int64), np.iinfo(np.int64).max)[position]  # -1: never
    late = first.to_numpy() >= touch
    shares = pd.Series(late, index=first.index.get_level_values("attribute")).groupby(level=0).mean()
    return {str(k): float(v) for k, v in shares.items()}
