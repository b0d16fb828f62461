"""``max_body_bytes`` for every request body, however it is framed.

A body with Content-Length is checked before anything is read (a 413 before routing).
A chunked body is read here up to ``max_bytes + 1``, however slowly it comes: over the
limit it is answered 413 and the application never runs; otherwise the application gets
the buffered body with its length set. A POST/PUT/PATCH with neither framing is answered
411: gunicorn hands such a body over as empty (it does not read to end of stream), so it
is refused rather than taken as an empty request.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Wsgi = Callable[[Environ, StartResponse], Iterable[bytes]]
_CHUNK = 64 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyLimit:
    def __init__(self, app: Wsgi, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        if length:
            if length.isdigit() and int(length) > self.max_bytes:
                return self._too_large(start_response)
            return self.app(environ, start_response)
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            if environ.get("REQUEST_METHOD") in _BODY_METHODS:
                return self._refuse(
                    start_response,
                    "411 Length Required",
                    "length_required",
                    "send the body with Content-Length or Transfer-Encoding: chunked",
                )
            return self.app(environ, start_response)
        body = self._read(environ["wsgi.input"])
        if body is None:
            return self._too_large(start_response)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        return self.app(environ, start_response)

    def _read(self, stream: Any) -> bytes | None:
        buf = bytearray()
        while len(buf) <= self.max_bytes:
            chunk = stream.read(min(_CHUNK, self.max_bytes + 1 - len(buf)))
            if not chunk:
                return bytes(buf)
            buf += chunk
        return None

    def _too_large(self, start_response: StartResponse) -> list[bytes]:
        return self._refuse(
            start_response,
            "413 Request Entity Too Large",
            "payload_too_large",
            f"request body larger than {self.max_bytes} bytes; nothing was stored",
        )

    @staticmethod
    def _refuse(start_response: StartResponse, status: str, code: str, message: str) -> list[bytes]:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
        )
        return [body]
