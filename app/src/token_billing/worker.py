"""A gthread worker whose main loop reads each request whole before a thread takes it.

gunicorn's gthread worker hands a connection to a thread as soon as it is accepted (25.x)
or readable (23.x); the thread then blocks reading the rest. A client that sends one byte
a second holds a thread for as long as it likes, and a dozen of them hold every thread of
a host: its health check times out and the balancer marks it down.

Here the worker's main loop (the selector gunicorn already runs) reads the request line,
headers and body without blocking into a buffer, and hands the connection to the thread
pool only once the request is complete (Content-Length bytes, or the last chunk). A
request not complete within ``read_timeout`` seconds of its first wait is answered
``408 Request Timeout`` and closed by the main loop; no thread ever waited on it. The
buffer is bounded by ``max_request_bytes``: a request that outgrows it goes to a thread
once the bound is passed, which answers 413 as before. A request with
``Expect: 100-continue`` goes to a thread after its headers (the client waits for the
100 before it sends the body).

Works with the gthread worker of gunicorn 23 and 25 (both pass every connection through
``enqueue_req`` on the main thread and call ``murder_keepalived`` once per loop).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

_log = logging.getLogger("token_billing.gunicorn")

REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)
_HEADER_BYTES = 64 * 1024


class BufferedSocket:
    """The client socket, replaying what the main loop read before the parser reads on."""

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self.pending = bytearray()
        self.replayed = 0  # how much of pending the parser has read (no copy of the rest per read)
        self.handed_off = False

    def recv(self, size: int, *flags: int) -> bytes:
        if self.replayed < len(self.pending):
            data = bytes(self.pending[self.replayed : self.replayed + size])
            self.replayed += len(data)
            if self.replayed == len(self.pending):
                self.pending.clear()
                self.replayed = 0
            return data
        return self.raw.recv(size, *flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def _chunked_complete(buf: bytes | bytearray, pos: int) -> bool:
    """Whether a chunked body starting at pos has its last chunk and trailer section."""
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return False
        try:
            size = int(bytes(buf[pos:line_end]).split(b";", 1)[0].strip(), 16)
        except ValueError:
            return True  # malformed: the parser rejects it with a 400
        if size == 0:
            trailer = line_end + 2
            return buf.startswith(b"\r\n", trailer) or buf.find(b"\r\n\r\n", trailer) >= 0
        pos = line_end + 2 + size + 2
        if pos > len(buf):
            return False


def request_complete(buf: bytes | bytearray) -> bool:
    """Whether buf holds one whole HTTP/1.x request (or enough for the parser to refuse it)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = bytes(buf[:end]).lower()
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip()] = value.strip()
    if headers.get(b"expect") == b"100-continue":
        return True
    if b"chunked" in headers.get(b"transfer-encoding", b""):
        return _chunked_complete(buf, end + 4)
    try:
        length = int(headers.get(b"content-length", b"0"))
    except ValueError:
        return True
    return len(buf) - (end + 4) >= length


class BufferedThreadWorker(ThreadWorker):  # type: ignore[misc]
    read_timeout: float = 10.0
    max_request_bytes: int = 4 * 1024 * 1024 + _HEADER_BYTES

    def init_process(self) -> None:
        self._reading: dict[Any, float] = {}
        super().init_process()

    def _poller_lock(self) -> Any:
        # gunicorn 23 shares the poller with its threads' done-callbacks under _lock
        return getattr(self, "_lock", None) or contextlib.nullcontext()

    def enqueue_req(self, conn: Any) -> None:
        sock = conn.sock
        if isinstance(sock, BufferedSocket) and sock.handed_off:
            sock.handed_off = False
            super().enqueue_req(conn)
            return
        if not isinstance(sock, BufferedSocket):
            sock = conn.sock = BufferedSocket(sock)
        del sock.pending[: sock.replayed]  # what the parser read of the last request
        sock.replayed = 0
        sock.raw.setblocking(False)
        self._reading[conn] = time.monotonic() + self.read_timeout
        with self._poller_lock():
            self.poller.register(sock, selectors.EVENT_READ, partial(self._read_request, conn))

    def _stop_reading(self, conn: Any) -> None:
        self._reading.pop(conn, None)
        with self._poller_lock(), contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _read_request(self, conn: Any, _fileobj: Any) -> None:
        sock = conn.sock
        try:
            data = sock.raw.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before its request was whole
            self._stop_reading(conn)
            self.nr_conns -= 1
            conn.close()
            return
        sock.pending += data
        if request_complete(sock.pending) or len(sock.pending) > self.max_request_bytes:
            self._stop_reading(conn)
            sock.handed_off = True
            self.enqueue_req(conn)

    def murder_keepalived(self) -> None:
        super().murder_keepalived()
        now = time.monotonic()
        for conn, deadline in list(self._reading.items()):
            if deadline > now:
                continue
            self._stop_reading(conn)
            with contextlib.suppress(OSError):
                conn.sock.raw.send(REQUEST_TIMEOUT_RESPONSE)
            self.nr_conns -= 1
            conn.close()
            _log.warning(
                "request not received in time",
                extra={
                    "client": str(conn.client),
                    "read_timeout": self.read_timeout,
                    "bytes_received": len(conn.sock.pending),
                },
            )


def buffered_worker(read_timeout: float, max_body_bytes: int) -> type[BufferedThreadWorker]:
    """The worker class with this deadline and buffer bound (gunicorn's worker_class)."""
    return type(
        "BufferedThreadWorker",
        (BufferedThreadWorker,),
        {"read_timeout": read_timeout, "max_request_bytes": max_body_bytes + _HEADER_BYTES},
    )
