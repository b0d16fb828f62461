"""Slow senders: clients that send a request one byte at a time and never finish it.

Used by the service's tests (test_slow_clients) and, piped into ``python3 -`` inside the
lab's load-balancer container, by the fleet scenario against one app host's own port.
Each client sends a POST one byte every ``interval`` seconds until the server answers or
closes, or ``deadline`` passes; the result is the seconds until then and the answer's
status line. As a script it prints one JSON list, a result per client.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time

REQUEST = (
    b"POST /v1/usage/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n" + b"x" * 100000
)


def trickle(host: str, port: int, interval: float, deadline: float) -> dict[str, object]:
    start = time.monotonic()
    result: dict[str, object] = {}
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.settimeout(interval)
            for byte in REQUEST:
                if time.monotonic() - start > deadline:
                    result["status"] = "no answer before the deadline"
                    break
                try:
                    sock.sendall(bytes([byte]))
                    reply = sock.recv(4096)
                except TimeoutError:
                    continue
                status = reply.split(b"\r\n", 1)[0].decode(errors="replace")
                result["status"] = status or "closed"
                break
    except OSError as exc:
        result["status"] = f"error: {exc!r}"
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def trickle_many(
    host: str, port: int, clients: int, interval: float, deadline: float
) -> list[dict[str, object]]:
    results: list[dict[str, object]] = [{} for _ in range(clients)]

    def run(i: int) -> None:
        results[i] = trickle(host, port, interval, deadline)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True, help="host:port")
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--deadline", type=float, default=60.0)
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)
    print(json.dumps(trickle_many(host, int(port), args.clients, args.interval, args.deadline)))


if __name__ == "__main__":
    main()
