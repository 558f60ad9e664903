"""The attnlens BentoML service: sentiment predictions and their explanations over HTTP.

    bentoml serve serving.service:AttnlensService --host 127.0.0.1 --port 3000

Configuration is by environment variable (docs/serving.md has the full table): ATTNLENS_MODEL
(folder, Hub repo id[@revision] or model-store tag; default the store's `attnlens-sentiment`),
ATTNLENS_API_KEY, ATTNLENS_WORKERS, ATTNLENS_MODEL_PROCESSES, ATTNLENS_THREADS,
ATTNLENS_MAX_CONCURRENCY, ATTNLENS_TIMEOUT, ATTNLENS_MAX_TEXTS, ATTNLENS_MAX_CHARS,
ATTNLENS_BATCH_SIZE, ATTNLENS_MAX_LATENCY_MS, ATTNLENS_QUANTIZE, ATTNLENS_WARMUP_PASSES,
ATTNLENS_ACCESS_LOG, ATTNLENS_TRACE_REQUESTS.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import bentoml
from pydantic import Field, TypeAdapter
from starlette.responses import Response

from serving.guard import GuardMiddleware
from serving.schemas import (
    DEFAULT_METHOD,
    MAX_CHARS,
    MAX_TEXTS,
    SAMPLE_TEXT,
    SAMPLE_TEXTS,
    ExplainResult,
    ExplanationResult,
    Importance,
    Level,
    LongText,
    Method,
    PredictionResult,
    Text,
    env_flag,
    env_int,
)

# Inside a Bento the repository's src/ travels as plain files (attnlens is not pip-installed
# there); appended, so an installed attnlens (the development venv) still wins.
_SOURCE_TREE = Path(__file__).resolve().parents[1] / "src"
if (_SOURCE_TREE / "attnlens").is_dir() and str(_SOURCE_TREE) not in sys.path:
    sys.path.append(str(_SOURCE_TREE))

logger = logging.getLogger("bentoml.attnlens")

WORKERS = env_int("ATTNLENS_WORKERS", 1)
# Model processes per worker (serving/model_process.py), each with THREADS torch threads.
MODEL_PROCESSES = env_int("ATTNLENS_MODEL_PROCESSES", 1)
THREADS = env_int("ATTNLENS_THREADS", max(1, (os.cpu_count() or 1) // (WORKERS * MODEL_PROCESSES)))
MAX_CONCURRENCY = env_int("ATTNLENS_MAX_CONCURRENCY", 64)
TIMEOUT = float(os.environ.get("ATTNLENS_TIMEOUT", "") or 60)
# Texts per model call. 16, not 32: with more clients than that waiting, the next batch is queued
# while one runs, so the model never idles while answers go out and new requests come in; 32
# clients measured 0.91-0.92x of offline throughput at 16 against 0.86-0.90x at 32
# (docs/benchmarks.md).
BATCH_SIZE = env_int("ATTNLENS_BATCH_SIZE", 16)
# How long a batch may wait for more requests while traffic is continuous. 0: a batch starts as
# soon as the model is free, with everything queued; on CPU the model's time per text hardly
# depends on the batch size, so waiting cost throughput (0.77x with 10 ms against 0.89x).
MAX_LATENCY_MS = env_int("ATTNLENS_MAX_LATENCY_MS", 0, minimum=0)
# "int8": predictions from the dynamically quantised model (attnlens.quantize); explanations keep
# the float32 model, since gradient methods need a backward the int8 kernels do not have.
QUANTIZE = os.environ.get("ATTNLENS_QUANTIZE", "") or "none"
# One log line per request (BentoML's access log). "0" turns it off: at hundreds of short requests
# per second its formatting and writing cost a measurable share of the CPU (docs/benchmarks.md).
ACCESS_LOG = env_flag("ATTNLENS_ACCESS_LOG", True)
# An OpenTelemetry span per /predict and /explain request. BentoML records them even when nothing
# exports them (tracing.sample_rate defaults to 0), for the X-BentoML-Request-ID header and the
# ids in log lines; "0" leaves these two routes out of tracing. Together with ATTNLENS_ACCESS_LOG=0
# that raised served/offline throughput for one short sentence per request from 0.91x to 0.94x
# here (docs/benchmarks.md).
TRACE_REQUESTS = env_flag("ATTNLENS_TRACE_REQUESTS", True)
# Passes of the warm-up (a prediction and an explanation each) that run before /readyz says 200.
WARMUP_PASSES = env_int("ATTNLENS_WARMUP_PASSES", 1)
# Largest body a valid request can need: every text at the limit, every character escaped
# (\u0000 is 6 bytes), plus room for the JSON around it.
MAX_BODY_BYTES = env_int("ATTNLENS_MAX_BODY_BYTES", MAX_TEXTS * MAX_CHARS * 6 + 65_536)
PREDICTION_LIST = TypeAdapter(list[PredictionResult])
EXPLAIN_CHUNK = 8  # texts explained per model call; the cancellation check runs between calls


# Texts per model call: shows whether adaptive batching finds company under the current load.
BATCH_TEXTS = bentoml.metrics.Histogram(
    name="attnlens_batch_texts", documentation="texts per model call of the adaptive batchers",
    labelnames=["kind"], buckets=(1, 2, 4, 8, 16, 32, 64),
)


def _importances(explanation, level: str) -> list[Importance]:
    if level == "word":
        return [Importance(text=w.word, start=w.start, end=w.end, score=w.score) for w in explanation.words]
    if level == "sentence":  # grouped only now, on request (attnlens.explain.sentences)
        return [Importance(text=s.text, start=s.start, end=s.end, score=s.score) for s in explanation.sentences]
    return [Importance(text=t.token, start=t.start, end=t.end, score=t.score)
            for t in explanation.tokens if not t.special]


@bentoml.service(
    name="attnlens",
    workers=WORKERS,
    traffic={"timeout": TIMEOUT, "max_concurrency": MAX_CONCURRENCY, "concurrency": MAX_CONCURRENCY},
    resources={"cpu": str(THREADS * WORKERS * MODEL_PROCESSES)},
    http={"port": 3000},
    logging={"access": {"enabled": ACCESS_LOG}},
    **({} if TRACE_REQUESTS else {"tracing": {"excluded_urls": ["/predict", "/explain"]}}),
)
class AttnlensService:
    """Sentiment of English texts (BERT fine-tuned on SST-2) with word importances explaining it."""

    def __init__(self) -> None:
        from attnlens.model_source import resolve_model
        from serving.batching import MicroBatcher
        from serving.model_process import ModelPool

        self.source = resolve_model()
        logger.info("loading model from %s", self.source.describe())
        # BERT or a baseline (birnn_attention / han), by config.json, in processes of their own
        # (serving/model_process.py says why); a model that cannot load stops the server here.
        self.model = ModelPool(MODEL_PROCESSES, self.source.name_or_path, self.source.revision,
                               threads=THREADS, batch_size=BATCH_SIZE, quantize=QUANTIZE,
                               explain_chunk=EXPLAIN_CHUNK)
        atexit.register(self.model.close)  # also when the worker stops without the shutdown hook
        model_slots = asyncio.Semaphore(MODEL_PROCESSES)  # one batch per model process at a time
        batching = {"max_batch_size": BATCH_SIZE, "max_latency_ms": MAX_LATENCY_MS,
                    "model_slots": model_slots, "parallel": MODEL_PROCESSES}
        self.batcher = MicroBatcher(self.model.predict, **batching,
                                    on_batch=BATCH_TEXTS.labels(kind="predict").observe)
        # Explanations are batched across requests too (grouped by method); both batchers take
        # turns on the model processes through the shared slots.
        self.explainer = MicroBatcher(self.model.explain, **batching,
                                      on_batch=BATCH_TEXTS.labels(kind="explain").observe)
        self._ready = False
        self._warm_up_task: asyncio.Task | None = None

    @bentoml.on_startup
    async def start_warm_up(self) -> None:
        """Warm up in the background, so /livez and /readyz answer (200 and 503) meanwhile.

        The model is loaded in `__init__`, so a model that cannot load stops the server at once
        with its error; only the warm-up, which is slow on a cold CPU (oneDNN weight packing,
        thread pools, the first autograd graph), runs after the server starts listening.
        """
        self._warm_up_task = asyncio.get_running_loop().create_task(self._warm_up())

    async def _warm_up(self) -> None:
        """Predictions and explanations through the batchers, like real requests (which queue
        behind it), so the first user does not pay for lazy set-up; then /readyz turns 200."""
        try:
            for _ in range(WARMUP_PASSES):
                await self.batcher.submit(SAMPLE_TEXTS, "truncate")
                await self.explainer.submit([SAMPLE_TEXT], DEFAULT_METHOD)
        except Exception:  # stays not ready: an orchestrator restarts it, the log says why
            logger.exception("warm-up of model %s failed; /readyz stays 503", self.source.describe())
            return
        self._ready = True
        logger.info("model %s loaded and warmed up (%d passes)", self.source.describe(), WARMUP_PASSES)

    def __is_ready__(self) -> bool:
        return self._ready

    @bentoml.on_shutdown
    def stop_model(self) -> None:
        """After the requests in flight are answered: let the model process go."""
        self.model.close()

    @bentoml.api(route="/predict")
    async def predict(
        self,
        texts: Annotated[list[Text], Field(min_length=1, max_length=MAX_TEXTS,
                                           description=f"1 to {MAX_TEXTS} texts")] = SAMPLE_TEXTS,
        explain: Annotated[bool, Field(strict=True, description="add word importances (grad_rollout)")] = False,
        long_text: LongText = "truncate",
    ) -> list[PredictionResult]:
        """One result per text. `explain: true` adds grad_rollout word importances;
        `long_text: "chunk"` scores texts past the model's window as overlapping windows."""
        if explain:
            predictions, explanations = await asyncio.gather(
                self.batcher.submit(texts, long_text), self.explainer.submit(texts, DEFAULT_METHOD))
        else:
            predictions, explanations = await self.batcher.submit(texts, long_text), [None] * len(texts)
        results = [
            PredictionResult(
                label=p.label, score=p.score, probabilities=p.probabilities, num_tokens=p.num_tokens,
                truncated=p.truncated,
                explanation=None if e is None else ExplanationResult(
                    method=e.method, level="word", target=e.target, importances=_importances(e, "word")),
            )
            for p, e in zip(predictions, explanations, strict=True)
        ]
        # Serialised here: for list outputs BentoML rebuilds the output's JSON schema on every
        # response (to pick a media type), which took ~40% of the event loop in a profile under
        # load. The annotation above still documents the body in the OpenAPI document.
        return Response(PREDICTION_LIST.dump_json(results), media_type="application/json")  # type: ignore[return-value]

    @bentoml.api(route="/explain")
    async def explain(
        self,
        text: Text = SAMPLE_TEXT,
        method: Method = DEFAULT_METHOD,
        level: Level = "word",
    ) -> ExplainResult:
        """The prediction for `text` and the importance of each word (or token, or sentence) for it."""
        (prediction,), (explanation,) = await asyncio.gather(
            self.batcher.submit([text], "truncate"), self.explainer.submit([text], method))
        return ExplainResult(
            label=prediction.label, score=prediction.score, probabilities=prediction.probabilities,
            num_tokens=prediction.num_tokens, truncated=prediction.truncated,
            explanation=ExplanationResult(method=method, level=level, target=explanation.target,
                                          importances=_importances(explanation, level)),
        )


AttnlensService.add_asgi_middleware(
    GuardMiddleware,
    service=AttnlensService,
    api_key=os.environ.get("ATTNLENS_API_KEY") or None,
    max_body_bytes=MAX_BODY_BYTES,
)
