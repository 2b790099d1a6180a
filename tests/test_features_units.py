"""Hand-built cases with fixed datetimes for each feature family, and the registry's descriptions."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from contract.taxonomy import load_taxonomy
from features.registry import AttributeInfo, FeatureSet
from features.vectorizer import FeatureInput, FeatureVectorizer

TAX = load_taxonomy()
AS_OF = pd.Timestamp("2025-03-31T12:00:00Z")  # a Monday


def features(events: list[tuple[str, str] | tuple[str, str, str]], as_of: pd.Timestamp = AS_OF,
             created: str = "2025-01-01T09:00:00Z", attrs: dict | None = None,
             vec: FeatureVectorizer | None = None) -> pd.Series:
    leads = pd.DataFrame([{"lead_id": "L", "created_at": pd.Timestamp(created), "source": "referral",
                           **(attrs or {})}])
    rows = [{"lead_id": "L", "ts": pd.Timestamp(e[0]), "type": e[1], "channel": e[2] if len(e) > 2 else None}
            for e in events]
    ev = pd.DataFrame(rows, columns=["lead_id", "ts", "type", "channel"])
    ev["ts"] = pd.to_datetime(ev["ts"], utc=True)
    X = FeatureInput(pd.DataFrame({"lead_id": ["L"], "as_of": [as_of]}), leads, ev)
    vec = vec or FeatureVectorizer(taxonomy=TAX).fit(X)
    return vec.transform(X).iloc[0]


class TestNoEventsAndEdges:
    def test_lead_without_events_has_counts_zero_and_recency_missing(self) -> None:
        f = features([])
        assert f["events_total"] == 0 and f["active_days"] == 0 and f["deepest_stage"] == 0
        assert math.isnan(f["days_since_last_event"]) and math.isnan(f["momentum_7d"])
        assert f["days_since_created"] == pytest.approx((AS_OF - pd.Timestamp("2025-01-01T09:00Z")).days + 0.125)

    def test_event_exactly_at_the_as_of_time_is_not_seen(self) -> None:
        f = features([("2025-03-31T12:00:00Z", "demo_request")])
        assert f["events_total"] == 0 and f["deepest_stage"] == 0
        f = features([("2025-03-31T11:59:59.999999Z", "demo_request")])
        assert f["events_total"] == 1 and f["deepest_stage"] == 4
        assert f["days_since_intent"] == pytest.approx(1e-6 / 86400)

    def test_one_event(self) -> None:
        f = features([("2025-03-29T12:00:00Z", "webinar_attendance")])
        assert f["days_since_last_event"] == f["days_since_first_event"] == 2.0
        assert f["days_since_consideration"] == 2.0 and math.isnan(f["days_since_intent"])
        assert (f["events_7d"], f["events_30d"], f["sessions"], f["return_visits"]) == (1, 1, 1, 0)
        assert f["days_first_touch_to_deep"] == 0.0 and f["share_deep_30d"] == 1.0

    def test_time_zones_are_converted_not_ignored(self) -> None:
        utc = features([("2025-03-30T22:30:00Z", "page_view")])
        amsterdam = features([("2025-03-31T00:30:00+02:00", "page_view")])
        assert utc.equals(amsterdam)
        assert utc["share_weekend"] == 1.0, "22:30 UTC on Sunday is a weekend action, whatever the local date"


class TestRecency:
    def test_per_stage_and_channel(self) -> None:
        f = features([("2025-03-01T10:00Z", "page_view"), ("2025-03-21T10:00Z", "pricing_page_view"),
                      ("2025-03-30T12:00Z", "email_click")])
        assert f["days_since_last_event"] == 1.0
        assert f["days_since_intent"] == pytest.approx(10 + 2 / 24)
        assert f["days_since_awareness"] == pytest.approx(30 + 2 / 24)
        assert f["days_since_channel_email"] == 1.0 and f["days_since_channel_web"] == pytest.approx(10 + 2 / 24)
        assert math.isnan(f["days_since_channel_webinar"])

    def test_outbound_touches_are_not_the_lead_acting(self) -> None:
        f = features([("2025-03-30T12:00Z", "email_sent")])
        assert math.isnan(f["days_since_last_event"]) and f["events_total"] == 0 and f["outbound_touches"] == 1


class TestRepetition:
    def test_windows_days_and_sessions(self) -> None:
        f = features([("2025-01-05T10:00Z", "page_view"),                      # 85 days ago
                      ("2025-03-10T10:00Z", "page_view"), ("2025-03-10T10:20Z", "return_visit"),  # one session
                      ("2025-03-10T11:00Z", "page_view"),                      # 40 min later: a new session
                      ("2025-03-28T09:00Z", "email_click")])
        assert (f["events_7d"], f["events_30d"], f["events_90d"], f["events_total"]) == (1, 4, 5, 5)
        assert f["active_days"] == 3 and f["active_days_30d"] == 2
        assert f["sessions"] == 4 and f["return_visits"] == 3

    def test_regular_visits_have_low_spread(self) -> None:
        weekly = features([(f"2025-03-{d:02d}T10:00Z", "page_view") for d in (3, 10, 17, 24)])
        bursty = features([(f"2025-03-{d:02d}T10:00Z", "page_view") for d in (3, 4, 5, 24)])
        assert weekly["visit_gap_mean_days"] == 7.0 and weekly["visit_gap_cv"] == 0.0
        assert bursty["visit_gap_cv"] > 1.0


class TestDepth:
    def test_deepest_stage_and_when_it_was_reached(self) -> None:
        f = features([("2025-03-01T12:00Z", "newsletter_signup"), ("2025-03-11T12:00Z", "webinar_attendance"),
                      ("2025-03-21T12:00Z", "demo_request"), ("2025-03-30T12:00Z", "quote_request")])
        assert f["deepest_stage"] == 4 and f["days_since_deepest_stage_reached"] == 10.0
        assert (f["events_awareness"], f["events_consideration"], f["events_intent"]) == (1, 1, 2)
        assert f["days_first_touch_to_deep"] == 10.0
        assert f["share_deep_30d"] == 0.75
        assert f["distinct_channels"] == 3  # email (newsletter), webinar, web (demo and quote requests)
        assert features([("2025-03-01T12:00Z", "newsletter_signup"),
                         ("2025-03-02T12:00Z", "page_view", "partner")])["distinct_channels"] == 2


class TestMomentum:
    def test_speeding_up_and_fading(self) -> None:
        early = [(f"2025-02-{d:02d}T10:00Z", "page_view") for d in (1, 8, 15, 22)]
        speeding = features(early + [(f"2025-03-{d:02d}T10:00Z", "page_view") for d in (26, 27, 28, 29, 30)])
        fading = features(early)
        assert speeding["momentum_7d"] > 1.0
        assert fading["momentum_7d"] < -0.3 and fading["momentum_14d"] < -0.3


class TestResponsiveness:
    def test_answers_are_timed_and_only_count_before_as_of(self) -> None:
        f = features([("2025-03-20T09:00Z", "email_sent"), ("2025-03-20T15:00Z", "email_reply"),
                      ("2025-03-25T09:00Z", "call_attempt"), ("2025-03-30T09:00Z", "linkedin_message_sent"),
                      ("2025-04-01T09:00Z", "linkedin_message_reply")])  # after the as-of time
        assert f["outbound_touches"] == 3
        assert f["answered_share"] == pytest.approx(1 / 3) and f["answer_hours_mean"] == 6.0
        assert f["touches_since_last_answer"] == 2


class TestTiming:
    def test_business_hours_and_weekends(self) -> None:
        f = features([("2025-03-24T10:00Z", "page_view"), ("2025-03-24T20:00Z", "page_view"),
                      ("2025-03-29T10:00Z", "page_view"), ("2025-03-26T17:59Z", "page_view")])
        assert f["share_business_hours"] == 0.5 and f["share_weekend"] == 0.25


class TestProfile:
    def test_categoricals_stay_categories_and_unseen_values_are_missing(self) -> None:
        attrs = (AttributeInfo("industry", "categorical", description="Industry of the company"),
                 AttributeInfo("employees", "numeric"), AttributeInfo("budget", "categorical", role="criteria"))
        leads = pd.DataFrame({"lead_id": ["A", "B"], "created_at": pd.to_datetime(["2025-01-01", "2025-01-02"], utc=True),
                              "source": ["referral", "paid_search"], "industry": ["software", "retail"],
                              "employees": [120.0, None], "budget": ["yes", None]})
        X = FeatureInput(pd.DataFrame({"lead_id": ["A", "B"], "as_of": [AS_OF, AS_OF]}), leads,
                         pd.DataFrame(columns=["lead_id", "ts", "type"]).astype({"ts": "datetime64[us, UTC]"}))
        vec = FeatureVectorizer(taxonomy=TAX, attributes=attrs).fit(X)
        out = vec.transform(X)
        assert isinstance(out["attr_industry"].dtype, pd.CategoricalDtype)
        assert out["attr_industry"].tolist() == ["software", "retail"] and out["origin"].tolist() == ["referral",
                                                                                                    "paid_search"]
        assert out["attr_employees"].iloc[0] == 120.0 and math.isnan(out["attr_employees"].iloc[1])
        unseen = features([], attrs={"industry": "mining", "employees": 5, "budget": "yes"}, vec=vec)
        assert pd.isna(unseen["attr_industry"]) and unseen["attr_budget"] == "yes"
        assert vec.feature_set_.spec("attr_budget").role == "criteria"


@pytest.mark.parametrize("mapping", ["demo", "olist", "x_education"])
def test_every_feature_of_the_shipped_mappings_is_described(mapping: str) -> None:
    from contract.mapping import load_mapping
    from features.registry import UNDESCRIBED
    from tests.conftest import REPO

    attrs = tuple(AttributeInfo(name, a.kind, a.role, a.description) for source in
                  load_mapping(REPO / "mappings" / f"{mapping}.yaml").sources if source.leads
                  for name, a in source.leads.attributes.items())
    vec = FeatureVectorizer(taxonomy=TAX, attributes=attrs).fit(
        FeatureInput(pd.DataFrame({"lead_id": ["L"], "as_of": [AS_OF]}),
                     pd.DataFrame({"lead_id": ["L"], "created_at": [AS_OF], "source": ["web"]}),
                     pd.DataFrame(columns=["lead_id", "ts", "type"]).astype({"ts": "datetime64[us, UTC]"})))
    specs = vec.feature_set_.specs
    assert len(specs) > 40
    undescribed = [s.name for s in specs if UNDESCRIBED in s.description or len(s.description.split()) < 2]
    assert undescribed == []
    assert {s.family for s in specs} <= {"recency", "repetition", "channel_depth", "momentum", "responsiveness",
                                         "origin_timing", "profile"}


def test_an_undescribed_attribute_says_so() -> None:
    from features.registry import UNDESCRIBED, profile_specs

    spec = profile_specs([AttributeInfo("industry", "categorical")])[1]
    assert spec.description == f"Industry {UNDESCRIBED}"


def test_the_feature_set_is_versioned_and_round_trips() -> None:
    vec = FeatureVectorizer(taxonomy=TAX, attributes=(AttributeInfo("industry", "categorical", description="Sector"),)).fit(
        FeatureInput(pd.DataFrame({"lead_id": ["L"], "as_of": [AS_OF]}),
                     pd.DataFrame({"lead_id": ["L"], "created_at": [AS_OF], "source": ["web"], "industry": ["x"]}),
                     pd.DataFrame(columns=["lead_id", "ts", "type"]).astype({"ts": "datetime64[us, UTC]"})))
    fs = vec.feature_set_
    assert len(set(fs.names)) == len(fs.names)
    assert list(vec.get_feature_names_out()) == fs.names
    again = FeatureSet.from_dict(fs.to_dict())
    assert again == fs and again.version == fs.version and fs.version.startswith("fs-")
    other = FeatureVectorizer(taxonomy=TAX, attributes=()).fit(
        FeatureInput(pd.DataFrame({"lead_id": ["L"], "as_of": [AS_OF]}),
                     pd.DataFrame({"lead_id": ["L"], "created_at": [AS_OF], "source": ["web"]}),
                     pd.DataFrame(columns=["lead_id", "ts", "type"]).astype({"ts": "datetime64[us, UTC]"})))
    assert other.feature_set_.version != fs.version


def test_names_are_coded_as_arrow_codes_them() -> None:
    """The fast coding of object arrays of names gives what Arrow's factorize gives, whatever the values."""
    import numpy as np

    from features.encode import factorize
    from features.vectorizer import _factorize_names

    rng = np.random.default_rng(6)
    pools = [["page_view", "demo_request", "email_open", "", "é-mail"],
             ["web", "linkedin", None, float("nan")],
             ["web", None, np.float64("nan"), pd.NA],
             ["web", 3, 3.0, None],
             [None, float("nan")]]
    for pool in pools:
        for size in (1, 2, 50, 2000):
            values = np.empty(size, dtype=object)
            values[:] = [pool[k] for k in rng.integers(0, len(pool), size)]
            got, want = _outcome(_factorize_names, values), _outcome(factorize, values)
            assert got == want, (pool, size)
    series = pd.Series(["a", None, "b", "a"], dtype="string")
    assert _outcome(_factorize_names, series) == _outcome(factorize, series)
    # categoricals of names give their own codes and categories; of other values, what the values give
    names = pd.Categorical(["b", None, "a", "b"], categories=["b", "z", "a"])
    assert _outcome(_factorize_names, names) == ("int64", [0, -1, 2, 0], ["b", "z", "a"])
    assert _outcome(_factorize_names, pd.Series(names)) == _outcome(_factorize_names, names)
    numbers = np.array([3, None, 3, 4], dtype=object)
    assert _outcome(_factorize_names, pd.Categorical(numbers)) == _outcome(factorize, numbers)


def _outcome(code, values) -> tuple:  # noqa: ANN001
    """Codes (their dtype too) and names, or the error a coding raised."""
    try:
        codes, names = code(values)
    except Exception as exc:  # noqa: BLE001 - the same refusal is part of the same result
        return (type(exc),)
    return str(codes.dtype), codes.tolist(), names
