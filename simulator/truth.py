"""The true probability behind the simulator's labels, for any (lead, as-of time) snapshot.

A snapshot's label is "sales sends `prospect` feedback within the horizon after the as-of time".
Under the simulator that happens when the lead converts on some day ``c`` (daily hazard from fit
and the intent curve), sales answers ``d`` days later (uniform between DELAY_MIN and DELAY_MAX),
the answer lands inside the horizon, and sales does not miss it (FEEDBACK_FLIP).

The probability is the Bayes-optimal one given each lead's *latent profile* -- its fit and its
intent curve -- and what the snapshot itself implies: no answer has arrived yet. It sums over the
conversion day and the answer delay exactly. It does not condition on the conversion draw itself
(whether the coin already came up "converted" a few days ago): that draw is outcome noise no data
reveals, so conditioning on it would set a ceiling no model could approach. Benchmarks use the AUC
of these probabilities as the ceiling for a model of the observable data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.funnel import DELAY_MAX, DELAY_MIN, FEEDBACK_FLIP, daily_hazard, intent_curve

CHUNK = 50_000


def _answer_delay_cdf(days: np.ndarray) -> np.ndarray:
    """P(answer delay <= days)."""
    return np.clip((days - DELAY_MIN) / (DELAY_MAX - DELAY_MIN), 0.0, 1.0)


def prospect_probability(truth: pd.DataFrame, lead_ids: pd.Series | np.ndarray, as_of: pd.Series | pd.DatetimeIndex,
                         horizon_days: int = 30) -> np.ndarray:
    """Return P(prospect feedback in (as_of, as_of + horizon] | latent profile, no answer by as_of)."""
    t = truth.set_index("lead_id").loc[np.asarray(lead_ids)]
    as_of = pd.DatetimeIndex(as_of).as_unit("us")
    t_a = ((as_of - pd.DatetimeIndex(t["day0"]).as_unit("us")) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    out = np.empty(len(t))
    for lo in range(0, len(t), CHUNK):
        hi = min(lo + CHUNK, len(t))
        out[lo:hi] = _chunk(t.iloc[lo:hi], t_a[lo:hi], horizon_days)
    return out


def _chunk(t: pd.DataFrame, t_a: np.ndarray, horizon_days: int) -> np.ndarray:
    last_day = int(np.ceil(t_a.max())) + horizon_days + 1
    days = np.arange(max(last_day, 1), dtype=np.float64)
    z = intent_curve(t["z0"].to_numpy(), t["decay"].to_numpy(), t["amp"].to_numpy(), t["peak"].to_numpy(),
                     t["width"].to_numpy(), days)
    shift = t["hazard_shift"].to_numpy() if "hazard_shift" in t else 0.0
    hazard = daily_hazard(t["fit"].to_numpy(), z, shift) * (days[None, :] < t["window_days"].to_numpy()[:, None])
    survive = np.cumprod(np.hstack([np.ones((len(t), 1)), 1.0 - hazard[:, :-1]]), axis=1)
    p_convert_on = hazard * survive  # P(conversion on day c), from creation
    never = survive[:, -1] * (1.0 - hazard[:, -1])
    since = t_a[:, None] - days[None, :]  # days from each possible conversion day to as-of
    # the answer to a conversion on day c is still to come at as-of, and comes within the horizon
    not_yet = 1.0 - _answer_delay_cdf(since)
    in_horizon = _answer_delay_cdf(since + horizon_days) - _answer_delay_cdf(since)
    no_answer_yet = (p_convert_on * not_yet).sum(axis=1) + never
    answered_in_horizon = (p_convert_on * in_horizon).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (1.0 - FEEDBACK_FLIP) * answered_in_horizon / no_answer_yet
    return np.nan_to_num(p, nan=0.0)
