"""The model in a process of its own, beside the HTTP worker that feeds it.

Why not a thread of the worker: torch lets go of the GIL inside each operation but needs it back
between operations, and Python hands the GIL to a waiting thread only after the holder has run
for `sys.getswitchinterval()` (5 ms). Each burst of request handling on the event loop therefore
stalled the model at every operation boundary (docs/experiments.md, "Service throughput"). In
its own process the model never waits for the event loop,
and the two run side by side.

The process ignores SIGINT and SIGTERM: stopping is the worker's decision (it first lets requests
in flight finish, then closes this process), and the process also ends when the worker's end of
the pipe closes, e.g. when the worker is killed. A process that dies (killed, out of memory) is
started again at once by a watcher thread, and a call it held is retried once on the new process
if anybody still waits for it, so live requests are answered and abandoned work is dropped.
`ready` is False from the death until the new process has loaded the model (/readyz says 503).

Messages are pickled (multiprocessing's pipes): both ends are this module, over a pipe private
to the two processes, so nothing from outside the service is ever unpickled.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from bentoml.exceptions import ServiceUnavailable

from attnlens.predict import PredictionCancelled
from serving.explain_mode import split_mode

logger = logging.getLogger("bentoml.attnlens")

StopCheck = Callable[[], bool]
# How often a waiting call asks `should_stop` whether its requests are still wanted: the delay
# between a request's timeout and the model dropping its work.
CANCEL_POLL_S = 0.02


class ModelProcessError(ServiceUnavailable):
    """The model process failed to start, or died twice on the same call (HTTP 503)."""


def _picklable(error: BaseException) -> BaseException:
    """`error` itself when it survives the pipe, else a RuntimeError carrying its type and text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _serve(connection, cancels, name_or_path: str, revision: str | None, threads: int, batch_size: int,
           quantize: str, explain_chunk: int, nice: int) -> None:
    """The process's main function: load the model, then answer calls until told to stop.

    `cancels` brings the numbers of calls whose requests were all abandoned; the running call
    checks it between model batches. Numbered, so a cancel that arrives after its call ended
    cannot stop the next one.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if nice:
            # Preempted often by the other lane, its threads must sleep at OpenMP barriers instead
            # of spinning on the cores the other lane needs (read when torch starts OpenMP).
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        import torch

        from attnlens import load_tokenizer
        from attnlens.explain import explain_batch
        from attnlens.inference.process_setup import prepare_inference_process
        from attnlens.inference.quantize import apply_quantization
        from attnlens.loading import load_model
        from attnlens.predict import PredictionCancelled, Predictor

        torch.set_num_threads(threads)
        prepare_inference_process()  # buffers reused across batches; memory bounded across batch shapes
        model = load_model(name_or_path, revision=revision).eval()  # BERT or a baseline, by config.json
        tokenizer = load_tokenizer(name_or_path, revision=revision)
        # Predictions from the (optionally int8) model; explanations keep the float32 model,
        # since gradient methods need a backward the int8 kernels do not have.
        predictor = Predictor(apply_quantization(model, quantize), tokenizer, batch_size=batch_size)
        if nice:  # after loading, so a restart loads at full speed
            os.nice(nice)  # a lower CPU priority: the other lane's process gets the cores first
    except BaseException as error:  # every failure is reported to the worker
        connection.send(("failed", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
        return

    cancelled_up_to = 0  # calls are numbered in order; a cancel names the call it was sent for
    current = 0

    def should_stop() -> bool:
        nonlocal cancelled_up_to
        while cancels.poll():
            cancelled_up_to = max(cancelled_up_to, cancels.recv())
        return current <= cancelled_up_to

    def explain(texts: list[str], mode: str) -> list:
        """Explanations in chunks of `explain_chunk` texts, asking for cancellation between chunks;
        `mode`: the method, chunked or not (serving/explain_mode.py)."""
        method, long_text = split_mode(mode)
        results = []
        for first in range(0, len(texts), explain_chunk):
            if should_stop():
                raise PredictionCancelled(f"explanation stopped after {first} of {len(texts)} texts")
            results += explain_batch(model, tokenizer, texts[first : first + explain_chunk], method=method,
                                     max_length=predictor.max_length, long_text=long_text, should_stop=should_stop)
        return results

    connection.send(("ready", {"max_length": predictor.max_length}))
    while True:
        try:
            message = connection.recv()
        except EOFError:  # the worker is gone
            return
        if message is None:
            return
        current, kind, texts, option = message
        try:
            if kind == "predict":
                result = predictor.predict(texts, long_text=option, should_stop=should_stop)
            else:
                result = explain(texts, option)
            connection.send(("ok", result))
        except Exception as error:  # the call fails, the process goes on
            connection.send(("error", _picklable(error)))


class ModelProcess:
    """A child process holding the model; `predict` and `explain` block the calling thread (not
    the event loop: the batchers call them from their executor threads) until it answers."""

    def __init__(self, name_or_path: str, revision: str | None, *, threads: int, batch_size: int,
                 quantize: str = "none", explain_chunk: int = 8, nice: int = 0, start_timeout: float = 600.0,
                 wait: bool = True) -> None:
        """Starts the process; with `wait=False` the caller calls `wait_ready()` (so several
        processes can load their models at the same time)."""
        self._arguments = (name_or_path, revision, threads, batch_size, quantize, explain_chunk, nice)
        self._start_timeout = start_timeout
        self._context = multiprocessing.get_context("spawn")  # no fork of a worker's threads
        self._lock = threading.Lock()  # one call at a time; the process answers in order
        self.restarts = 0
        self.ready = False  # the current process has loaded the model and answers calls
        self.info: dict[str, Any] = {}  # what the process reported when ready (max_length)
        self._calls = 0
        self._closed = False
        self._launch()
        self._watcher: threading.Thread | None = None
        if wait:
            self.wait_ready()

    def _launch(self) -> None:
        self._connection, theirs = self._context.Pipe()
        cancels_out, self._cancels = self._context.Pipe(duplex=False)
        self._process = self._context.Process(target=_serve, args=(theirs, cancels_out, *self._arguments),
                                              name="attnlens-model", daemon=False)
        self._process.start()
        theirs.close()  # ours only, so the pipe reports EOF when the process dies
        cancels_out.close()

    def wait_ready(self) -> None:
        """Until the process has loaded the model; raises ModelProcessError with its reason if not."""
        if not self._connection.poll(self._start_timeout):
            self._kill()
            raise ModelProcessError(f"the model process did not load {self._arguments[0]} "
                                    f"within {self._start_timeout:.0f} s")
        try:
            status, value = self._connection.recv()
        except EOFError:
            raise ModelProcessError(f"the model process exited with code {self._process.exitcode} while "
                                    f"loading {self._arguments[0]}") from None
        if status != "ready":
            self._process.join(10)
            raise ModelProcessError(f"loading the model {self._arguments[0]} failed: {value}")
        self.info = value
        self.ready = True
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="attnlens-model-watcher", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        """Restart the process as soon as it dies, not at the next call, so /readyz recovers and
        the next request does not pay for the restart."""
        while not self._closed:
            process = self._process
            # The sentinel says the process ended without reaping it: only the thread holding the
            # lock reaps (is_alive, join), or two threads would race for its exit status.
            if not multiprocessing.connection.wait([process.sentinel], timeout=0.5) or self._closed:
                continue
            self.ready = False
            with self._lock:  # a call in progress restarts it itself; then there is nothing to do
                if self._closed or self._process is not process or self._process.is_alive():
                    continue
                try:
                    self._restart()
                except Exception:
                    logger.exception("restarting the model process failed; trying again")
                    time.sleep(1.0)

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def predict(self, texts: list[str], long_text: str, should_stop: StopCheck | None = None) -> list:
        return self._call("predict", texts, long_text, should_stop)

    def explain(self, texts: list[str], method: str, should_stop: StopCheck | None = None) -> list:
        return self._call("explain", texts, method, should_stop)

    def _call(self, kind: str, texts: list[str], option: str, should_stop: StopCheck | None) -> list:
        with self._lock:
            if self._closed:
                raise ModelProcessError("the service is stopping: its model process was closed")
            for attempt in (1, 2):
                if not self.alive:
                    self._restart()
                try:
                    return self._exchange((kind, list(texts), option), should_stop)
                except (EOFError, BrokenPipeError, ConnectionResetError):
                    self.ready = False
                    self._process.join(5)  # it closed the pipe by dying: let it finish, so it is restarted
                    logger.warning("the model process died during a %s call of %d texts (exit code %s), "
                                   "attempt %d of 2", kind, len(texts), self._process.exitcode, attempt)
                    if should_stop is not None and should_stop():  # nobody waits for it: no retry
                        raise PredictionCancelled(f"the {kind} call was abandoned when the model "
                                                  "process died; not retried") from None
            raise ModelProcessError(f"the model process died twice on a {kind} call of {len(texts)} texts")

    def _exchange(self, message: tuple, should_stop: StopCheck | None) -> Any:
        self._calls += 1
        self._connection.send((self._calls, *message))
        cancelled = False
        while not self._connection.poll(CANCEL_POLL_S):  # True on an answer, and on EOF
            if should_stop is not None and not cancelled and should_stop():
                self._cancels.send(self._calls)  # it stops at its next check and answers with the error
                cancelled = True
        status, value = self._connection.recv()
        if status == "error":
            raise value
        return value

    def _restart(self) -> None:
        self.ready = False
        self._process.join(1)
        self._connection.close()
        self._cancels.close()
        self.restarts += 1
        logger.warning("restarting the model process (exit code %s)", self._process.exitcode)
        started = time.monotonic()
        self._launch()
        self.wait_ready()
        logger.info("model process restarted in %.1f s", time.monotonic() - started)

    def _kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join(10)

    def close(self, timeout: float = 10.0) -> None:
        """Ask the process to finish (after the call in progress), then kill it if it does not."""
        self._closed = True
        self.ready = False
        if self._lock.acquire(timeout=timeout):  # not in the middle of another thread's message
            try:
                with contextlib.suppress(OSError, ValueError):  # already closed
                    self._connection.send(None)
            finally:
                self._lock.release()
            self._process.join(timeout)
        self._kill()
        self._connection.close()
        self._cancels.close()


class ModelPool:
    """`count` model processes of one worker; each call goes to a free one.

    Several single-threaded processes rather than one process with as many threads: no OpenMP
    thread waits for another at every operation, and one event loop feeds them all, so clients are not split
    between workers whose queues fill unevenly. It costs a copy of the model per process.
    """

    def __init__(self, count: int, name_or_path: str, revision: str | None, **options: Any) -> None:
        self.processes: list[ModelProcess] = []
        try:  # all load at once: start-up takes one model load, not `count`
            for _ in range(count):
                self.processes.append(ModelProcess(name_or_path, revision, wait=False, **options))
            for process in self.processes:
                process.wait_ready()
        except BaseException:
            self.close()
            raise
        self._free: queue.SimpleQueue[ModelProcess] = queue.SimpleQueue()
        for process in self.processes:
            self._free.put(process)

    def _on_free(self, method: str, texts: list[str], option: str, should_stop: StopCheck | None) -> list:
        process = self._free.get()  # the batchers never ask for more calls than there are processes
        try:
            return getattr(process, method)(texts, option, should_stop)
        finally:
            self._free.put(process)

    def predict(self, texts: list[str], long_text: str, should_stop: StopCheck | None = None) -> list:
        return self._on_free("predict", texts, long_text, should_stop)

    def explain(self, texts: list[str], method: str, should_stop: StopCheck | None = None) -> list:
        return self._on_free("explain", texts, method, should_stop)

    @property
    def ready(self) -> bool:
        """A process of the pool can take a call now."""
        return any(process.ready for process in self.processes)

    @property
    def info(self) -> dict[str, Any]:
        return self.processes[0].info

    def close(self, timeout: float = 10.0) -> None:
        for process in self.processes:
            process.close(timeout)
