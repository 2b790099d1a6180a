"""Replay a logged score: recompute it from the store as of its as-of time, with the model version and
criteria rules it was served with, and show that it equals what the caller saw.

The recomputation goes through the same scorer path as the original (one lead, or a batch), so the
probability must come out bit-equal and the reasons and criteria identical. When it cannot be
recomputed (the model version is no longer kept, the lead was deleted, the rules are gone) or comes
out different (events before the as-of time deleted or loaded late), the answer says why.

A score of a bulk run is logged in its lake (see ``serving.bulk``), not in the store: given the lake,
the replayer looks there when the store's log does not know the id, and recomputes the score from the
lake through the bulk path (its lead's bucket), as it was computed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from config.settings import Settings
from serving.criteria import Criteria, RuleFile
from serving.payload import Payload
from serving.scoring import CreatedAfterAsOf, Scored, Scorer
from store.event_store import EventStore
from store.score_log import ScoreLog
from runtime.bundle import load_bundle
from runtime.versions import find_bundle


@dataclass
class Replay:
    score_id: str
    served: dict | None = None  # the score log entry
    recomputed: Scored | None = None
    differences: list[str] = field(default_factory=list)
    reason: str | None = None  # why it could not be recomputed

    @property
    def equal(self) -> bool:
        return self.recomputed is not None and not self.differences


IMPACT_TOLERANCE = 1e-9
"""How far a recomputed reason's impact may be from the logged one. Reasons served before their
TreeSHAP values came from per-leaf tables (``runtime.treeshap``) were LightGBM's ``pred_contrib``:
the same values summed in another order, so they differ in the last bits (1e-15 measured). The
features, texts and order of the reasons must still be identical, and the probability bit-equal."""


def _reasons(s: Scored) -> dict:
    return json.loads(json.dumps({"for": [[r.feature, r.text, r.impact] for r in s.reasons_for],
                                  "against": [[r.feature, r.text, r.impact] for r in s.reasons_against]}))


def same_reasons(served: dict, now: dict) -> bool:
    """Logged and recomputed reasons (``{"for": [[feature, text, impact], ...], "against": ...}``) alike:
    the same features and texts in the same order, impacts within :data:`IMPACT_TOLERANCE`."""
    for side in ("for", "against"):
        logged, recomputed = served[side], now[side]
        if len(logged) != len(recomputed) or any(
                a[:2] != b[:2] or abs(a[2] - b[2]) > IMPACT_TOLERANCE for a, b in zip(logged, recomputed, strict=True)):
            return False
    return True


def compare(served: dict, s: Scored) -> list[str]:
    """What differs between a logged score and its recomputation, in words (empty when equal)."""
    out = []
    if served["probability"] != s.probability:
        out.append(f"probability {served['probability']!r} served, {s.probability!r} now")
    for name in ("score", "tier"):
        if served[name] != getattr(s, name):
            out.append(f"{name} {served[name]} served, {getattr(s, name)} now")
    if not same_reasons(served["reasons"], _reasons(s)):
        out.append("the reasons differ")
    if served["criteria"] != [[c.name, c.status, c.evidence] for c in s.criteria]:
        out.append("the criteria differ")
    if out and served["probability"] != s.probability:
        out.append("the lead's events or attributes before the as-of time are not those it was scored on "
                   "(events deleted, corrected or loaded after the score was served)")
    elif out:
        out.append("the lead's attributes changed since the score was served")
    return out


def logged_payload(payload: dict) -> Payload:
    """A logged /score_payload request (its JSON) as the scorer takes it."""
    lead = payload["lead"]
    return Payload.of(lead.get("lead_id", "payload"), lead["created_at"], lead.get("source"), lead.get("attributes", {}),
                      ((e["ts"], e["type"], e.get("channel")) for e in payload.get("events", [])))


class Replayer:
    """Replays logged scores, keeping the bundles and rule files it loaded for the next one."""

    def __init__(self, log: ScoreLog, store: EventStore, settings: Settings, lake: Path | None = None) -> None:
        self.log, self.store, self.settings, self.lake = log, store, settings, lake
        self._scorers: dict[tuple[str, str | None], Scorer] = {}

    def replay(self, score_id: str) -> Replay:
        served = self.log.entry(score_id)
        if served is None and self.lake is not None:
            from serving.bulk import bulk_log_entry

            served = bulk_log_entry(self.lake, score_id)
        if served is None:
            where = "the score log" + (f" or the bulk runs' log in {self.lake}" if self.lake is not None else "")
            return Replay(score_id, reason=f"no score with this id in {where} (never served, not yet "
                                           "written, or older than the log's retention)")
        out = Replay(score_id, served)
        scorer = self._scorer(served, out)
        if scorer is None:
            return out
        as_of = pd.Timestamp(served["as_of"] * 1000, tz="UTC")
        try:
            out.recomputed = self._recompute(scorer, served, as_of)
        except KeyError:
            where = "lake" if served["endpoint"] == "bulk" else "store"
            out.reason = f"the lead is no longer in the {where} (deleted since the score was served)"
        except CreatedAfterAsOf:
            out.reason = "the lead's creation time now lies after the as-of time (the lead was changed)"
        if out.recomputed is not None:
            out.differences = compare(served, out.recomputed)
        return out

    def _recompute(self, scorer: Scorer, served: dict, as_of: pd.Timestamp) -> Scored:
        if served["payload"] is not None:
            return scorer.score_payload(logged_payload(json.loads(served["payload"])), as_of)
        if served["endpoint"] == "bulk":
            from serving.bulk import rescore

            return rescore(self.lake, scorer, served)
        reasons = served["endpoint"] == "score" or bool(served["with_reasons"])
        return scorer.score_stored_leads(self.store, [served["lead_id"]], as_of, reasons=reasons).only()

    def _scorer(self, served: dict, out: Replay) -> Scorer | None:
        version, rules = served["model_version"], served["rules_version"]
        if version is None:
            out.reason = "served by a bundle without a registry version, which cannot be found again"
            return None
        key = (version, rules)
        if key not in self._scorers:
            folder = find_bundle(self.settings.bundles_dir, self.settings.bundle_caches, version)
            if folder is None:
                out.reason = (f"model version {version} is no longer kept on this machine (looked in "
                              f"{self.settings.bundles_dir} and the registry caches)")
                return None
            bundle = load_bundle(folder)
            bundle.metadata["version"] = version  # registry caches hold the bundle as trained, unstamped
            criteria = None
            if rules is not None:
                text = self.log.rules_text(rules)
                if text is None:
                    out.reason = f"criteria rules {rules} are not in the store"
                    return None
                criteria = Criteria(RuleFile.model_validate(yaml.safe_load(text)), bundle.vectorizer.taxonomy_, text)
            self._scorers[key] = Scorer(bundle, criteria)
        return self._scorers[key]
