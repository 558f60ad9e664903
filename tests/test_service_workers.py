"""The throughput settings of docs/serving.md on a real server: several worker processes behind
one port (`ATTNLENS_WORKERS`; each loads the model, and both take requests), no span and no
access-log line per request (`ATTNLENS_TRACE_REQUESTS=0`, `ATTNLENS_ACCESS_LOG=0`)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
from service_harness import running_server, save_tiny_classifier

from attnlens import BertForSequenceClassification, load_tokenizer
from attnlens.predict import Predictor


def worker_processes(server_pid: int) -> list[psutil.Process]:
    """The processes under `bentoml serve` that run the service (BentoML starts them with
    `--worker-id`)."""
    return [child for child in psutil.Process(server_pid).children(recursive=True)
            if "--worker-id" in child.cmdline()]


def cpu_seconds(worker: psutil.Process) -> float:
    """CPU time of a worker and its model process (serving/model_process.py), which computes."""
    return sum(sum(process.cpu_times()[:2]) for process in (worker, *worker.children(recursive=True)))


TEXTS = [f"review {i}: " + ("a fine film " if i % 2 else "a dull plot ") * (1 + i % 9) for i in range(240)]


def model_processes(worker: psutil.Process, *, lane: str = "predict") -> list[psutil.Process]:
    """The worker's prediction processes, or (`lane="explain"`) its explanation processes, which
    run at a lower priority (ATTNLENS_EXPLAIN_NICE)."""
    return [child for child in worker.children() if "spawn_main" in " ".join(child.cmdline())
            and (child.nice() > worker.nice()) == (lane == "explain")]


def predict_each_concurrently(url: str) -> list[httpx.Response]:
    """One request per text of TEXTS, 24 at a time, each on a new connection (so the kernel
    spreads them over the workers)."""
    def one(text: str) -> httpx.Response:
        return httpx.post(f"{url}/predict", content=json.dumps({"texts": [text]}),
                          headers={"Content-Type": "application/json"}, timeout=60)

    with ThreadPoolExecutor(max_workers=24) as pool:
        return list(pool.map(one, TEXTS))


def assert_correct(responses: list[httpx.Response], model_dir) -> None:
    expected = Predictor(BertForSequenceClassification.from_pretrained(str(model_dir)).eval(),
                         load_tokenizer(str(model_dir))).predict(TEXTS)
    assert [r.status_code for r in responses] == [200] * len(TEXTS)
    for response, prediction in zip(responses, expected, strict=True):
        (served,) = response.json()
        assert (served["label"], served["num_tokens"]) == (prediction.label, prediction.num_tokens)
        assert abs(served["score"] - prediction.score) < 1e-5


def test_two_lean_workers_both_serve_correct_predictions(tmp_path):
    model_dir = save_tiny_classifier(tmp_path / "tiny")
    (tmp_path / "serve").mkdir()
    with running_server(tmp_path / "serve", str(model_dir), ATTNLENS_WORKERS="2", ATTNLENS_TRACE_REQUESTS="0",
                        ATTNLENS_ACCESS_LOG="0") as server:
        workers = worker_processes(server.process.pid)
        assert len(workers) == 2, [w.cmdline() for w in workers]
        # /readyz answered for one worker; the other may still be loading (its explanation
        # process lowers its priority only once loaded).
        deadline = time.monotonic() + 120
        while [len(model_processes(w, lane="explain")) for w in workers] != [1, 1] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [len(model_processes(w)) for w in workers] == [1, 1], "one prediction process per worker"
        assert [len(model_processes(w, lane="explain")) for w in workers] == [1, 1], "and one for explanations"
        cpu_before = [cpu_seconds(w) for w in workers]
        responses = predict_each_concurrently(server.url)
        cpu_used = [cpu_seconds(w) - before for w, before in zip(workers, cpu_before, strict=True)]
        log = server.log()

    # No request span (so no request id) and no access-log line; both are on by default (test_service.py).
    assert all("x-bentoml-request-id" not in r.headers for r in responses)
    assert "path=/predict" not in log

    assert_correct(responses, model_dir)
    # Both workers computed: an idle worker uses ~0.01 s of CPU in this time, one that answers
    # even a tenth of 240 requests (parsing, tokenising, the model) well over 0.1 s.
    assert min(cpu_used) > 0.1, cpu_used


def test_one_worker_with_two_model_processes_uses_both(tmp_path):
    model_dir = save_tiny_classifier(tmp_path / "small", hidden_size=128, num_hidden_layers=4)
    (tmp_path / "serve").mkdir()
    with running_server(tmp_path / "serve", str(model_dir), ATTNLENS_MODEL_PROCESSES="2",
                        ATTNLENS_THREADS="1") as server:
        (worker,) = worker_processes(server.process.pid)
        processes = model_processes(worker)
        assert len(processes) == 2, [p.cmdline() for p in processes]
        cpu_before = [cpu_seconds(p) for p in processes]
        responses = predict_each_concurrently(server.url)
        cpu_used = [cpu_seconds(p) - before for p, before in zip(processes, cpu_before, strict=True)]

    assert_correct(responses, model_dir)
    # Both computed: an idle model process waits on its pipe and uses no CPU at all.
    assert min(cpu_used) > 0.1, cpu_used
