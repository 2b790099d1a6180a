"""Out-of-time splits: train on the past, validate on the future, never the same lead on both sides.

Leads are assigned to one side by when they arrived (their first snapshot): the latest share of
leads (counted in leads, not in distinct arrival times) is the validation part, with all their snapshots. Leads that arrived at least one horizon
before the cutoff are the training part, with their snapshots whose horizon ends before the cutoff
(a gap of one horizon: no training label was decided by feedback given during validation). Leads
arriving inside the gap are left out. Splitting by arrival rather than dropping validation leads
from training matters: leads without an answer have snapshots up to the end of the data, so
dropping them would train only on leads sales had already answered.

The validation part is itself split by lead (a seeded hash of the id) into a *fit* half (early stopping, calibration) and an
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
    fit_half: np.ndarray  # of the validation leads: early stopping, model choice and calibration
    eval_half: np.ndarray  # of the validation leads: the held-out figures, never fitted on
    out_of_time: bool
    cutoff: pd.Timestamp | None  # first as-of time of the validation part
    description: str


def in_fit_half(leads: pd.Series, seed: int) -> np.ndarray:
    """Whether each lead belongs to the *fit* half of a validation part: a seeded hash of its id.

    A hash rather than a shuffle, so that a lead's half does not depend on which other leads the
    data holds: the same seed puts it on the same side when the data has grown (promotion rebuilds
    a bundle's evaluation window on newer data and must know which leads the bundle was fitted on).
    """
    key = f"prospect{seed:08d}"[-16:]
    hashed = pd.util.hash_array(leads.astype(str).to_numpy(dtype=object), hash_key=key)
    return (hashed % 2 == 0) if len(leads) else np.zeros(0, dtype=bool)


def _counts(snapshots: pd.DataFrame, mask: np.ndarray) -> str:
    return f"{snapshots.loc[mask, 'lead_id'].nunique():,} leads ({int(mask.sum()):,} snapshots)"


def split_snapshots(snapshots: pd.DataFrame, horizon_days: float = 30.0, valid_share: float = 0.25,
                    seed: int = 0, random: bool = False, cutoff: pd.Timestamp | None = None) -> Split:
    """Masks for train / fit / eval over ``snapshots`` (lead_id, as_of, label).

    The validation part is the latest ``valid_share`` of *leads* by arrival (not of distinct
    arrival times: on day-granular exports a few sparse late days would otherwise hold far fewer
    leads than asked); leads arriving at the same moment as the cutoff lead all go to validation.
    ``cutoff`` imposes a cutoff saved earlier (rebuilding a bundle's evaluation window).
    ``random`` splits leads at random even when the data has timestamps -- only to show, side by
    side, how much rosier a split that ignores time looks.
    """
    as_of = pd.DatetimeIndex(snapshots["as_of"])
    labels = snapshots["label"].to_numpy()
    leads = snapshots["lead_id"]
    fit_half = in_fit_half(leads, seed)
    if as_of.nunique() > 1 and not random:
        arrival = pd.DatetimeIndex(pd.Series(as_of, index=snapshots.index).groupby(leads.to_numpy()).transform("min"))
        if cutoff is None:
            by_lead = np.sort(pd.Series(as_of).groupby(leads.to_numpy()).min().to_numpy())
            cutoff = pd.Timestamp(by_lead[min(int(len(by_lead) * (1 - valid_share)), len(by_lead) - 1)])
        horizon = pd.Timedelta(days=horizon_days)
        valid = np.asarray(arrival >= cutoff)
        train = np.asarray((arrival + horizon <= cutoff) & (as_of + horizon <= cutoff))
        gap = ~valid & ~np.asarray(arrival + horizon <= cutoff)
        text = (f"out of time: train on {_counts(snapshots, train)} that arrived before {(cutoff - horizon):%Y-%m-%d} "
                f"(as-of times up to then); validate on {_counts(snapshots, valid)} that arrived from "
                f"{cutoff:%Y-%m-%d}, the latest {valid_share:.0%} of leads; {_counts(snapshots, gap)} arriving in "
                f"the {horizon_days:g}-day gap left out; no lead on both sides")
        return Split(train, valid & fit_half, valid & ~fit_half, True, cutoff, text)
    lead_label = pd.Series(labels).groupby(leads.to_numpy()).max()
    train_ids, valid_ids = train_test_split(lead_label.index.to_numpy(), test_size=valid_share, random_state=seed,
                                            stratify=lead_label.to_numpy() if lead_label.nunique() > 1 else None)
    valid = leads.isin(set(valid_ids)).to_numpy()
    text = ("NOT out of time: leads are split at random (stratified by outcome)"
            + ("" if random else ", because the data has no timestamps")
            + f"; train on {_counts(snapshots, ~valid)}, validate on {_counts(snapshots, valid)}")
    return Split(~valid, valid & fit_half, valid & ~fit_half, False, None, text)
