"""A seeded simulator of a B2B funnel: the embedded demo data and the ground truth for the tests.

Each lead has a latent *fit* (from firmographics) and an *intent* that follows a known curve over
its life: a baseline that fades day by day, plus, for some leads, a buying window that rises and
falls. Intent drives everything observable: how often the lead comes back, how deep it goes
(awareness -> interest -> consideration -> intent), how fast it answers our outbound touches.
The daily chance of becoming a prospect depends on fit and intent, so sales feedback is a noisy,
delayed echo of the same latent state. A lead that converts keeps acting (and meeting sales) as its
intent says until the end of its follow window: going quiet at conversion would reveal the label
before sales gives it. An optional drift scenario (``FunnelConfig.drift_at``) raises the chance of
converting and changes the channel mix for leads arriving after a given point. Because the intent curve is a closed-form function of a few
stored parameters, ``simulator.truth`` can compute the exact probability behind every label.

Work is done in fixed-size chunks of leads, each with its own seeded generator, so the output is
the same bytes for the same seed and size, and memory stays flat at a million leads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contract.taxonomy import Taxonomy
from simulator.shift import apply_shift
from simulator.history import attribute_history

ORIGINS = ("organic_search", "paid_search", "linkedin", "referral", "webinar", "events", "outbound")
ORIGIN_P = (0.24, 0.22, 0.16, 0.08, 0.10, 0.08, 0.12)
ORIGIN_FIT = (0.1, -0.2, 0.1, 0.6, 0.3, 0.2, -0.1)
FIRST_TOUCH = ("whitepaper_download", "page_view", "linkedin_connection", "form_submission",
               "webinar_registration", "form_submission", "email_open")
INDUSTRIES = ("software", "manufacturing", "finance", "healthcare", "retail", "logistics", "education",
              "public_sector")
ICP_INDUSTRY = np.array([1, 1, 1, 0, 0, 1, 0, 0], dtype=bool)
SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
SIZE_P = (0.25, 0.28, 0.22, 0.15, 0.10)
ICP_SIZE = np.array([0, 0, 1, 1, 0], dtype=bool)
COUNTRIES = ("NL", "DE", "FR", "UK", "BE", "ES", "IT", "SE", "US", "PL")
ROLES = ("individual_contributor", "manager", "director", "vp", "c_level")
ROLE_P = (0.40, 0.30, 0.15, 0.10, 0.05)
FUNCTIONS = ("marketing", "sales", "it", "operations", "finance", "hr")
TIMELINES = ("<3 months", "3-6 months", ">6 months")

CHUNK_LEADS = 50_000
FEEDBACK_FLIP = 0.04
"""Share of true prospects that sales marks not_prospect (missed), the label noise the oracle knows."""
DELAY_MIN, DELAY_MAX = 1.0, 8.0
"""Sales answers between one and eight days after the lead converts."""
DRIFT_ORIGIN_P = (0.12, 0.14, 0.12, 0.16, 0.18, 0.12, 0.16)
"""The channel mix of leads arriving after the drift point (more referrals, webinars and outbound)."""


@dataclass(frozen=True)
class FunnelConfig:
    n_leads: int = 20_000
    seed: int = 7
    start: str = "2025-01-06"
    months: int = 12
    follow_days: int = 120
    drift_at: float | None = None
    """Drift scenario: leads arriving after this share of the arrival period convert more easily
    (``drift_hazard`` added to the log-odds of the daily chance) and come through another channel
    mix (DRIFT_ORIGIN_P). None (the default) keeps one stable funnel."""
    drift_hazard: float = 1.3
    shift_at: str | None = None
    """From this date on, behaviour and lead mix shift (``simulator.shift``); None: no shift."""
    history: bool = True
    """Also write attribute_history.parquet: when each criterion became known (``simulator.history``)."""

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, tz="UTC")

    @property
    def end_ts(self) -> pd.Timestamp:
        """Nothing happens at or after this moment: arrivals end, then leads are followed for follow_days."""
        return self.start_ts + pd.Timedelta(days=round(self.months * 30.44) + self.follow_days)


# Intent and conversion coefficients; ``simulator.truth`` evaluates the same curves.
RATE_SCALE = 0.22
HAZARD_BASE, HAZARD_FIT, HAZARD_INTENT = -6.9, 0.9, 1.5


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def intent_curve(z0: np.ndarray, decay: np.ndarray, amp: np.ndarray, peak: np.ndarray, width: np.ndarray,
                 days: np.ndarray) -> np.ndarray:
    """Latent intent of each lead (rows) on each lead-day (columns): fading baseline plus a buying window."""
    d = days[None, :] if days.ndim == 1 else days
    return (z0[:, None] - decay[:, None] * d
            + amp[:, None] * np.exp(-0.5 * ((d - peak[:, None]) / width[:, None]) ** 2))


def daily_hazard(fit: np.ndarray, z: np.ndarray, shift: np.ndarray | float = 0.0) -> np.ndarray:
    """Probability of becoming a prospect on a given day, for a lead not yet converted.

    ``shift`` (per lead) moves the log-odds: the drift scenario's change in the base rate.
    """
    return sigmoid(HAZARD_BASE + np.asarray(shift, dtype=np.float64).reshape(-1, 1) + HAZARD_FIT * fit[:, None]
                   + HAZARD_INTENT * z)


def _stage_types(taxonomy: Taxonomy) -> list[list[str]]:
    """Inbound types per stage that a lead starts by itself (answers come only after outbound touches)."""
    return [[n for n, t in taxonomy.types.items() if t.stage == s and t.answers is None and n != "form_submission"]
            for s in taxonomy.stages]


def _simulate_chunk(rng: np.random.Generator, first: int, n: int, cfg: FunnelConfig,
                    taxonomy: Taxonomy) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    days_total = round(cfg.months * 30.44)
    D = cfg.follow_days
    lead_ids = np.array([f"L{i:07d}" for i in range(first, first + n)], dtype=object)

    # --- who arrives, and how well they fit the ideal customer profile
    arrival = cfg.start_ts.value // 1000 + (rng.random(n) * days_total * 86_400e6).astype(np.int64)
    created = pd.to_datetime(arrival, unit="us", utc=True)
    midnight = created.floor("D")
    origin = rng.choice(len(ORIGINS), n, p=ORIGIN_P)
    shift = np.zeros(n)
    if cfg.drift_at is not None:
        drifted = arrival >= cfg.start_ts.value // 1000 + int(cfg.drift_at * days_total * 86_400e6)
        origin = np.where(drifted, rng.choice(len(ORIGINS), n, p=DRIFT_ORIGIN_P), origin)
        shift = np.where(drifted, cfg.drift_hazard, 0.0)
    industry = rng.integers(0, len(INDUSTRIES), n)
    size = rng.choice(len(SIZES), n, p=SIZE_P)
    role = rng.choice(len(ROLES), n, p=ROLE_P)
    fit = (0.9 * ICP_INDUSTRY[industry] + 0.7 * ICP_SIZE[size] + 0.25 * role
           + np.asarray(ORIGIN_FIT)[origin] - 0.8 + rng.normal(0, 0.5, n))

    # --- the intent curve: fading baseline, and a buying window for some
    z0 = rng.normal(-1.0 + 0.35 * fit, 0.6)
    decay = rng.uniform(0.008, 0.035, n)
    has_window = rng.random(n) < sigmoid(fit - 0.2)
    amp = np.where(has_window, rng.uniform(1.2, 3.4, n), 0.0)
    peak = rng.uniform(3, D - 10, n)
    width = rng.uniform(5, 22, n)

    # each lead is followed until follow_days or the end of the simulation, whichever is first
    end_days = np.floor((cfg.end_ts - midnight) / pd.Timedelta(days=1)).to_numpy(dtype=np.int64)
    window = np.minimum(D, end_days)
    day_grid = np.arange(D, dtype=np.float64)
    z = intent_curve(z0, decay, amp, peak, width, day_grid)
    alive = day_grid[None, :] < window[:, None]

    # --- conversion: first day whose draw falls under that day's hazard
    hazard = np.where(alive, daily_hazard(fit, z, shift), 0.0)
    hits = rng.random((n, D)) < hazard
    converted = hits.any(axis=1)
    conv_day = np.where(converted, hits.argmax(axis=1), -1)
    delay = rng.uniform(DELAY_MIN, DELAY_MAX, n)
    feedback_ts = midnight + pd.to_timedelta(conv_day + delay, unit="D")
    converted &= np.asarray(feedback_ts < cfg.end_ts)
    # converted leads do not go silent: they keep acting and meeting sales for their whole window
    last_day = window - 1
    active = day_grid[None, :] <= last_day[:, None]

    # --- inbound activity: a Poisson count per day, thinner at weekends
    weekday = ((midnight.day_of_week.to_numpy()[:, None] + np.arange(D)[None, :]) % 7)
    weekend = weekday >= 5
    rate = RATE_SCALE * np.exp(np.clip(z, -6, 2.2)) * np.where(weekend, 0.35, 1.0) * active
    counts = rng.poisson(rate)
    counts[:, 0] = np.maximum(counts[:, 0] - 1, 0)  # day 0 already has the first touch

    stage_types = _stage_types(taxonomy)
    n_stages = len(stage_types)
    ev_lead: list[np.ndarray] = []
    ev_day: list[np.ndarray] = []
    ev_stage: list[np.ndarray] = []
    max_stage = np.zeros(n, dtype=np.int64)
    stage_shift = np.array([0.0, 0.2, -0.6, -1.8])[:n_stages]
    stage_slope = np.array([0.0, 0.4, 0.8, 1.2])[:n_stages]
    for t in range(D):
        c = counts[:, t]
        who = np.flatnonzero(c)
        if who.size == 0:
            continue
        lead = np.repeat(who, c[who])
        logits = stage_shift[None, :] + stage_slope[None, :] * z[lead, t][:, None]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
        stage = (rng.random(lead.size)[:, None] > cdf).sum(axis=1)
        # leads go deeper one step at a time: at most one stage past the deepest reached before today
        stage = np.minimum(stage, max_stage[lead] + 1).clip(0, n_stages - 1)
        np.maximum.at(max_stage, lead, stage)
        ev_lead.append(lead)
        ev_day.append(np.full(lead.size, t))
        ev_stage.append(stage)
    lead_idx = np.concatenate(ev_lead) if ev_lead else np.array([], dtype=np.int64)
    day_idx = np.concatenate(ev_day) if ev_day else np.array([], dtype=np.int64)
    stage_idx = np.concatenate(ev_stage) if ev_stage else np.array([], dtype=np.int64)
    type_idx = np.empty(lead_idx.size, dtype=object)
    for s, names in enumerate(stage_types):
        sel = stage_idx == s
        type_idx[sel] = np.asarray(names, dtype=object)[rng.integers(0, len(names), sel.sum())]

    # --- outbound touches from sales and marketing, aimed more at good-fit leads; answers come faster
    # from leads with more intent
    out_p = (0.008 + 0.025 * sigmoid(fit))[:, None] * active * np.where(weekend, 0.1, 1.0)
    out_hit = rng.random((n, D)) < out_p
    out_lead, out_day = np.nonzero(out_hit)
    outbound = np.array(["email_sent", "call_attempt", "linkedin_message_sent"], dtype=object)
    out_type = outbound[rng.integers(0, 3, out_lead.size)]
    out_hour = rng.uniform(8.5, 17.5, out_lead.size)
    out_z = z[out_lead, out_day]
    answerable = out_type != "call_attempt"
    replies = answerable & (rng.random(out_lead.size) < 0.75 * sigmoid(out_z + 0.3))
    reply_delay_h = rng.exponential(30.0 * np.exp(-0.6 * out_z))
    reply_time_days = out_day + (out_hour + reply_delay_h) / 24.0
    replies &= reply_time_days < (last_day[out_lead] + 1)
    reply_type = np.where(out_type == "email_sent", "email_reply", "linkedin_message_reply")

    # --- timestamps: business hours mostly, never before the lead was created
    work = rng.random(lead_idx.size) < 0.75
    hours = np.where(work, rng.uniform(8, 18, lead_idx.size), rng.uniform(0, 24, lead_idx.size))
    mid_us = midnight.as_unit("us").asi8
    created_us = created.as_unit("us").asi8
    day_us = 86_400_000_000

    def stamp(lead: np.ndarray, days: np.ndarray) -> np.ndarray:
        us = mid_us[lead] + (days * day_us).astype(np.int64)
        late = rng.uniform(1, 240, lead.size) * 60e6  # a few minutes to hours after arrival
        return np.where(us <= created_us[lead], created_us[lead] + late.astype(np.int64), us)

    first_touch = np.asarray(FIRST_TOUCH, dtype=object)[origin]
    events = pd.DataFrame({
        "lead": np.concatenate([np.arange(n), lead_idx, out_lead, out_lead[replies]]),
        "ts_us": np.concatenate([
            created_us,
            stamp(lead_idx, day_idx + hours / 24.0),
            stamp(out_lead, out_day + out_hour / 24.0),
            stamp(out_lead[replies], reply_time_days[replies]),
        ]),
        "type": np.concatenate([first_touch, type_idx, out_type, reply_type[replies]]),
    })
    events = events[events["ts_us"] < cfg.end_ts.value // 1000]
    events = events.sort_values(["lead", "ts_us"], kind="stable").reset_index(drop=True)
    channel_of = {name: t.channel for name, t in taxonomy.types.items()}
    events_out = pd.DataFrame({
        "event_id": [f"E{first:07d}-{i:05d}" for i in range(len(events))],
        "lead_id": lead_ids[events["lead"].to_numpy()],
        "ts": pd.to_datetime(events["ts_us"].to_numpy(), unit="us", utc=True),
        "type": events["type"].astype(str),
        "channel": events["type"].map(channel_of).astype(str),
    })

    # --- explicit criteria, each filled for about half of the leads, correlated with the latent state
    def partly(values: np.ndarray, share: float) -> np.ndarray:
        out = values.astype(object)
        out[rng.random(n) > share] = None
        return out

    budget = partly(np.where(rng.random(n) < sigmoid(fit), "yes", "no"), 0.45)
    authority = partly(np.where(role >= 3, "decision_maker", np.where(role >= 1, "influencer", "none")), 0.6)
    need = partly(np.where(rng.random(n) < sigmoid(fit + 0.5), "yes", "no"), 0.5)
    soon = rng.random(n) < sigmoid(amp - 1.5)
    timeline = partly(np.where(soon, TIMELINES[0], np.where(rng.random(n) < 0.5, TIMELINES[1], TIMELINES[2])), 0.4)
    leads = pd.DataFrame({
        "lead_id": lead_ids,
        "created_at": created.as_unit("us"),
        "source": np.asarray(ORIGINS, dtype=object)[origin],
        "industry": np.asarray(INDUSTRIES, dtype=object)[industry],
        "company_size": np.asarray(SIZES, dtype=object)[size],
        "country": np.asarray(COUNTRIES, dtype=object)[rng.integers(0, len(COUNTRIES), n)],
        "role": np.asarray(ROLES, dtype=object)[role],
        "function": np.asarray(FUNCTIONS, dtype=object)[rng.integers(0, len(FUNCTIONS), n)],
        "budget": budget, "authority": authority, "need": need, "timeline": timeline,
    })

    # --- sales feedback: prospects after a delay (a few missed), and reviews of some others
    flipped = converted & (rng.random(n) < FEEDBACK_FLIP)
    reviewed = ~converted & (rng.random(n) < 0.25 + 0.35 * (max_stage >= 2))
    review_day = rng.uniform(7, np.maximum(window, 8))
    review_ts = midnight + pd.to_timedelta(review_day, unit="D")
    reviewed &= np.asarray(review_ts < cfg.end_ts)
    low_fit_reason = np.where(fit < 0, "not_our_profile", "no_budget")
    other_reason = np.asarray(["no_need", "bad_timing", "no_authority"], dtype=object)[rng.integers(0, 3, n)]
    reason = np.where(rng.random(n) < 0.5, low_fit_reason, other_reason)
    fb = pd.concat([
        pd.DataFrame({"lead_id": lead_ids[converted], "ts": feedback_ts[converted],
                      "outcome": np.where(flipped[converted], "not_prospect", "prospect"),
                      "reason": np.where(flipped[converted], "other", None)}),
        pd.DataFrame({"lead_id": lead_ids[reviewed], "ts": review_ts[reviewed], "outcome": "not_prospect",
                      "reason": reason[reviewed]}),
    ], ignore_index=True).sort_values(["lead_id", "ts"], kind="stable")
    fb["ts"] = fb["ts"].dt.as_unit("us")

    truth = pd.DataFrame({
        "lead_id": lead_ids, "day0": midnight.as_unit("us"), "fit": fit, "z0": z0, "decay": decay, "amp": amp,
        "peak": peak, "width": width, "window_days": window,
        "conversion_day": np.where(converted, conv_day, -1), "feedback_delay_days": delay,
        "flipped": flipped, "max_stage": max_stage, "hazard_shift": shift,
    })
    return leads, events_out, fb.reset_index(drop=True), truth


def simulate_chunks(cfg: FunnelConfig, taxonomy: Taxonomy) -> Iterator[dict[str, pd.DataFrame]]:
    """The simulated leads, events, feedback and truth, chunk by chunk: what ``generate`` writes, for
    callers that stream them elsewhere (a lake) without holding them all."""
    seeds = np.random.SeedSequence(cfg.seed).spawn((cfg.n_leads + CHUNK_LEADS - 1) // CHUNK_LEADS)
    for i, seed in enumerate(seeds):
        first = i * CHUNK_LEADS
        n = min(CHUNK_LEADS, cfg.n_leads - first)
        frames = dict(zip(("leads", "events", "feedback", "truth"),
                          _simulate_chunk(np.random.default_rng(seed), first, n, cfg, taxonomy), strict=True))
        if cfg.shift_at is not None:  # its own generator: the unshifted draws stay the same
            frames["leads"], frames["events"] = apply_shift(frames["leads"], frames["events"],
                                                            pd.Timestamp(cfg.shift_at, tz="UTC"),
                                                            np.random.default_rng([cfg.seed, i, 1]))
        if cfg.history:
            frames["attribute_history"], known_at = attribute_history(
                np.random.default_rng(seed.spawn(1)[0]), frames["leads"], frames["events"], frames["feedback"],
                cfg.end_ts, taxonomy)
            frames["truth"] = pd.concat([frames["truth"], known_at], axis=1)
        yield frames


def generate(cfg: FunnelConfig, out_dir: Path, taxonomy: Taxonomy, progress=None) -> dict[str, Path]:  # noqa: ANN001
    """Write leads, events, feedback and truth as Parquet under ``out_dir``; return the paths."""
    if cfg.end_ts > pd.Timestamp.now(tz="UTC"):
        raise ValueError(f"the simulation would end at {cfg.end_ts:%Y-%m-%d}, in the future; choose an earlier start")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = ("leads", "events", "feedback", "truth") + (("attribute_history",) if cfg.history else ())
    paths = {name: out_dir / f"{name}.parquet" for name in names}
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        for frames in simulate_chunks(cfg, taxonomy):
            n = len(frames["leads"])
            for name, frame in frames.items():
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(paths[name], table.schema)
                writers[name].write_table(table.cast(writers[name].schema))
            if progress:
                progress(n)
    finally:
        for w in writers.values():
            w.close()
    return paths
