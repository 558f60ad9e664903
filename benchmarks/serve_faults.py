"""Faults against the BentoML service while innocent clients keep asking for predictions.

    python benchmarks/serve_faults.py --model outputs/demo/best --duration 15

Starts `bentoml serve serving.service:AttnlensService` on a free 127.0.0.1 port with the
service's default settings (`--setting NAME=VALUE` changes one) and, while a steady trickle of
innocent clients sends one SST-2 validation sentence per /predict request (`--innocent-clients`
closed loops, `--innocent-pause` seconds between a client's requests), runs these scenarios:

- baseline: no fault, for `--duration` seconds; the innocent latency every other row compares with.
- bad_texts: 8 clients send /explain of ordinary sentences and of texts without a word piece
  (zero-width and combining characters), every method in turn, for `--duration` seconds.
- explain_burst: 150 concurrent integrated-gradients /explain of 512-token IMDB reviews: the
  answers by status, how quickly the 429s come, the peak memory of each model process, and how
  long the explanation process keeps computing after every client has its answer.
- slow_loris: 64 connections that stop after 9 bytes of a declared 1,000-byte body and 64 that
  stop halfway through their headers: when each one is answered 408 and closed.
- unknown_paths: 500 requests to distinct unknown paths and how much /metrics grows.
- kill_explain: SIGKILL of the explanation process twice, each while it computes grad_rollout
  explanations of 4 long reviews: once just after their clients left (is the work retried?),
  once while they wait (are they answered?); /readyz over time.
- kill_predict: SIGKILL of the prediction process with 16 /predict requests in flight.

The two kills run last, so the other scenarios meet warm model processes. For the innocent
requests of each scenario's window: how many were sent, how many failed (any answer other than
200 with one prediction, or no answer within 30 s), and the latency of the answered ones.
Texts are read from ../shared/data at run time; the model is `--model`, else outputs/demo/best
when present, else the embedded MiniLM base with a random head (printed either way). Nothing
leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import shared_data

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("baseline", "bad_texts", "explain_burst", "slow_loris", "unknown_paths", "kill_explain",
             "kill_predict")
# Texts the tokenizer turns into no word piece at all: each alone is an explanation of [CLS] [SEP].
NO_WORD_PIECE = ["\u200b", "\ufeff", "\u00ad", "\u2060", "\u0301", "\u200b\u00ad\u2060"]
INNOCENT_TIMEOUT_S = 30.0  # an innocent request unanswered after this is counted as lost
BURST_REQUESTS = 150
KILL_PREDICT_REQUESTS = 16
SLOW_CONNECTIONS = 64
UNKNOWN_PATHS = 500
# A model process using less CPU than this share of a core is idle (it polls its pipes now and then).
IDLE_CPU_SHARE = 0.05
GIB = 1024**3


def pick_model(requested: str | None) -> str:
    if requested:
        return requested
    if (REPO_ROOT / "outputs/demo/best/config.json").is_file():
        return str(REPO_ROOT / "outputs/demo/best")
    from attnlens import DEFAULT_BASE_MODEL

    return str(DEFAULT_BASE_MODEL)  # random classification head: the faults do not need good labels


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def quantile(values: list[float], q: int) -> float:
    """The q-th percentile; "inclusive", so a few samples never give a figure above their maximum."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# -- HTTP over asyncio streams --------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None  # None: no answer; `error` says why
    seconds: float
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def outcome(self) -> str:
        return str(self.status) if self.status is not None else self.error


class Connection:
    """One HTTP/1.1 keep-alive connection. A raw client costs a few µs of CPU per request, and
    the load generator runs on the same cores as the server it measures."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host)

    def send(self, method: str, path: str, payload: object = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if payload is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            for _ in range(100_000):  # chunks; the service sends none this large
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.read()
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        """Leave at once, as a client that gives up does (the server sees the connection reset)."""
        self.writer.transport.abort()


async def request(address: tuple[str, int], method: str, path: str, payload: object = None,
                  timeout: float = 30.0) -> Answer:
    """One request on a connection of its own; every failure becomes an Answer with `error`."""
    started = time.monotonic()
    connection = None
    try:
        async with asyncio.timeout(timeout):
            connection = await Connection.open(*address)
            connection.send(method, path, payload)
            status, headers, body = await connection.answer()
        return Answer(status, time.monotonic() - started, headers=headers, body=body)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as error:
        return Answer(None, time.monotonic() - started, error=type(error).__name__)
    finally:
        if connection is not None:
            connection.close()


# -- the innocent clients -------------------------------------------------------------------------


class Trickle:
    """Closed-loop clients sending one sentence per /predict, in a thread with its own event loop
    so the scenarios' own clients never delay them; every request is recorded as
    (started, seconds, outcome), outcome "ok" or why not."""

    def __init__(self, address: tuple[str, int], texts: list[str], clients: int, pause_s: float,
                 limit_s: float) -> None:
        self.address, self.texts, self.clients, self.pause_s = address, texts, clients, pause_s
        self.end_by = time.monotonic() + limit_s
        self.records: list[tuple[float, float, str]] = []
        self.refusals: list[tuple[float, str]] = []  # (started, body) of the answers other than 200
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="innocent-clients", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(INNOCENT_TIMEOUT_S + 5)

    async def _run(self) -> None:
        await asyncio.gather(*(self._client(index) for index in range(self.clients)))

    async def _client(self, index: int) -> None:
        connection: Connection | None = None
        position = index
        while not self._stop.is_set() and time.monotonic() < self.end_by:
            text = self.texts[position % len(self.texts)]
            position += self.clients
            started = time.monotonic()
            try:
                async with asyncio.timeout(INNOCENT_TIMEOUT_S):
                    if connection is None:
                        connection = await Connection.open(*self.address)
                    connection.send("POST", "/predict", {"texts": [text]})
                    status, headers, body = await connection.answer()
                outcome = "ok" if status == 200 and len(json.loads(body)) == 1 else str(status)
                if outcome != "ok":
                    self.refusals.append((started, body[:200].decode(errors="replace")))
                if headers.get("connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as error:
                outcome = type(error).__name__
                if connection is not None:
                    connection.abort()
                    connection = None
            self.records.append((started, time.monotonic() - started, outcome))
            await asyncio.sleep(self.pause_s)
        if connection is not None:
            connection.close()

    def summary(self, start: float, end: float) -> dict:
        """The requests sent from `start` to `end`: counts, failures by kind, latency of the answered."""
        window = [r for r in self.records if start <= r[0] <= end]
        latencies = [seconds for _, seconds, outcome in window if outcome == "ok"]
        failures: dict[str, int] = {}
        for _, _, outcome in window:
            if outcome != "ok":
                failures[outcome] = failures.get(outcome, 0) + 1
        return {"sent": len(window), "failed": sum(failures.values()), "failures": failures,
                "p50_s": quantile(latencies, 50), "p99_s": quantile(latencies, 99),
                "max_s": max(latencies, default=float("nan")), "window_s": end - start,
                "latencies_s": [round(seconds, 4) for seconds in latencies],
                "refusals": [body for started, body in self.refusals if start <= started <= end][:5]}


# -- the server and its model processes -----------------------------------------------------------


class Server:
    """`bentoml serve` in a process group of its own, so that stopping it reaches its workers and
    model processes, and a Ctrl-C in the terminal reaches this script, which stops it in order."""

    def __init__(self, model: str, overrides: dict[str, str], directory: Path) -> None:
        self.port = free_port()
        self.address = ("127.0.0.1", self.port)
        self.log_path = directory / "serve.log"
        self.env = {**os.environ, "ATTNLENS_MODEL": model, "BENTOML_HOME": str(directory / "bentoml"),
                    "BENTOML_DO_NOT_TRACK": "true", "TOKENIZERS_PARALLELISM": "false", **overrides}
        self.process: subprocess.Popen | None = None

    def settings(self) -> dict:
        """serving/settings.py as the server reads it (same environment, same machine)."""
        code = ("import json, serving.settings as s; "
                "print(json.dumps({k: v for k, v in vars(s).items() if k.isupper()}))")
        output = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=self.env, capture_output=True,
                                text=True, check=True, timeout=60).stdout
        return json.loads(output)

    def start(self, timeout_s: float = 300.0) -> None:
        bentoml = str(Path(sys.executable).with_name("bentoml"))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [bentoml, "serve", "serving.service:AttnlensService", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO_ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                process_group=0)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"bentoml serve exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            if asyncio.run(request(self.address, "GET", "/readyz", timeout=2)).status == 200:
                return
            time.sleep(0.5)
        raise SystemExit(f"server not ready after {timeout_s:.0f} s:\n{self.log()[-3000:]}")

    def _process_groups(self) -> set[int]:
        """The server's process group and its workers': BentoML starts each worker in a process
        group of its own, with the worker's model processes in it."""
        groups = {self.process.pid}
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(OSError):
                    groups.add(os.getpgid(child.pid))
        return groups

    def stop(self) -> None:
        """SIGTERM to the server's process group (it stops its workers once the requests in flight
        are answered), then SIGKILL to every group of the server that is left."""
        if self.process is None:
            return
        groups = self._process_groups()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(30)
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)  # a worker or model process that hung
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def log(self, offset: int = 0) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size


class ModelProcesses:
    """The worker's model processes (its children started by multiprocessing's spawn_main), by
    role: "explain" runs niced, "predict" does not. A restarted process takes the role of the
    one that vanished, which also tells them apart when ATTNLENS_EXPLAIN_NICE=0 (then the
    prediction processes are the ones started first)."""

    def __init__(self, server_pid: int, prediction_processes: int) -> None:
        self.server_pid = server_pid
        found = sorted(self._spawned(), key=lambda p: p.create_time())
        niced = [p for p in found if p.nice() > 0]
        if niced and len(niced) < len(found):
            self.roles = {p.pid: "explain" if p.nice() > 0 else "predict" for p in found}
        else:
            self.roles = {p.pid: "predict" if i < prediction_processes else "explain" for i, p in enumerate(found)}
        self.processes = {p.pid: p for p in found}
        self.vacant: list[str] = []  # roles of processes that died and whose successor is not up yet

    def _spawned(self) -> list[psutil.Process]:
        found = []
        for child in psutil.Process(self.server_pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "spawn_main" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                    found.append(child)
        return found

    def refresh(self) -> None:
        alive = {p.pid: p for p in self._spawned()}
        for pid in [pid for pid in self.roles if pid not in alive]:
            self.vacant.append(self.roles.pop(pid))
            del self.processes[pid]
        for pid, process in alive.items():
            if pid not in self.roles and self.vacant:
                self.roles[pid] = self.vacant.pop(0)
                self.processes[pid] = process

    def first(self, role: str) -> psutil.Process:
        self.refresh()
        for pid, name in self.roles.items():
            if name == role:
                return self.processes[pid]
        raise RuntimeError(f"no {role} model process among the children of {self.server_pid}")


def machine_cpu(server_pid: int) -> tuple[float, float]:
    """(CPU seconds of the whole machine, of the server's processes and this one) so far: their
    difference over a scenario is what other jobs on a shared machine took meanwhile."""
    times = psutil.cpu_times()
    busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    ours = 0.0
    with contextlib.suppress(psutil.Error):
        server = psutil.Process(server_pid)
        for process in (psutil.Process(), server, *server.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                # A process's reaped children (a killed model process) count in its children_* times.
                times = process.cpu_times()
                ours += times.user + times.system + times.children_user + times.children_system
    return busy, ours


def cpu_time(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


async def wait_computing(process: psutil.Process, cpu_s: float, limit_s: float) -> bool:
    """Until the process has spent `cpu_s` CPU seconds from now (it is into the work, however
    little CPU a niced process gets), at most `limit_s` seconds."""
    target = cpu_time(process) + cpu_s
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if cpu_time(process) >= target:
            return True
        await asyncio.sleep(0.05)
    return False


async def busy_tail(process: psutil.Process, limit_s: float, idle_s: float = 2.0, interval: float = 0.25) -> dict:
    """How long the process keeps computing from now: seconds until its last busy interval
    before `idle_s` idle seconds in a row, and the CPU seconds it used meanwhile."""
    started = time.monotonic()
    first = last = cpu_time(process)
    busy_until = 0.0
    idle_since = started
    while time.monotonic() - started < limit_s and time.monotonic() - idle_since < idle_s:
        await asyncio.sleep(interval)
        now = cpu_time(process)
        if now - last > IDLE_CPU_SHARE * interval:
            busy_until = time.monotonic() - started
            idle_since = time.monotonic()
        last = now
    return {"busy_s": busy_until, "cpu_s": last - first, "capped": time.monotonic() - started >= limit_s}


async def cpu_over(process: psutil.Process, seconds: float) -> float:
    before = cpu_time(process)
    await asyncio.sleep(seconds)
    return cpu_time(process) - before


async def readiness(address: tuple[str, int], limit_s: float = 180.0) -> dict:
    """/readyz every 0.1 s from now until it has said something else and then 200 again: the
    changes as (seconds from now when the poll was sent, status), the seconds until it was
    ready again, and the slowest poll (a slow one leaves a gap in the timeline)."""
    started = time.monotonic()
    changes: list[tuple[float, str]] = []
    slowest = 0.0
    for polls in range(1, int(limit_s / 0.1) + 1):
        sent = time.monotonic() - started
        answer = await request(address, "GET", "/readyz", timeout=5)
        slowest = max(slowest, answer.seconds)
        if not changes or changes[-1][1] != answer.outcome:
            changes.append((round(sent, 2), answer.outcome))
        if answer.status == 200 and len(changes) > 1:
            return {"changes": changes, "recovered_s": sent, "polls": polls, "slowest_poll_s": slowest}
        if answer.status == 200 and sent > 10:
            break  # it never stopped being ready
        await asyncio.sleep(max(0.0, 0.1 - answer.seconds))
    return {"changes": changes, "recovered_s": None, "polls": polls, "slowest_poll_s": slowest}


async def time_to_exit(pid: int, limit_s: float = 60.0) -> float | None:
    """Seconds from now until the process has exited (a zombie or gone): a SIGKILLed process
    still has to free its memory, and its pipes, which tell the worker, close only then."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return time.monotonic() - started
        except psutil.NoSuchProcess:
            return time.monotonic() - started
        await asyncio.sleep(0.01)
    return None


def statuses(answers: list[Answer]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for answer in answers:
        counts[answer.outcome] = counts.get(answer.outcome, 0) + 1
    return dict(sorted(counts.items()))


def attempt_lines(log: str) -> list[str]:
    return [line.strip()[-200:] for line in log.splitlines() if "attempt" in line]


def format_seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f} s"


def timeline(changes: list[tuple[float, str]]) -> str:
    return " → ".join(f"{status} at +{seconds:.1f} s" for seconds, status in changes)


# -- the scenarios --------------------------------------------------------------------------------


@dataclass
class Run:
    server: Server
    settings: dict
    processes: ModelProcesses
    duration: float
    sentences: list[str]
    reviews: list[str]  # the longest IMDB reviews, longest first

    @property
    def answer_timeout(self) -> float:
        """Long enough for any answer the service can give (its own deadline is shorter)."""
        return self.settings["TIMEOUT"] + self.settings["BODY_TIMEOUT"] + 20


async def baseline(run: Run) -> dict:
    await asyncio.sleep(run.duration)
    return {"specific": "no fault"}


async def bad_texts(run: Run) -> dict:
    from attnlens.explain import METHODS

    ordinary = run.sentences[:len(NO_WORD_PIECE)]
    # Every method within the first few requests, each text in turn ordinary and without a word piece.
    bodies = [{"text": text, "method": method} for pair in zip(ordinary, NO_WORD_PIECE, strict=True)
              for text in pair for method in METHODS]
    answers: list[tuple[dict, Answer]] = []
    counter = iter(range(10**6))
    stop_at = time.monotonic() + run.duration

    async def client() -> None:
        while time.monotonic() < stop_at:
            body = bodies[next(counter) % len(bodies)]
            answers.append((body, await request(run.server.address, "POST", "/explain", body, run.answer_timeout)))

    await asyncio.gather(*(client() for _ in range(8)))
    refused = [(body, answer) for body, answer in answers if answer.status != 200]
    without = sum(body["text"] in NO_WORD_PIECE for body, _ in answers)
    figures = {"explain_sent": len(answers), "without_word_piece": without, "methods": list(METHODS),
               "statuses": statuses([answer for _, answer in answers]),
               "non_200": [{"text": body["text"], "method": body["method"], "outcome": answer.outcome,
                            "body": answer.body[:300].decode(errors="replace")} for body, answer in refused[:20]]}
    figures["specific"] = (f"8 clients, {len(answers)} /explain ({without} without a word piece, {len(METHODS)} "
                           f"methods): non-200 {len(refused)}" + (f" {figures['statuses']}" if refused else ""))
    return figures


async def explain_burst(run: Run) -> dict:
    texts = run.reviews[:BURST_REQUESTS]
    explainer, predictor = run.processes.first("explain"), run.processes.first("predict")
    peaks = {"explain": explainer.memory_info().rss, "predict": predictor.memory_info().rss}
    at_start = dict(peaks)
    sampling = True

    async def sample_rss() -> None:
        for _ in range(100_000):
            if not sampling:
                return
            for role, process in (("explain", explainer), ("predict", predictor)):
                with contextlib.suppress(psutil.Error):
                    peaks[role] = max(peaks[role], process.memory_info().rss)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_rss())
    started = time.monotonic()
    answers = await asyncio.gather(*(request(run.server.address, "POST", "/explain",
                                             {"text": text, "method": "integrated_gradients"}, run.answer_timeout)
                                     for text in texts))
    answered = time.monotonic()
    tail = await busy_tail(explainer, limit_s=120.0)
    sampling = False
    await sampler

    refused = [a for a in answers if a.status == 429]
    by_limit = {"admission": 0, "concurrency": 0}  # ATTNLENS_TIMEOUT's estimate, ATTNLENS_MAX_CONCURRENCY
    for answer in refused:
        by_limit["concurrency" if b"MAX_CONCURRENCY" in answer.body else "admission"] += 1
    counts = {"200": 0, "429": 0, "504": 0, "other": 0}
    for answer in answers:
        key = str(answer.status) if str(answer.status) in counts else "other"
        counts[key] += 1
    refused_s = [a.seconds for a in refused]
    served_s = [a.seconds for a in answers if a.status == 200]
    figures = {
        "window": (started, answered), "counts": counts, "statuses": statuses(answers), "429_by_limit": by_limit,
        "429_seconds_p50": quantile(refused_s, 50), "429_seconds_max": max(refused_s, default=float("nan")),
        "200_seconds_max": max(served_s, default=float("nan")), "burst_seconds": answered - started,
        "retry_after": sorted({a.headers.get("retry-after", "") for a in refused}),
        "rss_start_bytes": at_start, "rss_peak_bytes": peaks, "explain_after_answers": tail,
        "other_bodies": [a.body[:300].decode(errors="replace") or a.error for a in answers
                         if a.status not in (200, 429, 504)][:10],
        "429_bodies": sorted({a.body[:300].decode(errors="replace") for a in refused})[:5],
    }
    figures["specific"] = (
        f"{len(texts)} IG /explain of 512-token reviews: 200 {counts['200']}, 429 {counts['429']} "
        f"({by_limit['concurrency']} concurrency, {by_limit['admission']} admission; "
        f"p50 {figures['429_seconds_p50']:.3f} s, max {figures['429_seconds_max']:.3f} s), "
        f"504 {counts['504']}, other {counts['other']}; last answer at {answered - started:.1f} s; peak RSS "
        f"explain {peaks['explain'] / GIB:.2f} GiB (from {at_start['explain'] / GIB:.2f}), predict "
        f"{peaks['predict'] / GIB:.2f} GiB (from {at_start['predict'] / GIB:.2f}); explanation process computed "
        f"{tail['busy_s']:.1f} s ({tail['cpu_s']:.1f} CPU s) after the last answer"
        + (" (still busy at the cap)" if tail["capped"] else ""))
    return figures


async def slow_loris(run: Run) -> dict:
    host, port = run.server.address
    body_head = (f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 "Content-Length: 1000\r\n\r\n").encode() + b'{"texts":'  # 9 of the 1,000 bytes
    partial_head = f"POST /predict HTTP/1.1\r\nHost: {host}\r\n".encode()
    limit_s = max(run.settings["HEADER_TIMEOUT"], run.settings["BODY_TIMEOUT"]) + 20

    async def slow(data: bytes) -> dict:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as error:
            return {"status": type(error).__name__, "seconds": 0.0, "closed": False}
        try:
            writer.write(data)
            async with asyncio.timeout(limit_s):
                line = await reader.readuntil(b"\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as error:
            writer.close()
            return {"status": type(error).__name__, "seconds": time.monotonic() - started, "closed": False}
        seconds = time.monotonic() - started
        status = line.split(b" ")[1].decode() if line.startswith(b"HTTP/1.1") else "garbled"
        try:
            async with asyncio.timeout(5.0):
                await reader.read()  # the rest of the answer, then the server's close
            closed = True
        except (OSError, TimeoutError):
            closed = False
        finally:
            writer.close()
        return {"status": status, "seconds": seconds, "closed": closed}

    started = time.monotonic()
    results = await asyncio.gather(*(slow(body_head) for _ in range(SLOW_CONNECTIONS)),
                                   *(slow(partial_head) for _ in range(SLOW_CONNECTIONS)))
    figures: dict = {"window": (started, time.monotonic())}
    parts = []
    for kind, group in (("slow-body", results[:SLOW_CONNECTIONS]), ("slow-header", results[SLOW_CONNECTIONS:])):
        seconds = [r["seconds"] for r in group]
        counts: dict[str, int] = {}
        for r in group:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        figures[kind] = {"statuses": counts, "seconds_min": min(seconds), "seconds_max": max(seconds),
                         "closed": sum(r["closed"] for r in group)}
        shown = ", ".join(f"{n}×{s}" for s, n in sorted(counts.items()))
        parts.append(f"{len(group)} {kind} connections: {shown} after {min(seconds):.1f}–{max(seconds):.1f} s, "
                     f"{figures[kind]['closed']} closed by the server")
    figures["specific"] = "; ".join(parts) + (f" (deadlines: headers {run.settings['HEADER_TIMEOUT']:g} s, "
                                              f"body {run.settings['BODY_TIMEOUT']:g} s)")
    return figures


async def unknown_paths(run: Run) -> dict:
    """In two halves: the first brings the "other" label's series, the second must add nothing."""
    tag = os.urandom(4).hex()
    answers: list[Answer] = []

    async def client(paths: list[str]) -> None:
        connection = await Connection.open(*run.server.address)
        try:
            for path in paths:
                started = time.monotonic()
                connection.send("GET", path)
                status, _, _ = await asyncio.wait_for(connection.answer(), 30)
                answers.append(Answer(status, time.monotonic() - started))
        finally:
            connection.close()

    async def metrics() -> bytes:
        answer = await request(run.server.address, "GET", "/metrics")
        if answer.status != 200:
            raise RuntimeError(f"/metrics answered {answer.outcome}")
        return answer.body

    started = time.monotonic()
    snapshots = [await metrics()]
    half = UNKNOWN_PATHS // 2
    for first in (0, half):
        paths = [f"/no-such-path/{tag}/{i}" for i in range(first, first + half)]
        await asyncio.gather(*(client(paths[k::4]) for k in range(4)))
        snapshots.append(await metrics())
    lines = [len(snapshot.splitlines()) for snapshot in snapshots]
    sizes = [len(snapshot) for snapshot in snapshots]
    figures = {"window": (started, time.monotonic()), "statuses": statuses(answers), "metrics_lines": lines,
               "metrics_bytes": sizes, "paths_in_metrics": snapshots[-1].count(tag.encode())}
    shown = ", ".join(f"{n}×{s}" for s, n in figures["statuses"].items())
    figures["specific"] = (f"{2 * half} distinct unknown paths ({shown}): /metrics {lines[0]} lines / "
                           f"{sizes[0]} bytes, {lines[1] - lines[0]:+d} / {sizes[1] - sizes[0]:+d} "
                           f"after the first {half}, "
                           f"{lines[2] - lines[1]:+d} / {sizes[2] - sizes[1]:+d} after the next {half}; "
                           f"paths named in it: {figures['paths_in_metrics']}")
    return figures


async def _kill_explainer_while(run: Run, texts: list[str], method: str, *, leave: bool) -> dict:
    """Explanations of `texts`; once the explanation process is into the work, their clients
    leave (with `leave`) and the process is killed at once."""
    explainer = run.processes.first("explain")
    log_offset = run.server.log_size()
    connections = [await Connection.open(*run.server.address) for _ in texts]
    sent = time.monotonic()
    for connection, text in zip(connections, texts, strict=True):
        connection.send("POST", "/explain", {"text": text, "method": method})
    answers = [asyncio.create_task(connection.answer()) for connection in connections]
    computing = await wait_computing(explainer, cpu_s=0.5, limit_s=30.0)
    # Answered before the kill: refused at once (429), or done already.
    before_kill = [task.result() for task in answers if task.done() and not task.exception()]
    if leave:
        for task, connection in zip(answers, connections, strict=True):
            task.cancel()
            connection.abort()
    os.kill(explainer.pid, signal.SIGKILL)
    killed = time.monotonic()
    exited, ready = await asyncio.gather(time_to_exit(explainer.pid), readiness(run.server.address))
    outcomes: list[Answer] = []
    if not leave:
        for task, connection in zip(answers, connections, strict=True):
            try:
                status, _, body = await asyncio.wait_for(task, max(1.0, run.answer_timeout - (time.monotonic() - sent)))
                outcomes.append(Answer(status, time.monotonic() - killed, body=body))
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
                outcomes.append(Answer(None, time.monotonic() - killed, error=type(error).__name__))
            finally:
                connection.close()
    new_explainer = run.processes.first("explain")
    # Nobody waits for anything now: CPU of the new process is abandoned work computed again.
    cpu_after = await cpu_over(new_explainer, 3.0)
    return {"sent": len(texts), "answered_before_kill": len(before_kill),
            "before_kill": [{"status": status, "body": body[:300].decode(errors="replace")}
                            for status, _, body in before_kill],
            "computing_at_kill": computing,
            "kill_s_after_send": killed - sent, "exited_s_after_kill": exited, "readiness": ready,
            "statuses": statuses(outcomes),
            "last_answer_s_after_kill": max((a.seconds for a in outcomes), default=None),
            "attempt_lines": attempt_lines(run.server.log(log_offset)),
            "new_process_cpu_s_in_3_s_after_ready": cpu_after, "pids": (explainer.pid, new_explainer.pid)}


async def kill_explain(run: Run) -> dict:
    started = time.monotonic()
    # grad_rollout, whose speed admission learned on a full-size text in the warm-up, so all
    # four are accepted and the kill meets work that is wanted (or was, until its clients left).
    texts, method = run.reviews[:4], "grad_rollout"
    abandoned = await _kill_explainer_while(run, texts, method, leave=True)
    await settle(run)
    waiting = await _kill_explainer_while(run, texts, method, leave=False)
    figures = {"window": (started, time.monotonic()), "abandoned": abandoned, "waiting": waiting}

    def describe(phase: dict) -> str:
        return (f"killed {phase['kill_s_after_send']:.1f} s after sending ({phase['answered_before_kill']} answered "
                f"before, computing: {'yes' if phase['computing_at_kill'] else 'no'}), exited {format_seconds(phase['exited_s_after_kill'])} later, {len(phase['attempt_lines'])} "
                f"attempt line(s), /readyz {timeline(phase['readiness']['changes'])}")

    figures["specific"] = (
        f"4 grad_rollout /explain of 512-token reviews; clients left, then SIGKILL at once: {describe(abandoned)}, "
        f"new process {abandoned['new_process_cpu_s_in_3_s_after_ready']:.2f} CPU s in the 3 s after ready; "
        f"clients waiting: {describe(waiting)}, answers {waiting['statuses']}, the last "
        f"{waiting['last_answer_s_after_kill'] or float('nan'):.1f} s after the kill")
    return figures


async def kill_predict(run: Run) -> dict:
    predictor = run.processes.first("predict")
    log_offset = run.server.log_size()
    bodies = [{"texts": run.reviews[2 * i: 2 * i + 2]} for i in range(KILL_PREDICT_REQUESTS)]
    started = time.monotonic()
    calls = [asyncio.create_task(request(run.server.address, "POST", "/predict", body, run.answer_timeout))
             for body in bodies]
    await asyncio.sleep(0.3)  # sent, read and batched: the first batch is in the model process
    os.kill(predictor.pid, signal.SIGKILL)
    killed = time.monotonic()
    exited, ready = await asyncio.gather(time_to_exit(predictor.pid), readiness(run.server.address))
    answers = await asyncio.gather(*calls)
    counts = statuses(answers)
    answered = sum(a.status == 200 and len(json.loads(a.body)) == 2 for a in answers)
    figures = {"window": (started, time.monotonic()), "statuses": counts, "answered_200": answered,
               "exited_s_after_kill": exited, "readiness": ready,
               "last_answer_s_after_kill": max(a.seconds for a in answers) - (killed - started),
               "attempt_lines": attempt_lines(run.server.log(log_offset)),
               "refusals": [a.body[:300].decode(errors="replace") or a.error for a in answers if a.status != 200][:3]}
    figures["specific"] = (
        f"{answered}/{KILL_PREDICT_REQUESTS} in-flight /predict of 2 reviews answered 200 {counts}, the last "
        f"{figures['last_answer_s_after_kill']:.1f} s after the kill (exited {format_seconds(exited)} after it); "
        f"/readyz {timeline(ready['changes'])}; "
        f"{len(figures['attempt_lines'])} attempt line(s)")
    return figures


async def settle(run: Run) -> None:
    """Before a scenario: the service ready and the explanation process idle (at most ~3 minutes)."""
    for _ in range(600):
        if (await request(run.server.address, "GET", "/readyz", timeout=2)).status == 200:
            break
        await asyncio.sleep(0.2)
    explainer = run.processes.first("explain")
    for _ in range(120):
        if await cpu_over(explainer, 0.5) < IDLE_CPU_SHARE * 0.5:
            return


# -- main -----------------------------------------------------------------------------------------


def print_report(results: dict, run: Run, model: str, command: str, threads: int, load_before: float) -> None:
    print(f"\nmodel: {model}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {threads} torch threads per model process "
          f"({run.settings['MODEL_PROCESSES']} prediction + {run.settings['EXPLAIN_PROCESSES']} explanation "
          f"process(es) per worker); load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    shown = ", ".join(f"{k}={v}" for k, v in sorted(run.settings.items()) if k != "API_KEY")
    print(f"settings (serving/settings.py as the server read them): {shown}")
    print(f"command: {command}\n")
    print("| scenario | innocent sent | innocent failed | innocent p50 | innocent p99 | what is specific |")
    print("|---|---:|---:|---:|---:|---|")
    for name, figures in results.items():
        innocent = figures["innocent"]
        failed = f"{innocent['failed']}" + (f" {innocent['failures']}" if innocent["failures"] else "")
        print(f"| {name} | {innocent['sent']} | {failed} | {innocent['p50_s'] * 1000:.0f} ms | "
              f"{innocent['p99_s'] * 1000:.0f} ms | {figures['specific']} |")
    shown = ", ".join(f"{name} {figures['other_jobs_cores']:.1f}" for name, figures in results.items())
    print(f"\ncores busy with other jobs of the machine (not the server, not this script) per scenario: {shown}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="model directory (default: outputs/demo/best, else the base model)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--duration", type=float, default=15.0,
                        help="seconds of the steady scenarios (baseline, bad_texts)")
    parser.add_argument("--innocent-clients", type=int, default=4)
    parser.add_argument("--innocent-pause", type=float, default=0.05,
                        help="seconds between an innocent client's requests")
    parser.add_argument("--setting", action="append", default=[], metavar="ATTNLENS_NAME=VALUE",
                        help="a server setting other than its default (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"--only: unknown scenario(s) {unknown}; the scenarios are {','.join(SCENARIOS)}")
    overrides = {}
    for item in args.setting:
        name, separator, value = item.partition("=")
        if not separator or not name.startswith("ATTNLENS_"):
            parser.error(f"--setting {item!r}: expected ATTNLENS_NAME=VALUE")
        overrides[name] = value
    command = shlex.join(["python", *sys.argv])
    model = pick_model(args.model)
    # Long enough for every IG explanation to count as 512 tokens (about 4 characters a token).
    reviews = sorted(shared_data.imdb()[0], key=len, reverse=True)[:BURST_REQUESTS]
    sentences = shared_data.sst2()[0]
    load_before = os.getloadavg()[0]

    # Ctrl-C and SIGTERM both end here through the `finally`, which stops the server's process group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    directory = Path(tempfile.mkdtemp(prefix="attnlens-serve-faults-"))
    server = Server(model, overrides, directory)
    settings = server.settings()
    print(f"model: {model}; scenarios: {','.join(n for n in SCENARIOS if n in chosen)}; server log: {server.log_path}",
          flush=True)
    trickle = None
    results: dict[str, dict] = {}
    try:
        server.start()
        processes = ModelProcesses(server.process.pid, settings["MODEL_PROCESSES"])
        run = Run(server, settings, processes, args.duration, sentences, reviews)
        trickle = Trickle(server.address, sentences, args.innocent_clients, args.innocent_pause, limit_s=3600)
        trickle.start()
        time.sleep(2.0)  # the innocent clients' connections open and their first requests pass
        scenarios = {"baseline": baseline, "bad_texts": bad_texts, "explain_burst": explain_burst,
                     "slow_loris": slow_loris, "unknown_paths": unknown_paths, "kill_explain": kill_explain,
                     "kill_predict": kill_predict}
        for name in (n for n in SCENARIOS if n in chosen):
            print(f"{name} ...", flush=True)
            asyncio.run(settle(run))
            started, cpu_before = time.monotonic(), machine_cpu(server.process.pid)
            figures = asyncio.run(scenarios[name](run))
            figures.setdefault("window", (started, time.monotonic()))
            busy, ours = (after - before for after, before in zip(machine_cpu(server.process.pid), cpu_before,
                                                                   strict=True))
            figures["other_jobs_cores"] = max(0.0, busy - ours) / (time.monotonic() - started)
            results[name] = figures
            print(f"{name}: {figures['specific']}", flush=True)
        trickle.stop()  # every innocent request is answered or timed out before the windows are read
        for figures in results.values():
            figures["innocent"] = trickle.summary(*figures["window"])
    except KeyboardInterrupt:
        print("interrupted: stopping the server", file=sys.stderr)
        return 130
    finally:
        if trickle is not None:
            trickle.stop()
        server.stop()

    print_report(results, run, model, command, settings["THREADS"], load_before)
    if args.json:
        for figures in results.values():
            figures.pop("window")  # monotonic clock readings; the innocent figures carry its length
        args.json.write_text(json.dumps({"command": command, "model": model, "cpu": cpu_model(),
                                         "cores": os.cpu_count(), "settings": settings, "overrides": overrides,
                                         "innocent_clients": args.innocent_clients,
                                         "innocent_pause_s": args.innocent_pause, "duration_s": args.duration,
                                         "scenarios": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
