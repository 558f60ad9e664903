"""Every setting of the service, read once from the environment (docs/serving.md has the table).

A bad value is an error naming the variable, raised when the service module loads, so
`bentoml serve` stops with it instead of running with a default the operator did not choose.
"""

from __future__ import annotations

import math
import os


def env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ValueError(f"{name}={raw!r} is not an integer") from error
    if value < minimum:
        raise ValueError(f"{name}={value} is below the minimum {minimum}")
    return value


def env_float(name: str, default: float, minimum: float = 0.0, maximum: float = math.inf) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as error:
        raise ValueError(f"{name}={raw!r} is not a number") from error
    if not value >= minimum:  # also refuses nan
        raise ValueError(f"{name}={value} is below the minimum {minimum}")
    if value > maximum:
        raise ValueError(f"{name}={value} is above the maximum {maximum}")
    return value


def env_flag(name: str, default: bool) -> bool:
    """An on/off setting: 1/true/yes/on or 0/false/no/off; anything else is an error naming it
    (a typo must not silently leave a setting at its default)."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name}={raw!r} is not one of 1/true/yes/on or 0/false/no/off")


# -- the model ---------------------------------------------------------------------------------
WORKERS = env_int("ATTNLENS_WORKERS", 1)
# Prediction processes per worker (serving/model_process.py), each with THREADS torch threads.
MODEL_PROCESSES = env_int("ATTNLENS_MODEL_PROCESSES", 1)
# Explanations run in processes of their own, so a burst of expensive explanations never queues
# a prediction behind it; they run at a lower CPU priority (EXPLAIN_NICE), so when both lanes
# have work the kernel gives the cores to predictions first.
EXPLAIN_PROCESSES = env_int("ATTNLENS_EXPLAIN_PROCESSES", 1)
EXPLAIN_NICE = env_int("ATTNLENS_EXPLAIN_NICE", 10, minimum=0)
THREADS = env_int("ATTNLENS_THREADS", max(1, (os.cpu_count() or 1) // (WORKERS * MODEL_PROCESSES)))
# "int8": predictions from the dynamically quantised model (attnlens.inference.quantize); explanations keep
# the float32 model, since gradient methods need a backward the int8 kernels do not have.
QUANTIZE = os.environ.get("ATTNLENS_QUANTIZE", "") or "none"
# Passes of the warm-up (a prediction and an explanation each) that run before /readyz says 200.
WARMUP_PASSES = env_int("ATTNLENS_WARMUP_PASSES", 1)

# -- batching ----------------------------------------------------------------------------------
# Texts per model call. With more clients than that waiting, the next batch is queued while one
# runs, so the model never idles while answers go out (docs/experiments.md, "Service throughput").
BATCH_SIZE = env_int("ATTNLENS_BATCH_SIZE", 16)
# How long a batch may wait for more requests while traffic is continuous. 0: a batch starts as
# soon as the model is free; on CPU the time per text hardly depends on the batch size.
MAX_LATENCY_MS = env_int("ATTNLENS_MAX_LATENCY_MS", 0, minimum=0)
# Most estimated work in one explanation batch, in seconds of the explanation processes: a
# request is answered when its batch ends, so cheap requests are not held behind a long batch.
EXPLAIN_BATCH_SECONDS = env_float("ATTNLENS_EXPLAIN_BATCH_SECONDS", 1.0, minimum=0.01)
EXPLAIN_CHUNK = 8  # texts per explain_batch call inside the model process

# -- requests ----------------------------------------------------------------------------------
MAX_TEXTS = env_int("ATTNLENS_MAX_TEXTS", 64)
MAX_CHARS = env_int("ATTNLENS_MAX_CHARS", 20_000)
# Largest body a valid request can need: every text at the limit, every character escaped
# (\u0000 is 6 bytes), plus room for the JSON around it.
MAX_BODY_BYTES = env_int("ATTNLENS_MAX_BODY_BYTES", MAX_TEXTS * MAX_CHARS * 6 + 65_536)
# A result whose score (its calibrated winning probability) is below this says `uncertain: true`;
# a request's own `min_confidence` replaces it. 0: no result is marked.
MIN_CONFIDENCE = env_float("ATTNLENS_MIN_CONFIDENCE", 0.0, minimum=0.0, maximum=1.0)
# Requests being computed or waiting for the model, per worker; a request takes its place only
# once its whole body has arrived, so slow senders hold none.
MAX_CONCURRENCY = env_int("ATTNLENS_MAX_CONCURRENCY", 64)
# Seconds from a whole request to its answer. Admission refuses (429 + Retry-After) a request
# whose estimated wait for the model is longer, instead of accepting it only to answer 504.
TIMEOUT = env_float("ATTNLENS_TIMEOUT", 60.0, minimum=1.0)

# -- connections (serving/connections.py) ------------------------------------------------------
# A client has this long for its request line and headers (408 after), and then for its body.
HEADER_TIMEOUT = env_float("ATTNLENS_HEADER_TIMEOUT", 5.0, minimum=0.1)
BODY_TIMEOUT = env_float("ATTNLENS_BODY_TIMEOUT", 10.0, minimum=0.1)
MAX_HEADER_BYTES = env_int("ATTNLENS_MAX_HEADER_BYTES", 16_384)  # request line + headers; 431 above
MAX_CONNECTIONS = env_int("ATTNLENS_MAX_CONNECTIONS", 256)  # open connections per worker; 503 above

# -- access and telemetry ----------------------------------------------------------------------
API_KEY = os.environ.get("ATTNLENS_API_KEY") or None
# /metrics needs the API key too (when one is set); off by default, as Prometheus scrapers expect.
PROTECT_METRICS = env_flag("ATTNLENS_PROTECT_METRICS", False)
# One log line per request (BentoML's access log). "0" turns it off: at hundreds of short requests
# per second its formatting and writing cost a measurable share of the CPU.
ACCESS_LOG = env_flag("ATTNLENS_ACCESS_LOG", True)
# An OpenTelemetry span per /predict and /explain request (the X-BentoML-Request-ID header and the
# ids in log lines); "0" leaves these two routes out of tracing.
TRACE_REQUESTS = env_flag("ATTNLENS_TRACE_REQUESTS", True)
