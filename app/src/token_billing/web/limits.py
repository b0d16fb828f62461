"""``max_body_bytes`` for every request body, however it is framed.

A body with Content-Length is checked before anything is read (Flask's
MAX_CONTENT_LENGTH, and here for a clear 413 before routing). A chunked body, or one the
server delimits by end of stream (``wsgi.input_terminated``), is read here up to
``max_bytes + 1``: over the limit it is answered 413 and the application never runs;
otherwise the application gets the buffered body with its length set.
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
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked and not environ.get("wsgi.input_terminated"):
            return self.app(environ, start_response)  # no body (PEP 3333)
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
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"request body larger than {self.max_bytes} bytes; "
                    "nothing was stored",
                }
            }
        ).encode()
        start_response(
            "413 Request Entity Too Large",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
        )
        return [body]
