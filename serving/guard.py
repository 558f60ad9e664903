"""The ASGI layer in front of the API: API key, request checks, fair use of the model's queue,
request telemetry, our page, an honest OpenAPI document.

BentoML answers invalid JSON or UTF-8 and wrong types with pydantic's terse messages (without the
offending value) or a 500, so every API request is checked here first, with the same pydantic
models BentoML then uses, and refused with a 4xx whose one-line message names the field, the
value and the limit. The OpenAPI document is amended to declare exactly the errors this layer
and BentoML's traffic control (429, 504) send, so generated clients and `schemathesis` agree
with the server.

What one client can do to the others is bounded here too: its body must arrive within
ATTNLENS_BODY_TIMEOUT (408 after), it holds one of the ATTNLENS_MAX_CONCURRENCY places only once
its whole request is read (so a slow sender holds none), and when it goes away its request is
cancelled, so its work stops. The request metrics are this layer's, labelled by known route
("other" for any unknown path), so unauthenticated traffic cannot grow /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

import bentoml
from pydantic import ValidationError

from serving.schemas import ErrorBody

STATIC_DIR = Path(__file__).parent / "static"
PROTECTED_STATUS = {401: "missing or wrong API key", 413: "request body too large",
                    415: "body is not JSON"}
# Media types whose body is parsed as JSON (curl -d sends form-urlencoded).
JSON_MEDIA_TYPES = ("application/json", "", "text/plain", "application/x-www-form-urlencoded")
# Shortened values keep error bodies small even when the offending text is 20,000 characters.
_VALUE_PREVIEW = 60
# A JSON escape of a UTF-16 surrogate; a lone one is valid JSON that pydantic refuses to decode.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
# Paths that get their own label in the request metrics; everything else is "other".
_INFRASTRUCTURE_PATHS = ("/", "/docs", "/docs.json", "/metrics", "/livez", "/readyz", "/healthz")

REQUESTS = bentoml.metrics.Counter(
    name="attnlens_http_requests", documentation="HTTP requests answered, by route and status",
    labelnames=["endpoint", "status"])
REQUEST_SECONDS = bentoml.metrics.Histogram(
    name="attnlens_http_request_duration_seconds", documentation="time from request to answer, by route",
    labelnames=["endpoint"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
IN_PROGRESS = bentoml.metrics.Gauge(
    name="attnlens_http_requests_in_progress", documentation="requests being answered now, by route",
    labelnames=["endpoint"], multiprocess_mode="livesum")


def _json_response(status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None):
    payload = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
    return status, [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                    *(headers or [])], payload


def _preview(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= _VALUE_PREVIEW else value[:_VALUE_PREVIEW] + "…"
        return f"{shown!r} ({len(value)} characters)" if len(value) > _VALUE_PREVIEW else repr(shown)
    if isinstance(value, list):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return f"an object with keys {sorted(value)[:8]}"
    return json.dumps(value) if value is None or isinstance(value, bool | int | float) else repr(value)


def _field_name(loc: tuple[Any, ...]) -> str:
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif not name:
            name = str(part)
        elif not str(part).startswith(("function-after", "json-or-python")):
            name += f".{part}"
    return name or "body"


def _limit(error: dict[str, Any]) -> str | int | None:
    context = error.get("ctx") or {}
    for key in ("max_length", "min_length", "expected", "le", "ge", "lt", "gt"):
        if key in context:
            return context[key]
    return None


def describe_validation_error(error: ValidationError) -> dict[str, Any]:
    """One-line messages naming field, value and limit for every problem pydantic found."""
    lines = []
    first: dict[str, Any] = {}
    for item in error.errors(include_url=False):
        field = _field_name(tuple(item["loc"]))
        if item["type"] == "json_invalid":
            field = "body"
            line = f"body is not valid JSON: {item['ctx']['error'] if item.get('ctx') else item['msg']}"
            value = None
        elif item["type"] == "missing":
            line = f"{field} is required"
            value = None
        else:
            value = _preview(item.get("input"))
            limit = _limit(item)
            line = f"{field}: {item['msg'][:1].lower()}{item['msg'][1:]} (got {value}"
            line += f"; limit {limit})" if limit is not None and str(limit) not in item["msg"] else ")"
        lines.append(line)
        if not first:
            first = {"field": field, "value": value, "limit": _limit(item)}
    limit = first.get("limit")
    return {"error": lines[0], **first, "limit": limit if isinstance(limit, int | str | None) else str(limit),
            "errors": lines}


class GuardMiddleware:
    """Wraps the BentoML app (added with `Service.add_asgi_middleware`)."""

    def __init__(self, app: Any, *, service: Any, api_key: str | None, max_body_bytes: int,
                 body_timeout: float, timeout: float, max_concurrency: int, protect_metrics: bool) -> None:
        self.app = app
        self.service = service
        self.api_key = api_key or None
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.protect_metrics = protect_metrics and self.api_key is not None
        # API requests read whole and not yet answered, per route: a burst of explanations does
        # not take the places of predictions.
        self.in_flight = {api.route: 0 for api in service.apis.values()}
        self.routes = {api.route for api in service.apis.values()}
        self.index_html = (STATIC_DIR / "index.html").read_bytes()
        # BentoML's Swagger UI lived at "/", which is our page now; it moves to /docs.
        import _bentoml_impl.server

        self.swagger_html = (Path(_bentoml_impl.server.__file__).parent / "main-openapi.html").read_bytes()

    def _api_input_spec(self, path: str) -> Any | None:
        for api in self.service.apis.values():
            if api.route == path:
                return api.input_spec
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        endpoint = path if path in self.routes or path in _INFRASTRUCTURE_PATHS else "other"
        status = 0

        async def counted_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.monotonic()
        in_progress = IN_PROGRESS.labels(endpoint=endpoint)
        in_progress.inc()
        try:
            await self._route(scope, receive, counted_send)
        finally:
            in_progress.dec()
            # 0: the client left (or the request was cancelled) before any answer
            REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()
            REQUEST_SECONDS.labels(endpoint=endpoint).observe(time.monotonic() - started)

    async def _route(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/metrics":
            if method not in ("GET", "HEAD"):
                return await self._send(send, *_json_response(
                    405, {"error": f"method {method} is not allowed on /metrics; use GET"}, [(b"allow", b"GET")]))
            refusal = self._check_key(scope) if self.protect_metrics else None
            if refusal is not None:
                return await self._send(send, *refusal)
            return await self._metrics(send)
        if path in ("/", "/docs") and method in ("GET", "HEAD"):
            page = self.index_html if path == "/" else self.swagger_html
            return await self._send(send, 200, [(b"content-type", b"text/html; charset=utf-8"),
                                                (b"content-length", str(len(page)).encode())],
                                    b"" if method == "HEAD" else page)
        if path == "/docs.json" and method == "GET":
            return await self._amended_openapi(scope, receive, send)
        input_spec = self._api_input_spec(path)
        if input_spec is None or method != "POST":
            return await self.app(scope, receive, send)

        refusal = self._check_headers(scope)
        if refusal is None:
            body, refusal = await self._read_body(receive)
        if refusal == "disconnected":
            return None
        if refusal is not None:
            return await self._send(send, *refusal)
        if _SURROGATE_ESCAPE.search(body):
            body = _replace_lone_surrogates(body)
        refusal = self._check_fields(body, input_spec)
        if refusal is not None:
            return await self._send(send, *refusal)
        if self.in_flight[path] >= self.max_concurrency:
            return await self._send(send, *_json_response(
                429, {"error": f"more than {self.max_concurrency} {path} requests in flight (ATTNLENS_MAX_CONCURRENCY); "
                               "retry in 1 s", "limit": self.max_concurrency}, [(b"retry-after", b"1")]))
        # Bodies sent as text/plain or form-urlencoded (curl -d) are JSON too; BentoML would
        # otherwise parse them as multipart forms.
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        self.in_flight[path] += 1
        try:
            await self._run_until_disconnect(scope, body, receive, send)
        finally:
            self.in_flight[path] -= 1

    async def _run_until_disconnect(self, scope: dict[str, Any], body: bytes, receive: Any, send: Any) -> None:
        """The API with the body already read, answered within `timeout` seconds (504 after);
        cancelled when the client goes away or the deadline passes, so the model drops its work
        (serving.batching skips and stops abandoned requests)."""
        gone = asyncio.Event()
        replayed = False
        answering = False

        async def noting_send(message: dict[str, Any]) -> None:
            nonlocal answering
            answering = True
            await send(message)

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        app = asyncio.ensure_future(self.app(scope, replay, noting_send))
        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait({app, watcher}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            late = not app.done() and not gone.is_set()
            if not app.done():
                app.cancel()  # the client left, the deadline passed, or this request was cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await app
        if late and not answering:
            await self._send(send, *_json_response(
                504, {"error": f"not answered within {self.timeout:g} s (ATTNLENS_TIMEOUT)",
                      "limit": f"{self.timeout:g} s"}))

    def _check_key(self, scope: dict[str, Any]):
        if self.api_key is None:
            return None
        given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            what = "no Authorization header" if not given else "a wrong key"
            return _json_response(401, {"error": f"authorization: {what}; send 'Authorization: Bearer <ATTNLENS_API_KEY>'",
                                        "field": "Authorization"},
                                  [(b"www-authenticate", b'Bearer realm="attnlens"')])
        return None

    def _check_headers(self, scope: dict[str, Any]):
        refusal = self._check_key(scope)
        if refusal is not None:
            return refusal
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"application/json").decode("latin-1")
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in JSON_MEDIA_TYPES:
            return _json_response(415, {"error": f"content-type: {media_type!r} is not accepted; send application/json",
                                        "field": "Content-Type", "value": media_type, "limit": "application/json"})
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return self._too_large(int(declared))
        return None

    @staticmethod
    def _check_fields(body: bytes, input_spec: Any):
        """Validate like BentoML will, but refuse unknown fields: a typo must not silently fall back
        to a default (`{"texts": ...}` sent to /explain would explain the sample text)."""
        try:
            validated = input_spec.model_validate_json(body or b"{}")
        except ValidationError as error:
            return _json_response(400, describe_validation_error(error))
        given = json.loads(body or b"{}")
        unknown = sorted(set(given) - set(type(validated).model_fields))
        if unknown:
            known = ", ".join(type(validated).model_fields)
            return _json_response(400, {"error": f"{unknown[0]}: unknown field; the fields are {known}",
                                        "field": unknown[0], "limit": known,
                                        "errors": [f"{name}: unknown field" for name in unknown]})
        return None

    def _too_large(self, size: int):
        return _json_response(413, {"error": f"body: {size} bytes is over the limit of {self.max_body_bytes} bytes "
                                             "(ATTNLENS_MAX_BODY_BYTES)",
                                    "field": "body", "value": f"{size} bytes", "limit": self.max_body_bytes})

    async def _read_body(self, receive: Any):
        """The whole body within `body_timeout` seconds, or a refusal (408, 413, 400)."""
        try:
            async with asyncio.timeout(self.body_timeout):
                return await self._read_body_now(receive)
        except TimeoutError:
            return b"", _json_response(408, {"error": f"body: not received within {self.body_timeout:g} s "
                                                     "(ATTNLENS_BODY_TIMEOUT)", "field": "body",
                                             "limit": f"{self.body_timeout:g} s"},
                                       [(b"connection", b"close")])

    async def _read_body_now(self, receive: Any):
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", "disconnected"
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", self._too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            return b"", _json_response(400, {"error": f"body: byte {error.start} ({body[error.start:error.start + 1]!r}) "
                                                      "is not valid UTF-8; send JSON encoded as UTF-8",
                                             "field": "body", "value": f"byte {error.start}", "limit": "UTF-8"})
        return body, None

    @staticmethod
    async def _metrics(send: Any) -> None:
        """BentoML's metrics endpoint, served here since this layer keeps the request metrics."""
        from bentoml._internal.container import BentoMLContainer

        client = BentoMLContainer.metrics_client.get()
        body = client.generate_latest()
        await GuardMiddleware._send(send, 200, [(b"content-type", client.CONTENT_TYPE_LATEST.encode()),
                                                (b"content-length", str(len(body)).encode())], body)

    async def _amended_openapi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        captured: dict[str, Any] = {"body": b""}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        await self.app(scope, receive, capture)
        if captured.get("status") != 200:
            return await self._send(send, *_json_response(500, {"error": "could not build the OpenAPI document"}))
        document = amend_openapi(json.loads(captured["body"]), self.service, api_key=self.api_key is not None)
        await self._send(send, *_json_response(200, document))

    @staticmethod
    async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replace_lone_surrogates(body: bytes) -> bytes:
    """The body with every unpaired surrogate escape (`"\\ud800"`) decoded as U+FFFD, as the
    control-character rule says (serving.schemas); paired ones (an emoji) stay as they are."""
    try:
        document = json.loads(body)
    except ValueError:
        return body  # not JSON: the field check reports it

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        if isinstance(value, list):
            return [clean(item) for item in value]
        if isinstance(value, dict):
            return {clean(key): clean(item) for key, item in value.items()}
        return value

    return json.dumps(clean(document), ensure_ascii=False).encode()


def amend_openapi(document: dict[str, Any], service: Any, *, api_key: bool) -> dict[str, Any]:
    """Declare the errors the API really sends, our error schema, our page and the auth scheme."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    error_ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    statuses = {400: "invalid input: the message names the field, the value and the limit",
                413: PROTECTED_STATUS[413], 415: PROTECTED_STATUS[415],
                408: "the body did not arrive within ATTNLENS_BODY_TIMEOUT seconds",
                429: "more requests in flight than ATTNLENS_MAX_CONCURRENCY, or more accepted work ahead than "
                     "ATTNLENS_TIMEOUT allows; Retry-After says when to try again",
                504: "not answered within ATTNLENS_TIMEOUT seconds"}
    if api_key:
        statuses[401] = PROTECTED_STATUS[401]
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for api in service.apis.values():
        operation = document["paths"][api.route]["post"]
        # Unknown fields are refused (see GuardMiddleware._check_fields), so the document says so.
        request_schema = operation["requestBody"]["content"]["application/json"]["schema"]
        if "$ref" in request_schema:
            request_schema = schemas[request_schema["$ref"].rsplit("/", 1)[1]]
        request_schema["additionalProperties"] = False
        if f"{api.name}__Input" in schemas:
            schemas[f"{api.name}__Input"]["additionalProperties"] = False
        responses = operation["responses"]
        for status in ("404", "500"):
            responses.pop(status, None)
        for status, description in statuses.items():
            responses[str(status)] = {"description": description, **error_ref}
        if api_key:
            operation["security"] = [{"bearer": []}]
    document["paths"]["/"] = {"get": {
        "tags": ["Infrastructure"], "description": "A small page: type a text, see the label and the highlighted words.",
        "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}},
    }}
    return document
