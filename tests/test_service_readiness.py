"""Readiness on a real server: /readyz is 503 while the model warms up, /livez 200 throughout,
and a request that arrives during the warm-up is served, not refused."""

from __future__ import annotations

import time

import httpx
from service_harness import save_tiny_classifier, start_server, stop_server

WARMUP_PASSES = 150  # each pass: a 2-text prediction and a grad_rollout explanation, ~10+ ms here


def test_readyz_is_503_until_the_warm_up_ends_and_requests_meanwhile_are_served(tmp_path):
    model = save_tiny_classifier(tmp_path / "model", hidden_size=128, num_hidden_layers=4,
                                 max_position_embeddings=512)
    server = start_server(tmp_path, str(model), wait=False, ATTNLENS_WARMUP_PASSES=str(WARMUP_PASSES))
    try:
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
    finally:
        stop_server(server.process)
