"""Out-of-time splits: train on the past, validate on the future, never the same lead on both sides.

Leads are assigned to one side by when they arrived (their first snapshot): the latest share of
leads is the validation part, with all their snapshots. Leads that arrived at least one horizon
before the cutoff are the training part, with their snapshots whose horizon ends before the cutoff
(a gap of one horizon: no training label was decided by feedback given during validation). Leads
arriving inside the gap are left out. Splitting by arrival rather than dropping validation leads
from training matters: leads without an answer have snapshots up to the end of the data, so
dropping them would train only on leads sales had already answered.

The validation part is itself split by lead into a *fit* half (early stopping, calibration) and an
*eval* half (the reported figures). Data without timestamps (every snapshot at one nominal time)
cannot be split in time: it gets a stratified split by lead, and the split says plainly that it is
not out of time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # boolean masks over the snapshots
    fit: np.ndarray
    eval: np.ndarray
    out_of_time: bool
    cutoff: pd.Timestamp | None  # first as-of time of the validation part
    description: str


def _halves_by_lead(leads: pd.Series, mask: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the masked snapshots into two halves by lead, stratified on whether the lead ever converts."""
    ids = pd.Series(labels[mask]).groupby(leads[mask].to_numpy()).max()
    if len(ids) < 4 or ids.nunique() < 2 or ids.value_counts().min() < 2:
        first, _ = train_test_split(ids.index.to_numpy(), test_size=0.5, random_state=seed)
    else:
        first, _ = train_test_split(ids.index.to_numpy(), test_size=0.5, random_state=seed, stratify=ids.to_numpy())
    in_first = leads.isin(set(first)).to_numpy()
    return mask & in_first, mask & ~in_first


def split_snapshots(snapshots: pd.DataFrame, horizon_days: float = 30.0, valid_share: float = 0.25,
                    seed: int = 0, random: bool = False) -> Split:
    """Masks for train / fit / eval over ``snapshots`` (lead_id, as_of, label).

    ``random`` splits leads at random even when the data has timestamps -- only to show, side by
    side, how much rosier a split that ignores time looks.
    """
    as_of = pd.DatetimeIndex(snapshots["as_of"])
    labels = snapshots["label"].to_numpy()
    leads = snapshots["lead_id"]
    if as_of.nunique() > 1 and not random:
        arrival = pd.Series(as_of, index=snapshots.index).groupby(leads.to_numpy()).transform("min")
        arrival = pd.DatetimeIndex(arrival)
        cutoff = pd.DatetimeIndex(arrival.unique()).sort_values()[int(arrival.nunique() * (1 - valid_share))]
        horizon = pd.Timedelta(days=horizon_days)
        valid = np.asarray(arrival >= cutoff)
        train = np.asarray((arrival + horizon <= cutoff) & (as_of + horizon <= cutoff))
        fit, ev = _halves_by_lead(leads, valid, labels, seed)
        text = (f"out of time: train on leads that arrived before {(cutoff - horizon):%Y-%m-%d} (as-of times up to "
                f"then), validate on leads that arrived from {cutoff:%Y-%m-%d} (a gap of {horizon_days:g} days); "
                "no lead on both sides")
        return Split(train, fit, ev, True, cutoff, text)
    lead_label = pd.Series(labels).groupby(leads.to_numpy()).max()
    train_ids, valid_ids = train_test_split(lead_label.index.to_numpy(), test_size=valid_share, random_state=seed,
                                            stratify=lead_label.to_numpy() if lead_label.nunique() > 1 else None)
    valid = leads.isin(set(valid_ids)).to_numpy()
    fit, ev = _halves_by_lead(leads, valid, labels, seed)
    text = ("NOT out of time: leads are split at random (stratified by outcome)"
            + ("" if random else ", because the data has no timestamps"))
    return Split(~valid, fit, ev, False, None, text)
