"""Explicit criteria (budget, authority, need, timing, ideal-customer fit) from an editable rule file.

Sales teams qualify leads by rules they can state; the model scores behaviour they cannot. Both are
shown side by side: a criterion is met, not met or unknown with the evidence that decided it, and it
never feeds into the probability, so a rule edit can never silently move a score.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property, reduce
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.errors import describe
from contract.taxonomy import Taxonomy
from contract.timeunits import US_PER_DAY

DEFAULT_RULES = Path(__file__).with_name("criteria.yaml")


def rules_version(text: str) -> str:
    """A content version of a rule file: the same rules give the same version, in the score log too."""
    return "rules-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
MAX_EVENT_RULES = 62
"""Event rules are told apart by one bit of an int64 per event while a batch is evaluated."""

Status = Literal["met", "not_met", "unknown"]
EVENTS_LOOKED_UP_ONE_BY_ONE = 512
"""Fewer events named by an object array get their rule bits by a dict look-up each; more are factorised (those
within the widest window), so there is one look-up per distinct type."""
REMEMBERED = 100_000
"""At most this many event evidence texts and results are kept across batches (a few hundred is usual)."""
DENSE_KEYS_PER_ROW = 4
"""Rows of a criterion are grouped by a table over every possible key while there are at most this many per row."""


_TEXT_OR_NONE = {str, type(None)}


def _factorized(values: list) -> tuple[np.ndarray, list]:
    """Each value's code and the distinct values the codes stand for (the first of each), in C passes.

    Equal values of different classes (1, 1.0 and True) must stay apart, as they read differently in
    the evidence: when the distinct values are not all text or None (a number could then have
    joined an equal one of another class), they are keyed with their class if more than one class
    is present. A value that cannot be a key (a list) gets a code of its own, so it is decided alone.
    """
    if len(values) == 1:
        return np.zeros(1, dtype=np.int64), values
    keys = values
    try:
        distinct = dict.fromkeys(keys)
        if not set(map(type, distinct)) <= _TEXT_OR_NONE and len(set(map(type, values)) - _TEXT_OR_NONE) > 1:
            keys = list(zip(map(type, values), values, strict=True))
            distinct = dict.fromkeys(keys)
    except TypeError:
        return _factorized_one_by_one(values)
    index = {key: code for code, key in enumerate(distinct)}
    codes = np.fromiter(map(index.__getitem__, keys), dtype=np.int64, count=len(keys))
    return codes, list(distinct) if keys is values else [value for _, value in distinct]


def _factorized_one_by_one(values: list) -> tuple[np.ndarray, list]:
    index: dict = {}
    codes, distinct = [], []
    for value in values:
        try:
            code = index.setdefault((value.__class__, value), len(distinct))
        except TypeError:
            code = len(distinct)
        if code == len(distinct):
            distinct.append(value)
        codes.append(code)
    return np.array(codes, dtype=np.int64), distinct


def _type_codes(types: np.ndarray | pd.Categorical, at: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, list]:
    """The type of each event at ``at`` as a code into a list of type names (-1: no type).

    A ``pandas.Categorical`` (the store's form) already is that: its codes are used as they are. An
    object array of names is factorised by ``pd.factorize`` in a batch; the few events of one lead
    are each their own code (a look-up per event costs less there than the array set-up).
    """
    if isinstance(types, pd.Categorical):
        return types.codes[at].astype(np.int64), types.categories.tolist()  # int8 codes would overflow in keys
    types = np.asarray(types, dtype=object)[at]
    if len(types) < EVENTS_LOOKED_UP_ONE_BY_ONE:
        return np.arange(len(types)), types.tolist()
    codes, uniques = pd.factorize(types)
    return codes, list(uniques)


def _groups(columns: list[np.ndarray], sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows that are equal in all ``columns`` (values in [0, size)) grouped: (a row of each group, each row's group).

    The columns become one mixed-radix int64 per row (refactorised on the way whenever the next
    digit could overflow). Few possible keys -- most criteria -- are grouped by a table over all of
    them; many by a sort.
    """
    n = len(columns[0])
    key = np.zeros(n, dtype=np.int64)
    span = 1
    for column, size in zip(columns, sizes, strict=True):
        if span * size >= 2**62:
            uniques, key = np.unique(key, return_inverse=True)
            span = len(uniques)
        key = key * size + column
        span *= size
    if span > DENSE_KEYS_PER_ROW * n + 1024:
        _, rows, group = np.unique(key, return_index=True, return_inverse=True)
        return rows, group
    row = np.empty(span, dtype=np.int64)
    row[key] = np.arange(n)
    present = np.zeros(span, dtype=bool)
    present[key] = True
    return row[present], (np.cumsum(present) - 1)[key]


def _deciding_codes(combine: str, rules: list[tuple[np.ndarray, list]]) -> tuple[list[np.ndarray], list[int]]:
    """The codes that decide each lead's result of a criterion, the others masked (0), and their sizes.

    ``rules``: per rule, each lead's code and the decisions (None: decides nothing) the codes stand
    for. Under "first" the first deciding rule's code alone decides, under "all" the failing rules'
    alone when one fails; otherwise (nothing decides, nothing fails) every code does.
    """
    if len(rules) == 1:
        return [rules[0][0]], [len(rules[0][1])]
    status = [np.array([0 if d is None else 1 + (d[0] == "not_met") for d in decisions], np.int8)[codes]
              for codes, decisions in rules]
    if combine == "first":
        decided, used = np.zeros(len(status[0]), dtype=bool), []
        for s in status:
            used.append((s != 0) & ~decided)
            decided |= s != 0
        used = [u | ~decided for u in used]
    else:
        fails = np.logical_or.reduce([s == 2 for s in status])
        used = [(s == 2) | ~fails for s in status]
    return ([np.where(u, codes + 1, 0) for u, (codes, _) in zip(used, rules, strict=True)],
            [len(decisions) + 1 for _, decisions in rules])


def _recorded(value: object) -> bool:
    return not (value is None or (isinstance(value, float) and math.isnan(value)) or value == "")


class AttributeRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attribute: str
    met: list[str] = Field(default_factory=list)
    not_met: list[str] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _something_to_test(self) -> AttributeRule:
        if not self.met and self.min is None and self.max is None:
            raise ValueError(f"rule on {self.attribute!r} needs met values or a min/max range")
        return self

    def decide(self, value: object) -> tuple[Status, str] | None:
        if not _recorded(value):
            return None
        if self.min is not None or self.max is not None:
            try:
                number = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return None
            inside = (self.min is None or number >= self.min) and (self.max is None or number <= self.max)
            return ("met" if inside else "not_met"), f"{self.attribute} is {number:g}"
        text = str(value)
        if text in self.met:
            return "met", f"{self.attribute} is {text}"
        if text in self.not_met or not self.not_met:
            return "not_met", f"{self.attribute} is {text}"
        return None


class EventRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[str] = Field(min_length=1)
    within_days: float = Field(gt=0)


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    combine: Literal["first", "all"] = "first"
    rules: list[AttributeRule | EventRule] = Field(min_length=1)


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criteria: dict[str, Criterion] = Field(min_length=1)


@dataclass(frozen=True)
class CriterionResult:
    name: str
    label: str
    status: Status
    evidence: str


@dataclass(frozen=True, eq=False)
class CriteriaColumns:
    """The criteria of a batch, column-wise: lead ``i``'s criterion ``j`` is ``results[j][index[i, j]]``.

    Each criterion (``names``, in rule-file order) has few distinct results in a batch although nearly
    every lead's list of them is distinct (evidence such as "Requested a demo 3 days ago" varies), so
    a serialiser that works per distinct result does a fraction of the work. Equal results of a
    batch are the same object, so such a cache can key on identity.
    """

    names: list[str]
    results: list[list[CriterionResult]]
    index: np.ndarray  # (n_leads, n_criteria) int64

    def rows(self) -> list[list[CriterionResult]]:
        """Each lead's results in rule-file order (what :meth:`Criteria.evaluate_many` gives)."""
        if len(self.index) == 1:  # a lead alone: each criterion's one result (array work cost it more)
            return [[results[0] for results in self.results]]
        everything = [r for results in self.results for r in results]
        table = np.fromiter(everything, dtype=object, count=len(everything))
        start = np.cumsum([0, *map(len, self.results[:-1])])
        return table[self.index + start].tolist()


class CriteriaError(ValueError):
    """The rule file cannot be used; the message names the file and the rule."""


@dataclass(frozen=True)
class LeadFacts:
    """What criteria look at: the lead's attributes and its events strictly before the as-of time."""

    attributes: dict
    ts_us: np.ndarray  # usually ascending (the store's order); sorted here when not
    types: np.ndarray | pd.Categorical
    as_of_us: int


class Criteria:
    def __init__(self, rules: RuleFile, taxonomy: Taxonomy, text: str | None = None) -> None:
        self.rules = rules
        self.taxonomy = taxonomy
        self.text = text  # the rule file as written: kept in the score log under its version
        self.version = None if text is None else rules_version(text)

    @cached_property
    def _rules_and_bits(self) -> list[tuple[AttributeRule | EventRule, int | None]]:
        """Every rule in file order with its bit (event rules; None for attribute rules)."""
        rules = [r for c in self.rules.criteria.values() for r in c.rules]
        bits = iter(1 << k for k in range(len(rules)))
        return [(r, next(bits) if isinstance(r, EventRule) else None) for r in rules]

    @cached_property
    def _wanted_by(self) -> dict[str, int]:
        """Event type -> the event rules that look for it (their bits or-ed)."""
        wanted: dict[str, int] = {}
        for rule, bit in self._rules_and_bits:
            for t in getattr(rule, "events", ()):
                wanted[t] = wanted.get(t, 0) | bit
        return wanted

    @classmethod
    def load(cls, path: Path | None, taxonomy: Taxonomy) -> Criteria:
        path = path or DEFAULT_RULES
        try:
            text = path.read_text()
            rules = RuleFile.model_validate(yaml.safe_load(text))
        except (OSError, yaml.YAMLError) as exc:
            raise CriteriaError(f"{path}: cannot read the criteria rules: {exc}") from exc
        except ValidationError as exc:
            raise CriteriaError(f"{path}: invalid criteria rules: {describe(exc)}") from exc
        n_event_rules = sum(isinstance(r, EventRule) for c in rules.criteria.values() for r in c.rules)
        if n_event_rules > MAX_EVENT_RULES:
            raise CriteriaError(f"{path}: {n_event_rules} event rules; at most {MAX_EVENT_RULES} (one bit each)")
        for name, criterion in rules.criteria.items():
            for rule in criterion.rules:
                unknown = [t for t in getattr(rule, "events", []) if t not in taxonomy.types]
                if unknown:
                    raise CriteriaError(f"{path}: criterion {name}: unknown event types {unknown} (not in the taxonomy)")
        return cls(rules, taxonomy, text)

    def evaluate(self, facts: LeadFacts) -> list[CriterionResult]:
        """The criteria of one lead: the batch evaluation for a batch of one, so both agree by construction."""
        ts = np.asarray(facts.ts_us, np.int64)
        types = facts.types if isinstance(facts.types, pd.Categorical) else np.asarray(facts.types, dtype=object)
        return self.evaluate_many([facts.attributes], np.zeros(ts.size, np.int64), ts, types,
                                  np.array([facts.as_of_us], np.int64))[0]

    def evaluate_many(self, attributes: list[dict], owner: np.ndarray, ts_us: np.ndarray,
                      types: np.ndarray | pd.Categorical, as_of_us: np.ndarray) -> list[list[CriterionResult]]:
        """The criteria of many leads at once, a list per lead (``owner``: each event's position in ``attributes``)."""
        return self.evaluate_columns(attributes, owner, ts_us, types, as_of_us).rows()

    def evaluate_columns(self, attributes: list[dict], owner: np.ndarray, ts_us: np.ndarray,
                         types: np.ndarray | pd.Categorical, as_of_us: np.ndarray) -> CriteriaColumns:
        """The criteria of many leads at once, column-wise (see :class:`CriteriaColumns`).

        ``owner`` gives each event's position in ``attributes``, ``types`` each event's type as an
        object array of names or a ``pandas.Categorical``. Every rule becomes a code per lead (an
        attribute rule: the lead's value among the batch's distinct values; an event rule: its latest
        qualifying event's type and days ago, or none), and a criterion is decided once per distinct
        combination of the codes that decide it -- array operations and a few hundred decisions,
        where a decision per lead cost a 1,000-lead batch more than its model.
        """
        n = len(attributes)
        as_of_us = np.asarray(as_of_us, np.int64)
        events = iter(self._event_columns(n, np.asarray(owner, np.int64), np.asarray(ts_us, np.int64), types,
                                          as_of_us))
        values: dict[str, tuple[np.ndarray, list]] = {}
        columns = []
        for rule, bit in self._rules_and_bits:
            if bit is None:
                if rule.attribute not in values:
                    values[rule.attribute] = _factorized([lead.get(rule.attribute) for lead in attributes])
                codes, distinct = values[rule.attribute]
                columns.append((codes, [rule.decide(v) for v in distinct]))
            else:
                columns.append(next(events))
        names = list(self.rules.criteria)
        index = np.empty((n, len(names)), dtype=np.int64)
        results = []
        k = 0
        for j, (name, criterion) in enumerate(self.rules.criteria.items()):
            mine = columns[k:k + len(criterion.rules)]
            k += len(criterion.rules)
            distinct, index[:, j] = self._criterion_column(name, criterion, mine, attributes)
            results.append(distinct)
        return CriteriaColumns(names, results, index)

    def _criterion_column(self, name: str, criterion: Criterion, rules: list[tuple[np.ndarray, list]],
                          attributes: list[dict]) -> tuple[list[CriterionResult], np.ndarray]:
        """One criterion for every lead: its distinct results (equal ones the same object) and each lead's index.

        ``rules``: per rule of the criterion, each lead's code and the decisions (None: decides
        nothing) the codes stand for. Leads whose deciding codes are equal are decided once.
        """
        if len(attributes) == 1:  # a lead alone: nothing to group (grouping cost a lead more than deciding)
            decided = self._decided(criterion, [d[c[0]] for c, d in rules], attributes[0])
            return [self._result(name, *decided)], np.zeros(1, dtype=np.int64)
        leads, group = _groups(*_deciding_codes(criterion.combine, rules))
        seen: dict[tuple[Status, str], int] = {}  # equal results: one object
        results, position = [], []
        for i, *lead_codes in zip(leads.tolist(), *(c[leads].tolist() for c, _ in rules), strict=True):
            decided = self._decided(criterion, [d[c] for (_, d), c in zip(rules, lead_codes, strict=True)],
                                    attributes[i])
            k = seen.setdefault(decided, len(results))
            if k == len(results):
                results.append(self._result(name, *decided))
            position.append(k)
        return results, np.array(position, dtype=np.int64)[group]

    @cached_property
    def _remembered(self) -> dict[tuple, object]:
        """What repeats across leads and batches: event evidence by (type, days ago), results by their content.

        Emptied when full (:data:`REMEMBERED`), so free-text attribute values cannot grow it without bound.
        """
        return {}

    def _remember(self, key: tuple, make: Callable[[], object]) -> object:
        remembered = self._remembered
        value = remembered.get(key)
        if value is None:
            if len(remembered) >= REMEMBERED:
                remembered.clear()
            value = remembered[key] = make()
        return value

    def _met_by_event(self, event_type: str, days: int) -> tuple[Status, str]:
        """The decision of an event rule met by an event of ``event_type`` ``days`` ago (0: today)."""
        ago = "today" if days == 0 else ("1 day ago" if days == 1 else f"{days} days ago")
        return self._remember(("event", event_type, days),
                              lambda: ("met", f"{self.taxonomy.types[event_type].description} {ago}"))

    def _result(self, name: str, status: Status, evidence: str) -> CriterionResult:
        """The one result object of this content, within a batch and across batches."""
        return self._remember(("result", name, status, evidence),
                              lambda: CriterionResult(name, self.rules.criteria[name].label, status, evidence))

    def _type_bits(self, names: list) -> np.ndarray:
        """Which event rules want each type of ``names`` (a bit per rule), and 0 at the end for code -1."""
        wanted_by = self._wanted_by
        return np.fromiter((wanted_by.get(t, 0) for t in [*names, None]), dtype=np.int64, count=len(names) + 1)

    def _event_bits(self, types: np.ndarray | pd.Categorical) -> np.ndarray:
        """Which event rules want each event (a bit per rule); ``types``: names, or a Categorical (its codes)."""
        codes, names = _type_codes(types)
        return self._type_bits(names)[codes]

    def _event_columns(self, n: int, owner: np.ndarray, ts_us: np.ndarray, types: np.ndarray | pd.Categorical,
                       as_of_us: np.ndarray) -> list[tuple[np.ndarray, list]]:
        """Per event rule (in file order): each lead's code and the decisions the codes stand for.

        Code 0 is no wanted event strictly before the lead's as-of time within the window; any other
        the latest such event's (type, days ago), as it alone decides the evidence. Only the events
        some rule may want are looked at: a Categorical's codes are compared with the wanted types'
        codes; an object array's names cost a hash each, so in a batch only the events within the
        widest window are looked up (about half of them).
        """
        rules = [(rule, bit) for rule, bit in self._rules_and_bits if bit is not None]
        if not rules:
            return []
        if isinstance(types, pd.Categorical):
            # a comparison of the codes per wanted type costs a fraction of a table look-up per event
            wanted = np.flatnonzero(self._type_bits(types.categories.tolist())[:-1]).astype(types.codes.dtype)
            near = np.flatnonzero(reduce(np.logical_or, (types.codes == k for k in wanted.tolist()),
                                         np.zeros(len(types), dtype=bool)))
        elif len(types) < EVENTS_LOOKED_UP_ONE_BY_ONE:
            near = slice(None)  # a lead's few events: a look-up each costs less than the array work to spare some
        else:
            moment = as_of_us[owner]
            widest = max(rule.within_days for rule, _ in rules)
            near = np.flatnonzero((ts_us >= moment - widest * US_PER_DAY) & (ts_us < moment))
        owner, ts_us = owner[near], ts_us[near]
        moment = as_of_us[owner]
        type_codes, names = _type_codes(types, near)
        bits = self._type_bits(names)[type_codes]
        out = []
        for rule, bit in rules:
            hit = np.flatnonzero(bits & bit)
            if hit.size:
                at, then = ts_us[hit], moment[hit]
                hit = hit[(at >= then - rule.within_days * US_PER_DAY) & (at < then)]
            if not hit.size:
                out.append((np.zeros(n, dtype=np.int64), [None]))
                continue
            if hit.size > 1:
                # the latest hit per lead: by time, and among equal times the last in the given order (a stable sort)
                hit = hit[np.lexsort((ts_us[hit], owner[hit]))]
                last_of_lead = np.ones(hit.size, dtype=bool)
                np.not_equal(owner[hit][1:], owner[hit][:-1], out=last_of_lead[:-1])
                hit = hit[last_of_lead]
            lead, kind = owner[hit], type_codes[hit]
            days = (as_of_us[lead] - ts_us[hit]) / US_PER_DAY
            # the evidence's words: under a day "today", under two "1 day ago", else the days rounded half to even
            whole = np.where(days < 1, 0, np.where(days < 2, 1, np.rint(days))).astype(np.int64)
            first, group = _groups([kind, whole], [len(names), int(whole.max(initial=0)) + 1])
            codes = np.zeros(n, dtype=np.int64)
            codes[lead] = group + 1
            decisions = [None, *(self._met_by_event(str(names[t]), d)
                                 for t, d in zip(kind[first].tolist(), whole[first].tolist(), strict=True))]
            out.append((codes, decisions))
        return out

    def _decided(self, criterion: Criterion, decisions: list, attributes: dict) -> tuple[Status, str]:
        """A criterion's status and evidence from its rules' decisions (None: the rule decided nothing)."""
        if criterion.combine == "first":
            for decision in decisions:
                if decision is not None:
                    return decision
            return "unknown", self._undecided(criterion, decisions, attributes)
        decided = [d for d in decisions if d is not None]
        failing = [e for s, e in decided if s == "not_met"]
        if failing:
            return "not_met", "; ".join(failing)
        if len(decided) == len(decisions):
            return "met", "; ".join([e for _, e in decided])
        return "unknown", "; ".join([*(e for _, e in decided), self._undecided(criterion, decisions, attributes)])

    def _undecided(self, criterion: Criterion, decisions: list, attributes: dict) -> str:
        """Why the rules that decided nothing did not: a value no rule lists, or nothing recorded."""
        neither, missing = [], []
        for rule, decision in zip(criterion.rules, decisions, strict=True):
            if decision is not None:
                continue
            value = attributes.get(rule.attribute) if isinstance(rule, AttributeRule) else None
            if _recorded(value):
                neither.append(f"{rule.attribute} is {value}, which decides neither way")
            else:
                missing.append(self._looked_for_rule(rule))
        return "; ".join([*neither, *(["not recorded: " + ", ".join(missing)] if missing else [])])

    @staticmethod
    def _looked_for_rule(rule: AttributeRule | EventRule) -> str:
        if isinstance(rule, AttributeRule):
            return rule.attribute
        return f"no {'/'.join(rule.events)} in the last {rule.within_days:g} days"
