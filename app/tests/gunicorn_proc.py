"""A real gunicorn with the shipped config, for the tests that need one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests


@contextmanager
def gunicorn(settings: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start it with these TOKEN_BILLING_* settings (names without the prefix), wait for
    /readyz, stop it at the end. The bind address is settings["bind"]."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TOKEN_BILLING_", "PROMETHEUS_"))
    }
    env.update({f"TOKEN_BILLING_{k.upper()}": v for k, v in settings.items()})
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "python:token_billing.gunicorn_conf",
                "token_billing.wsgi:app",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            # a busy machine answers slowly: retry on timeouts too, until the deadline
            deadline = time.monotonic() + 90
            last: object = "no answer yet"
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise AssertionError(
                        f"gunicorn exited ({proc.returncode}): {log_path.read_text()}"
                    )
                try:
                    reply = requests.get(f"http://{settings['bind']}/readyz", timeout=5)
                    if reply.status_code == 200:
                        break
                    last = f"HTTP {reply.status_code}: {reply.text[:200]}"
                except requests.RequestException as exc:
                    last = exc
                time.sleep(0.2)
            else:
                raise AssertionError(
                    f"gunicorn did not become ready in 90 s (last: {last}): {log_path.read_text()}"
                )
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
