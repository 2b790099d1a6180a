"""The BentoML service: thin HTTP over the same scoring the CLI uses.

It loads the champion bundle from the models folder and reads leads from the event store. The API
key comes from ``PROSPECT_API_KEY``; without one the service refuses to start unless
``PROSPECT_INSECURE_DEV=1`` (what ``prospect serve --insecure-dev`` sets for the demo).
"""

from __future__ import annotations

import os
from datetime import datetime

import bentoml
import pandas as pd
from bentoml.exceptions import InvalidArgument, NotFound, UnprocessableEntity

from prospect.config import Settings
from serving.api_models import MAX_BATCH, BatchRequest, BatchResponse, ModelInfo, ReasonOut, ScoreRequest, ScoreResponse
from serving.auth import ApiKeyMiddleware
from serving.scoring import Scored, Scorer
from store.event_store import EventStore
from training.bundle import load_bundle


def _response(s: Scored) -> ScoreResponse:
    return ScoreResponse(
        lead_id=s.lead_id, as_of=s.as_of.to_pydatetime(), probability=s.probability, score=s.score, tier=s.tier,
        reasons_for=[ReasonOut(feature=r.feature, text=r.text, impact=r.impact) for r in s.reasons_for],
        reasons_against=[ReasonOut(feature=r.feature, text=r.text, impact=r.impact) for r in s.reasons_against],
        model_version=s.model_version)


def _moment(as_of: datetime | None) -> pd.Timestamp:
    moment = pd.Timestamp(as_of).tz_convert("UTC") if as_of else pd.Timestamp.now(tz="UTC")
    if moment > pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=5):
        raise InvalidArgument("as_of is in the future: scores describe what is known now or earlier")
    return moment


def _api_key() -> str | None:
    key = os.environ.get("PROSPECT_API_KEY")
    if not key and os.environ.get("PROSPECT_INSECURE_DEV") != "1":
        raise RuntimeError("PROSPECT_API_KEY is not set; refusing to start (use --insecure-dev for local demos)")
    return key or None


@bentoml.service(name="prospect-scorer", traffic={"timeout": 30})
class ProspectService:
    def __init__(self) -> None:
        settings = Settings()
        self.store = EventStore(settings.resolved_store_url)
        self.scorer = Scorer(load_bundle(settings.models_dir / "champion"))

    @bentoml.api(route="/score")
    def score(self, request: ScoreRequest, /) -> ScoreResponse:
        """Score one lead of the store: probability, 0-100 score, tier and reasons."""
        try:
            return _response(self.scorer.score_stored_lead(self.store, request.lead_id, _moment(request.as_of)))
        except KeyError:
            # the id is not repeated here: error messages reach the server log, and lead data must not
            raise NotFound("unknown lead_id: no such lead in the store") from None

    @bentoml.api(route="/score_batch")
    def score_batch(self, request: BatchRequest, /) -> BatchResponse:
        """Score up to 1,000 leads of the store in one call."""
        if len(request.lead_ids) > MAX_BATCH:
            raise UnprocessableEntity(f"lead_ids has {len(request.lead_ids)} ids; at most {MAX_BATCH} a call")
        moment = _moment(request.as_of)
        scores, unknown = [], []
        for lead_id in request.lead_ids:
            try:
                scores.append(_response(self.scorer.score_stored_lead(self.store, lead_id, moment)))
            except KeyError:
                unknown.append(lead_id)
        return BatchResponse(scores=scores, unknown_lead_ids=unknown)

    @bentoml.api(route="/model_info")
    def model_info(self) -> ModelInfo:
        """What model is serving: version, training window, feature set, thresholds, validation figures."""
        meta = self.scorer.bundle.metadata
        t = self.scorer.bundle.thresholds
        metrics = {k: {m: (None if v != v else v) for m, v in figures.items()} for k, figures in meta["metrics"].items()}
        return ModelInfo(version=meta.get("version"), trained_at=meta["trained_at"], data_window=meta["data_window"],
                         feature_set_version=meta["feature_set_version"], horizon_days=meta["horizon_days"],
                         thresholds={"prospect_ready": t.ready, "warming": t.warming}, split=meta["split"],
                         metrics=metrics)


ProspectService.add_asgi_middleware(ApiKeyMiddleware, api_key=_api_key())
