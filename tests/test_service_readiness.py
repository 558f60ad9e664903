"""Readiness on one real server: /readyz is 503 while the model warms up, /livez 200 throughout,
and a request that arrives during the warm-up is served, not refused. A model process that dies
is replaced, and the server keeps answering."""

from __future__ import annotations

import os
import signal
import time

import httpx
import psutil
import pytest
from service_harness import save_tiny_classifier, start_server, stop_server

WARMUP_PASSES = 150  # each pass: a 2-text prediction and a grad_rollout explanation, ~10+ ms here


@pytest.fixture(scope="module")
def warming_server(tmp_path_factory):
    """A server started without waiting for it: the first test watches its warm-up, the second
    kills one of its model processes once it is ready (one server start for both)."""
    tmp_path = tmp_path_factory.mktemp("readiness")
    model = save_tiny_classifier(tmp_path / "model", hidden_size=128, num_hidden_layers=4,
                                 max_position_embeddings=512)
    server = start_server(tmp_path, str(model), wait=False, ATTNLENS_WARMUP_PASSES=str(WARMUP_PASSES))
    try:
        yield server
    finally:
        stop_server(server.process)


def wait_until_ready(server, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log()[-4000:]
        try:
            if httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200:
                return
        except httpx.TransportError:  # not listening yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"never ready\n{server.log()[-4000:]}")


def test_readyz_is_503_until_the_warm_up_ends_and_requests_meanwhile_are_served(warming_server):
    server = warming_server
    statuses: list[int] = []
    served_during_warm_up = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log()[-4000:]
        try:
            status = httpx.get(f"{server.url}/readyz", timeout=10).status_code
        except httpx.TransportError:  # not listening yet
            time.sleep(0.05)
            continue
        statuses.append(status)
        if status == 200:
            break
        assert status == 503
        assert httpx.get(f"{server.url}/livez", timeout=10).status_code == 200
        if served_during_warm_up is None:
            served_during_warm_up = httpx.post(f"{server.url}/predict", json={"texts": ["a fine film"]},
                                               timeout=60)
            still_warming = httpx.get(f"{server.url}/readyz", timeout=10).status_code
        time.sleep(0.02)
    assert statuses and statuses[-1] == 200, f"never ready: {statuses[-5:]}\n{server.log()[-4000:]}"
    assert statuses[0] == 503, "the server said ready before its warm-up had run"
    assert served_during_warm_up is not None and served_during_warm_up.status_code == 200, served_during_warm_up
    assert still_warming == 503, "the warm-up ended before the request was answered; raise WARMUP_PASSES"
    assert served_during_warm_up.json()[0]["label"] in {"negative", "positive"}
    assert f"warmed up ({WARMUP_PASSES} passes)" in server.log()


def test_a_killed_model_process_is_replaced_and_requests_are_answered(warming_server):
    server = warming_server
    wait_until_ready(server)
    body = {"texts": ["a fine film", "a dull plot"]}
    before = httpx.post(f"{server.url}/predict", json=body, timeout=60).json()
    (worker,) = [p for p in psutil.Process(server.process.pid).children(recursive=True)
                 if "--worker-id" in p.cmdline()]
    (model_process,) = [p for p in worker.children()  # the prediction process (not niced)
                        if "spawn_main" in " ".join(p.cmdline()) and p.nice() == worker.nice()]
    os.kill(model_process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while model_process.is_running() and model_process.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "SIGKILL did not end the model process"
        time.sleep(0.05)
    after = httpx.post(f"{server.url}/predict", json=body, timeout=60)
    assert after.status_code == 200, after.text
    assert after.json() == before
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    assert "restarting the model process" in server.log()
    replacements = [p for p in worker.children()
                    if "spawn_main" in " ".join(p.cmdline()) and p.nice() == worker.nice()]
    assert [p.pid for p in replacements] != [model_process.pid] and len(replacements) == 1
