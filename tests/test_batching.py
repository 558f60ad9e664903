"""The service's adaptive batcher (serving/batching.py) on its own, with a real event loop and a
recording batch function: merging, not waiting when nobody else is coming, using the window under
continuous traffic, dropping the texts of abandoned requests, retrying a failed batch request by
request, and admission by estimated cost."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from serving.admission import Lane, Overloaded, text_cost
from serving.batching import MicroBatcher
from serving.explain_mode import explanation_mode, split_mode


class Recorder:
    """A batch function that records every call and takes `seconds` per call (in a worker thread)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls: list[list[str]] = []

    def __call__(self, texts, mode, should_stop):
        self.calls.append(list(texts))
        time.sleep(self.seconds)
        return [f"{mode}:{text}" for text in texts]


def test_concurrent_requests_share_one_model_call_and_get_their_own_results_in_order():
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch_size=32, max_latency_ms=10)

    async def scenario():
        return await asyncio.gather(*(batcher.submit([f"a{i}", f"b{i}"], "truncate") for i in range(10)))

    results = asyncio.run(scenario())
    assert results == [[f"truncate:a{i}", f"truncate:b{i}"] for i in range(10)]
    assert len(recorder.calls) == 1 and len(recorder.calls[0]) == 20


def test_batches_are_capped_at_max_batch_size():
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch_size=4, max_latency_ms=10)

    async def scenario():
        return await asyncio.gather(*(batcher.submit([str(i)], "chunk") for i in range(10)))

    assert asyncio.run(scenario()) == [[f"chunk:{i}"] for i in range(10)]
    assert [len(call) for call in recorder.calls] == [4, 4, 2]


def test_a_lone_request_does_not_wait_for_the_batching_window():
    batcher = MicroBatcher(Recorder(), max_batch_size=32, max_latency_ms=2_000)

    async def scenario():
        latencies = []
        for i in range(3):  # one client: each request only after the previous answer
            started = time.perf_counter()
            await batcher.submit([f"text {i}"], "truncate")
            latencies.append(time.perf_counter() - started)
        return latencies

    assert max(asyncio.run(scenario())) < 0.5, "a lone request sat in the 2 s window"


def test_under_continuous_traffic_the_window_gathers_requests():
    """Requests every 10 ms, each model call 30 ms: after the first call, requests keep arriving
    while the model is busy, so batches wait (100 ms window) and grow well beyond what was queued."""
    recorder = Recorder(seconds=0.03)
    batcher = MicroBatcher(recorder, max_batch_size=64, max_latency_ms=100)

    async def scenario():
        tasks = []
        for i in range(30):
            tasks.append(asyncio.create_task(batcher.submit([str(i)], "truncate")))
            await asyncio.sleep(0.01)
        return await asyncio.gather(*tasks)

    assert asyncio.run(scenario()) == [[f"truncate:{i}"] for i in range(30)]
    sizes = [len(call) for call in recorder.calls]
    assert sum(sizes) == 30
    assert len(sizes) <= 5 and max(sizes) >= 8, sizes  # greedy batching alone would make ~10 calls of ~3


def test_texts_of_an_abandoned_request_are_not_computed():
    recorder = Recorder(seconds=0.2)
    batcher = MicroBatcher(recorder, max_batch_size=1, max_latency_ms=0)

    async def scenario():
        first = asyncio.create_task(batcher.submit(["first"], "truncate"))
        await asyncio.sleep(0.05)  # "first" is running now
        abandoned = asyncio.create_task(batcher.submit(["abandoned"], "truncate"))
        kept = asyncio.create_task(batcher.submit(["kept"], "truncate"))
        await asyncio.sleep(0.01)
        abandoned.cancel()  # what BentoML's timeout does to a request
        return await first, await kept

    assert asyncio.run(scenario()) == (["truncate:first"], ["truncate:kept"])
    assert ["abandoned"] not in recorder.calls


class ConcurrencyRecorder(Recorder):
    """A Recorder that also notes how many calls ran at the same time."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.running = self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, texts, mode, should_stop):
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return super().__call__(texts, mode, should_stop)
        finally:
            with self._lock:
                self.running -= 1


def test_parallel_groups_run_side_by_side_and_never_more_than_the_slots():
    def timed(parallel: int) -> tuple[float, ConcurrencyRecorder, list]:
        recorder = ConcurrencyRecorder(seconds=0.3)
        batcher = MicroBatcher(recorder, max_batch_size=2, max_latency_ms=0, parallel=parallel)

        async def scenario():
            return await asyncio.gather(*(batcher.submit([f"a{i}", f"b{i}"], "truncate") for i in range(6)))

        started = time.monotonic()
        results = asyncio.run(scenario())
        return time.monotonic() - started, recorder, results

    serial_seconds, serial, serial_results = timed(1)
    parallel_seconds, parallel, parallel_results = timed(2)
    expected = [[f"truncate:a{i}", f"truncate:b{i}"] for i in range(6)]
    assert serial_results == parallel_results == expected
    assert (serial.most_at_once, parallel.most_at_once) == (1, 2)
    assert serial_seconds > 1.7 and parallel_seconds < 1.2, (serial_seconds, parallel_seconds)


class Poisoned(Recorder):
    """A batch function that fails any call holding the text "poison"."""

    def __call__(self, texts, mode, should_stop):
        super().__call__(texts, mode, should_stop)
        if "poison" in texts:
            raise ValueError("poison in the batch")
        return [f"{mode}:{text}" for text in texts]


def test_a_failing_batch_fails_only_the_request_whose_text_caused_it():
    recorder = Poisoned()
    batcher = MicroBatcher(recorder, max_batch_size=32, max_latency_ms=50)

    async def scenario():
        return await asyncio.gather(batcher.submit(["a", "b"], "m"), batcher.submit(["c", "poison"], "m"),
                                    batcher.submit(["d"], "m"), return_exceptions=True)

    first, poisoned, last = asyncio.run(scenario())
    assert first == ["m:a", "m:b"] and last == ["m:d"]
    assert isinstance(poisoned, ValueError)
    assert recorder.calls[0] == ["a", "b", "c", "poison", "d"]  # one batch, then one call per request
    assert sorted(recorder.calls[1:]) == [["a", "b"], ["c", "poison"], ["d"]]


def test_admission_refuses_at_once_when_the_accepted_work_passes_the_deadline():
    """One text per call, 0.1 s per text: with a 0.35 s deadline, a fourth waiting request would
    wait past it, so it and the ones after are refused at once with a Retry-After."""
    lane = Lane("test lane", deadline_s=0.35)
    batcher = MicroBatcher(Recorder(seconds=0.1), max_batch_size=1, max_latency_ms=0, lane=lane,
                           cost=lambda text, mode: 1.0)

    async def scenario():
        await batcher.submit(["calibrate"], "m")  # learns the speed: 1 cost unit per 0.1 s
        started = time.monotonic()
        outcomes = await asyncio.gather(*(batcher.submit([str(i)], "m") for i in range(8)), return_exceptions=True)
        return outcomes, time.monotonic() - started

    outcomes, seconds = asyncio.run(scenario())
    served = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if isinstance(o, Overloaded)]
    assert len(served) + len(refused) == 8 and 3 <= len(served) <= 5, outcomes
    assert outcomes[: len(served)] == served, "the first ones are admitted, the later ones refused"
    assert all(error.retry_after >= 1 and "test lane" in str(error) for error in refused)
    assert seconds < 0.1 * len(served) + 0.3
    assert lane.backlog_s == 0.0 and lane.pending == 0, "finished work leaves the backlog"


def test_a_lone_request_is_always_tried_and_speeds_are_learned_per_mode():
    lane = Lane("lane", deadline_s=0.01)
    lane.measured("slow", cost=10.0, seconds=1.0)
    lane.measured("fast", cost=1000.0, seconds=1.0)
    assert lane.admit("slow", [100.0]) == pytest.approx(10.0), "alone: tried even past the deadline"
    with pytest.raises(Overloaded):
        lane.admit("fast", [1.0])
    lane.finish(10.0)
    lane.measured("fast", cost=100.0, seconds=1.0)  # slower: moves only part of the way
    assert 100.0 < lane.rates["fast"] < 1000.0
    lane.measured("fast", cost=5000.0, seconds=1.0)  # faster: taken at once
    assert lane.rates["fast"] == 5000.0
    assert lane.seconds("unmeasured", 50.0) == pytest.approx(0.01), "an unmeasured mode is judged at the fastest speed"
    lane.measured("fast", cost=1.0, seconds=0.001)  # a short call: its fixed costs would mislead
    assert lane.rates["fast"] == 5000.0


def test_explanation_batches_hold_about_max_batch_seconds_of_work():
    lane = Lane("lane", deadline_s=60)
    lane.measured("m", cost=10.0, seconds=1.0)  # 10 cost units per second
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch_size=64, max_latency_ms=50, lane=lane,
                           cost=lambda text, mode: float(len(text)), max_batch_seconds=0.5)

    async def scenario():
        return await asyncio.gather(*(batcher.submit(["xx"], "m") for _ in range(7)))

    asyncio.run(scenario())
    # 0.5 s at 10 units/s is 5 units: two texts of 2 per call (a third would pass it).
    assert [len(call) for call in recorder.calls] == [2, 2, 2, 1]


def test_a_chunked_explanation_costs_every_window_and_a_short_text_the_same_as_truncated():
    long_text, short_text = "word " * 2000, "a fine film"
    for method in ("grad_rollout", "occlusion"):
        chunked = explanation_mode(method, "chunk")
        assert split_mode(chunked) == (method, "chunk") and split_mode(method) == (method, "truncate")
        windows = text_cost(long_text, chunked, 512) / text_cost(long_text, method, 512)
        assert windows >= 2000 * 5 / 3 / 510  # 5 characters a word, at most 3 per token estimated
        assert text_cost(short_text, chunked, 512) == text_cost(short_text, method, 512)
