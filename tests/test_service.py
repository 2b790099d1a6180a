"""The HTTP service, started for real on 127.0.0.1: endpoints, auth and bad requests."""

from __future__ import annotations

import http.client
import os
import socket
import time

import httpx
import pandas as pd
import pytest

from contract.lead_record import LeadRecord
from features.dataset import load_frames
from serving.launch import start_service
from store.event_store import EventStore
from tests.conftest import generated_store
from training.bundle import save_bundle
from training.train import TrainConfig, prepare, train

KEY = "test-key-123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory, taxonomy):  # noqa: ANN001, ANN201
    folder = tmp_path_factory.mktemp("service")
    store = generated_store(folder, 4000, 51, taxonomy)
    url = store.url
    config = TrainConfig(seed=1)
    save_bundle(train(load_frames(store), taxonomy, config), config, folder / "models" / "champion", version="3")
    store.close()
    port = _free_port()
    env = {**os.environ, "PROSPECT_STORE_URL": url, "PROSPECT_MODELS_DIR": str(folder / "models"),
           "PROSPECT_HOME": str(folder), "PROSPECT_API_KEY": KEY, "PROSPECT_MAX_BODY_BYTES": "300000",
           "PROSPECT_MAX_PAYLOAD_EVENTS": "500", "PROSPECT_KEEPALIVE_REQUESTS": "5"}
    log = open(folder / "serve.log", "w")  # noqa: SIM115 - closed at teardown
    proc = start_service(env, folder / "bentoml", "127.0.0.1", port, log=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError((folder / "serve.log").read_text()[-3000:])
        time.sleep(0.5)
    else:
        proc.terminate()
        raise RuntimeError("service did not become ready in 90 s")
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    yield client, folder, url
    client.close()
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_score_one_lead(service) -> None:  # noqa: ANN001
    client, *_ = service
    r = client.post("/score", json={"lead_id": "L0000007", "as_of": "2025-09-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert 0 <= body["probability"] <= 1 and 0 <= body["score"] <= 100
    assert body["tier"] in ("prospect-ready", "warming", "early lead") and body["model_version"] == "3"
    assert body["as_of"].startswith("2025-09-01T00:00:00")
    assert all(r["impact"] > 0 and ":" in r["text"] for r in body["reasons_for"])
    assert body["trend"] in ("improving", "steady", "fading", "new")
    assert body["trend"] == "new" or 0 <= body["score_week_ago"] <= 100
    criteria = {c["name"]: c for c in body["criteria"]}
    assert set(criteria) == {"budget", "authority", "need", "timing", "ideal_customer_fit"}
    assert all(c["status"] in ("met", "not_met", "unknown") and c["evidence"] for c in criteria.values())


def test_batch_and_model_info(service) -> None:  # noqa: ANN001
    client, *_ = service
    r = client.post("/score_batch", json={"lead_ids": ["L0000001", "L0000002", "NOPE"],
                                          "as_of": "2025-09-01T00:00:00Z"})
    assert r.status_code == 200 and [s["lead_id"] for s in r.json()["scores"]] == ["L0000001", "L0000002"]
    assert r.json()["unknown_lead_ids"] == ["NOPE"] and r.json()["created_after_as_of"] == []
    # a nightly re-ranking asks for neither reasons nor criteria: the same scores, nothing else
    ranked = client.post("/score_batch", json={"lead_ids": ["L0000001", "L0000002", "NOPE"], "reasons": False,
                                               "criteria": False, "as_of": "2025-09-01T00:00:00Z"}).json()
    assert [s["criteria"] for s in ranked["scores"]] == [[], []] and all(s["criteria"] for s in r.json()["scores"])
    assert [(s["probability"], s["tier"], s["trend"]) for s in ranked["scores"]] == [
        (s["probability"], s["tier"], s["trend"]) for s in r.json()["scores"]] and ranked["unknown_lead_ids"] == ["NOPE"]
    # leads that did not exist yet at as_of are named, not scored as if they had
    early = client.post("/score_batch", json={"lead_ids": ["L0000001", "NOPE"], "as_of": "2000-01-01T00:00:00Z"})
    assert early.status_code == 200 and early.json() == {"scores": [], "unknown_lead_ids": ["NOPE"],
                                                         "created_after_as_of": ["L0000001"]}
    too_many = client.post("/score_batch", json={"lead_ids": [f"L{i:07d}" for i in range(1001)]})
    assert too_many.status_code == 422 and "at most 1000" in too_many.text
    info = client.post("/model_info", json={}).json()
    assert info["version"] == "3" and info["feature_set_version"].startswith("fs-") and "out of time" in info["split"]
    assert 0 < info["metrics"]["model"]["roc_auc"] <= 1 and info["thresholds"]["prospect_ready"] >= info["thresholds"]["warming"]


def test_auth_is_required_except_for_health(service) -> None:  # noqa: ANN001
    client, *_ = service
    base = str(client.base_url)
    missing = httpx.post(f"{base}/score", json={"lead_id": "L0000001"})
    assert missing.status_code == 401 and "missing API key" in missing.text
    wrong = httpx.post(f"{base}/score", json={"lead_id": "L0000001"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "wrong API key" in wrong.text
    assert httpx.get(f"{base}/healthz").status_code == 200 and httpx.get(f"{base}/metrics").status_code == 200


@pytest.mark.parametrize("body, status, words", [
    ('{"lead_id": "NOPE"}', 404, "unknown lead_id"),
    ('{"lead_id": 12', 400, "Invalid JSON"),
    ('{"as_of": "2025-09-01T00:00:00Z"}', 400, "lead_id"),
    ('{"lead_id": "L0000001", "as_of": "2025-09-01T00:00:00"}', 400, "as_of needs a time zone"),
    ('{"lead_id": "L0000001", "as_of": "2099-01-01T00:00:00Z"}', 400, "as_of is in the future"),
    ('{"lead_id": ["L0000001"]}', 400, "lead_id"),
    ('{"lead_id": "L0000001", "colour": "red"}', 400, "colour"),
    ('{"lead_id": "L0000001", "as_of": "2000-01-01T00:00:00Z"}', 422, "as_of: the lead was created after"),
])
def test_bad_requests_get_a_4xx_that_names_the_field(service, body: str, status: int, words: str) -> None:  # noqa: ANN001
    client, *_ = service
    r = client.post("/score", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and words in r.text, r.text
    assert "Traceback" not in r.text


def test_no_lead_data_in_the_server_log(service) -> None:  # noqa: ANN001
    client, folder, _ = service
    client.post("/score", json={"lead_id": "SECRET-LEAD-ID"})
    time.sleep(0.5)
    assert "SECRET-LEAD-ID" not in (folder / "serve.log").read_text()


def _stored_lead(url: str, lead_id: str) -> tuple[LeadRecord, list[dict]]:
    store = EventStore(url)
    lead, events = store.lead(lead_id), store.lead_events(lead_id)
    store.close()
    return lead, [{"ts": pd.Timestamp(t, unit="us", tz="UTC").isoformat(), "type": k, "channel": c}
                  for t, k, c in zip(events.ts_us, events.type, events.channel, strict=True)]


def test_score_payload_scores_like_the_stored_lead(service) -> None:  # noqa: ANN001
    client, _, url = service
    as_of = pd.Timestamp("2025-09-01T00:00:00Z")
    for k in range(1, 200):  # a lead older than a week with some history before the as-of time
        lead, events = _stored_lead(url, f"L{k:07d}")
        before = [e for e in events if pd.Timestamp(e["ts"]) < as_of]
        if len(before) >= 5 and lead.created_at_us < (as_of - pd.Timedelta(days=14)).value // 1000:
            break
    payload = {"lead": {"lead_id": lead.lead_id, "source": lead.source, "attributes": dict(lead.attributes),
                        "created_at": pd.Timestamp(lead.created_at_us, unit="us", tz="UTC").isoformat()},
               "events": events[::-1], "as_of": as_of.isoformat()}
    given = client.post("/score_payload", json=payload)
    stored = client.post("/score", json={"lead_id": lead.lead_id, "as_of": as_of.isoformat()})
    assert given.status_code == 200, given.text
    assert given.json()["score_id"] != stored.json()["score_id"]  # two scores handed out, two log entries
    assert {**given.json(), "score_id": None} == {**stored.json(), "score_id": None}
    assert given.json()["trend"] != "new"
    # the events count: without them the same lead scores differently
    bare = client.post("/score_payload", json={**payload, "events": []}).json()
    assert bare["probability"] != given.json()["probability"]


@pytest.mark.parametrize("change, status, words", [
    (lambda p: p["events"].append({"ts": "2025-05-01T00:00:00Z", "type": "telepathy"}), 422, "events[1].type"),
    (lambda p: p["events"].append({"ts": "2025-05-01T00:00:00"}), 400, "type"),
    (lambda p: p["events"].append({"ts": "2025-05-01T00:00:00", "type": "page_view"}), 400, "ts needs a time zone"),
    (lambda p: p["events"].append({"ts": "2099-05-01T00:00:00Z", "type": "page_view"}), 400, "events[1].ts is in the future"),
    (lambda p: p["lead"].pop("created_at"), 400, "created_at"),
    (lambda p: p["lead"].update(created_at="2099-01-01T00:00:00Z"), 422, "lead.created_at is after as_of"),
    (lambda p: p.update(as_of="2025-02-01T00:00:00Z"), 422, "lead.created_at is after as_of"),
    (lambda p: p["events"].extend([{"ts": "2025-05-01T00:00:00Z", "type": "page_view"}] * 600), 422, "at most 500"),
])
def test_bad_payloads_get_a_4xx_that_names_the_field(service, change, status: int, words: str) -> None:  # noqa: ANN001
    client, *_ = service
    payload = {"lead": {"created_at": "2025-03-01T00:00:00Z", "attributes": {"industry": "software"}},
               "events": [{"ts": "2025-04-01T00:00:00Z", "type": "demo_request"}]}
    change(payload)
    r = client.post("/score_payload", json=payload)
    assert r.status_code == status and words in r.text, r.text
    assert "Traceback" not in r.text


def test_oversized_bodies_are_refused_with_413(service) -> None:  # noqa: ANN001
    client, *_ = service
    events = [{"ts": "2025-05-01T00:00:00Z", "type": "page_view", "channel": "web" * 10}] * 4000
    r = client.post("/score_payload", json={"lead": {"created_at": "2025-03-01T00:00:00Z"}, "events": events})
    assert r.status_code == 413 and "limit is 300,000 bytes" in r.text


def test_keep_alive_connections_are_closed_after_the_configured_requests(service) -> None:  # noqa: ANN001
    client, *_ = service
    conn = http.client.HTTPConnection(client.base_url.host, client.base_url.port)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    seen = []
    for _ in range(6):
        conn.request("POST", "/model_info", "{}", headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        seen.append(response.getheader("connection"))
    conn.close()
    # the fifth request of a connection is answered and then the connection closed; the client
    # opens a new one, which is counted afresh
    assert seen == [None, None, None, None, "close", None]


def test_a_posted_event_changes_the_next_score_and_resending_is_safe(service) -> None:  # noqa: ANN001
    client, *_ = service
    ask = {"lead_id": "L0000023", "as_of": "2025-12-20T00:00:00Z"}
    before = client.post("/score", json=ask).json()
    demo = {"event_id": "api-e1", "lead_id": "L0000023", "ts": "2025-12-18T10:00:00Z", "type": "demo_request"}
    first = client.post("/events", json={"events": [demo]})
    assert first.status_code == 200 and first.json() == {"stored": 1, "duplicates": 0}
    again = client.post("/events", json={"events": [demo]})
    assert again.status_code == 200 and again.json() == {"stored": 0, "duplicates": 1}
    after = client.post("/score", json=ask).json()
    assert after["probability"] != before["probability"]
    need = next(c for c in after["criteria"] if c["name"] == "need")
    assert need["status"] == "met" or "need is" in need["evidence"]


@pytest.mark.parametrize("event, status, words", [
    ({"event_id": "api-e1", "lead_id": "L0000023", "ts": "2025-12-18T10:00:00Z", "type": "page_view"}, 409,
     "events[0].event_id: already stored with different content"),
    ({"lead_id": "NOBODY", "ts": "2025-12-18T10:00:00Z", "type": "page_view"}, 404, "events[0].lead_id: unknown lead"),
    ({"lead_id": "L0000023", "ts": "2025-12-18T10:00:00Z", "type": "telepathy"}, 422, "events[0].type: unknown event type"),
    ({"lead_id": "L0000023", "ts": "2099-12-18T10:00:00Z", "type": "page_view"}, 422, "events[0].ts: timestamp"),
    ({"lead_id": "L0000023", "ts": "2025-12-18T10:00:00", "type": "page_view"}, 400, "ts needs a time zone"),
    ({"lead_id": "L0000023", "type": "page_view"}, 400, "ts"),
    ({"event_id": "", "lead_id": "L0000023", "ts": "2025-12-18T10:00:00Z", "type": "page_view"}, 400, "event_id"),
])
def test_bad_events_are_refused_and_nothing_is_stored(service, event: dict, status: int, words: str) -> None:  # noqa: ANN001
    client, _, url = service
    if status == 409:  # the original must be there for a conflict
        client.post("/events", json={"events": [{"event_id": "api-e1", "lead_id": "L0000023",
                                                  "ts": "2025-12-18T10:00:00Z", "type": "demo_request"}]})
    good = {"event_id": "api-good", "lead_id": "L0000031", "ts": "2025-12-01T00:00:00Z", "type": "page_view"}
    store = EventStore(url)
    n_before = store.counts().events
    r = client.post("/events", json={"events": [event, good]})
    assert r.status_code == status and words in r.text, r.text
    assert store.counts().events == n_before, "a refused call stores nothing"
    store.close()


def test_too_many_posted_events_get_422(service) -> None:  # noqa: ANN001
    client, *_ = service
    event = {"lead_id": "L0000023", "ts": "2025-12-18T10:00:00Z", "type": "page_view"}
    r = client.post("/events", json={"events": [event] * 1001})
    assert r.status_code == 422 and "at most 1000" in r.text


def test_posted_feedback_is_stored_and_used_by_the_next_training(service, taxonomy) -> None:  # noqa: ANN001
    client, _, url = service
    store = EventStore(url)
    frames = load_frames(store)
    answered = set(frames.feedback["lead_id"])
    last = frames.events.groupby("lead_id")["ts"].max()
    lead_id = next(i for i in last.index if i not in answered and last[i] < pd.Timestamp("2025-10-01", tz="UTC"))
    when = (last[lead_id] + pd.Timedelta(days=2)).isoformat()
    bad = client.post("/feedback", json={"lead_id": lead_id, "outcome": "maybe"})
    assert bad.status_code == 400 and "outcome" in bad.text
    bad = client.post("/feedback", json={"lead_id": lead_id, "outcome": "not_prospect", "reason": "too_cheap"})
    assert bad.status_code == 400 and "reason" in bad.text
    assert client.post("/feedback", json={"lead_id": "NOBODY", "outcome": "prospect"}).status_code == 404
    bad = client.post("/feedback", json={"lead_id": lead_id, "outcome": "prospect", "feedback_id": ""})
    assert bad.status_code == 400 and "feedback_id" in bad.text
    body = {"lead_id": lead_id, "outcome": "prospect", "ts": when, "feedback_id": "api-f1"}
    r = client.post("/feedback", json=body)
    assert r.status_code == 200 and r.json() == {"stored": 1, "duplicates": 0}
    assert client.post("/feedback", json=body).json() == {"stored": 0, "duplicates": 1}
    after = load_frames(store)
    store.close()
    row = after.feedback[after.feedback["feedback_id"] == "api-f1"]
    assert row[["lead_id", "outcome"]].values.tolist() == [[lead_id, "prospect"]]
    # what `prospect train` builds its labels from: the answer turns this lead's recent snapshots positive
    before_labels = prepare(frames, taxonomy, TrainConfig()).snapshots
    after_labels = prepare(after, taxonomy, TrainConfig()).snapshots
    assert before_labels.loc[before_labels["lead_id"] == lead_id, "label"].sum() == 0
    assert after_labels.loc[after_labels["lead_id"] == lead_id, "label"].sum() >= 1


def test_an_event_type_the_model_does_not_know_is_a_422_not_an_unknown_lead(service, taxonomy) -> None:  # noqa: ANN001
    """The store accepted a type under a newer taxonomy; the model's features cannot place it (was: 404 unknown lead)."""
    from contract.taxonomy import EventType, Taxonomy
    from store.ingest import ingest_records

    client, _, url = service
    newer = Taxonomy.model_validate({**taxonomy.model_dump(), "types": {
        **taxonomy.model_dump()["types"],
        "trade_fair_visit": EventType(channel="events", stage=taxonomy.stages[1], description="Visited our booth")}})
    store = EventStore(url)
    ingest_records(store, "events", pd.DataFrame([{"event_id": "fair-1", "lead_id": "L0000077", "type": "trade_fair_visit",
                                                   "ts": pd.Timestamp("2025-11-01T10:00:00Z"), "channel": None}]), newer)
    store.close()
    for path, body in (("/score", {"lead_id": "L0000077"}), ("/score_batch", {"lead_ids": ["L0000077"]})):
        r = client.post(path, json=body)
        assert r.status_code == 422 and "type the model's taxonomy does not know" in r.text, r.text
    missing = client.post("/score", json={"lead_id": "NOBODY"})
    assert missing.status_code == 404 and "unknown lead_id" in missing.text
