"""The throughput settings of docs/serving.md on a real server: several worker processes behind
one port (`ATTNLENS_WORKERS`; each loads the model, and both take requests), no span and no
access-log line per request (`ATTNLENS_TRACE_REQUESTS=0`, `ATTNLENS_ACCESS_LOG=0`)."""

from __future__ import annotations

import json
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


def test_two_lean_workers_both_serve_correct_predictions(tmp_path):
    model_dir = save_tiny_classifier(tmp_path / "tiny")
    texts = [f"review {i}: " + ("a fine film " if i % 2 else "a dull plot ") * (1 + i % 9) for i in range(240)]
    expected = Predictor(BertForSequenceClassification.from_pretrained(str(model_dir)).eval(),
                         load_tokenizer(str(model_dir))).predict(texts)
    (tmp_path / "serve").mkdir()
    with running_server(tmp_path / "serve", str(model_dir), ATTNLENS_WORKERS="2", ATTNLENS_TRACE_REQUESTS="0",
                        ATTNLENS_ACCESS_LOG="0") as server:
        workers = worker_processes(server.process.pid)
        assert len(workers) == 2, [w.cmdline() for w in workers]
        model_processes = [[c for c in w.children() if "spawn_main" in " ".join(c.cmdline())] for w in workers]
        assert [len(found) for found in model_processes] == [1, 1], "one model process per worker"
        cpu_before = [cpu_seconds(w) for w in workers]

        def one(i: int) -> httpx.Response:  # a new connection each: the kernel spreads them over workers
            return httpx.post(f"{server.url}/predict", content=json.dumps({"texts": [texts[i]]}),
                              headers={"Content-Type": "application/json"}, timeout=60)

        with ThreadPoolExecutor(max_workers=24) as pool:
            responses = list(pool.map(one, range(len(texts))))
        cpu_used = [cpu_seconds(w) - before for w, before in zip(workers, cpu_before, strict=True)]
        log = server.log()

    # No request span (so no request id) and no access-log line; both are on by default (test_service.py).
    assert all("x-bentoml-request-id" not in r.headers for r in responses)
    assert "path=/predict" not in log

    assert [r.status_code for r in responses] == [200] * len(texts)
    for response, prediction in zip(responses, expected, strict=True):
        (served,) = response.json()
        assert (served["label"], served["num_tokens"]) == (prediction.label, prediction.num_tokens)
        assert abs(served["score"] - prediction.score) < 1e-5
    # Both workers computed: an idle worker uses ~0.01 s of CPU in this time, one that answers
    # even a tenth of 240 requests (parsing, tokenising, the model) well over 0.1 s.
    assert min(cpu_used) > 0.1, cpu_used
