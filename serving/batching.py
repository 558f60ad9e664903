"""Adaptive batching of texts across concurrent requests, with per-request options.

BentoML's `batchable=True` merges the single list argument of concurrent calls, but an API with
per-request options (`long_text`, `explain`) cannot be batchable, and BentoML keeps computing a
request its timeout middleware already answered with 504. This batcher does the same merging
and drops texts whose request was cancelled before their slice runs, so a timed out request
stops using the model after the slice in progress.

When to wait: a batch always takes every request already queued (up to `max_batch_size` texts;
the model then sorts them by length). It waits up to `max_latency_ms` for more only while
traffic is continuous, i.e. when requests arrived while the previous batch was running. A lone
client, or closed-loop clients that all wait for the batch in progress, would only lose that
time: nobody else is coming, so their batch runs at once (one short sentence is not delayed by
the window), while under open traffic the window fills batches.

Isolation: a batch that fails is computed again request by request, so an error fails only the
request whose text caused it. With a `Lane` (serving/admission.py), requests are admitted by
estimated cost, and a batch holds at most `max_batch_seconds` of estimated work, so a request is
answered soon after its own texts are done, not after a long batch of other people's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from serving.admission import Lane

# run_batch(texts, mode, should_stop) -> one result per text; it may raise when should_stop().
RunBatch = Callable[[Sequence[str], str, Callable[[], bool]], list[Any]]


@dataclass
class _Request:
    texts: list[str]
    mode: str
    future: asyncio.Future[list[Any]]
    costs: list[float]
    results: list[Any] = field(default_factory=list)

    @property
    def abandoned(self) -> bool:
        return self.future.done()


# One text of a request: (request, index of the text in it).
_Item = tuple[_Request, int]


class MicroBatcher:
    """Collects texts from concurrent `submit` calls and runs them through `run_batch` together.

    `run_batch(texts, mode, should_stop)` is synchronous: it runs in a thread of this batcher's.
    Up to `parallel` groups run at once, one per loop (one per model process of the worker; 1:
    one slice at a time). `model_slots` (a lock, or a semaphore of that many) is shared with the
    worker's other batcher (explanations), so the model processes are never asked for more. The
    threads are a dedicated executor's, handed each slice at once: `anyio.to_thread` first yields
    to the event loop, which delayed the model's next slice behind every response and request
    being handled.
    """

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_size: int = 32,
        max_latency_ms: float = 10.0,
        model_slots: asyncio.Lock | asyncio.Semaphore | None = None,
        parallel: int = 1,
        on_batch: Callable[[int], None] | None = None,
        lane: Lane | None = None,
        cost: Callable[[str, str], float] | None = None,
        max_batch_seconds: float | None = None,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000.0
        self.model_slots = model_slots or asyncio.Semaphore(parallel)
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self.parallel = parallel
        self._workers: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="attnlens-batch")
        self.on_batch = on_batch  # called with the number of texts of every model call (metrics)
        self.lane = lane
        self.cost = cost  # cost(text, mode): estimated token passes (serving.admission.text_cost)
        self.max_batch_seconds = max_batch_seconds
        self.batches_run = 0
        self._submitted = 0  # requests ever submitted
        self._arrived_while_busy = 0  # requests submitted while the last group was running

    async def submit(self, texts: Sequence[str], mode: str) -> list[Any]:
        """Results for `texts`, in order, once the batch holding them has run.

        Raises serving.admission.Overloaded at once when the lane's backlog is too long.
        """
        self._workers = [worker for worker in self._workers if not worker.done()]
        while len(self._workers) < self.parallel:  # started on first use, in the running loop
            self._workers.append(asyncio.create_task(self._work()))
        costs = [self.cost(text, mode) if self.cost else 0.0 for text in texts]
        request = _Request(list(texts), mode, asyncio.get_running_loop().create_future(), costs)
        if self.lane is not None:
            admitted = self.lane.admit(mode, costs)
            request.future.add_done_callback(lambda _: self.lane.finish(admitted))
        self._submitted += 1
        await self._queue.put(request)
        return await request.future

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._executor.shutdown(wait=False)

    async def _collect(self) -> list[_Request]:
        """The next group: the first waiting request, everything queued behind it, and, while
        traffic is continuous, whatever arrives within the latency budget."""
        group = [await self._queue.get()]
        count = len(group[0].texts)
        window = self.max_latency if self._arrived_while_busy else 0.0
        deadline = time.monotonic() + window
        while count < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                request = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(
                    self._queue.get(), remaining
                )
            except (asyncio.QueueEmpty, TimeoutError):
                break
            group.append(request)
            count += len(request.texts)
        return group

    async def _work(self) -> None:
        """One of `parallel` loops: form a group, run it, answer it, and at once form the next,
        without yielding to the event loop in between when requests are queued (a hop through
        the event loop would put the model behind every answer being sent)."""
        while True:
            group = await self._collect()
            submitted_before = self._submitted
            try:
                await self._run_group(group)
            except Exception as error:  # a failed batch fails its requests, not the worker
                for request in group:
                    if not request.abandoned:
                        request.future.set_exception(error)
            self._arrived_while_busy = self._submitted - submitted_before

    def _slices(self, items: list[_Item], mode: str) -> list[list[_Item]]:
        """Consecutive slices of at most `max_batch_size` texts and, with a lane, about
        `max_batch_seconds` of estimated work (always at least one text)."""
        budget = self.lane.batch_budget(mode, self.max_batch_seconds) if self.lane and self.max_batch_seconds else None
        slices: list[list[_Item]] = []
        current: list[_Item] = []
        cost = 0.0
        for request, index in items:
            text_cost = request.costs[index]
            if current and (len(current) >= self.max_batch_size or (budget is not None and cost + text_cost > budget)):
                slices.append(current)
                current, cost = [], 0.0
            current.append((request, index))
            cost += text_cost
        if current:
            slices.append(current)
        return slices

    async def _run_group(self, group: list[_Request]) -> None:
        for mode in dict.fromkeys(request.mode for request in group):
            members = [request for request in group if request.mode == mode]
            items = [(request, index) for request in members for index in range(len(request.texts))]
            await self._run_items(items, mode)
            for request in members:
                if not request.abandoned:
                    request.future.set_result(request.results)

    async def _run_items(self, items: list[_Item], mode: str) -> None:
        """Compute the items slice by slice into their requests' results. A slice that fails is
        computed again request by request, so the error reaches only the request it belongs to."""
        for slice_ in self._slices(items, mode):
            live = [(request, index) for request, index in slice_ if not request.abandoned]
            if not live:
                continue
            owners = list({id(request): request for request, _ in live}.values())
            try:
                outputs = await self._call_model(live, mode, owners)
            except Exception as error:
                if len(owners) > 1:
                    for owner in owners:
                        await self._run_items([item for item in live if item[0] is owner], mode)
                    continue
                if not owners[0].abandoned:
                    owners[0].future.set_exception(error)
                continue
            if outputs is None:  # abandoned while running
                continue
            for (request, _), output in zip(live, outputs, strict=True):
                request.results.append(output)

    async def _call_model(self, live: list[_Item], mode: str, owners: list[_Request]) -> list[Any] | None:
        """One model call for `live`; None when everybody left while it ran and it stopped."""
        def all_abandoned(owners=owners) -> bool:
            return all(request.abandoned for request in owners)

        texts = [request.texts[index] for request, index in live]
        async with self.model_slots:
            started = time.monotonic()
            try:
                outputs = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.run_batch, texts, mode, all_abandoned)
            except Exception:
                if all_abandoned():
                    return None  # nobody waits for this slice any more
                raise
            seconds = time.monotonic() - started
        if self.lane is not None:
            self.lane.measured(mode, sum(request.costs[index] for request, index in live), seconds)
        self.batches_run += 1
        if self.on_batch is not None:
            self.on_batch(len(live))
        return outputs
