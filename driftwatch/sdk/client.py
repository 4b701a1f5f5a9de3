"""``driftwatch.Client``: log predictions and ground truth without ever waiting on the network.

The caller's thread only appends a record to a bounded in-memory queue. A writer thread drains
the queue into batches, encodes them and writes each to the on-disk spool before anything is
sent (so a collector outage, or the logging process dying, loses at most the records of the last
``flush_interval``). Sender threads POST spool files and delete each one only when the collector
has acknowledged it, retrying with exponential backoff and full jitter, honouring ``Retry-After``.
Records the collector rejects are reported in the log and in ``client.rejected``, never resent.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import logging
import random
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import platformdirs

from driftwatch.sdk.spool import Batch, Spool

log = logging.getLogger("driftwatch.sdk")

PREDICTIONS = "predictions"
GROUND_TRUTH = "ground-truth"
# HTTP statuses after which the same request may succeed later.
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}
# The batch can never be accepted as sent; its records are reported, not retried.
UNACCEPTABLE = {400, 413, 422}


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    model: str
    kind: str
    prediction_id: str | None
    error: str


def _default(value: Any) -> Any:
    """JSON for what orjson does not know: pandas/numpy scalars, dates, Decimals."""
    if isinstance(value, datetime):  # a subclass such as pandas.Timestamp
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no timezone")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy and pandas scalars
    if callable(item):
        return item()
    if value is None or value != value:  # pandas NA / NaT
        return None
    return float(value) if hasattr(value, "__float__") else str(value)


def _timestamp(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no timezone; give an aware datetime")
        return value
    raise TypeError(f"timestamp: expected a datetime or ISO string, got {value!r}")


_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _seconds(value: Any) -> Any:
    """Unix seconds for the wire (the collector reads them as UTC); ISO strings pass as they are."""
    if type(value) is float or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.timestamp()
    return value


# A queued prediction: (prediction_id, timestamp, feature names, feature values, prediction,
# model_version). Tuples keep log_prediction cheap and let a batch be transposed into columns
# with one zip. A queued label is a dict (the contract's record).
_ID, _TS, _NAMES, _VALUES, _PREDICTION, _VERSION = range(6)
_FLOAT_TYPES = frozenset({float, np.float64, np.float32, type(None)})


def _record_id(record: Any) -> Any:
    return record[_ID] if isinstance(record, tuple) else record.get("prediction_id")


def _feature_column(values: tuple[Any, ...]) -> Any:
    """A column of floats as a base64 float64 buffer (NaN = missing), which the collector reads
    without parsing a number; anything else (ints, text, mixed) as a JSON list, so that the
    collector sees exactly what was logged."""
    kinds = set(map(type, values))
    if kinds <= _FLOAT_TYPES and kinds != {type(None)}:
        array = np.array(values, dtype="<f8")  # None becomes NaN
        if not np.isinf(array).any():
            return {"f8": base64.b64encode(array.tobytes()).decode("ascii")}
    return values


def _plain_column(values: Any) -> list[Any]:
    if isinstance(values, dict):
        array = np.frombuffer(base64.b64decode(values["f8"]), dtype="<f8")
        return [None if v != v else v for v in array.tolist()]
    return list(values)


def _encode(kind: str, records: list[Any]) -> bytes:
    """A request body. Predictions go as parallel columns: a third of the bytes of one object
    per record, and the collector checks a clean column in one step."""
    if kind != PREDICTIONS:
        for record in records:
            record["timestamp"] = _seconds(record["timestamp"])
        return orjson.dumps({"records": records}, default=_default, option=_DUMP_OPTIONS)
    names = records[0][_NAMES]
    if all(r[_NAMES] == names for r in records):  # the usual batch: the same features
        by_feature = list(zip(*[r[_VALUES] for r in records], strict=True)) if names else []
    else:
        union = dict.fromkeys(names)
        for record in records:
            union.update(dict.fromkeys(record[_NAMES]))
        names = tuple(union)
        dicts = [dict(zip(r[_NAMES], r[_VALUES], strict=True)) for r in records]
        by_feature = [tuple(d.get(name) for d in dicts) for name in names]
    columns: dict[str, Any] = {
        "prediction_id": [r[_ID] for r in records],
        "timestamp": [_seconds(r[_TS]) for r in records],
        "prediction": [r[_PREDICTION] for r in records],
        "features": {
            name: _feature_column(values) for name, values in zip(names, by_feature, strict=True)
        },
    }
    versions = [r[_VERSION] for r in records]
    if any(v is not None for v in versions):
        columns["model_version"] = versions
    return orjson.dumps({"columns": columns}, default=_default, option=_DUMP_OPTIONS)


def _decode(body: bytes) -> list[Any]:
    """The records of a request body, in the form they were queued."""
    parsed = orjson.loads(body)
    if "records" in parsed:
        records: list[Any] = parsed["records"]
        return records
    columns = parsed["columns"]
    features = {name: _plain_column(v) for name, v in columns.get("features", {}).items()}
    names = tuple(features)
    count = len(columns["prediction"])
    versions = columns.get("model_version") or [None] * count
    return [
        (
            columns["prediction_id"][i],
            columns["timestamp"][i],
            names,
            tuple(values[i] for values in features.values()),
            columns["prediction"][i],
            versions[i],
        )
        for i in range(count)
    ]


def _encodable(records: list[Any]) -> tuple[list[Any], list[tuple[Any, str]]]:
    """Split records into those JSON can carry and (record, reason) for the others."""
    good, bad = [], []
    for record in records:
        try:
            orjson.dumps(record, default=_default, option=_DUMP_OPTIONS)
            good.append(record)
        except (TypeError, ValueError) as error:
            bad.append((record, f"cannot be sent as JSON: {error}"))
    return good, bad


def default_spool_dir(url: str) -> Path:
    """A per-user cache folder, one per collector URL."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(platformdirs.user_cache_dir("driftwatch")) / "spool" / digest


class Client:
    """Thread-safe; share one per process. Use as a context manager or call ``close()``."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        spool_dir: str | Path | None = None,
        batch_size: int = 5000,
        flush_interval: float = 0.2,  # seconds a record may wait in memory before it is spooled
        max_queue: int = 100_000,  # records held in memory before the caller spills to disk
        timeout: float = 30.0,  # seconds for one HTTP request
        max_backoff: float = 30.0,  # seconds between retries at the most
        senders: int = 2,  # batches in flight at once
        rejected_limit: int = 10_000,  # most recent rejections kept in ``rejected``
    ) -> None:
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_backoff = max_backoff
        self.rejected: deque[RejectedRecord] = deque(maxlen=rejected_limit)
        self.spool = Spool(Path(spool_dir) if spool_dir else default_spool_dir(self.url))
        headers = {"Content-Type": "application/json", "User-Agent": "driftwatch-sdk"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

        self._queue: deque[tuple[str, str, Any]] = deque()
        self._drain_lock = threading.Lock()
        self._wake_writer = threading.Event()
        # Spool files waiting to be sent, and the count of records being moved or sent.
        self._state = threading.Condition()
        self._pending: deque[Path] = deque(self.spool.scan())
        self._known: set[Path] = set(self._pending)
        # Records in each spool file this client will send (pending or in flight).
        self._counts: dict[Path, int] = {p: self.spool.count(p) for p in self._pending}
        self._draining = 0  # records taken from the queue, not yet in a spool file
        self._busy = 0  # spool files being sent
        self._retry_at = 0.0
        self._failures = 0
        self._closed = False
        self._stopping = threading.Event()

        self._threads = [
            threading.Thread(target=self._write_loop, name="driftwatch-writer", daemon=True)
        ]
        self._threads += [
            threading.Thread(target=self._send_loop, name=f"driftwatch-sender-{i}", daemon=True)
            for i in range(senders)
        ]
        for thread in self._threads:
            thread.start()
        _open_clients.add(self)

    # -- logging (the caller's thread) -------------------------------------------------------

    def log_prediction(
        self,
        model: str,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        prediction_id: str | None = None,
        model_version: str | None = None,
        timestamp: datetime | str | None = None,
    ) -> str:
        """Queue one prediction and return its id (generated when not given)."""
        if prediction_id is None:
            prediction_id = uuid.uuid4().hex
        self._put(
            PREDICTIONS,
            model,
            (
                prediction_id,
                time.time() if timestamp is None else _timestamp(timestamp),
                tuple(features),
                tuple(features.values()),
                prediction,
                model_version,
            ),
        )
        return prediction_id

    def log_ground_truth(
        self,
        model: str,
        *,
        prediction_id: str,
        label: Any,
        timestamp: datetime | str | None = None,
    ) -> None:
        """Queue the label of an earlier (or later) prediction."""
        self._put(
            GROUND_TRUTH,
            model,
            {
                "prediction_id": prediction_id,
                "label": label,
                "timestamp": time.time() if timestamp is None else _timestamp(timestamp),
            },
        )

    def log_predictions(
        self, model: str, data: Any, *, model_version: str | None = None
    ) -> list[str]:
        """Queue many predictions: a pandas DataFrame or an iterable of dicts.

        Columns (keys) ``prediction`` (required), ``prediction_id``, ``timestamp`` and
        ``model_version`` are taken as such; a ``features`` column of dicts, or else every other
        column, holds the features. Returns the prediction ids in order.
        """
        ids: list[str] = []
        for row in _rows(data):
            if "prediction" not in row:
                raise ValueError(f"record {len(ids)}: no 'prediction' column or key")
            features = row.get("features")
            if not isinstance(features, Mapping):
                features = {k: v for k, v in row.items() if k not in _RESERVED}
            ids.append(
                self.log_prediction(
                    model,
                    features,
                    row["prediction"],
                    prediction_id=_optional(row.get("prediction_id")),
                    model_version=_optional(row.get("model_version")) or model_version,
                    timestamp=_optional(row.get("timestamp")),
                )
            )
        return ids

    def log_ground_truths(self, model: str, data: Any) -> int:
        """Queue many labels: a DataFrame or dicts with ``prediction_id`` and ``label``."""
        count = 0
        for row in _rows(data):
            self.log_ground_truth(
                model,
                prediction_id=row["prediction_id"],
                label=row["label"],
                timestamp=_optional(row.get("timestamp")),
            )
            count += 1
        return count

    def _put(self, kind: str, model: str, record: Any) -> None:
        if self._closed:
            raise RuntimeError("this driftwatch Client is closed")
        queue = self._queue
        queue.append((kind, model, record))
        size = len(queue)
        if size >= self.batch_size:
            if not self._wake_writer.is_set():
                self._wake_writer.set()
            if size >= self.max_queue:
                # The writer is behind: spill to disk here rather than grow without bound.
                self._drain()

    # -- flushing and closing ----------------------------------------------------------------

    def pending(self) -> int:
        """Records not yet acknowledged by the collector (memory and spool)."""
        with self._state:
            return len(self._queue) + self._draining + sum(self._counts.values())

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything logged so far is acknowledged; False if time ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._drain()
        with self._state:
            self._retry_at = min(self._retry_at, time.monotonic())  # try again now
            self._state.notify_all()
            while self._queue or self._draining or self._busy or self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._state.wait(0.05 if remaining is None else min(remaining, 0.05))
                if self._queue and not self._draining:
                    self._wake_writer.set()
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, then stop. What is still unacknowledged stays in the spool for the next run."""
        if self._closed:
            return True
        delivered = self.flush(timeout)
        self._closed = True
        self._drain()  # anything logged by other threads meanwhile goes to disk
        self._stopping.set()
        self._wake_writer.set()
        with self._state:
            self._state.notify_all()
        for thread in self._threads:
            thread.join(timeout=max(1.0, timeout))
        self._http.close()
        _open_clients.discard(self)
        if not delivered:
            log.warning(
                "driftwatch: %d records wait in %s and are sent on the next start",
                self.pending(),
                self.spool.directory,
            )
        return delivered

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- writer: memory -> spool -------------------------------------------------------------

    def _write_loop(self) -> None:
        last_scan = time.monotonic()
        while not self._stopping.is_set():
            self._wake_writer.wait(self.flush_interval)
            self._wake_writer.clear()
            try:
                self._drain()
                if time.monotonic() - last_scan > 30:  # adopt files of clients that died
                    last_scan = time.monotonic()
                    self._adopt_orphans()
            except Exception:  # never let the writer die; records stay queued
                log.exception("driftwatch: could not spool records; will retry")
                time.sleep(1)

    def _drain(self) -> None:
        """Move every queued record into spool files, a batch per (kind, model)."""
        with self._drain_lock:
            queue = self._queue
            while queue:
                groups: dict[tuple[str, str], list[Any]] = {}
                taken = 0
                with self._state:
                    while queue and taken < self.batch_size:
                        kind, model, record = queue.popleft()
                        groups.setdefault((kind, model), []).append(record)
                        taken += 1
                    self._draining += taken
                try:
                    written = [
                        self._spool_group(kind, model, records)
                        for (kind, model), records in groups.items()
                    ]
                    paths = [path for path in written if path is not None]
                except BaseException:
                    with self._state:  # put them back, in order, to be tried again
                        for (kind, model), records in reversed(groups.items()):
                            queue.extendleft((kind, model, r) for r in reversed(records))
                        self._draining -= taken
                    raise
                with self._state:
                    self._draining -= taken
                    self._pending.extend(path for path, _ in paths)
                    self._counts.update(paths)
                    self._known.update(path for path, _ in paths)
                    self._state.notify_all()

    def _spool_group(self, kind: str, model: str, records: list[Any]) -> tuple[Path, int] | None:
        try:
            body = _encode(kind, records)
        except (TypeError, ValueError):
            # Drop only what JSON cannot carry (reported like a rejection), keep the rest.
            records, bad = _encodable(records)
            for record, reason in bad:
                self.rejected.append(RejectedRecord(model, kind, _record_id(record), reason))
                log.error(
                    "driftwatch: record %s of model %r %s; dropped",
                    _record_id(record),
                    model,
                    reason,
                )
            if not records:
                return None
            body = _encode(kind, records)
        return self.spool.write(kind=kind, model=model, count=len(records), body=body), len(records)

    def _adopt_orphans(self) -> None:
        found = [p for p in self.spool.scan() if p not in self._known]
        if found:
            with self._state:
                self._pending.extend(found)
                self._known.update(found)
                self._counts.update((p, self.spool.count(p)) for p in found)
                self._state.notify_all()

    # -- senders: spool -> collector ---------------------------------------------------------

    def _next_file(self) -> Path | None:
        with self._state:
            while True:
                now = time.monotonic()
                if self._pending and now >= self._retry_at:
                    path = self._pending.popleft()
                    self._busy += 1
                    return path
                if self._stopping.is_set():
                    return None
                wait = self._retry_at - now if self._pending else 0.5
                self._state.wait(max(0.01, min(wait, 0.5)))

    def _send_loop(self) -> None:
        while True:
            path = self._next_file()
            if path is None:
                return
            claimed = None
            try:
                claimed = self.spool.claim(path)
                if claimed is None:  # another client has it, or it is gone
                    with self._state:
                        self._known.discard(path)
                        self._counts.pop(path, None)
                    continue
                fd, batch = claimed
                if self._deliver(batch):
                    self.spool.finish(fd, path)
                    with self._state:
                        self._known.discard(path)
                        self._counts.pop(path, None)
                        self._failures = 0
                else:
                    self.spool.release(fd)
                    with self._state:
                        self._pending.appendleft(path)
            except Exception:
                log.exception("driftwatch: unexpected error sending %s; will retry", path)
                if claimed is not None:
                    self.spool.release(claimed[0])
                with self._state:
                    self._pending.appendleft(path)
                    self._back_off(None)
            finally:
                with self._state:
                    self._busy -= 1
                    self._state.notify_all()

    def _deliver(self, batch: Batch) -> bool:
        """Send one batch. True when it is settled: acknowledged, or refused for good."""
        try:
            response = self._http.post(
                f"/api/v1/models/{batch.model}/{batch.kind}", content=batch.body
            )
        except httpx.HTTPError as error:
            with self._state:
                self._back_off(None)
            log.warning(
                "driftwatch: collector %s unreachable (%s); %d records kept in the spool",
                self.url,
                type(error).__name__,
                batch.count,
            )
            return False
        status = response.status_code
        if status == 200:
            self._report_rejections(batch, response)
            return True
        if status == 413 and batch.count > 1:
            self._split(batch)
            return True
        if status in UNACCEPTABLE:
            self._reject_batch(batch, response)
            return True
        with self._state:
            self._back_off(response.headers.get("retry-after"))
        level = logging.WARNING if status in RETRYABLE else logging.ERROR
        log.log(
            level,
            "driftwatch: collector answered %d for %d %s of model %r (%s); "
            "kept in the spool and retried",
            status,
            batch.count,
            batch.kind,
            batch.model,
            _detail(response),
        )
        return False

    def _back_off(self, retry_after: str | None) -> None:
        """Called with ``_state`` held: wait longer after each failure, with full jitter."""
        self._failures += 1
        delay = random.uniform(0, min(self.max_backoff, 0.25 * 2 ** min(self._failures, 16)))
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), 3600.0))
            except ValueError:
                pass
        self._retry_at = time.monotonic() + delay

    def _split(self, batch: Batch) -> None:
        records = _decode(batch.body)
        half = len(records) // 2
        parts = [records[:half], records[half:]]
        paths = [
            self.spool.write(
                kind=batch.kind, model=batch.model, count=len(part), body=_encode(batch.kind, part)
            )
            for part in parts
        ]
        with self._state:
            self._pending.extendleft(reversed(paths))
            self._known.update(paths)
            self._counts.update(zip(paths, map(len, parts), strict=True))

    def _report_rejections(self, batch: Batch, response: httpx.Response) -> None:
        rejected = response.json().get("rejected") or []
        for item in rejected:
            self.rejected.append(
                RejectedRecord(
                    batch.model, batch.kind, item.get("prediction_id"), item.get("error", "")
                )
            )
        if rejected:
            first = rejected[0]
            log.warning(
                "driftwatch: the collector rejected %d of %d %s of model %r; first: record %s: %s",
                len(rejected),
                batch.count,
                batch.kind,
                batch.model,
                first.get("prediction_id") or first.get("index"),
                first.get("error"),
            )

    def _reject_batch(self, batch: Batch, response: httpx.Response) -> None:
        error = _detail(response)
        try:
            records = _decode(batch.body)
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
            records = []
        for record in records:
            pid = _record_id(record) if isinstance(record, tuple | dict) else None
            self.rejected.append(RejectedRecord(batch.model, batch.kind, pid, error))
        log.error(
            "driftwatch: the collector refused a batch of %d %s of model %r (%d: %s); not retried",
            batch.count,
            batch.kind,
            batch.model,
            response.status_code,
            error,
        )


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))[:500]
    except ValueError:
        return response.text[:500]


_RESERVED = frozenset({"prediction", "prediction_id", "timestamp", "model_version", "features"})


def _optional(value: Any) -> Any:
    """None for missing cells (NaN, NaT, NA) of a DataFrame."""
    if value is None:
        return None
    try:
        return None if value != value else value
    except (TypeError, ValueError):
        return value


def _rows(data: Any) -> Iterable[dict[str, Any]]:
    to_dict = getattr(data, "to_dict", None)
    if callable(to_dict):  # a pandas DataFrame
        rows: Iterable[dict[str, Any]] = to_dict(orient="records")
        return rows
    return data  # type: ignore[no-any-return]


# Clients still open when the interpreter exits are closed so their records reach the spool.
_open_clients: weakref.WeakSet[Client] = weakref.WeakSet()


@atexit.register
def _close_open_clients() -> None:
    for client in list(_open_clients):
        try:
            client.close(timeout=2.0)
        except Exception:
            log.exception("driftwatch: could not close a client at exit")
