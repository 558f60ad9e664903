"""Load on the BentoML service, compared with the offline Predictor in the same run.

    python benchmarks/serve_load.py --model outputs/sst2-minilm-2ep/best --duration 20

By default 32 clients and one torch thread on each side: the model gets the same compute served
and offline, and the service's HTTP work and the load generator share the other core(s). With
`--threads 2`, `--workers 2` or `--model-processes 2` the model takes every core of a 2-core
machine and the HTTP work competes with it (docs/benchmarks.md has both, measured).

- Offline reference: `Predictor.predict` (and `explain_batch` for the explain workload) on the
  same texts, in full batches of `--batch-size` (32, its most efficient on CPU; the server keeps
  its own default, 16, unless `--server-batch-size`), with the same torch threads as the server: with
  `--workers N` and `--model-processes M` (N server workers with M model processes of `--threads`
  torch threads each), N x M offline processes of `--threads` threads running side by side
  (`--offline threads`: one process, N x M x threads).
- Served: `bentoml serve` on a free 127.0.0.1 port with the same model and a bounded closed loop:
  `--clients` concurrent clients, each sends `--texts-per-request` texts per request (1) and the next one as soon as
  the answer arrives. The load generator is a light raw HTTP/1.1 client (`--client httpx` for
  httpx): it runs on the same cores as the server, so its own CPU is taken from the server.
Each gets `--duration` seconds per workload, in `--rounds` alternating slices, so that on a
shared machine both see the same background load.
Besides throughput and latency, each side's CPU time per text: the server's worker processes
during the served slices (psutil), the offline process(es) during theirs.

Workloads: short SST-2 validation sentences, long IMDB reviews (truncated to 512 tokens), short
sentences with `"explain": true`. Texts are read from ../shared/data at run time. The model is
outputs/sst2-minilm/best or outputs/demo/best when present, else the MiniLM base with a random
head (printed either way). Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import shared_data

# Both sides tokenise single-threaded, as the service does in its Bento (bentofile.yaml): a
# tokenizer thread pool on one side only would skew the comparison.
os.environ["TOKENIZERS_PARALLELISM"] = "false"
REPO_ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("short", "long", "short+explain")


def pick_model(requested: str | None) -> str:
    if requested:
        return requested
    for candidate in ("outputs/sst2-minilm/best", "outputs/demo/best"):
        if (REPO_ROOT / candidate / "config.json").is_file():
            return str(REPO_ROOT / candidate)
    from attnlens import DEFAULT_BASE_MODEL

    return str(DEFAULT_BASE_MODEL)  # random classification head: speed only, labels meaningless


def load_texts() -> dict[str, list[str]]:
    short, long = shared_data.sst2()[0], shared_data.imdb()[0]
    return {"short": short, "long": long, "short+explain": short}


class OfflineReference:
    """The library itself in this process: the ceiling the service is measured against."""

    def __init__(self, model_dir: str, batch_size: int, threads: int, quantize: str = "none") -> None:
        import torch

        from attnlens import BertForSequenceClassification, load_tokenizer
        from attnlens.inference.process_setup import prepare_inference_process
        from attnlens.inference.quantize import apply_quantization
        from attnlens.predict import Predictor

        torch.set_num_threads(threads)
        prepare_inference_process()  # as the service does
        self.model = BertForSequenceClassification.from_pretrained(model_dir).eval()
        self.tokenizer = load_tokenizer(model_dir)
        # Like the service: predictions from the (optionally int8) model, explanations float32.
        self.predictor = Predictor(apply_quantization(self.model, quantize), self.tokenizer, batch_size=batch_size)
        self.batch_size = batch_size
        self.position = 0

    def run(self, pool: list[str], duration: float, explain: bool) -> tuple[int, float]:
        """(texts done, seconds) for `duration` seconds of full batches from `pool`."""
        from attnlens.explain import explain_batch

        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < duration:
            batch = [pool[(self.position + i) % len(pool)] for i in range(self.batch_size)]
            self.position += self.batch_size
            self.predictor.predict(batch)
            if explain:
                explain_batch(self.model, self.tokenizer, batch, method="grad_rollout",
                              max_length=self.predictor.max_length)
            done += len(batch)
        return done, time.perf_counter() - started


def timed_cpu(run, *args) -> tuple[int, float, float]:
    """`run(*args)`'s (texts, seconds) plus the CPU seconds this process spent in it (all threads)."""
    started = time.process_time()
    done, seconds = run(*args)
    return done, seconds, time.process_time() - started


def server_cpu_seconds(server: subprocess.Popen) -> float:
    """CPU seconds used so far by the server's worker processes (BentoML starts them with
    `--worker-id`) and their model processes: what the service spends on HTTP, validation,
    batching and the model."""
    import psutil

    total = 0.0
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            if "--worker-id" in child.cmdline():
                for process in (child, *child.children(recursive=True)):
                    times = process.cpu_times()
                    total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _offline_worker(connection, model_dir: str, batch_size: int, threads: int, quantize: str, index: int) -> None:
    """One offline process of `OfflinePool`: loads the model, then runs what it is sent."""
    reference = OfflineReference(model_dir, batch_size, threads, quantize)
    reference.position = index * 1000  # each process its own texts, as each server worker gets its own
    texts = load_texts()
    reference.run(texts["short"], 1.0, explain=False)  # warm-up
    connection.send("ready")
    while (message := connection.recv()) is not None:
        workload, seconds, explain = message
        connection.send(timed_cpu(reference.run, texts[workload], seconds, explain))


class OfflinePool:
    """`processes` copies of the offline reference running at the same time, each with `threads`
    torch threads: the library laid out like a server with that many workers, on the same CPU."""

    def __init__(self, model_dir: str, batch_size: int, threads: int, quantize: str, processes: int) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.connections, self.processes = [], []
        for index in range(processes):
            ours, theirs = context.Pipe()
            process = context.Process(target=_offline_worker, daemon=True,
                                      args=(theirs, model_dir, batch_size, threads, quantize, index))
            process.start()
            self.connections.append(ours)
            self.processes.append(process)
        for connection in self.connections:
            if connection.recv() != "ready":
                raise SystemExit("an offline process failed to start")

    def run(self, workload: str, duration: float, explain: bool) -> tuple[int, float, float]:
        """(texts done by all processes, seconds each ran, CPU seconds of all): they run side by
        side, so the pool's throughput is the sum of the processes' texts over the (common) duration."""
        for connection in self.connections:
            connection.send((workload, duration, explain))
        results = [connection.recv() for connection in self.connections]
        return (sum(done for done, _, _ in results), statistics.mean(seconds for _, seconds, _ in results),
                sum(cpu for _, _, cpu in results))

    def close(self) -> None:
        for connection in self.connections:
            connection.send(None)
        for process in self.processes:
            process.join(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_dir: str, port: int, threads: int, batch_size: int | None, log_path: Path,
                 quantize: str = "none", workers: int = 1, model_processes: int = 1) -> subprocess.Popen:
    """`bentoml serve` with the service's defaults except the threads, workers, quantisation, the
    batch size when given, and limits high enough that the load is never refused."""
    env = {**os.environ, "ATTNLENS_MODEL": model_dir, "ATTNLENS_THREADS": str(threads), "ATTNLENS_QUANTIZE": quantize,
           "ATTNLENS_WORKERS": str(workers), "ATTNLENS_MODEL_PROCESSES": str(model_processes),
           "ATTNLENS_MAX_CONCURRENCY": "1000", "ATTNLENS_TIMEOUT": "300",
           "BENTOML_DO_NOT_TRACK": "true", "TOKENIZERS_PARALLELISM": "false"}
    if batch_size is not None:
        env["ATTNLENS_BATCH_SIZE"] = str(batch_size)
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    with open(log_path, "wb") as log:
        process = subprocess.Popen([bentoml, "serve", "serving.service:AttnlensService", "--host", "127.0.0.1",
                                    "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("server not ready after 180 s")


async def closed_loop(url: str, pool: list[str], clients: int, duration: float, explain: bool,
                      start_at: int = 0, per_request: int = 1, client_kind: str = "raw") -> dict:
    """`clients` concurrent clients, `per_request` texts per request, each sending again once answered.

    `client_kind="raw"`: one keep-alive HTTP/1.1 connection per client over asyncio streams, a
    few µs of client CPU per request. The load generator runs on the same two cores as the
    server, so a heavy client (`"httpx"`, ~10x the CPU per request) takes CPU from the server
    it measures.
    """
    latencies: list[float] = []
    texts_done = [0]
    errors: dict[str, int] = {}
    counter = iter(range(start_at, 10**9))
    stop_at = time.perf_counter() + duration

    def count_error(key: str) -> None:
        errors[key] = errors.get(key, 0) + 1

    def record(status: int, body: bytes, started: float) -> None:
        if status == 200:
            latencies.append(time.perf_counter() - started)
            texts_done[0] += len(json.loads(body))
        else:
            count_error(str(status))

    async def httpx_client(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop_at:
            batch = [pool[next(counter) % len(pool)] for _ in range(per_request)]
            started = time.perf_counter()
            try:
                response = await http.post(f"{url}/predict", json={"texts": batch, "explain": explain})
                record(response.status_code, response.content, started)
            except httpx.HTTPError as error:
                count_error(type(error).__name__)

    host, port = url.removeprefix("http://").split(":")

    async def raw_client() -> None:
        reader = writer = None
        while time.perf_counter() < stop_at:
            batch = [pool[next(counter) % len(pool)] for _ in range(per_request)]
            body = json.dumps({"texts": batch, "explain": explain}).encode()
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(b"POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body))
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                if "content-length" not in headers:  # e.g. chunked: not what this service sends
                    raise ValueError(f"response without content-length: {lines[0]}")
                payload = await reader.readexactly(int(headers["content-length"]))
                record(int(lines[0].split()[1]), payload, started)
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                count_error(type(error).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    if client_kind == "raw":
        await asyncio.gather(*(raw_client() for _ in range(clients)))
    else:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=300, limits=limits) as http:
            await asyncio.gather(*(httpx_client(http) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {"latencies": latencies, "texts": texts_done[0], "errors": errors, "seconds": elapsed}


def summarise(slices: list[dict], offline_done: int, offline_seconds: float, served_cpu: float,
              offline_cpu: float) -> dict:
    latencies = [x for part in slices for x in part["latencies"]]
    errors: dict[str, int] = {}
    for part in slices:
        for key, count in part["errors"].items():
            errors[key] = errors.get(key, 0) + count
    seconds = sum(part["seconds"] for part in slices)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    served_texts = sum(part["texts"] for part in slices)
    served, offline = served_texts / seconds, offline_done / offline_seconds
    return {"requests": len(latencies), "throughput": served, "errors": errors, "p50_ms": 1000 * quantiles[49],
            "p95_ms": 1000 * quantiles[94], "p99_ms": 1000 * quantiles[98], "offline_throughput": offline,
            "ratio": served / offline, "server_cpu_ms_per_text": 1000 * served_cpu / max(1, served_texts),
            "offline_cpu_ms_per_text": 1000 * offline_cpu / max(1, offline_done)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per workload, each side")
    parser.add_argument("--rounds", type=int, default=4, help="alternating offline/served slices per workload")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per offline batch")
    parser.add_argument("--server-batch-size", type=int, default=None,
                        help="ATTNLENS_BATCH_SIZE of the server (default: the service's, 16); below the number of "
                             "clients, the next batch queues while one runs, so the model never waits for clients")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per model process of the server; the offline side gets as many in all")
    parser.add_argument("--model-processes", type=int, default=1,
                        help="model processes per server worker (ATTNLENS_MODEL_PROCESSES)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server worker processes (ATTNLENS_WORKERS), each with --threads torch threads")
    parser.add_argument("--offline", choices=("processes", "threads"), default="processes",
                        help="offline layout with several model processes: one process per server model process "
                             "(the server's layout), or one process with all their torch threads")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator: raw asyncio HTTP/1.1 (light) or httpx (what earlier runs used)")
    parser.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="ATTNLENS_QUANTIZE of the server and the same for the offline predictions")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    model_processes = args.workers * args.model_processes  # the server's, in all
    pooled = args.offline == "processes" and model_processes > 1
    offline_layout = f"{model_processes} processes x {args.threads}" if pooled else str(model_processes * args.threads)
    model_dir = pick_model(args.model)
    texts = load_texts()
    print(f"model: {model_dir}\nmachine: {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; {args.clients} clients x {args.texts_per_request} texts per request; {args.duration:.0f} s per workload and side in "
          f"{args.rounds} rounds; batch size {args.batch_size} offline, {args.server_batch_size or 'default'} served; "
          f"{args.workers} server worker(s) x {args.model_processes} model process(es) x {args.threads} torch "
          f"threads; offline {offline_layout} threads; "
          f"{args.client} client; access log {os.environ.get('ATTNLENS_ACCESS_LOG') or 'on'}; request tracing "
          f"{os.environ.get('ATTNLENS_TRACE_REQUESTS') or 'on'}; quantize "
          f"{args.quantize}", flush=True)

    # The server starts first and idles while the library is timed: offline and served slices
    # alternate, so both see the same background load on a shared machine.
    port = free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"attnlens-serve-load-{port}.log"
    process = start_server(model_dir, port, args.threads, args.server_batch_size, log_path, args.quantize,
                           args.workers, args.model_processes)  # batch size None: the service's default
    results, offline = {}, None
    try:
        # The same CPU on both sides. "processes": the library laid out like the server, one process
        # per worker with the same threads; "threads": one process with every worker's threads.
        if pooled:
            offline = OfflinePool(model_dir, args.batch_size, args.threads, args.quantize, model_processes)
            run_offline = offline.run
        else:
            offline = OfflineReference(model_dir, args.batch_size, args.threads * model_processes, args.quantize)
            offline.run(texts["short"], 1.0, explain=False)  # warm-up, not reported

            def run_offline(workload: str, seconds: float, explain: bool) -> tuple[int, float, float]:
                return timed_cpu(offline.run, texts[workload], seconds, explain)

        url = f"http://127.0.0.1:{port}"
        asyncio.run(closed_loop(url, texts["short"], args.clients, 3.0, False, client_kind=args.client))  # warm-up
        for workload in workloads:
            explain = workload.endswith("+explain")
            slice_seconds = args.duration / args.rounds
            served_slices, offline_done, offline_seconds, offline_cpu, served_cpu = [], 0, 0.0, 0.0, 0.0
            for round_index in range(args.rounds):
                done, seconds, cpu = run_offline(workload, slice_seconds, explain)
                offline_done, offline_seconds, offline_cpu = offline_done + done, offline_seconds + seconds, offline_cpu + cpu
                cpu_before = server_cpu_seconds(process)
                served_slices.append(asyncio.run(closed_loop(url, texts[workload], args.clients, slice_seconds,
                                                             explain, start_at=round_index * 1000,
                                                             per_request=args.texts_per_request,
                                                             client_kind=args.client)))
                served_cpu += server_cpu_seconds(process) - cpu_before
            results[workload] = summarise(served_slices, offline_done, offline_seconds, served_cpu, offline_cpu)
            print(f"{workload}: {results[workload]['throughput']:.1f} served vs "
                  f"{results[workload]['offline_throughput']:.1f} offline texts/s", flush=True)
    finally:
        process.terminate()
        process.wait(60)
        if isinstance(offline, OfflinePool):
            offline.close()

    print("\nlatencies are per request")
    print("| workload | served texts/s | offline texts/s | ratio | CPU ms/text served (server) | offline | "
          "p50 ms | p95 ms | p99 ms | requests | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for workload, r in results.items():
        print(f"| {workload} | {r['throughput']:.1f} | {r['offline_throughput']:.1f} | {r['ratio']:.2f}x | "
              f"{r['server_cpu_ms_per_text']:.2f} | {r['offline_cpu_ms_per_text']:.2f} | "
              f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['requests']} | "
              f"{sum(r['errors'].values())} {r['errors'] or ''} |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"model": model_dir, "clients": args.clients, "duration": args.duration,
                                         "quantize": args.quantize, "threads": args.threads,
                                         "workers": args.workers, "model_processes": args.model_processes,
                                         "offline": args.offline,
                                         "batch_size": args.batch_size, "server_batch_size": args.server_batch_size,
                                         "client": args.client,
                                         "access_log": os.environ.get("ATTNLENS_ACCESS_LOG") or "on",
                                         "trace_requests": os.environ.get("ATTNLENS_TRACE_REQUESTS") or "on",
                                         "texts_per_request": args.texts_per_request,
                                         "results": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
