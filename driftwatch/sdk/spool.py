"""The SDK's on-disk spool: one file per encoded batch, deleted once the collector acknowledged it.

Files are written to a temporary name and renamed, so a reader never sees half a batch. A sender
claims a file with an exclusive ``flock`` before sending it, so several clients (threads or
processes) sharing one spool folder never send the same file at the same time; a file left by a
process that died is adopted and sent by the next client that scans the folder.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: one client per spool folder
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("driftwatch.sdk")
SUFFIX = ".batch"


@dataclass(slots=True)
class Batch:
    path: Path
    kind: str  # "predictions" or "ground-truth"
    model: str
    count: int
    body: bytes


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._sequence = itertools.count()

    def write(self, *, kind: str, model: str, count: int, body: bytes) -> Path:
        """Store one encoded batch; the header line says where it goes."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._sequence):08d}"
        header = orjson.dumps({"kind": kind, "model": model, "count": count})
        temporary = self.directory / (name + ".tmp")
        with open(temporary, "wb") as handle:
            handle.write(header + b"\n" + body)
        final = self.directory / (name + SUFFIX)
        os.replace(temporary, final)
        return final

    def count(self, path: Path) -> int:
        """How many records a batch file holds (0 if it is gone or unreadable)."""
        try:
            with open(path, "rb") as handle:
                return int(orjson.loads(handle.readline())["count"])
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return 0

    def scan(self) -> list[Path]:
        """Every batch file in the folder, oldest first."""
        return sorted(self.directory.glob("*" + SUFFIX))

    def claim(self, path: Path) -> tuple[int, Batch] | None:
        """Lock and read a batch file; None if another client holds it or already sent it."""
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return None
            if os.fstat(fd).st_nlink == 0:  # sent and removed by another client meanwhile
                os.close(fd)
                return None
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read()
            header, _, body = raw.partition(b"\n")
            meta = orjson.loads(header)
            return fd, Batch(path, meta["kind"], meta["model"], int(meta["count"]), body)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            os.close(fd)
            broken = path.with_suffix(".broken")
            os.replace(path, broken)
            log.error("driftwatch: spool file %s is unreadable; moved it to %s", path, broken)
            return None
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def finish(fd: int, path: Path) -> None:
        """The collector has the batch: remove the file (still holding its lock), then unlock."""
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)
