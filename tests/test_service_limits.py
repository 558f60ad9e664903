"""Overload, timeouts, API key and shutdown on a real server configured with tight limits.

The model is small but has a 512-token window, so a request of 64 long texts in chunk mode keeps
it busy for many seconds: long enough to fill the concurrency limit and to pass the timeout.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from service_harness import running_server, save_tiny_classifier

API_KEY = "test-key-7f3a"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TIMEOUT_S = 3.0
SLOW_BODY = {"texts": [" ".join(["a long review that goes on and on"] * 600)[:20_000]] * 64, "long_text": "chunk"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = save_tiny_classifier(tmp_path_factory.mktemp("model") / "slow", hidden_size=128,
                                 num_hidden_layers=4, max_position_embeddings=512)
    with running_server(tmp_path_factory.mktemp("serve"), str(model), ATTNLENS_API_KEY=API_KEY,
                        ATTNLENS_MAX_CONCURRENCY="1", ATTNLENS_TIMEOUT=str(TIMEOUT_S),
                        ATTNLENS_BATCH_SIZE="4") as running:
        yield running


def post(server, route: str, body, headers=None, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{server.url}{route}", content=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json", **(headers or {})}, timeout=timeout)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY},
                                     {"Authorization": f"Basic {API_KEY}"}])
@pytest.mark.parametrize("route", ["/predict", "/explain"])
def test_requests_without_the_api_key_get_401(server, route, headers):
    body = {"texts": ["fine"]} if route == "/predict" else {"text": "fine"}
    response = post(server, route, body, headers)
    assert response.status_code == 401
    assert "Authorization" in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_requests_with_the_api_key_succeed_and_probes_stay_open(server):
    assert post(server, "/predict", {"texts": ["fine"]}, AUTH).status_code == 200
    assert post(server, "/explain", {"text": "fine"}, AUTH).status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    document = httpx.get(f"{server.url}/docs.json").json()
    assert "401" in document["paths"]["/predict"]["post"]["responses"]
    assert document["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]


def test_past_deadline_or_concurrency_429_past_timeout_504_and_the_model_is_freed(server):
    """An occlusion explanation of far more work than the 3 s timeout is tried (alone in its
    lane) and answered 504 at the timeout; meanwhile a request that needs an explanation, whose
    wait behind it is already past the deadline, is refused at once with 429 and Retry-After; and
    with a long prediction in flight, a second /predict, past ATTNLENS_MAX_CONCURRENCY (1 per
    route here), gets 429 too."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        started = time.monotonic()
        explaining = pool.submit(post, server, "/explain", {"text": SLOW_BODY["texts"][0], "method": "occlusion"},
                                 AUTH)
        time.sleep(0.5)
        behind = post(server, "/predict", {"texts": ["one more"], "explain": True}, AUTH, timeout=10)
        assert behind.status_code == 429, behind.text
        assert "ATTNLENS_TIMEOUT" in behind.json()["error"] and int(behind.headers["retry-after"]) >= 1
        assert time.monotonic() - started < 2.0, "the refusal must come at once"
        predicting = pool.submit(post, server, "/predict", SLOW_BODY, AUTH)
        time.sleep(0.5)
        overflow = post(server, "/predict", {"texts": ["one more"]}, AUTH, timeout=10)
        assert overflow.status_code == 429, overflow.text
        assert "ATTNLENS_MAX_CONCURRENCY" in overflow.json()["error"]
        answers = [explaining.result(), predicting.result()]
        waited = time.monotonic() - started
    assert [a.status_code for a in answers] == [504, 504], [a.text for a in answers]
    assert waited < 1.0 + TIMEOUT_S + 3, "the 504 must come at the timeout, not when the work ends"
    assert all("ATTNLENS_TIMEOUT" in a.json()["error"] for a in answers)
    # Without cancellation the model would still chew on 64 long texts for many seconds.
    started = time.monotonic()
    quick = post(server, "/predict", {"texts": ["short and sweet"]}, AUTH, timeout=30)
    assert quick.status_code == 200, quick.text
    assert time.monotonic() - started < TIMEOUT_S, "the abandoned requests still occupy the model"


def test_sigterm_lets_in_flight_requests_finish(server):
    """Last in this module: it stops the server. The in-flight request is sized to take about a
    second on this machine (calibrated first), so SIGTERM surely arrives while it runs."""
    review = " ".join(["still reading this review"] * 400)
    started = time.monotonic()
    assert post(server, "/predict", {"texts": [review] * 2, "long_text": "chunk"}, AUTH).status_code == 200
    per_text = (time.monotonic() - started) / 2
    count = max(2, min(64, round(1.0 / per_text)))
    body = {"texts": [review] * count, "long_text": "chunk"}

    results: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: results.append(post(server, "/predict", body, AUTH)))
    thread.start()
    time.sleep(min(0.25, per_text * count / 4))
    server.process.send_signal(signal.SIGTERM)
    thread.join(30)
    assert results and results[0].status_code == 200, results and results[0].text
    assert len(results[0].json()) == count
    server.process.wait(30)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/livez", timeout=2)
