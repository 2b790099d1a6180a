"""Explicit criteria (budget, authority, need, timing, ideal-customer fit) from an editable rule file.

Sales teams qualify leads by rules they can state; the model scores behaviour they cannot. Both are
shown side by side: a criterion is met, not met or unknown with the evidence that decided it, and it
never feeds into the probability, so a rule edit can never silently move a score.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

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
"""Fewer events than this get their rule bits by a dict look-up each; more, by one look-up per distinct type."""


_UNSEEN = object()


def _attribute_decisions(rule: AttributeRule, attributes: list[dict]) -> tuple[list, list]:
    """One attribute rule for every lead, decided once per distinct value: (keys, decisions).

    A key holds the value's type too (1, 1.0 and True are equal keys but read differently in the
    evidence). Comprehensions over the batch, not a loop with a look-up per lead: this was the
    costliest Python in a 1,000-lead batch. A value that cannot be a key (a list) sends the batch
    through the per-lead loop, where it is decided alone and keyed None.
    """
    values = [lead.get(rule.attribute) for lead in attributes]
    keys = [(v.__class__, v) for v in values]
    try:
        decided = {key: rule.decide(key[1]) for key in set(keys)}
    except TypeError:
        return _attribute_decisions_one_by_one(rule, values)
    return keys, [decided[key] for key in keys]


def _attribute_decisions_one_by_one(rule: AttributeRule, values: list) -> tuple[list, list]:
    cache: dict = {}
    keys, out = [], []
    for value in values:
        key = (value.__class__, value)
        try:
            decision = cache.get(key, _UNSEEN)
        except TypeError:
            key, decision = None, rule.decide(value)
        if decision is _UNSEEN:
            decision = cache[key] = rule.decide(value)
        keys.append(key)
        out.append(decision)
    return keys, out


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


class CriteriaError(ValueError):
    """The rule file cannot be used; the message names the file and the rule."""


@dataclass(frozen=True)
class LeadFacts:
    """What criteria look at: the lead's attributes and its events strictly before the as-of time."""

    attributes: dict
    ts_us: np.ndarray  # usually ascending (the store's order); sorted here when not
    types: np.ndarray
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
        return self.evaluate_many([facts.attributes], np.zeros(ts.size, np.int64), ts,
                                  np.asarray(facts.types, dtype=object), np.array([facts.as_of_us], np.int64))[0]

    def evaluate_many(self, attributes: list[dict], owner: np.ndarray, ts_us: np.ndarray, types: np.ndarray,
                      as_of_us: np.ndarray) -> list[list[CriterionResult]]:
        """The criteria of many leads at once (``owner``: each event's position in ``attributes``).

        Column-wise, because a batch of 1,000 leads spent more time here than in the model: event
        rules are array operations over all the batch's events, and an attribute rule -- like the
        combination of a criterion's rules -- is decided once per distinct value in the batch.
        """
        bits = self._event_bits(types)
        decided = [_attribute_decisions(rule, attributes) if bit is None else
                   (None, self._event_decisions(rule, len(attributes), owner, ts_us, types,
                                                np.flatnonzero(bits & bit), as_of_us))
                   for rule, bit in self._rules_and_bits]
        out: list[list[CriterionResult]] = [[] for _ in attributes]
        k = 0
        for name, criterion in self.rules.criteria.items():
            mine = decided[k:k + len(criterion.rules)]
            k += len(criterion.rules)
            # an attribute rule's part of the key is the value (which decides it), an event rule's its decision
            parts = [decisions if keys is None else keys for keys, decisions in mine]
            seen: dict[tuple, CriterionResult] = {}
            for i, key in enumerate(zip(*parts, strict=True)):
                result = seen.get(key) if None not in key else None
                if result is None:
                    result = self._criterion(name, criterion, [d[i] for _, d in mine], attributes[i])
                    if None not in key:
                        seen[key] = result
                out[i].append(result)
        return out

    def _event_bits(self, types: np.ndarray) -> np.ndarray:
        """Which event rules want each event (a bit per rule), so that a rule's candidates are one array test.

        A dict look-up per event for a few events (the ~50 of one lead: array set-up costs more), and
        per distinct type for a batch (a dict look-up for each of 50,000 events was a third of the criteria).
        """
        wanted_by = self._wanted_by
        if len(types) < EVENTS_LOOKED_UP_ONE_BY_ONE:
            return np.fromiter((wanted_by.get(t, 0) for t in types), dtype=np.int64, count=len(types))
        codes, uniques = pd.factorize(np.asarray(types, dtype=object))
        # code -1 (a missing type) reads the appended 0: no rule wants it, as wanted_by.get(None, 0) says
        table = np.fromiter((wanted_by.get(t, 0) for t in [*uniques, None]), dtype=np.int64, count=len(uniques) + 1)
        return table[codes]

    def _event_decisions(self, rule: EventRule, n: int, owner: np.ndarray, ts_us: np.ndarray, types: np.ndarray,
                         hit: np.ndarray, as_of_us: np.ndarray) -> list:
        """The latest wanted event strictly before each lead's as-of time and within the window, per lead
        (``hit``: the positions of the events of a type the rule looks for)."""
        out: list = [False] * n
        if not hit.size:
            return out
        moment = as_of_us[owner[hit]]
        hit = hit[(ts_us[hit] >= moment - rule.within_days * US_PER_DAY) & (ts_us[hit] < moment)]
        if hit.size > 1:
            # the latest hit per lead: by time, and among equal times the last in the given order
            hit = hit[np.lexsort((hit, ts_us[hit], owner[hit]))]
            last_of_lead = np.ones(hit.size, dtype=bool)
            np.not_equal(owner[hit][1:], owner[hit][:-1], out=last_of_lead[:-1])
            hit = hit[last_of_lead]
        for e in hit:
            lead = int(owner[e])
            days = (int(as_of_us[lead]) - int(ts_us[e])) / US_PER_DAY
            ago = "today" if days < 1 else ("1 day ago" if days < 2 else f"{days:.0f} days ago")
            out[lead] = ("met", f"{self.taxonomy.types[str(types[e])].description} {ago}")
        return out

    def _criterion(self, name: str, criterion: Criterion, decisions: list, attributes: dict) -> CriterionResult:
        decisions = [d or None for d in decisions]
        if criterion.combine == "first":
            for decision in decisions:
                if decision is not None:
                    return CriterionResult(name, criterion.label, *decision)
            return CriterionResult(name, criterion.label, "unknown", self._undecided(criterion, decisions, attributes))
        decided = [d for d in decisions if d is not None]
        failing = [e for s, e in decided if s == "not_met"]
        if failing:
            return CriterionResult(name, criterion.label, "not_met", "; ".join(failing))
        if len(decided) == len(decisions):
            return CriterionResult(name, criterion.label, "met", "; ".join(e for _, e in decided))
        evidence = "; ".join([*(e for _, e in decided), self._undecided(criterion, decisions, attributes)])
        return CriterionResult(name, criterion.label, "unknown", evidence)

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
