"""The HTTP service, started for real on 127.0.0.1: endpoints, auth and bad requests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from features.dataset import load_frames
from tests.conftest import REPO, generated_store
from training.bundle import save_bundle
from training.train import TrainConfig, train

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
           "PROSPECT_HOME": str(folder), "PROSPECT_API_KEY": KEY}
    log = open(folder / "serve.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:ProspectService", "--host",
                             "127.0.0.1", "--port", str(port), "--working-dir", str(REPO)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
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
    yield client, folder
    client.close()
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_score_one_lead(service) -> None:  # noqa: ANN001
    client, _ = service
    r = client.post("/score", json={"lead_id": "L0000007", "as_of": "2025-09-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert 0 <= body["probability"] <= 1 and 0 <= body["score"] <= 100
    assert body["tier"] in ("prospect-ready", "warming", "early lead") and body["model_version"] == "3"
    assert body["as_of"].startswith("2025-09-01T00:00:00")
    assert all(r["impact"] > 0 and ":" in r["text"] for r in body["reasons_for"])


def test_batch_and_model_info(service) -> None:  # noqa: ANN001
    client, _ = service
    r = client.post("/score_batch", json={"lead_ids": ["L0000001", "L0000002", "NOPE"],
                                          "as_of": "2025-09-01T00:00:00Z"})
    assert r.status_code == 200 and [s["lead_id"] for s in r.json()["scores"]] == ["L0000001", "L0000002"]
    assert r.json()["unknown_lead_ids"] == ["NOPE"]
    too_many = client.post("/score_batch", json={"lead_ids": [f"L{i:07d}" for i in range(1001)]})
    assert too_many.status_code == 422 and "at most 1000" in too_many.text
    info = client.post("/model_info", json={}).json()
    assert info["version"] == "3" and info["feature_set_version"].startswith("fs-") and "out of time" in info["split"]
    assert 0 < info["metrics"]["model"]["roc_auc"] <= 1 and info["thresholds"]["prospect_ready"] >= info["thresholds"]["warming"]


def test_auth_is_required_except_for_health(service) -> None:  # noqa: ANN001
    client, _ = service
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
])
def test_bad_requests_get_a_4xx_that_names_the_field(service, body: str, status: int, words: str) -> None:  # noqa: ANN001
    client, _ = service
    r = client.post("/score", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and words in r.text, r.text
    assert "Traceback" not in r.text


def test_no_lead_data_in_the_server_log(service) -> None:  # noqa: ANN001
    client, folder = service
    client.post("/score", json={"lead_id": "SECRET-LEAD-ID"})
    time.sleep(0.5)
    assert "SECRET-LEAD-ID" not in (folder / "serve.log").read_text()
