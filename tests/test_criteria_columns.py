"""Column-wise criteria: equal to a one-rule-at-a-time oracle for any rule file, types given as names or a
Categorical, and equal results shared as one object."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import serving.criteria as criteria_module
from contract.timeunits import US_PER_DAY
from serving.criteria import Criteria, CriterionResult, LeadFacts, RuleFile, _groups

AS_OF = int(pd.Timestamp("2025-06-01", tz="UTC").value // 1000)
WINDOWS = [1.0, 2.5, 30.0, 60.0]
RULE_EVENTS = ["demo_request", "quote_request", "trial_signup", "intake_call"]
ATTRIBUTE_RULES = [
    {"attribute": "budget", "met": ["yes"], "not_met": ["no"]},
    {"attribute": "role", "met": ["vp", "c_level"], "not_met": ["individual_contributor"]},
    {"attribute": "industry", "met": ["software", "finance"]},  # any other recorded value is not met
    {"attribute": "employees", "min": 50, "max": 1000},
    {"attribute": "flag", "met": ["True", "1"], "not_met": ["False", "0"]},
]
EVENT_RULES = [{"events": ["demo_request", "quote_request"], "within_days": WINDOWS[0]},
               {"events": ["quote_request", "intake_call"], "within_days": WINDOWS[1]},
               {"events": ["trial_signup"], "within_days": WINDOWS[2]},
               {"events": RULE_EVENTS, "within_days": WINDOWS[3]}]


def reference(criteria: Criteria, lead: LeadFacts) -> list[CriterionResult]:
    """The test oracle: one lead, one rule at a time, as the rule file's comments define the rules."""
    out = []
    for name, criterion in criteria.rules.criteria.items():
        decisions = [rule.decide(lead.attributes.get(rule.attribute)) if hasattr(rule, "attribute")
                     else latest_event(criteria, rule, lead) for rule in criterion.rules]
        decided = [d for d in decisions if d is not None]
        undecided = why_undecided(criterion, decisions, lead.attributes)
        if criterion.combine == "first":
            status, evidence = decided[0] if decided else ("unknown", undecided)
        elif any(s == "not_met" for s, _ in decided):
            status, evidence = "not_met", "; ".join(e for s, e in decided if s == "not_met")
        elif len(decided) == len(decisions):
            status, evidence = "met", "; ".join(e for _, e in decided)
        else:
            status, evidence = "unknown", "; ".join([*(e for _, e in decided), undecided])
        out.append(CriterionResult(name, criterion.label, status, evidence))
    return out


def latest_event(criteria: Criteria, rule, lead: LeadFacts) -> tuple[str, str] | None:  # noqa: ANN001
    """The latest wanted event strictly before as-of within the window (the later one in the given order on a tie)."""
    best = None
    for k, (ts, kind) in enumerate(zip(lead.ts_us.tolist(), list(lead.types), strict=True)):
        if kind in rule.events and lead.as_of_us - rule.within_days * US_PER_DAY <= ts < lead.as_of_us:
            if best is None or ts >= lead.ts_us[best]:
                best = k
    if best is None:
        return None
    days = (lead.as_of_us - int(lead.ts_us[best])) / US_PER_DAY
    ago = "today" if days < 1 else ("1 day ago" if days < 2 else f"{days:.0f} days ago")
    return "met", f"{criteria.taxonomy.types[lead.types[best]].description} {ago}"


def why_undecided(criterion, decisions: list, attributes: dict) -> str:  # noqa: ANN001
    neither, missing = [], []
    for rule, decision in zip(criterion.rules, decisions, strict=True):
        if decision is not None:
            continue
        value = attributes.get(rule.attribute) if hasattr(rule, "attribute") else None
        if value is None or value == "" or (isinstance(value, float) and value != value):
            missing.append(rule.attribute if hasattr(rule, "attribute") else
                           f"no {'/'.join(rule.events)} in the last {rule.within_days:g} days")
        else:
            neither.append(f"{rule.attribute} is {value}, which decides neither way")
    return "; ".join([*neither, *(["not recorded: " + ", ".join(missing)] if missing else [])])


VALUES = st.one_of(
    st.sampled_from([None, "", "yes", "no", "vp", "c_level", "director", "software", "retail", "True", "1",
                     1, 1.0, True, False, 0, 0.0, 12, 120.0, 50, 1000.0, 1000.5, "120", "abc"]),
    st.builds(float, st.just("nan")),  # a new NaN object each time: equal to nothing, itself included
    st.lists(st.sampled_from(["vp", "it"]), max_size=2),  # cannot be a dict key
    st.dictionaries(st.just("a"), st.integers(0, 1), max_size=1))
NAMES = ["budget", "role", "industry", "employees", "flag", "other"]
# before as-of by this much: at as-of itself, at and around each window's edge, around whole and half days, after as-of
EDGES = sorted({0, 1, -1, -US_PER_DAY, US_PER_DAY // 2, US_PER_DAY - 1, US_PER_DAY, 2 * US_PER_DAY - 1,
                2 * US_PER_DAY, 5 * US_PER_DAY // 2, 7 * US_PER_DAY // 2,
                *(int(w * US_PER_DAY) + d for w in WINDOWS for d in (-1, 0, 1))})
BEFORE = st.one_of(st.sampled_from(EDGES), st.integers(0, 60 * US_PER_DAY), st.integers(-5 * US_PER_DAY, 90 * US_PER_DAY))
TYPES = st.sampled_from([*RULE_EVENTS, *RULE_EVENTS, *RULE_EVENTS, "email_open", "page_view", "no_such_type", None])


@st.composite
def leads_strategy(draw) -> list:  # noqa: ANN001
    """Leads that draw their values and event times from small pools, so that equal values of different
    classes (1, 1.0, True), equal instants of different types and shared keys between leads are common."""
    values = draw(st.lists(VALUES, min_size=1, max_size=6)) + draw(st.sampled_from([[], [1, 1.0, True], [0, 0.0, False]]))
    befores = draw(st.lists(BEFORE, min_size=1, max_size=40))
    attributes = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(values))
    events = st.lists(st.tuples(st.sampled_from(befores), TYPES), max_size=12)
    return draw(st.lists(st.tuples(attributes, events, st.integers(-3, 3)), min_size=1, max_size=16))


RULE_FILES = st.dictionaries(
    st.sampled_from(["budget", "authority", "need", "timing", "fit"]),
    st.fixed_dictionaries({"label": st.sampled_from(["A label", "Another"]), "combine": st.sampled_from(["first", "all"]),
                           "rules": st.lists(st.sampled_from(ATTRIBUTE_RULES + EVENT_RULES), min_size=1, max_size=4)}),
    min_size=1, max_size=4)


def batch(leads: list, seed: int) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[LeadFacts]]:
    """The leads' events interleaved in a random order, each lead's own events keeping theirs."""
    alone, owner, ts, types = [], [], [], []
    for k, (attributes, events, shift) in enumerate(leads):
        as_of = AS_OF + shift * US_PER_DAY // 2
        lead_ts = np.array([as_of - before for before, _ in events], dtype=np.int64)
        alone.append(LeadFacts(attributes, lead_ts, np.array([t for _, t in events], dtype=object), as_of))
        owner += [k] * len(events)
        ts += lead_ts.tolist()
        types += [t for _, t in events]
    order = np.random.default_rng(seed).permutation(len(ts))
    owner_of = np.array(owner, np.int64)
    for k in range(len(leads)):
        mine = owner_of[order] == k
        order[mine] = np.sort(order[mine])
    kinds = np.empty(len(types), dtype=object)
    kinds[:] = types
    return ([a for a, _, _ in leads], owner_of[order], np.array(ts, np.int64)[order], kinds[order],
            np.array([lead.as_of_us for lead in alone], np.int64), alone)


def as_categorical(types: np.ndarray, extra: int) -> pd.Categorical:
    """The store's form: codes and categories, with ``extra`` unused categories first (codes past int8's range
    times the days of a batch)."""
    named = sorted({t for t in types.tolist() if t is not None})
    return pd.Categorical(types, categories=[*(f"unused_{k}" for k in range(extra)), *named])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_file=RULE_FILES, leads=leads_strategy(),
       seed=st.integers(0, 2**32 - 1), extra=st.sampled_from([0, 3, 120]), factorize=st.booleans(),
       sorted_groups=st.booleans())
def test_columns_equal_the_one_rule_at_a_time_oracle(taxonomy, rule_file, leads, seed, extra, factorize,
                                                     sorted_groups) -> None:  # noqa: ANN001
    """For any rule file (first and all, attribute and event rules), values of any kind (1, 1.0 and True,
    NaN, lists) and events at the window's edges, at as-of and of types no rule wants, the column form
    gives each lead what the oracle gives it, and what :meth:`Criteria.evaluate` gives it alone; with
    the types as names or as a Categorical, looked up one by one or factorised, grouped by table or sort."""
    criteria = Criteria(RuleFile.model_validate({"criteria": rule_file}), taxonomy)
    attributes, owner, ts, types, moments, alone = batch(leads, seed)
    want = [reference(criteria, lead) for lead in alone]
    with mock.patch.object(criteria_module, "EVENTS_LOOKED_UP_ONE_BY_ONE", 0 if factorize else 512), \
         mock.patch.object(criteria_module, "DENSE_KEYS_PER_ROW", -10**6 if sorted_groups else 4):
        by_name = criteria.evaluate_columns(attributes, owner, ts, types, moments)
        by_code = criteria.evaluate_columns(attributes, owner, ts, as_categorical(types, extra), moments)
        assert [criteria.evaluate(lead) for lead in alone] == want
    assert by_name.rows() == want
    assert by_code.rows() == want
    assert by_name.names == list(rule_file) and by_name.index.shape == (len(leads), len(rule_file))
    assert criteria.evaluate_many(attributes, owner, ts, types, moments) == want


def test_equal_results_are_one_object(taxonomy) -> None:  # noqa: ANN001
    """Leads decided alike share one result object, so a serialiser can work once per distinct result."""
    criteria = Criteria.load(None, taxonomy)
    rng = np.random.default_rng(3)
    attributes = [{"budget": ["yes", "no", None][k % 3], "role": ["vp", "director", None][k % 3], "need": None,
                   "industry": "software", "company_size": "51-200", "function": "it", "country": ["NL", "BR"][k % 2]}
                  for k in range(300)]
    owner = np.repeat(np.arange(300), 4)
    ts = AS_OF - rng.integers(0, 5, owner.size) * US_PER_DAY - US_PER_DAY // 3
    types = np.array(["demo_request", "page_view", "quote_request", "email_open"] * 300, dtype=object)
    columns = criteria.evaluate_columns(attributes, owner, ts, types, np.full(300, AS_OF, np.int64))
    rows = columns.rows()
    # budget yes/no/none; role vp/director/none; a demo or a quote 0-4 days ago; a quote 0-4 days ago; country NL/BR
    assert [len({row[j] for row in rows}) for j in range(5)] == [3, 3, 9, 5, 2]
    for j, results in enumerate(columns.results):
        column = [row[j] for row in rows]
        assert len(set(results)) == len(results) == len({id(r) for r in column})  # each distinct result once, used
        assert all(a is b for a in column for b in column if a == b)
    again = criteria.evaluate_many(attributes, owner, ts, types, np.full(300, AS_OF, np.int64))
    assert all(a is b for row, other in zip(rows, again, strict=True) for a, b in zip(row, other, strict=True))


def test_event_evidence_rounds_days_as_written(taxonomy) -> None:  # noqa: ANN001
    """An event at the window's edge counts, one at as-of does not; days ago round half to even ("2.5" -> 2)."""
    criteria = Criteria.load(None, taxonomy)
    day = US_PER_DAY
    for before, words in [(60 * day, "60 days ago"), (5 * day // 2, "2 days ago"), (7 * day // 2, "4 days ago"),
                          (2 * day - 1, "1 day ago"), (day, "1 day ago"), (day - 1, "today"), (1, "today")]:
        for types in (np.array(["demo_request"], dtype=object), pd.Categorical(["demo_request"])):
            need = criteria.evaluate(LeadFacts({}, np.array([AS_OF - before]), types, AS_OF))[2]
            assert (need.status, need.evidence) == ("met", f"Requested a demo {words}")
    for before in (0, -1, 60 * day + 1):
        need = criteria.evaluate(LeadFacts({}, np.array([AS_OF - before]), np.array(["demo_request"], dtype=object),
                                           AS_OF))[2]
        assert need.status == "unknown"


def test_event_bits_of_a_categorical_equal_those_of_names(taxonomy) -> None:  # noqa: ANN001
    """The codes of a Categorical give the rule bits the names give, missing types and unused categories too."""
    criteria = Criteria.load(None, taxonomy)
    rng = np.random.default_rng(5)
    pool = np.array([*RULE_EVENTS, "email_open", "no_such_type", None], dtype=object)
    for size in (0, 1, 600):
        types = pool[rng.integers(0, len(pool), size)]
        categorical = pd.Categorical(types, categories=["zzz_unused", *sorted(set(pool[:-1]))])
        assert np.array_equal(criteria._event_bits(categorical), criteria._event_bits(types))
        assert criteria._event_bits(categorical).dtype == np.int64


@given(rows=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2**40 - 1), st.integers(0, 2**40 - 1)), min_size=1,
                     max_size=40))
def test_groups_are_the_equal_rows(rows) -> None:  # noqa: ANN001
    """Rows share a group exactly when they are equal, also when the mixed-radix key would overflow int64."""
    columns = [np.array(c, np.int64) for c in zip(*rows, strict=True)]
    for sizes in ([3, 2**40, 2**40], [2**40, 2**40, 3]):
        ordered = [columns[k] for k in ([0, 1, 2] if sizes[0] == 3 else [1, 2, 0])]
        leads, group = _groups(ordered, sizes)
        assert [rows[i] for i in leads.tolist()] == sorted(set(rows), key=lambda r: [r[k] for k in (
            [0, 1, 2] if sizes[0] == 3 else [1, 2, 0])])
        assert all((group[a] == group[b]) == (rows[a] == rows[b]) for a in range(len(rows)) for b in range(len(rows)))
