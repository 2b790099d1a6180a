"""Attribute values as of each snapshot: strictly before, unknown before the first record, static without history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contract.lead_record import LeadRecord
from features.history import HistoryRows, first_recorded_after_touch, profiles_as_of
from features.registry import AttributeInfo
from features.vectorizer import FeatureInput, FeatureVectorizer

T0 = pd.Timestamp("2025-03-01", tz="UTC")
ATTRIBUTES = (AttributeInfo("budget", "categorical", "criteria"), AttributeInfo("employees", "numeric"))


def _day(d: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=d)


@pytest.fixture
def small() -> FeatureInput:
    leads = pd.DataFrame({"lead_id": ["A", "B"], "created_at": [T0, T0], "source": ["referral", "linkedin"],
                          "budget": ["yes", "no"], "employees": [120.0, 40.0]})
    events = pd.DataFrame({"lead_id": ["A", "B"], "ts": [_day(1), _day(1)], "type": ["page_view", "page_view"]})
    # A's budget was unknown, then "no" on day 5, then "yes" on day 10; B has no history (static values)
    history = pd.DataFrame({"lead_id": ["A", "A", "A"], "attribute": ["budget", "budget", "employees"],
                            "value": ["no", "yes", "80"], "recorded_at": [_day(5), _day(10), _day(3)]})
    snapshots = pd.DataFrame({"lead_id": ["A", "A", "A", "A", "B"],
                              "as_of": [_day(4), _day(5), _day(7), _day(11), _day(4)]})
    return FeatureInput(snapshots, leads, events, history)


def test_values_are_those_recorded_strictly_before_the_as_of_time(small: FeatureInput) -> None:
    vec = FeatureVectorizer(attributes=ATTRIBUTES).fit(small)
    frame = vec.transform(small)
    budget = frame["attr_budget"].astype(object).where(frame["attr_budget"].notna(), None).tolist()
    # day 4: nothing recorded yet; day 5: the value written at 5 is not yet known; day 7: "no"; day 11: "yes"
    assert budget == [None, None, "no", "yes", "no"]
    assert frame["attr_employees"].tolist()[:4] == [80.0, 80.0, 80.0, 80.0]
    assert frame["attr_employees"].iloc[4] == 40.0, "a lead without history keeps its static value"


def test_without_history_the_static_value_is_used_at_every_as_of(small: FeatureInput) -> None:
    static = FeatureInput(small.snapshots, small.leads, small.events)
    vec = FeatureVectorizer(attributes=ATTRIBUTES).fit(static)
    frame = vec.transform(static)
    assert frame["attr_budget"].astype(str).tolist() == ["yes"] * 4 + ["no"]


def test_serving_path_agrees_with_the_batch_path(small: FeatureInput) -> None:
    vec = FeatureVectorizer(attributes=ATTRIBUTES).fit(small)
    batch = vec.transform_matrix(small)
    lead = LeadRecord("A", int(T0.value // 1000), "referral", {"budget": "yes", "employees": 120.0})
    hist = small.history.assign(recorded_at=small.history["recorded_at"].astype("datetime64[us, UTC]")
                                .astype("int64"))
    as_of = small.snapshots["as_of"][:4].astype("datetime64[us, UTC]").astype("int64").to_numpy()
    codes = vec.history_codes(np.zeros(len(hist), np.int64), hist["attribute"], hist["value"],
                              hist["recorded_at"].to_numpy(np.int64))
    one = vec.transform_leads([lead], np.zeros(1, np.int64), np.array([int(_day(1).value // 1000)]),
                              np.array(["page_view"], dtype=object), None, np.zeros(as_of.size, np.int64), as_of, codes)
    np.testing.assert_array_equal(one, batch[:4])


def _reference(leads: pd.DataFrame, history: pd.DataFrame, snapshots: pd.DataFrame, attribute: str) -> list:
    out = []
    for lead_id, as_of in zip(snapshots["lead_id"], snapshots["as_of"], strict=True):
        rows = history[(history["lead_id"] == lead_id) & (history["attribute"] == attribute)]
        if rows.empty:
            out.append(leads.set_index("lead_id").loc[lead_id, attribute])
            continue
        before = rows[rows["recorded_at"] < as_of].sort_values("recorded_at")
        out.append(before["value"].iloc[-1] if len(before) else None)
    return out


@pytest.mark.parametrize(("seed", "categorical"), [(1, False), (2, False), (3, True)])
def test_lookup_matches_a_plain_loop_on_random_histories(seed: int, categorical: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    ids = [f"L{i}" for i in range(n)]
    leads = pd.DataFrame({"lead_id": ids, "created_at": T0, "source": "referral",
                          "budget": rng.choice(["yes", "no"], n), "employees": rng.integers(1, 500, n).astype(float)})
    m = 300
    # unsorted rows, many leads, ties on the as-of moments themselves (whole days)
    history = pd.DataFrame({"lead_id": rng.choice(ids[: n // 2], m), "attribute": rng.choice(["budget", "employees"], m),
                            "recorded_at": [_day(d) for d in rng.integers(0, 30, m)]})
    history["value"] = np.where(history["attribute"] == "budget", rng.choice(["yes", "no", "maybe"], m),
                                rng.integers(1, 500, m).astype(str))
    history = history.drop_duplicates(["lead_id", "attribute", "recorded_at"])
    if categorical:  # as features.dataset.load_frames reads them
        history = history.astype({"attribute": "category", "value": "category"})
    snapshots = pd.DataFrame({"lead_id": rng.choice(ids, 400), "as_of": [_day(d) for d in rng.integers(0, 32, 400)]})
    X = FeatureInput(snapshots, leads, pd.DataFrame({"lead_id": ids[:1], "ts": [_day(0)], "type": ["page_view"]}),
                     history)
    frame = FeatureVectorizer(attributes=ATTRIBUTES).fit(X).transform(X)
    got_budget = frame["attr_budget"].astype(object).where(frame["attr_budget"].notna(), None).tolist()
    assert got_budget == _reference(leads, history, snapshots, "budget")
    want_employees = [np.nan if v is None else float(v) for v in _reference(leads, history, snapshots, "employees")]
    np.testing.assert_array_equal(frame["attr_employees"].to_numpy(np.float64), np.array(want_employees))


def test_profiles_as_of_for_criteria() -> None:
    lead = LeadRecord("A", 0, None, {"budget": "yes", "need": "yes"})
    history = pd.DataFrame({"attribute": ["budget", "budget"], "value": ["no", "yes"],
                            "recorded_at": [100, 200]})
    position = np.zeros(len(history), np.int64)

    def at(moment: int) -> dict:
        return profiles_as_of([lead], position, history, moment)[0]

    assert at(50)["budget"] is None
    assert at(200)["budget"] == "no"
    assert at(201) == lead.profile
    assert at(150)["need"] == "yes", "an attribute without history keeps its value"


def values_as_of(lead: LeadRecord, history: HistoryRows, as_of_us: int) -> LeadRecord:
    """Reference: one lead's attributes at ``as_of_us`` from its own rows, the plain way (sorted by time,
    last value strictly before the moment, None before the first)."""
    recorded = np.asarray(history.recorded_at, np.int64)
    if recorded.size == 0:
        return lead
    attributes = np.asarray(history.attribute, dtype=object)
    values = np.asarray(history.value, dtype=object)
    out = dict(lead.attributes)
    out.update(dict.fromkeys(map(str, attributes)))
    for k in np.argsort(recorded, kind="stable"):
        if recorded[k] >= as_of_us:
            break
        out[str(attributes[k])] = values[k]
    return lead.with_attributes(out)


def test_share_first_recorded_after_the_first_touch() -> None:
    history = pd.DataFrame({"lead_id": ["A", "A", "B", "C", "C", "Z"],
                            "attribute": ["budget", "budget", "budget", "budget", "industry", "industry"],
                            "recorded_at": pd.to_datetime([5, 1, 9, 3, 0, 4], unit="us", utc=True)})
    never = np.iinfo(np.int64).max
    shares = first_recorded_after_touch(history, pd.Series(["A", "B", "C"]), np.array([2, 9, never]))
    # A: first written at 1, touched at 2 (before); B: written at its touch (after); C: never touched;
    # Z: a lead the leads table does not know, never touched either
    assert shares == {"budget": pytest.approx(1 / 3), "industry": 0.0}


def test_rows_the_features_do_not_use_never_hide_later_values(small: FeatureInput) -> None:
    """Rows of undeclared attributes or unknown leads, out of time order, inside a lead's run."""
    noise = pd.DataFrame({"lead_id": ["A", "nobody"], "attribute": ["colour", "budget"], "value": ["red", "no"],
                          "recorded_at": [_day(30), _day(1)]})
    history = pd.concat([small.history.iloc[:1], noise, small.history.iloc[1:]], ignore_index=True)
    X = FeatureInput(small.snapshots, small.leads, small.events, history)
    expected = FeatureVectorizer(attributes=ATTRIBUTES).fit(small).transform(small)
    got = FeatureVectorizer(attributes=ATTRIBUTES).fit(small).transform(X)
    pd.testing.assert_frame_equal(got, expected)


def test_leads_computed_in_ranges_get_the_same_history_values(monkeypatch) -> None:  # noqa: ANN001
    """More leads than one sort key holds are computed range by range: history must follow its leads."""
    rng = np.random.default_rng(9)
    ids = [f"L{i:02d}" for i in range(30)]
    leads = pd.DataFrame({"lead_id": ids, "created_at": T0, "source": "referral", "budget": "yes",
                          "employees": 10.0})
    history = pd.DataFrame({"lead_id": rng.choice(ids, 200), "attribute": "budget",
                            "value": rng.choice(["yes", "no"], 200),
                            "recorded_at": [_day(d) for d in rng.uniform(0, 30, 200)]})
    snapshots = pd.DataFrame({"lead_id": rng.choice(ids, 100), "as_of": [_day(d) for d in rng.uniform(0, 31, 100)]})
    X = FeatureInput(snapshots, leads, pd.DataFrame({"lead_id": ["L00"], "ts": [_day(0)], "type": ["page_view"]}),
                     history)
    vec = FeatureVectorizer(attributes=ATTRIBUTES).fit(X)
    whole = vec.transform_matrix(X)
    monkeypatch.setattr("features.vectorizer.MAX_LEADS", 7)
    np.testing.assert_array_equal(vec.transform_matrix(X), whole)


def test_one_lead_with_a_cleared_value_reads_it_as_unknown() -> None:
    """The serving path codes a few rows with a dict: a cleared (missing) value is unknown, not a category."""
    leads = pd.DataFrame({"lead_id": ["A"], "created_at": [T0], "source": ["referral"], "budget": ["yes"],
                          "employees": [5.0]})
    history = pd.DataFrame({"attribute": pd.array(["budget", "budget"], dtype="string"),
                            "value": pd.array(["yes", pd.NA], dtype="string"),
                            "recorded_at": [int(_day(1).value // 1000), int(_day(2).value // 1000)]})
    X = FeatureInput(pd.DataFrame({"lead_id": ["A"], "as_of": [_day(3)]}), leads,
                     pd.DataFrame({"lead_id": ["A"], "ts": [_day(0)], "type": ["page_view"]}))
    vec = FeatureVectorizer(attributes=ATTRIBUTES).fit(X)
    as_of = np.array([int(_day(1.5).value // 1000), int(_day(3).value // 1000)])
    lead = LeadRecord("A", int(T0.value // 1000), "referral", {"budget": "yes", "employees": 5.0})
    codes = vec.history_codes(np.zeros(len(history), np.int64), history["attribute"], history["value"],
                              history["recorded_at"].to_numpy(np.int64))
    rows = vec.to_frame(vec.transform_leads([lead], np.zeros(0, np.int64), np.zeros(0, np.int64),
                                            np.zeros(0, dtype=object), None, np.zeros(as_of.size, np.int64), as_of,
                                            codes))
    assert rows["attr_budget"].astype(object).where(rows["attr_budget"].notna(), None).tolist() == ["yes", None]


def test_profiles_as_of_equal_values_as_of_lead_by_lead() -> None:
    """Every lead gets the profile the plain reference gives it alone, keys in the same order,
    for moments before, between, at and after the records (equal times keep the given order)."""
    rng = np.random.default_rng(3)
    names = ["budget", "need", "employees", "source", "timeline"]
    leads, rows = [], []
    for k in range(60):
        attributes = {n: f"v{rng.integers(3)}" for n in names[:3] if rng.random() < 0.6}
        leads.append(LeadRecord(f"L{k}", 0, rng.choice(["web", None]), attributes))
        for _ in range(int(rng.integers(0, 6))):
            rows.append((f"L{k}", names[rng.integers(len(names))], rng.choice(["a", "b", None, 3.0]),
                         int(rng.integers(0, 5)) * 100))
    rows.append(("nobody", "budget", "x", 0))  # a row of no lead in the batch is ignored
    order = rng.permutation(len(rows))
    history = pd.DataFrame([rows[i] for i in order], columns=["lead_id", "attribute", "value", "recorded_at"])
    position = pd.Index([lead.lead_id for lead in leads]).get_indexer(history["lead_id"])
    for as_of in (-1, 0, 150, 200, 10_000):
        got = profiles_as_of(leads, position, history, as_of)
        want = [values_as_of(lead, history[history["lead_id"] == lead.lead_id], as_of).profile for lead in leads]
        assert got == want
        assert [list(p) for p in got] == [list(p) for p in want]
