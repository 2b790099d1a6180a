"""The exact probability behind the simulator's labels, for any (lead, as-of time) snapshot.

A snapshot's label is "sales sends `prospect` feedback within the horizon after the as-of time".
Under the simulator that happens when the lead converts on some day ``c`` (daily hazard from fit
and the intent curve), sales answers ``d`` days later (uniform between DELAY_MIN and DELAY_MAX),
the answer lands inside the horizon, and sales does not miss it (FEEDBACK_FLIP). Given the latent
state at the as-of time -- including whether the lead has already converted and is waiting for
the answer -- this module sums those chances exactly. Benchmarks use it as the ceiling: the AUC of
these probabilities is the best any model of the observable data can hope for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.funnel import DELAY_MAX, DELAY_MIN, FEEDBACK_FLIP, daily_hazard, intent_curve


def prospect_probability(truth: pd.DataFrame, lead_ids: pd.Series | np.ndarray, as_of: pd.Series | pd.DatetimeIndex,
                         horizon_days: int = 30) -> np.ndarray:
    """Return P(prospect feedback in (as_of, as_of + horizon]) for each (lead, as-of) pair."""
    t = truth.set_index("lead_id").loc[np.asarray(lead_ids)]
    as_of = pd.DatetimeIndex(as_of).as_unit("us")
    t_a = ((as_of - pd.DatetimeIndex(t["day0"]).as_unit("us")) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    conv = t["conversion_day"].to_numpy()
    delay = t["feedback_delay_days"].to_numpy()

    # already converted before the as-of time: the answer is on its way, its time is part of the state
    already = (conv >= 0) & (conv < t_a)
    answer = conv + delay
    p_already = ((answer > t_a) & (answer <= t_a + horizon_days) & ~t["flipped"].to_numpy()).astype(np.float64)

    # not converted yet: sum over the conversion day c and the answer delay
    first = np.ceil(t_a)
    days = first[:, None] + np.arange(horizon_days + 1)[None, :]
    z = intent_curve(t["z0"].to_numpy(), t["decay"].to_numpy(), t["amp"].to_numpy(), t["peak"].to_numpy(),
                     t["width"].to_numpy(), days)
    hazard = daily_hazard(t["fit"].to_numpy(), z) * (days < t["window_days"].to_numpy()[:, None])
    survive_before = np.cumprod(np.hstack([np.ones((len(t), 1)), 1.0 - hazard[:, :-1]]), axis=1)
    p_convert_on = hazard * survive_before
    p_answer_in_time = np.clip((t_a[:, None] + horizon_days - days - DELAY_MIN) / (DELAY_MAX - DELAY_MIN), 0.0, 1.0)
    p_future = (1.0 - FEEDBACK_FLIP) * (p_convert_on * p_answer_in_time).sum(axis=1)
    return np.where(already, p_already, p_future)
