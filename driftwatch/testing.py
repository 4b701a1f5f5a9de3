"""Helpers for tests and benchmarks that run ``driftwatch serve`` as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg


def start_serve(
    database_url: str,
    port: int,
    log: Path,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = ("--no-scheduler",),
    timeout: float = 60.0,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``driftwatch serve`` on 127.0.0.1:port and wait until ``/readyz`` answers 200."""
    process = subprocess.Popen(
        [sys.executable, "-m", "driftwatch.cli", "serve", "--port", str(port),
         "--log-level", "warning", *args],
        env={**os.environ, "DRIFTWATCH_DATABASE_URL": database_url, **(env or {})},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=cwd,
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


@contextmanager
def scratch_database(admin_url: str, prefix: str = "driftwatch_scratch") -> Iterator[str]:
    """A new, empty Postgres database for the duration of the block, as a SQLAlchemy URL
    (``admin_url`` is a libpq URL of a database to connect to for creating and dropping it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        from driftwatch import db

        db.get_engine(f"{base}/{name}").dispose()
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
