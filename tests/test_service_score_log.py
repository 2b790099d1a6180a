"""The running service logs every score it hands out under the caller's key name, writes the log before it
stops, and replays a logged score over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from features.dataset import load_frames
from serving.launch import start_service
from store.event_store import EventStore
from store.score_log import ScoreLog
from tests.conftest import generated_store
from tests.test_service import _free_port
from training.bundle import save_bundle
from training.train import TrainConfig, train

KEYS = {"ops": "ops-key-123", "crm": "crm-key-456", "dialer": "dialer-key-789"}
AS_OF = "2026-03-01T00:00:00Z"  # every simulated lead exists by then
PAYLOAD = {"lead": {"lead_id": "P1", "created_at": "2025-08-01T09:00:00Z", "source": "referral",
                    "attributes": {"industry": "software", "budget": "yes"}},
           "events": [{"ts": "2025-08-20T10:00:00Z", "type": "pricing_page_view"},
                      {"ts": "2025-08-02T10:00:00Z", "type": "page_view"},
                      {"ts": "2025-08-25T10:00:00Z", "type": "demo_request"}], "as_of": AS_OF}


def _serve(folder: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = (folder / "serve.log").open("a")
    proc = start_service(env, folder / f"bentoml-{port}", "127.0.0.1", port, log=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.terminate()
    pytest.fail("service did not start: " + (folder / "serve.log").read_text()[-3000:])


def _post(base: str, path: str, caller: str, body: dict) -> httpx.Response:
    return httpx.post(f"{base}{path}", json=body, headers={"Authorization": f"Bearer {KEYS[caller]}"}, timeout=60)


@pytest.fixture(scope="module")
def home(tmp_path_factory, taxonomy) -> tuple[Path, dict]:  # noqa: ANN001
    folder = tmp_path_factory.mktemp("score-log-service")
    store = generated_store(folder, 3000, 61, taxonomy)
    config = TrainConfig(seed=1)
    save_bundle(train(load_frames(store), taxonomy, config), config, folder / "models" / "champion", version="5")
    store.close()
    env = {**os.environ, "PROSPECT_STORE_URL": store.url, "PROSPECT_MODELS_DIR": str(folder / "models"),
           "PROSPECT_HOME": str(folder), "PROSPECT_API_KEY": KEYS["ops"], "PROSPECT_API_KEY_NAME": "ops",
           "PROSPECT_API_KEYS": f"crm:{KEYS['crm']},dialer:{KEYS['dialer']}"}
    return folder, env


def test_scores_are_logged_by_caller_and_written_before_shutdown_then_replayed(home) -> None:  # noqa: ANN001
    folder, env = home
    # a flush interval far beyond the test: only the shutdown hook can write these entries
    proc, base = _serve(folder, {**env, "PROSPECT_SCORE_LOG_FLUSH_SECONDS": "3600"})
    try:
        one = _post(base, "/score", "crm", {"lead_id": "L0000007", "as_of": AS_OF})
        batch = _post(base, "/score_batch", "dialer", {"lead_ids": ["L0000001", "L0000002", "NOPE"], "as_of": AS_OF})
        quick = _post(base, "/score_batch", "dialer", {"lead_ids": ["L0000003"], "as_of": AS_OF, "reasons": False})
        payload = _post(base, "/score_payload", "ops", PAYLOAD)
        assert [r.status_code for r in (one, batch, quick, payload)] == [200] * 4, payload.text
        ids = {one.json()["score_id"]: "crm", payload.json()["score_id"]: "ops",
               **{s["score_id"]: "dialer" for s in batch.json()["scores"] + quick.json()["scores"]}}
        assert len(ids) == 5 and all(len(i) == 32 for i in ids)
        store = EventStore(env["PROSPECT_STORE_URL"])
        assert ScoreLog(store).count() == 0  # written behind the responses, not yet
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    log = ScoreLog(store)
    entries = {i: log.entry(i) for i in ids}
    assert all(e is not None for e in entries.values()), "an acknowledged score was lost at shutdown"
    assert {i: e["caller"] for i, e in entries.items()} == ids
    assert entries[one.json()["score_id"]]["probability"] == one.json()["probability"]
    assert entries[payload.json()["score_id"]]["endpoint"] == "score_payload"
    server_log = (folder / "serve.log").read_text()
    assert not any(key in server_log for key in KEYS.values()) and "L0000007" not in server_log

    # what `prospect monitor` leaves for the service: its headline figures, shown as gauges on /metrics
    (folder / "monitor").mkdir(exist_ok=True)
    (folder / "monitor" / "health.json").write_text(json.dumps({
        "max_feature_psi": 0.84, "score_psi": 0.03, "feedback_roc_auc": 0.81, "feedback_ece": 0.012,
        "scores_with_feedback": 1523, "feedback_delay_days": 13.8, "live_prospect_ready_share": 0.018, "alarms": 2}))
    proc, base = _serve(folder, env)
    try:
        metrics = httpx.get(f"{base}/metrics").text
        assert re.search(r"^prospect_model_max_feature_psi(\{[^}]*\})? 0\.84$", metrics, re.M), metrics[-2000:]
        assert re.search(r"^prospect_model_alarms(\{[^}]*\})? 2\.0$", metrics, re.M)
        info = _post(base, "/model_info", "ops", {}).json()
        assert info["tier_policy"].startswith("percentiles: the top 5%"), info
        for score_id, caller in ids.items():
            r = _post(base, "/replay", caller, {"score_id": score_id})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["equal"] and body["recomputed_probability"] == body["served_probability"], body
            assert body["model_version"] == "5" and body["caller"] == caller
        missing = _post(base, "/replay", "ops", {"score_id": "f" * 32})
        assert missing.status_code == 404 and "no score with this id" in missing.text
        bad = _post(base, "/replay", "ops", {"score": "x"})
        assert bad.status_code == 400 and "score_id" in bad.text
    finally:
        proc.terminate()
        proc.wait(timeout=60)
