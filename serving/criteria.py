"""Explicit criteria (budget, authority, need, timing, ideal-customer fit) from an editable rule file.

Sales teams qualify leads by rules they can state; the model scores behaviour they cannot. Both are
shown side by side: a criterion is met, not met or unknown with the evidence that decided it, and it
never feeds into the probability, so a rule edit can never silently move a score.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.errors import describe
from contract.taxonomy import Taxonomy

DEFAULT_RULES = Path(__file__).with_name("criteria.yaml")


def rules_version(text: str) -> str:
    """A content version of a rule file: the same rules give the same version, in the score log too."""
    return "rules-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
DAY_US = 86_400_000_000

Status = Literal["met", "not_met", "unknown"]


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
        for name, criterion in rules.criteria.items():
            for rule in criterion.rules:
                unknown = [t for t in getattr(rule, "events", []) if t not in taxonomy.types]
                if unknown:
                    raise CriteriaError(f"{path}: criterion {name}: unknown event types {unknown} (not in the taxonomy)")
        return cls(rules, taxonomy, text)

    def evaluate(self, facts: LeadFacts) -> list[CriterionResult]:
        if facts.ts_us.size > 1 and bool(np.any(facts.ts_us[1:] < facts.ts_us[:-1])):
            order = np.argsort(facts.ts_us, kind="stable")
            facts = LeadFacts(facts.attributes, facts.ts_us[order], np.asarray(facts.types)[order], facts.as_of_us)
        return [self._criterion(name, c, facts) for name, c in self.rules.criteria.items()]

    def _criterion(self, name: str, criterion: Criterion, facts: LeadFacts) -> CriterionResult:
        decisions = [self._rule(rule, facts) for rule in criterion.rules]
        if criterion.combine == "first":
            for decision in decisions:
                if decision is not None:
                    return CriterionResult(name, criterion.label, *decision)
            return CriterionResult(name, criterion.label, "unknown", self._undecided(criterion, decisions, facts))
        decided = [d for d in decisions if d is not None]
        failing = [e for s, e in decided if s == "not_met"]
        if failing:
            return CriterionResult(name, criterion.label, "not_met", "; ".join(failing))
        if len(decided) == len(decisions):
            return CriterionResult(name, criterion.label, "met", "; ".join(e for _, e in decided))
        evidence = "; ".join([*(e for _, e in decided), self._undecided(criterion, decisions, facts)])
        return CriterionResult(name, criterion.label, "unknown", evidence)

    def _undecided(self, criterion: Criterion, decisions: list, facts: LeadFacts) -> str:
        """Why the rules that decided nothing did not: a value no rule lists, or nothing recorded."""
        neither, missing = [], []
        for rule, decision in zip(criterion.rules, decisions, strict=True):
            if decision is not None:
                continue
            value = facts.attributes.get(rule.attribute) if isinstance(rule, AttributeRule) else None
            if _recorded(value):
                neither.append(f"{rule.attribute} is {value}, which decides neither way")
            else:
                missing.append(self._looked_for_rule(rule))
        return "; ".join([*neither, *(["not recorded: " + ", ".join(missing)] if missing else [])])

    def _rule(self, rule: AttributeRule | EventRule, facts: LeadFacts) -> tuple[Status, str] | None:
        if isinstance(rule, AttributeRule):
            return rule.decide(facts.attributes.get(rule.attribute))
        since = facts.as_of_us - rule.within_days * DAY_US
        wanted = set(rule.events)
        # events are in time order: walk back from the as-of time to the window's start, latest first
        lo = int(np.searchsorted(facts.ts_us, since, side="left"))
        hi = int(np.searchsorted(facts.ts_us, facts.as_of_us, side="left"))
        last = next((i for i in range(hi - 1, lo - 1, -1) if facts.types[i] in wanted), -1)
        if last < 0:
            return None
        days = (facts.as_of_us - int(facts.ts_us[last])) / DAY_US
        ago = "today" if days < 1 else ("1 day ago" if days < 2 else f"{days:.0f} days ago")
        return "met", f"{self.taxonomy.types[str(facts.types[last])].description} {ago}"

    @staticmethod
    def _looked_for_rule(rule: AttributeRule | EventRule) -> str:
        if isinstance(rule, AttributeRule):
            return rule.attribute
        return f"no {'/'.join(rule.events)} in the last {rule.within_days:g} days"
