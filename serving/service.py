"""The BentoML service: thin HTTP over the same scoring and ingestion the CLI uses.

It loads the champion bundle (from the models folder, or from the MLflow registry when
``PROSPECT_MODEL_SOURCE=mlflow``) and reads and writes leads through the event store. The API key
comes from ``PROSPECT_API_KEY``; without one the service refuses to start unless
``PROSPECT_INSECURE_DEV=1`` (what ``prospect serve --insecure-dev`` sets for the demo).

Error messages never repeat lead ids or attribute values, and the log keeps only the path, the
status and the kind of error of a refused request (``serving.refusals``).

What a client can rely on (the README's service section says the same):
- one model per request, named in the response; all workers follow one champion pointer and swap
  to a newly promoted model within ``model_poll_seconds`` without failing a request
  (``serving.champion``); a damaged bundle is refused (at start-up: exit with one line);
- writes queue rather than fail under concurrency (``store.event_store``);
- every refusal is a 4xx JSON ``{"error": ...}`` naming the field; the OpenAPI document at
  ``/docs.json`` lists every status each operation answers (``serving.openapi``);
- slow or idle connections are closed and capped per worker (``serving.connections``), and the
  metrics are labelled by route (``serving.metrics_labels``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import bentoml
import pandas as pd
from bentoml.exceptions import BentoMLException, InvalidArgument, NotFound, ServiceUnavailable, UnprocessableEntity
from sqlalchemy.exc import OperationalError

from contract.taxonomy import load_taxonomy
from contract.timeunits import latest_acceptable
from features.vectorizer import UnknownEventType
from config.settings import Settings
from serving import connections
from serving.api_models import (
    MAX_BATCH,
    MAX_POSTED_EVENTS,
    BatchRequest,
    BatchResponse,
    EventsRequest,
    FeedbackRequest,
    ModelInfo,
    PayloadRequest,
    ReplayRequest,
    ReplayResponse,
    ScoreRequest,
    ScoreResponse,
    StoredResponse,
)
from serving.auth import CALLER, OPEN_PATHS, ApiKeyMiddleware, parse_keys
from serving.champion import Champion, ChampionWatcher, check_pointer
from serving.limits import BodyLimitMiddleware, KeepAliveLimitMiddleware, install_deadline
from serving.metrics_labels import label_by_route
from serving.openapi import DOC_PATH, OpenApiMiddleware, Operation, openapi_document
from serving.health_gauges import HealthGauges
from serving.refusals import JsonOnlyMiddleware, OneErrorShapeMiddleware, keep_lead_data_out_of_logs
from serving.payload import IN_THE_FUTURE, TOO_MANY, UNKNOWN_EVENT_TYPE, Payload, PayloadRefused, PayloadRules
from serving.replay import Replayer
from serving.score_recorder import ScoreRecorder
from serving.responses import batch_body, json_answer, score_body
from serving.scoring import CreatedAfterAsOf, Scored, UnknownLead
from store.event_store import EventStore, StoreBusy
from store.ingest import RecordsRejected, store_records
from store.score_log import ScoreLog


UNKNOWN_TYPE = ("the lead has events of a type the model's taxonomy does not know (the store accepted them under a "
                "newer taxonomy): retrain and promote a model on the current taxonomy to score it")


FLOOR_ENV = "BENCH_EVENTS_FLOOR"
"""Set to 1 (benchmarks/reliability.py does) to add /events_floor: /events minus the store, in the same
workers as the scorers, so a benchmark can show how far the store path is from what the server allows."""


class Conflict(BentoMLException):
    error_code = HTTPStatus.CONFLICT


def _moment(as_of: datetime | None, skew_minutes: int) -> pd.Timestamp:
    moment = pd.Timestamp(as_of).tz_convert("UTC") if as_of else pd.Timestamp.now(tz="UTC")
    if moment > latest_acceptable(timedelta(minutes=skew_minutes)):
        raise InvalidArgument("as_of is in the future: scores describe what is known now or earlier")
    return moment


def _api_key() -> str | None:
    key = os.environ.get("PROSPECT_API_KEY")
    if not key and not SETTINGS.api_keys and os.environ.get("PROSPECT_INSECURE_DEV") != "1":
        raise RuntimeError("PROSPECT_API_KEY is not set; refusing to start (use --insecure-dev for local demos)")
    return key or None


def _rejected(exc: RecordsRejected, what: str) -> BentoMLException:
    """A client-facing error for records the store refused: where (field) and why, without lead data."""
    first = exc.issues.iloc[0]
    where = f"{what}[{int(first['row'])}]." if what else ""
    column, reason = str(first["column"]), str(first["reason"])
    more = f" ({len(exc.issues) - 1} more problem(s) in this request)" if len(exc.issues) > 1 else ""
    if first["kind"] == "unknown_lead":
        return NotFound(f"{where}lead_id: unknown lead (no such lead in the store; create the lead first){more}")
    if first["kind"] == "conflict":
        return Conflict(f"{where}{column}: already stored with different content; an id names one record{more}")
    return UnprocessableEntity(f"{where}{column}: {reason}{more}; nothing was stored")


SETTINGS = Settings()
"""Read once: the decorator and the middleware need it at import, the service when it starts."""


def _check_champion_or_exit(settings: Settings) -> None:
    """Refuse to start on a missing or damaged bundle: one line on stderr and a non-zero exit.

    BentoML imports this module in its main process before it opens the port or starts workers,
    so a bad bundle stops the server there, instead of every worker crashing (LightGBM segfaults
    on a truncated model file) and being restarted in a loop while the port stays open.
    """
    try:
        check_pointer(settings)
    except Exception as exc:  # noqa: BLE001 - whatever the reason, the same clear refusal
        reason = str(exc) if isinstance(exc, FileNotFoundError) else type(exc).__name__
        print(f"prospect-scorer: cannot start, no usable champion model: {reason}", file=sys.stderr, flush=True)
        os._exit(3)  # noqa: SLF001 - BentoML's CLI turns exceptions (SystemExit too) into tracebacks


_check_champion_or_exit(SETTINGS)
connections.install(SETTINGS.header_timeout_seconds, SETTINGS.keepalive_timeout_seconds, SETTINGS.max_connections)
install_deadline()
keep_lead_data_out_of_logs()


# The scoring endpoints are ``async def`` although they do not await: their work is short and
# CPU-bound, and on the event loop it skips the hop to BentoML's thread pool, which measured 2.5 ms
# of a 6.4 ms request here (each worker has one core to spend anyway). Writes (/events, /feedback)
# run on the loop too while the store's write lock is free, and wait for it in a thread when it is not.
# Each endpoint takes the champion once (``self.watcher.current``): a swap in between cannot mix models.
@bentoml.service(name="prospect-scorer", traffic={"timeout": 30}, workers=SETTINGS.serve_workers)
class ProspectService:
    def __init__(self) -> None:
        global WORKER  # noqa: PLW0603 - the middlewares of this worker read the document's taxonomies from it
        self.settings = SETTINGS
        self.store = EventStore(self.settings.resolved_store_url)
        self.taxonomy = load_taxonomy(self.settings.taxonomy)
        self.watcher = ChampionWatcher(self.settings, _warm_up)
        self.watcher.start()
        self.score_log = ScoreRecorder(self.settings, self.store, self.watcher.current.scorer.criteria)
        self.replayer = Replayer(ScoreLog(self.store), self.store, self.settings)
        self.health_gauges = HealthGauges(self.settings.health_figures)
        keep_lead_data_out_of_logs()  # again: BentoML set up this worker's log handlers after the import
        WORKER = self
        # what is loaded now lives as long as the worker: keep the cycle collector from walking it
        # again on every full collection (a 1,000-lead batch response paused 0.2-0.3 s on them)
        gc.freeze()

    @bentoml.on_shutdown
    def _flush_score_log(self) -> None:
        """Every score acknowledged to a caller is written before the worker exits."""
        self.score_log.close()
        self.health_gauges.close()

    def _logged(self, scored: list[Scored], ctx: bentoml.Context, endpoint: str, **extra) -> list[str | None]:  # noqa: ANN003
        """Hand the scores to the score log; returns their score ids (what the answers carry)."""
        return self.score_log.record(scored, ctx.request.scope.get(CALLER, "anonymous"), endpoint, **extra)

    # The endpoints below answer with the declared models' JSON built straight from the scores
    # (``serving.responses``, tested equal byte for byte); the annotations keep the declared models.

    @bentoml.api(route="/score")
    async def score(self, request: ScoreRequest, /, ctx: bentoml.Context) -> ScoreResponse:
        """Score one lead of the store: probability, 0-100 score, tier, reasons, trend and criteria."""
        scorer = self.watcher.current.scorer
        try:
            moment = _moment(request.as_of, self.settings.clock_skew_minutes)
            scored = scorer.score_stored_leads(self.store, [request.lead_id], moment).only()
            return json_answer(score_body(scored, self._logged([scored], ctx, "score")[0]))
        except UnknownLead:
            raise NotFound("unknown lead_id: no such lead in the store") from None
        except UnknownEventType:
            raise UnprocessableEntity(UNKNOWN_TYPE) from None
        except CreatedAfterAsOf:
            raise UnprocessableEntity("as_of: the lead was created after this moment; nothing was known about it "
                                      "then") from None

    @bentoml.api(route="/score_payload")
    async def score_payload(self, request: PayloadRequest, /, ctx: bentoml.Context) -> ScoreResponse:
        """Score a lead given as profile attributes and events (nothing is stored)."""
        scorer = self.watcher.current.scorer
        rules = PayloadRules(self.settings.max_payload_events, timedelta(minutes=self.settings.clock_skew_minutes))
        try:
            rules.check_size(len(request.events))
            moment = _moment(request.as_of, self.settings.clock_skew_minutes)
            lead = request.lead
            payload = Payload.of(lead.lead_id, lead.created_at, lead.source, lead.attributes,
                                 ((e.ts, e.type, e.channel) for e in request.events))
            scored = scorer.score_payload(payload, moment, rules)
            score_id = self._logged([scored], ctx, "score_payload", payload=request.model_dump_json())[0]
            return json_answer(score_body(scored, score_id))
        except PayloadRefused as refused:
            raise _payload_refusal(refused, rules) from None
        except CreatedAfterAsOf:
            raise UnprocessableEntity("lead.created_at is after as_of (default: now): nothing was known about the "
                                      "lead then") from None

    @bentoml.api(route="/score_batch")
    async def score_batch(self, request: BatchRequest, /, ctx: bentoml.Context) -> BatchResponse:
        """Score up to 1,000 leads of the store in one call."""
        scorer = self.watcher.current.scorer
        if len(request.lead_ids) > MAX_BATCH:
            raise UnprocessableEntity(f"lead_ids has {len(request.lead_ids)} ids; at most {MAX_BATCH} a call")
        moment = _moment(request.as_of, self.settings.clock_skew_minutes)
        try:
            result = scorer.score_stored_leads(self.store, request.lead_ids, moment, reasons=request.reasons,
                                               criteria=request.criteria)
        except UnknownEventType:
            raise UnprocessableEntity(UNKNOWN_TYPE) from None
        ids = self._logged(result.scored, ctx, "score_batch")
        return json_answer(batch_body(result.scored, ids, result.unknown, result.created_after_as_of))

    @bentoml.api(route="/events")
    async def events(self, request: EventsRequest, /) -> StoredResponse:
        """Store events of known leads; resending the same event_id with the same content is a no-op."""
        if len(request.events) > MAX_POSTED_EVENTS:
            raise UnprocessableEntity(f"events has {len(request.events)} items; at most {MAX_POSTED_EVENTS} a call")
        return await self._store("events", [e.model_dump() for e in request.events], "events")

    @bentoml.api(route="/feedback")
    async def feedback(self, request: FeedbackRequest, /) -> StoredResponse:
        """Store what sales decided about a lead; the next `prospect train` learns from it."""
        record = request.model_dump()
        record["ts"] = record["ts"] or datetime.now(UTC)
        return await self._store("feedback", [record], "")

    async def _store(self, table: str, records: list[dict], what: str) -> StoredResponse:
        """The validated records straight to the store's rules and checks (the file-ingest ones), no frames.

        Storing 20 events takes a few ms when the write lock is free: that runs right here on the event
        loop (the hop to the thread pool cost more, and waited behind every score on the loop); when
        another writer holds the lock, the write queues for it in a thread, so scoring never waits on it.
        """
        skew = timedelta(minutes=self.settings.clock_skew_minutes)
        try:
            try:
                outcome = store_records(self.store, table, records, self.taxonomy, clock_skew=skew, wait=False)
            except StoreBusy:
                outcome = await asyncio.to_thread(store_records, self.store, table, records, self.taxonomy,
                                                  clock_skew=skew)
        except RecordsRejected as exc:
            raise _rejected(exc, what) from None
        except OperationalError:
            # the store stayed locked past its write timeout: nothing was stored, and saying so is
            # better than a bare 500 (the message of the error would carry the SQL parameters)
            raise ServiceUnavailable("the store is busy: nothing was stored; send the same request again") from None
        return StoredResponse(stored=outcome.stored, duplicates=outcome.duplicates)

    if os.environ.get(FLOOR_ENV) == "1":
        @bentoml.api(route="/events_floor")
        async def events_floor(self, request: EventsRequest, /) -> StoredResponse:
            """/events without storing: what HTTP, BentoML and validation alone allow (benchmarks only)."""
            return StoredResponse(stored=len(request.events), duplicates=0)

    @bentoml.api(route="/replay")
    def replay(self, request: ReplayRequest, /) -> ReplayResponse:
        """Recompute a logged score with its model version and rules; say whether it equals what was served."""
        r = self.replayer.replay(request.score_id)
        if r.served is None:
            raise NotFound(f"score_id: {r.reason}")
        e, s = r.served, r.recomputed
        return ReplayResponse(
            score_id=request.score_id, equal=r.equal, reason=r.reason, differences=r.differences,
            served_at=pd.Timestamp(e["served_at"] * 1000, tz="UTC"), as_of=pd.Timestamp(e["as_of"] * 1000, tz="UTC"),
            caller=e["caller"], model_version=e["model_version"], rules_version=e["rules_version"],
            served_probability=e["probability"], served_tier=e["tier"],
            recomputed_probability=None if s is None else s.probability, recomputed_tier=None if s is None else s.tier)

    @bentoml.api(route="/model_info")
    async def model_info(self) -> ModelInfo:
        """What model is serving: version, training window, feature set, thresholds, validation figures."""
        bundle = self.watcher.current.scorer.bundle
        meta, t = bundle.metadata, bundle.thresholds
        metrics = {k: {m: (None if v != v else v) for m, v in figures.items()} for k, figures in meta["metrics"].items()}
        return ModelInfo(version=meta.get("version"), trained_at=meta["trained_at"], data_window=meta["data_window"],
                         feature_set_version=meta["feature_set_version"], horizon_days=meta["horizon_days"],
                         thresholds={"prospect_ready": t.ready, "warming": t.warming}, tier_policy=t.policy,
                         split=meta["split"],
                         metrics=metrics)


def _warm_up(champion: Champion) -> None:
    """Score one made-up lead with a freshly loaded model before it serves (compiles the feature scan
    on first use, a few seconds; and proves the model answers)."""
    now = pd.Timestamp.now(tz="UTC")
    kind = next(iter(champion.taxonomy.types))
    champion.scorer.score_payload(Payload.of("warm-up", now - pd.Timedelta(days=1), None, {},
                                             [(now - pd.Timedelta(hours=1), kind, None)]), now)


def _payload_refusal(refused: PayloadRefused, rules: PayloadRules) -> BentoMLException:
    """The scorer's refusal of a payload in the caller's words: which field, and why."""
    i = refused.index
    if refused.kind == TOO_MANY:
        return UnprocessableEntity(f"events has {refused.count} items; at most {rules.max_events} a payload")
    if refused.kind == UNKNOWN_EVENT_TYPE:
        return UnprocessableEntity(f"events[{i}].type: unknown event type (not in the model's taxonomy)")
    if refused.kind == IN_THE_FUTURE:
        return InvalidArgument(f"events[{i}].ts is in the future")
    return UnprocessableEntity(f"events[{i}].ts is before lead.created_at: nothing happens to a lead before it exists")


WORKER: ProspectService | None = None
"""This worker's service instance, once started."""

OPERATIONS = [
    Operation("/score", "Score one lead of the store.", ScoreRequest, ScoreResponse, (404, 422)),
    Operation("/score_payload", "Score a lead given in the request (nothing stored).", PayloadRequest, ScoreResponse,
              (422,)),
    Operation("/score_batch", "Score up to 1,000 leads of the store.", BatchRequest, BatchResponse, (422,)),
    Operation("/events", "Store events of known leads (all or nothing; resending is safe).", EventsRequest,
              StoredResponse, (404, 409, 422, 503)),
    Operation("/feedback", "Store what sales decided about a lead.", FeedbackRequest, StoredResponse,
              (404, 409, 422, 503)),
    Operation("/replay", "Recompute a logged score and compare it with what was served.", ReplayRequest,
              ReplayResponse, (404,)),
    Operation("/model_info", "The model serving now.", None, ModelInfo),
]
API_PATHS = frozenset(op.path for op in OPERATIONS)
KEYS = parse_keys(_api_key(), SETTINGS.api_key_name, SETTINGS.api_keys)
"""API keys by caller name; empty only with PROSPECT_INSECURE_DEV=1."""


def _document_key() -> object:
    return WORKER.watcher.current.identity if WORKER else None


def _document() -> dict:
    types = {}
    if WORKER is not None:
        types = {"PayloadEvent": list(WORKER.watcher.current.taxonomy.types), "EventIn": list(WORKER.taxonomy.types)}
    return openapi_document(OPERATIONS, "prospect-scorer", "1", secured=bool(KEYS), event_types=types)


label_by_route(API_PATHS | frozenset(OPEN_PATHS) | {DOC_PATH, "/", "/schema.json"})
ProspectService.add_asgi_middleware(ApiKeyMiddleware, keys=KEYS)
ProspectService.add_asgi_middleware(BodyLimitMiddleware, max_bytes=SETTINGS.max_body_bytes)
ProspectService.add_asgi_middleware(KeepAliveLimitMiddleware, max_requests=SETTINGS.keepalive_requests)
ProspectService.add_asgi_middleware(JsonOnlyMiddleware, paths=API_PATHS)
ProspectService.add_asgi_middleware(OpenApiMiddleware, key=_document_key, document=_document)
ProspectService.add_asgi_middleware(OneErrorShapeMiddleware)
