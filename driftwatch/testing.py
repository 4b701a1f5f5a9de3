"""Helpers for tests and benchmarks that run ``driftwatch serve`` as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx


def start_serve(
    database_url: str,
    port: int,
    log: Path,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = ("--no-scheduler",),
    timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Start ``driftwatch serve`` on 127.0.0.1:port and wait until ``/readyz`` answers 200."""
    process = subprocess.Popen(
        [sys.executable, "-m", "driftwatch.cli", "serve", "--port", str(port),
         "--log-level", "warning", *args],
        env={**os.environ, "DRIFTWATCH_DATABASE_URL": database_url, **(env or {})},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"driftwatch serve did not start:\n{log.read_text()[-3000:]}")
