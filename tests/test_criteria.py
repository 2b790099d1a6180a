"""Explicit criteria: rule semantics, evidence, rule-file errors, and that they never move the score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.timeunits import US_PER_DAY
from serving.criteria import Criteria, CriteriaError, LeadFacts
from tests.conftest import write_yaml

AS_OF = int(pd.Timestamp("2025-06-01", tz="UTC").value // 1000)


def facts(attributes: dict, events: list[tuple[float, str]] = ()) -> LeadFacts:
    ts = np.array([AS_OF - int(days * US_PER_DAY) for days, _ in events], dtype=np.int64)
    return LeadFacts(attributes, ts, np.array([t for _, t in events], dtype=object), AS_OF)


def by_name(criteria: Criteria, lead: LeadFacts) -> dict:
    return {c.name: (c.status, c.evidence) for c in criteria.evaluate(lead)}


def test_packaged_rules_decide_with_evidence(taxonomy) -> None:  # noqa: ANN001
    criteria = Criteria.load(None, taxonomy)
    got = by_name(criteria, facts({"budget": "yes", "authority": "none", "role": "c_level", "need": "no",
                                   "industry": "software", "company_size": "51-200", "function": "it",
                                   "country": "NL"}, [(3.0, "demo_request")]))
    assert got["budget"] == ("met", "budget is yes")
    assert got["authority"] == ("not_met", "authority is none")  # the first rule that decides wins
    assert got["need"] == ("not_met", "need is no")
    assert got["timing"] == ("unknown", "not recorded: timeline, no quote_request/intake_call in the last 30 days")
    assert got["ideal_customer_fit"][0] == "met" and "industry is software" in got["ideal_customer_fit"][1]


def test_behaviour_decides_when_attributes_are_missing(taxonomy) -> None:  # noqa: ANN001
    criteria = Criteria.load(None, taxonomy)
    got = by_name(criteria, facts({"role": "individual_contributor", "industry": "retail"},
                                  [(2.5, "demo_request"), (80.0, "quote_request"), (-1.0, "quote_request")]))
    assert got["need"] == ("met", "Requested a demo 2 days ago")
    # the quote request 80 days ago is outside the 30-day window, the one after the as-of time is the future
    assert got["timing"][0] == "unknown"
    assert got["authority"] == ("not_met", "role is individual_contributor")
    status, evidence = got["ideal_customer_fit"]
    assert status == "not_met" and evidence == "industry is retail"


def test_a_recorded_value_no_rule_lists_is_named_not_called_missing(taxonomy) -> None:  # noqa: ANN001
    criteria = Criteria.load(None, taxonomy)
    status, evidence = by_name(criteria, facts({"role": "director"}))["authority"]
    assert status == "unknown"
    assert evidence == "role is director, which decides neither way; not recorded: authority"


def test_all_combination_is_unknown_until_every_part_is_known(taxonomy) -> None:  # noqa: ANN001
    criteria = Criteria.load(None, taxonomy)
    status, evidence = by_name(criteria, facts({"industry": "finance", "company_size": "201-1000"}))["ideal_customer_fit"]
    assert status == "unknown" and evidence == "industry is finance; company_size is 201-1000; not recorded: function, country"


def test_numeric_ranges(tmp_path, taxonomy) -> None:  # noqa: ANN001
    rules = write_yaml(tmp_path / "c.yaml", {"criteria": {"size": {"label": "Size", "rules": [
        {"attribute": "employees", "min": 50, "max": 1000}]}}})
    criteria = Criteria.load(rules, taxonomy)
    assert by_name(criteria, facts({"employees": 120.0}))["size"] == ("met", "employees is 120")
    assert by_name(criteria, facts({"employees": 12}))["size"] == ("not_met", "employees is 12")
    assert by_name(criteria, facts({"employees": float("nan")}))["size"][0] == "unknown"


@pytest.mark.parametrize("content, words", [
    ({"criteria": {"need": {"label": "Need", "rules": [{"events": ["telepathy"], "within_days": 3}]}}},
     "criterion need: unknown event types ['telepathy']"),
    ({"criteria": {"need": {"label": "Need", "rules": [{"attribute": "need"}]}}}, "needs met values or a min/max"),
    ({"criteria": {"need": {"label": "Need", "rules": [{"events": ["chat"], "within_days": -1}]}}}, "within_days"),
    ({"criteria": {"need": {"rules": [{"attribute": "need", "met": ["yes"]}]}}}, "label"),
    ({"criteria": {"need": {"label": "Need", "rules": [{"events": ["demo_request"], "within_days": d}
                                                       for d in range(1, 64)]}}}, "63 event rules; at most 62"),
])
def test_a_broken_rule_file_names_the_file_and_the_rule(tmp_path, taxonomy, content: dict, words: str) -> None:  # noqa: ANN001
    path = write_yaml(tmp_path / "rules.yaml", content)
    with pytest.raises(CriteriaError) as caught:
        Criteria.load(path, taxonomy)
    assert str(path) in str(caught.value) and words in str(caught.value)


VALUES = st.sampled_from([None, float("nan"), "", "yes", "no", "vp", "none", "decision_maker", "software", "retail",
                          "51-200", "NL", "it", "<3 months", ">6 months", 1, 1.0, True, 150.0, ["vp", "it"]])
RULE_EVENTS = ["demo_request", "quote_request", "trial_signup", "intake_call", "page_view"]
lead_strategy = st.fixed_dictionaries({}, optional={name: VALUES for name in (
    "budget", "authority", "role", "need", "timeline", "industry", "company_size", "function", "country")})
events_strategy = st.lists(st.tuples(st.floats(-5, 90, allow_nan=False), st.sampled_from(RULE_EVENTS)), max_size=12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(leads=st.lists(st.tuples(lead_strategy, events_strategy, st.integers(-3, 3)), min_size=1, max_size=8),
       shuffle_seed=st.integers(0, 2**32 - 1))
def test_a_batch_decides_each_lead_as_it_would_alone(taxonomy, leads, shuffle_seed) -> None:  # noqa: ANN001
    """Column-wise evaluation over a batch (events of all leads interleaved in any order, one as-of time
    per lead, values shared between leads) gives each lead what evaluating it alone gives."""
    criteria = Criteria.load(None, taxonomy)
    alone = []
    owner, ts, types, moments = [], [], [], []
    for k, (attributes, events, shift) in enumerate(leads):
        lead = facts(attributes, events)
        lead = LeadFacts(attributes, lead.ts_us, lead.types, AS_OF + shift * US_PER_DAY // 2)
        alone.append(criteria.evaluate(lead))
        owner += [k] * len(events)
        ts += list(lead.ts_us)
        types += list(lead.types)
        moments.append(lead.as_of_us)
    # interleave the leads' events in any order, each lead's own events keeping theirs (among events at
    # the same instant, the later one in the given order counts as the latest, alone as in a batch)
    order = np.random.default_rng(shuffle_seed).permutation(len(ts))
    owner_of = np.array(owner, np.int64)
    for k in range(len(leads)):
        mine = owner_of[order] == k
        order[mine] = np.sort(order[mine])
    together = criteria.evaluate_many([a for a, _, _ in leads], np.array(owner, np.int64)[order],
                                      np.array(ts, np.int64)[order], np.array(types, dtype=object)[order],
                                      np.array(moments, np.int64))
    assert together == alone


def test_event_rule_takes_the_latest_event_before_as_of_in_the_window(taxonomy) -> None:  # noqa: ANN001
    """Two leads in one batch: each gets its own latest qualifying event, never the other's."""
    criteria = Criteria.load(None, taxonomy)
    day = US_PER_DAY
    owner = np.array([1, 0, 1, 0, 1], np.int64)
    ts = np.array([AS_OF - 40 * day, AS_OF - 10 * day, AS_OF - 3 * day, AS_OF + day, AS_OF - 61 * day], np.int64)
    types = np.array(["demo_request", "trial_signup", "quote_request", "demo_request", "demo_request"], dtype=object)
    got = criteria.evaluate_many([{}, {}], owner, ts, types, np.array([AS_OF, AS_OF], np.int64))
    need = [next(c for c in lead if c.name == "need") for lead in got]
    timing = [next(c for c in lead if c.name == "timing") for lead in got]
    assert need[0].status == "met" and need[0].evidence.endswith("10 days ago")
    assert need[1].status == "met" and need[1].evidence.endswith("3 days ago")
    assert timing[0].status == "unknown" and timing[1].status == "met"


def test_event_bits_of_a_large_batch_equal_the_look_up_per_event(taxonomy) -> None:  # noqa: ANN001
    """A large batch's rule bits (one look-up per distinct type) equal a dict look-up per event, missing types too."""
    criteria = Criteria.load(None, taxonomy)
    rng = np.random.default_rng(5)
    pool = np.array([*RULE_EVENTS, "email_open", "no_such_type", None, float("nan")], dtype=object)
    for size in (0, 1, 511, 512, 3000):
        types = pool[rng.integers(0, len(pool), size)]
        want = np.array([criteria._wanted_by.get(t, 0) for t in types], dtype=np.int64)
        got = criteria._event_bits(types)
        assert got.dtype == np.int64 and np.array_equal(got, want)


def test_a_large_batch_decides_each_lead_as_it_would_alone(taxonomy) -> None:  # noqa: ANN001
    """Over the size where event bits are looked up per distinct type, each lead still gets what it gets alone."""
    criteria = Criteria.load(None, taxonomy)
    rng = np.random.default_rng(8)
    values = ["yes", "no", "vp", None, "", "software", "51-200", 1.0, 150.0]
    names = ["budget", "authority", "role", "need", "timeline", "industry", "company_size", "function", "country"]
    attributes, owner, ts, types, alone = [], [], [], [], []
    for k in range(120):
        mine = {n: values[rng.integers(len(values))] for n in names if rng.random() < 0.7}
        n_events = int(rng.integers(0, 12))
        events = [(float(rng.uniform(-5, 90)), RULE_EVENTS[rng.integers(len(RULE_EVENTS))]) for _ in range(n_events)]
        lead = facts(mine, events)
        alone.append(criteria.evaluate(lead))
        attributes.append(mine)
        owner += [k] * n_events
        ts += list(lead.ts_us)
        types += list(lead.types)
    assert len(types) >= 512
    together = criteria.evaluate_many(attributes, np.array(owner, np.int64), np.array(ts, np.int64),
                                      np.array(types, dtype=object), np.full(len(attributes), AS_OF, np.int64))
    assert together == alone
