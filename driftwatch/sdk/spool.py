"""The SDK's on-disk spool: one file per encoded batch, deleted once the collector acknowledged it.

Files are written to a temporary name and renamed, so a reader never sees half a batch; a write
that fails (a full or read-only disk) removes its temporary file, and temporary files left by a
process that died are removed when a client opens the folder. A sender claims a file with an
exclusive ``flock`` before sending it, so several clients (threads or processes) sharing one
spool folder never send the same file at the same time; a file left by a process that died is
adopted and sent by the next client that scans the folder. The spool holds at most ``max_bytes``
(of the files this client knows: its own and those it adopted); a write past that raises
:class:`SpoolFull`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
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
TEMPORARY = ".tmp"
# A temporary file this old is left over even if its process id is alive again (reused).
STALE_SECONDS = 600.0


class SpoolFull(Exception):
    """The spool is at its size cap; the batch was not written."""


@dataclass(slots=True)
class Batch:
    path: Path | None  # None: a batch held in memory only
    kind: str  # "predictions" or "ground-truth"
    model: str
    count: int
    body: bytes


class Spool:
    def __init__(self, directory: Path, max_bytes: int | None = None) -> None:
        """Open (create) the folder; raises OSError when it cannot be created or written."""
        self.directory = directory
        self.max_bytes = max_bytes
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._sizes: dict[Path, int] = {}  # bytes of each batch file this client knows
        directory.mkdir(parents=True, exist_ok=True)
        self.remove_stale_temporaries()
        probe = directory / (self._name() + TEMPORARY)
        try:  # a folder that exists but cannot be written to fails here, not at the first batch
            probe.write_bytes(b"")
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def _name(self) -> str:
        return f"{time.time_ns():020d}-{os.getpid()}-{next(self._sequence):08d}"

    @property
    def size(self) -> int:
        """Bytes of the batch files this client knows (its own and those it adopted)."""
        with self._lock:
            return sum(self._sizes.values())

    def write(self, *, kind: str, model: str, count: int, body: bytes) -> Path:
        """Store one encoded batch; the header line says where it goes.

        Raises SpoolFull at the cap, OSError when the disk refuses (nothing is left behind)."""
        header = orjson.dumps({"kind": kind, "model": model, "count": count})
        data = header + b"\n" + body
        with self._lock:
            if (
                self.max_bytes is not None
                and sum(self._sizes.values()) + len(data) > self.max_bytes
            ):
                raise SpoolFull(f"{self.directory} holds its cap of {self.max_bytes} bytes")
            name = self._name()
            final = self.directory / (name + SUFFIX)
            self._sizes[final] = len(data)  # reserved while it is written
        temporary = self.directory / (name + TEMPORARY)
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
            os.replace(temporary, final)
        except BaseException:
            with self._lock:
                self._sizes.pop(final, None)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return final

    def remove_stale_temporaries(self) -> int:
        """Remove temporary files of processes that died mid-write (or of long ago)."""
        removed = 0
        for path in self.directory.glob("*" + TEMPORARY):
            try:
                pid = int(path.name.split("-")[1])
                age = time.time() - path.stat().st_mtime
            except (IndexError, ValueError, OSError):
                continue
            if pid == os.getpid() or (age < STALE_SECONDS and _alive(pid)):
                continue  # possibly being written right now
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
        return removed

    def count(self, path: Path) -> int:
        """How many records a batch file holds (0 if it is gone or unreadable)."""
        try:
            with open(path, "rb") as handle:
                return int(orjson.loads(handle.readline())["count"])
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return 0

    def scan(self) -> list[Path]:
        """Every batch file in the folder, oldest first; their sizes count toward the cap."""
        paths = sorted(self.directory.glob("*" + SUFFIX))
        for path in paths:
            if path not in self._sizes:
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                with self._lock:
                    self._sizes.setdefault(path, size)
        return paths

    def forget(self, path: Path) -> None:
        with self._lock:
            self._sizes.pop(path, None)

    def claim(self, path: Path) -> tuple[int, Batch] | None:
        """Lock and read a batch file; None if another client holds it or already sent it."""
        try:
            fd = os.open(path, os.O_RDONLY)  # flock needs no write access
        except FileNotFoundError:
            self.forget(path)
            return None
        except OSError as error:  # not ours to read: leave it to whoever can
            log.error("driftwatch: cannot read spool file %s (%s); skipped", path, error)
            self.forget(path)
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
                self.forget(path)
                return None
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read()
            header, _, body = raw.partition(b"\n")
            meta = orjson.loads(header)
            return fd, Batch(path, meta["kind"], meta["model"], int(meta["count"]), body)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            os.close(fd)
            self.forget(path)
            broken = path.with_suffix(".broken")
            try:
                os.replace(path, broken)
                log.error("driftwatch: spool file %s is unreadable; moved it to %s", path, broken)
            except OSError as error:
                log.error("driftwatch: spool file %s is unreadable (%s); skipped", path, error)
            return None
        except BaseException:
            os.close(fd)
            raise

    def finish(self, fd: int, path: Path) -> None:
        """The collector has the batch: remove the file (still holding its lock), then unlock."""
        try:
            path.unlink(missing_ok=True)
        except OSError as error:  # a read-only disk: a later client resends it (ids dedupe)
            log.warning("driftwatch: could not remove sent spool file %s: %s", path, error)
        finally:
            os.close(fd)
            self.forget(path)

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
