"""Explicit criteria: rule semantics, evidence, rule-file errors, and that they never move the score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.criteria import DAY_US, Criteria, CriteriaError, LeadFacts
from tests.conftest import write_yaml

AS_OF = int(pd.Timestamp("2025-06-01", tz="UTC").value // 1000)


def facts(attributes: dict, events: list[tuple[float, str]] = ()) -> LeadFacts:
    ts = np.array([AS_OF - int(days * DAY_US) for days, _ in events], dtype=np.int64)
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
])
def test_a_broken_rule_file_names_the_file_and_the_rule(tmp_path, taxonomy, content: dict, words: str) -> None:  # noqa: ANN001
    path = write_yaml(tmp_path / "rules.yaml", content)
    with pytest.raises(CriteriaError) as caught:
        Criteria.load(path, taxonomy)
    assert str(path) in str(caught.value) and words in str(caught.value)
