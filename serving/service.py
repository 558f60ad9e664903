"""The attnlens BentoML service: sentiment predictions and their explanations over HTTP.

    bentoml serve serving.service:AttnlensService --host 127.0.0.1 --port 3000

Every setting is an environment variable read by serving/settings.py (docs/serving.md has the
table). Predictions and explanations have model processes of their own (serving/model_process.py)
and queues of their own with admission by estimated cost (serving/admission.py), so one client's
expensive explanations neither delay another's predictions nor get accepted only to time out.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
from typing import Annotated

import bentoml
from pydantic import Field, TypeAdapter
from starlette.responses import Response

from attnlens.calibration import is_uncertain
from attnlens.errors import InputError
from attnlens.explain.render import spans
from serving import connections, settings
from serving.admission import Lane, Overloaded, text_cost
from serving.explain_mode import explanation_mode
from serving.guard import GuardMiddleware
from serving.schemas import (
    DEFAULT_METHOD,
    SAMPLE_TEXT,
    SAMPLE_TEXTS,
    ExplainResult,
    ExplanationResult,
    Importance,
    Level,
    LongText,
    Method,
    MinConfidence,
    PredictionResult,
    Text,
)

logger = logging.getLogger("bentoml.attnlens")

PREDICTION_LIST = TypeAdapter(list[PredictionResult])
# The request headers' deadline, size cap and the connection cap live below the ASGI layer.
connections.install()


# Texts per model call: shows whether adaptive batching finds company under the current load.
BATCH_TEXTS = bentoml.metrics.Histogram(
    name="attnlens_batch_texts", documentation="texts per model call of the adaptive batchers",
    labelnames=["kind"], buckets=(1, 2, 4, 8, 16, 32, 64),
)


def _importances(explanation, level: str) -> list[Importance]:
    # Sentences are grouped only now, on request (attnlens.explain.sentences).
    return [Importance(text=text, start=start, end=end, score=score)
            for text, start, end, score in spans(explanation, level)]


def _threshold(min_confidence: float | None) -> float:
    """The request's threshold, else the server's. Applied here to each result's score, not in the
    model processes: one batch there holds the texts of requests with different thresholds."""
    return settings.MIN_CONFIDENCE if min_confidence is None else min_confidence


def _refusal(error: Exception) -> Response:
    """429 + Retry-After for an overloaded lane, 400 for a text the library refused."""
    if isinstance(error, Overloaded):
        return Response(json.dumps({"error": str(error), "limit": f"{settings.TIMEOUT:g} s"}), status_code=429,
                        media_type="application/json", headers={"Retry-After": str(error.retry_after)})
    return Response(json.dumps({"error": str(error)}), status_code=400, media_type="application/json")


@bentoml.service(
    name="attnlens",
    workers=settings.WORKERS,
    # The guard answers 504 at ATTNLENS_TIMEOUT after a request is read whole; BentoML's own
    # timeout, which also counts the time the body took to arrive, is the last resort behind it.
    # Its request count limit is replaced by the guard's, which counts only requests read whole.
    traffic={"timeout": settings.TIMEOUT + settings.BODY_TIMEOUT + 5, "concurrency": settings.MAX_CONCURRENCY},
    resources={"cpu": str(settings.THREADS * settings.WORKERS * (settings.MODEL_PROCESSES + settings.EXPLAIN_PROCESSES))},
    http={"port": 3000},
    logging={"access": {"enabled": settings.ACCESS_LOG}},
    # Request metrics come from the guard, labelled by known route only.
    metrics={"enabled": False},
    **({} if settings.TRACE_REQUESTS else {"tracing": {"excluded_urls": ["/predict", "/explain"]}}),
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
        options = {"threads": settings.THREADS, "batch_size": settings.BATCH_SIZE,
                   "explain_chunk": settings.EXPLAIN_CHUNK}
        self.predict_pool = ModelPool(settings.MODEL_PROCESSES, self.source.name_or_path, self.source.revision,
                                      quantize=settings.QUANTIZE, **options)
        try:
            self.explain_pool = ModelPool(settings.EXPLAIN_PROCESSES, self.source.name_or_path,
                                          self.source.revision, nice=settings.EXPLAIN_NICE, **options)
        except BaseException:
            self.predict_pool.close()
            raise
        atexit.register(self._close_pools)  # also when the worker stops without the shutdown hook
        self.max_length = max_length = int(self.predict_pool.info["max_length"])

        def lane(name: str, processes: int) -> Lane:
            return Lane(name, deadline_s=settings.TIMEOUT, parallel=processes)

        def cost(text: str, mode: str) -> float:
            return text_cost(text, mode, max_length)

        batching = {"max_batch_size": settings.BATCH_SIZE, "max_latency_ms": settings.MAX_LATENCY_MS, "cost": cost}
        self.batcher = MicroBatcher(self.predict_pool.predict, **batching, parallel=settings.MODEL_PROCESSES,
                                    lane=lane("predictions", settings.MODEL_PROCESSES),
                                    on_batch=BATCH_TEXTS.labels(kind="predict").observe)
        # Explanations are batched across requests too (grouped by method), in batches of about
        # EXPLAIN_BATCH_SECONDS of work, so a cheap request is not held behind a long batch.
        self.explainer = MicroBatcher(self.explain_pool.explain, **batching, parallel=settings.EXPLAIN_PROCESSES,
                                      lane=lane("explanations", settings.EXPLAIN_PROCESSES),
                                      max_batch_seconds=settings.EXPLAIN_BATCH_SECONDS,
                                      on_batch=BATCH_TEXTS.labels(kind="explain").observe)
        self._ready = False
        self._warm_up_task: asyncio.Task | None = None

    def _close_pools(self) -> None:
        self.predict_pool.close()
        self.explain_pool.close()

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
            for _ in range(settings.WARMUP_PASSES):
                await self.batcher.submit(SAMPLE_TEXTS, "truncate")
                await self.explainer.submit([SAMPLE_TEXT], DEFAULT_METHOD)
            # Full-size work once, so admission starts from the speed of real batches rather
            # than from short calls, whose fixed costs make the model look slow.
            long_text = " ".join([SAMPLE_TEXT] * (self.max_length // 8))
            await self.batcher.submit([long_text] * settings.BATCH_SIZE, "truncate")
            await self.explainer.submit([long_text], DEFAULT_METHOD)
        except Exception:  # stays not ready: an orchestrator restarts it, the log says why
            logger.exception("warm-up of model %s failed; /readyz stays 503", self.source.describe())
            return
        self._ready = True
        logger.info("model %s loaded and warmed up (%d passes)", self.source.describe(), settings.WARMUP_PASSES)

    def __is_ready__(self) -> bool:
        """Warmed up, and both lanes have a model process up (False while one restarts)."""
        return self._ready and self.predict_pool.ready and self.explain_pool.ready

    @bentoml.on_shutdown
    def stop_model(self) -> None:
        """After the requests in flight are answered: let the model processes go."""
        self._close_pools()

    @bentoml.api(route="/predict")
    async def predict(
        self,
        texts: Annotated[list[Text], Field(min_length=1, max_length=settings.MAX_TEXTS,
                                           description=f"1 to {settings.MAX_TEXTS} texts")] = SAMPLE_TEXTS,
        explain: Annotated[bool, Field(strict=True, description="add word importances (grad_rollout)")] = False,
        long_text: LongText = "truncate",
        min_confidence: MinConfidence = None,
    ) -> list[PredictionResult]:
        """One result per text. `explain: true` adds grad_rollout word importances;
        `long_text: "chunk"` scores texts past the model's window as overlapping windows (and
        explains every window, combined as the prediction weighs them);
        `min_confidence` marks results whose score is below it `uncertain: true`."""
        try:
            if explain:
                predictions, explanations = await asyncio.gather(
                    self.batcher.submit(texts, long_text),
                    self.explainer.submit(texts, explanation_mode(DEFAULT_METHOD, long_text)))
            else:
                predictions, explanations = await self.batcher.submit(texts, long_text), [None] * len(texts)
        except (Overloaded, InputError) as error:
            return _refusal(error)  # type: ignore[return-value]
        threshold = _threshold(min_confidence)
        results = [
            PredictionResult(
                label=p.label, score=p.score, probabilities=p.probabilities, num_tokens=p.num_tokens,
                truncated=p.truncated, num_windows=p.num_windows, uncertain=is_uncertain(p.score, threshold),
                explanation=None if e is None else ExplanationResult(
                    method=e.method, level="word", target=e.target, importances=_importances(e, "word")),
            )
            for p, e in zip(predictions, explanations, strict=True)
        ]
        # Serialised here: for list outputs BentoML rebuilds the output's JSON schema on every
        # response (to pick a media type), a large share of the event loop under load. The
        # annotation above still documents the body in the OpenAPI document.
        return Response(PREDICTION_LIST.dump_json(results), media_type="application/json")  # type: ignore[return-value]

    @bentoml.api(route="/explain")
    async def explain(
        self,
        text: Text = SAMPLE_TEXT,
        method: Method = DEFAULT_METHOD,
        level: Level = "word",
        long_text: LongText = "truncate",
        min_confidence: MinConfidence = None,
    ) -> ExplainResult:
        """The prediction for `text` and the importance of each word (or token, or sentence) for it;
        `long_text: "chunk"` reads a text past the model's window whole (every window explained,
        combined as the chunked prediction weighs them; offsets into the whole text);
        `min_confidence` marks a prediction whose score is below it `uncertain: true`.

        The prediction is the explained forward pass's own (the float32 model's, also with
        ATTNLENS_QUANTIZE=int8), so label and explanation always agree, and the request uses the
        explanation processes only.
        """
        try:
            (explanation,) = await self.explainer.submit([text], explanation_mode(method, long_text))
        except (Overloaded, InputError) as error:
            return _refusal(error)  # type: ignore[return-value]
        score = explanation.probabilities[explanation.label]
        return ExplainResult(
            label=explanation.label, score=score,
            probabilities=explanation.probabilities, num_tokens=len(explanation.tokens),
            truncated=explanation.truncated, num_windows=explanation.num_windows,
            uncertain=is_uncertain(score, _threshold(min_confidence)),
            explanation=ExplanationResult(method=method, level=level, target=explanation.target,
                                          importances=_importances(explanation, level),
                                          sentences=_importances(explanation, "sentence")),
        )


AttnlensService.add_asgi_middleware(
    GuardMiddleware,
    service=AttnlensService,
    api_key=settings.API_KEY,
    max_body_bytes=settings.MAX_BODY_BYTES,
    body_timeout=settings.BODY_TIMEOUT,
    timeout=settings.TIMEOUT,
    max_concurrency=settings.MAX_CONCURRENCY,
    protect_metrics=settings.PROTECT_METRICS,
)
