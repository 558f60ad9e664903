"""Connection limits below the ASGI layer: header deadline, header size, open connections.

A client that is slow to send its request line and headers never reaches the application
(uvicorn parses headers before calling it), so no middleware can time it out, and uvicorn has
no such timeout of its own; neither does it cap header size with httptools, nor the number of
open connections in the BentoML worker (which builds uvicorn's Config itself). This protocol is
uvicorn's httptools protocol with those three limits added; `install()` makes it the one
uvicorn's "auto" choice loads, since the worker asks for "auto". The body's deadline, which the
application can see, is kept in serving/guard.py.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving import settings


class _HeaderTooLarge(Exception):
    """Raised inside the parser's callbacks; the parser reports it as a parse error."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline and a size cap on each request's head and a
    cap on the connections of the worker."""

    header_timeout = settings.HEADER_TIMEOUT
    max_header_bytes = settings.MAX_HEADER_BYTES
    max_connections = settings.MAX_CONNECTIONS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(503, f"more than {self.max_connections} open connections (ATTNLENS_MAX_CONNECTIONS)")
            return
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: what else arrives before the close is dropped
        if self._head_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_deadline()  # the next request on a kept-alive connection begins
        super().data_received(data)

    # -- parser callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parse error; a head over the cap is reported through it."""
        if self._refusal is not None:
            self._write_refusal(*self._refusal)
        else:
            super().send_400_response(msg)

    # -- the limits ----------------------------------------------------------------------------

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            self._refusal = (431, f"request line and headers over {self.max_header_bytes} bytes "
                                  "(ATTNLENS_MAX_HEADER_BYTES)")
            raise _HeaderTooLarge

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(408, f"request line and headers not received within {self.header_timeout:g} s "
                              "(ATTNLENS_HEADER_TIMEOUT)")

    def _refuse(self, status: int, message: str) -> None:
        self._refusal = (status, message)
        self._write_refusal(status, message)

    def _write_refusal(self, status: int, message: str) -> None:
        if self.transport.is_closing():
            return
        body = json.dumps({"error": message}).encode()
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        self.transport.write(head + body)
        self.transport.close()


def install() -> None:
    """Make uvicorn's "auto" HTTP protocol this one (the BentoML worker asks for "auto")."""
    import uvicorn.config

    uvicorn.config.HTTP_PROTOCOLS["auto"] = f"{__name__}:GuardedHttpToolsProtocol"
