"""Slow senders, run inside the load-balancer container against one app host's own port.

Opens --clients connections to --target and sends a POST one byte every --interval
seconds, never finishing it, until the server answers or closes, or --deadline passes.
Prints one JSON object: per client, the seconds until the answer and its status line.
"""

import argparse
import json
import socket
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("--target", required=True, help="host:port")
parser.add_argument("--clients", type=int, default=12)
parser.add_argument("--interval", type=float, default=1.0)
parser.add_argument("--deadline", type=float, default=60.0)
args = parser.parse_args()
host, port = args.target.rsplit(":", 1)
request = b"POST /v1/usage/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000
results: list[dict] = [{} for _ in range(args.clients)]


def client(result: dict) -> None:
    start = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.settimeout(args.interval)
            for byte in request:
                if time.monotonic() - start > args.deadline:
                    result["status"] = "no answer before the deadline"
                    break
                try:
                    sock.sendall(bytes([byte]))
                    reply = sock.recv(4096)
                except TimeoutError:
                    continue
                result["status"] = reply.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
                break
    except OSError as exc:
        result["status"] = f"error: {exc!r}"
    result["seconds"] = round(time.monotonic() - start, 1)


threads = [threading.Thread(target=client, args=(r,)) for r in results]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
