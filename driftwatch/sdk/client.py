"""``driftwatch.Client``: log predictions and ground truth without ever waiting on the network.

The caller's thread only appends a record to a bounded in-memory queue. A writer thread drains
the queue into batches, encodes them and writes each to the on-disk spool before anything is
sent (so a collector outage, or the logging process dying, loses at most the records of the last
``flush_interval``). Sender threads POST the batches and delete each spool file only when the
collector has acknowledged it, retrying with exponential backoff and full jitter, honouring
``Retry-After``. Batches wait in one lane per model, each with its own retry schedule, so a model
whose batches keep failing (a misspelled name answering 404, a 5xx) never holds back another's.
Records the collector rejects are reported in the log and in ``client.rejected``, never resent;
batches it keeps refusing for ``give_up_after`` (404) are set aside there too.

The spool has a cap (``max_spool_bytes``). A batch the spool cannot take (at its cap, a full or
read-only disk, or no usable folder at all) waits in memory, up to ``max_queue`` records; past
that it is dropped and counted in ``client.dropped``. Each such episode is logged once, and
nothing of it is ever raised into the caller.
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

from driftwatch.sdk.spool import Batch, Spool, SpoolFull

log = logging.getLogger("driftwatch.sdk")

PREDICTIONS = "predictions"
GROUND_TRUTH = "ground-truth"
SHADOW_PREDICTIONS = "shadow-predictions"
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
    if np.ndarray in kinds and kinds <= {np.ndarray, type(None)}:
        return _vector_column(values)
    return values


def _vector_column(values: tuple[Any, ...]) -> Any:
    """A column of numpy arrays (an embedding feature, CONTRACT section 11) as one base64
    float32 matrix, ``{"f4": ..., "dims": d, "missing": [...]}``, when every array is a 1-D
    array of numbers of one length; otherwise as JSON lists, for the collector to say which
    records are wrong."""
    arrays = [v for v in values if v is not None]
    lengths = {a.shape for a in arrays}
    numeric = all(a.dtype.kind in "fiu" for a in arrays)
    if len(lengths) != 1 or len(next(iter(lengths))) != 1 or not numeric:
        return [None if v is None else np.asarray(v).tolist() for v in values]
    dims = next(iter(lengths))[0]
    matrix = np.full((len(values), dims), np.nan, dtype="<f4")
    missing = []
    for index, value in enumerate(values):
        if value is None:
            missing.append(index)
        else:
            matrix[index] = value
    return {"f4": base64.b64encode(matrix.tobytes()).decode("ascii"), "dims": int(dims),
            "missing": missing}  # fmt: skip


def _plain_column(values: Any) -> list[Any]:
    if isinstance(values, dict) and "f4" in values:
        matrix = np.frombuffer(base64.b64decode(values["f4"]), dtype="<f4")
        rows = matrix.reshape(-1, values["dims"]).tolist()
        absent = set(values["missing"])
        return [None if i in absent else row for i, row in enumerate(rows)]
    if isinstance(values, dict):
        array = np.frombuffer(base64.b64decode(values["f8"]), dtype="<f8")
        return [None if v != v else v for v in array.tolist()]
    return list(values)


def _encode(kind: str, records: list[Any]) -> bytes:
    """A request body. Predictions go as parallel columns: a third of the bytes of one object
    per record, and the collector checks a clean column in one step."""
    if kind != PREDICTIONS:
        for record in records:
            if "timestamp" in record:  # labels; shadow predictions have none
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


@dataclass(slots=True, eq=False)
class _Item:
    """A batch waiting to be sent: a spool file, or (without room on disk) a body in memory."""

    model: str
    kind: str
    count: int
    path: Path | None = None
    body: bytes | None = None


@dataclass(slots=True, eq=False)
class _Lane:
    """One model's batches and its own retry schedule, so that one model that keeps failing
    (a misspelled name, a 5xx) never holds back another's."""

    pending: deque[_Item]
    retry_at: float = 0.0
    failures: int = 0
    in_flight: int = 0
    refused_since: float | None = None  # first refusal (404, ...) of the current streak
    tries: int = 0  # attempts refused since then
    set_aside: bool = False  # refused for give_up_after: later refusals are set aside at once

    def back_off(self, max_backoff: float, retry_after: str | None) -> None:
        """Wait longer after each failure, with full jitter; honour Retry-After."""
        self.failures += 1
        delay = random.uniform(0, min(max_backoff, 0.25 * 2 ** min(self.failures, 16)))
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), 3600.0))
            except ValueError:
                pass
        self.retry_at = time.monotonic() + delay


# What a delivery attempt came to.
_DONE, _RETRY, _REFUSED = "done", "retry", "refused"


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
        # Records held in memory: queued before the caller spills to disk, and again as batches
        # that the spool cannot take (at its cap, disk full or read-only); past that, dropped.
        max_queue: int = 100_000,
        timeout: float = 30.0,  # seconds for one HTTP request
        max_backoff: float = 30.0,  # seconds between retries at the most
        senders: int = 2,  # batches in flight at once
        rejected_limit: int = 10_000,  # most recent rejections kept in ``rejected``
        max_spool_bytes: int | None = 512 * 1024 * 1024,  # the spool's cap (None: no cap)
        # Seconds a model's batches are retried while the collector refuses them in a way that
        # retrying will not fix by itself (404: no such model, 405, 409, ...) before they are
        # set aside in ``rejected``; later refused batches of that model are set aside at once.
        give_up_after: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_backoff = max_backoff
        self.give_up_after = give_up_after
        self.rejected: deque[RejectedRecord] = deque(maxlen=rejected_limit)
        self.dropped = 0  # records lost because neither the spool nor memory had room
        self.set_aside = 0  # records of batches the collector kept refusing (in ``rejected``)
        directory = Path(spool_dir) if spool_dir else default_spool_dir(self.url)
        self.spool: Spool | None
        try:
            self.spool = Spool(directory, max_spool_bytes)
        except OSError as error:
            self.spool = None
            log.warning(
                "driftwatch: cannot use the spool folder %s (%s); running without a spool: "
                "records wait in memory only (up to %d), and are lost if this process ends "
                "before the collector has them",
                directory,
                error,
                max_queue,
            )
        self._spool_directory = directory
        headers = {"Content-Type": "application/json", "User-Agent": "driftwatch-sdk"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

        self._queue: deque[tuple[str, str, Any]] = deque()
        self._drain_lock = threading.Lock()
        self._wake_writer = threading.Event()
        # Batches waiting to be sent, one lane per model, and the counts of what is outstanding.
        self._state = threading.Condition()
        self._lanes: dict[str, _Lane] = {}
        self._known: set[Path] = set()  # spool files this client sends (or has sent)
        self._items = 0  # batches waiting or in flight
        self._records = 0  # their records
        self._held = 0  # records of batches held in memory
        self._draining = 0  # records taken from the queue, not yet in a batch
        # Episodes, each logged once when it begins: the spool at its cap, the disk refusing
        # writes, records being dropped.
        self._at_cap = False
        self._disk_error = False
        self._dropping = 0  # records dropped in the current episode
        self._closed = False
        self._stopping = threading.Event()
        if self.spool is not None:
            self._adopt(self.spool.scan())

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

    @property
    def spool_dir(self) -> Path | None:
        """The spool folder in use; None when the client runs without one (memory only)."""
        return None if self.spool is None else self.spool.directory

    # -- logging (the caller's thread) -------------------------------------------------------

    def log_prediction(
        self,
        model: str,
        features: Mapping[str, Any],
        prediction: Any = None,
        *,
        prediction_id: str | None = None,
        model_version: str | None = None,
        timestamp: datetime | str | None = None,
        prediction_scores: Mapping[Any, float] | None = None,
    ) -> str:
        """Queue one prediction and return its id (generated when not given).

        ``prediction_scores``: a multiclass model's per-class probabilities, class ->
        probability (sent as the prediction; the collector takes the most probable class as
        the predicted one). ``prediction`` may then be left out; if given, it must be that
        class."""
        if prediction_scores is not None:
            prediction = _scores_prediction(prediction, prediction_scores)
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

    def log_shadow_prediction(
        self, model: str, *, prediction_id: str, model_version: str, prediction: Any
    ) -> None:
        """Queue what a shadow (challenger) version predicted for the served prediction
        ``prediction_id``, logged before or after it (CONTRACT section 10). Idempotent per
        prediction id and version."""
        self._put(
            SHADOW_PREDICTIONS,
            model,
            {"prediction_id": prediction_id, "model_version": model_version,
             "prediction": prediction},
        )  # fmt: skip

    def log_predictions(
        self, model: str, data: Any, *, model_version: str | None = None
    ) -> list[str]:
        """Queue many predictions: a pandas DataFrame or an iterable of dicts.

        Columns (keys) ``prediction`` (required, unless ``prediction_scores`` holds per-class
        probabilities), ``prediction_id``, ``timestamp`` and ``model_version`` are taken as
        such; a ``features`` column of dicts, or else every other column, holds the features.
        Returns the prediction ids in order.
        """
        ids: list[str] = []
        for row in _rows(data):
            scores = _optional(row.get("prediction_scores"))
            if "prediction" not in row and scores is None:
                raise ValueError(f"record {len(ids)}: no 'prediction' column or key")
            features = row.get("features")
            if not isinstance(features, Mapping):
                features = {k: v for k, v in row.items() if k not in _RESERVED}
            ids.append(
                self.log_prediction(
                    model,
                    features,
                    _optional(row.get("prediction")),
                    prediction_id=_optional(row.get("prediction_id")),
                    model_version=_optional(row.get("model_version")) or model_version,
                    timestamp=_optional(row.get("timestamp")),
                    prediction_scores=scores,
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
            return len(self._queue) + self._draining + self._records

    def stats(self) -> dict[str, Any]:
        """Where the records are: queued, in the spool, held in memory; and what was lost."""
        with self._state:
            waiting = {
                model: {
                    "batches": len(lane.pending) + lane.in_flight,
                    "records": sum(item.count for item in lane.pending),
                    "failures": lane.failures,
                    "set_aside": lane.set_aside,
                }
                for model, lane in self._lanes.items()
                if lane.pending or lane.in_flight
            }
            return {
                "queued": len(self._queue) + self._draining,
                "spooled": self._records - self._held,
                "in_memory": self._held,
                "spool": self.spool is not None,
                "spool_bytes": 0 if self.spool is None else self.spool.size,
                "dropped": self.dropped,
                "set_aside": self.set_aside,
                "rejected": len(self.rejected),
                "models": waiting,
            }

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything logged so far is acknowledged; False if time ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._drain()
        with self._state:
            now = time.monotonic()
            for lane in self._lanes.values():
                lane.retry_at = min(lane.retry_at, now)  # try again now
            self._state.notify_all()
            while self._queue or self._draining or self._items:
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
            with self._state:
                held = self._held
            spooled = self.pending() - held
            if spooled:
                log.warning(
                    "driftwatch: %d records wait in %s and are sent on the next start",
                    spooled,
                    self._spool_directory,
                )
            if held:
                log.warning(
                    "driftwatch: %d records held in memory (no room in the spool) are lost", held
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
                if self.spool is not None and time.monotonic() - last_scan > 30:
                    last_scan = time.monotonic()  # adopt files of clients that died
                    self._adopt(p for p in self.spool.scan() if p not in self._known)
            except Exception:  # never let the writer die; records stay queued
                log.exception("driftwatch: could not spool records; will retry")
                time.sleep(1)

    def _drain(self) -> None:
        """Move every queued record into batches (spool files), a batch per (kind, model)."""
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
                    items = [
                        self._batch(kind, model, records)
                        for (kind, model), records in groups.items()
                    ]
                except BaseException:
                    with self._state:  # put them back, in order, to be tried again
                        for (kind, model), records in reversed(groups.items()):
                            queue.extendleft((kind, model, r) for r in reversed(records))
                        self._draining -= taken
                    raise
                with self._state:
                    self._draining -= taken
                    for item in items:
                        if item is not None:
                            self._enqueue(item)
                    self._state.notify_all()

    def _batch(self, kind: str, model: str, records: list[Any]) -> _Item | None:
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
        return self._store(kind, model, len(records), body)

    def _store(self, kind: str, model: str, count: int, body: bytes) -> _Item | None:
        """A batch in the spool; else, when it has no room, in memory; else dropped."""
        if self.spool is not None:
            try:
                path = self.spool.write(kind=kind, model=model, count=count, body=body)
            except SpoolFull:
                if not self._at_cap:
                    self._at_cap = True
                    log.warning(
                        "driftwatch: the spool %s reached its cap of %d bytes (max_spool_bytes); "
                        "new batches wait in memory (up to %d records), beyond that they are "
                        "lost and counted in client.dropped",
                        self.spool.directory,
                        self.spool.max_bytes,
                        self.max_queue,
                    )
            except OSError as error:
                if not self._disk_error:
                    self._disk_error = True
                    log.warning(
                        "driftwatch: cannot write to the spool %s (%s); new batches wait in "
                        "memory (up to %d records), beyond that they are lost and counted in "
                        "client.dropped",
                        self.spool.directory,
                        error,
                        self.max_queue,
                    )
            else:
                cap = self.spool.max_bytes
                if self._disk_error or (self._at_cap and cap and self.spool.size <= cap // 2):
                    # An episode at the cap ends once the spool is half empty, not at each
                    # small batch that still fits (one log line an episode, not one a file).
                    log.info("driftwatch: the spool %s takes batches again", self.spool.directory)
                    self._at_cap = self._disk_error = False
                if not self._at_cap:
                    with self._state:
                        self._end_dropping()
                return _Item(model, kind, count, path=path)
        with self._state:
            if self._held + count <= self.max_queue:
                self._held += count
                if self._held <= self.max_queue // 2:  # the episode ends with room to spare
                    self._end_dropping()
                return _Item(model, kind, count, body=body)
            self.dropped += count
            if not self._dropping:
                log.warning(
                    "driftwatch: the spool and memory are full: dropping new records "
                    "(counted in client.dropped) until the collector takes some"
                )
            self._dropping += count
        return None

    def _end_dropping(self) -> None:
        """Called with ``_state`` held."""
        if self._dropping:
            log.info(
                "driftwatch: records are kept again; %d were dropped meanwhile (%d in all)",
                self._dropping,
                self.dropped,
            )
            self._dropping = 0

    def _enqueue(self, item: _Item, *, front: bool = False) -> None:
        """Called with ``_state`` held."""
        lane = self._lanes.get(item.model)
        if lane is None:
            lane = self._lanes[item.model] = _Lane(deque())
        if front:
            lane.pending.appendleft(item)
        else:
            lane.pending.append(item)
        self._items += 1
        self._records += item.count
        if item.path is not None:
            self._known.add(item.path)

    def _settle(self, item: _Item) -> None:
        """Called with ``_state`` held: the batch is no longer this client's to send."""
        self._items -= 1
        self._records -= item.count
        if item.path is None:
            self._held -= item.count
        else:
            self._known.discard(item.path)

    def _adopt(self, paths: Iterable[Path]) -> None:
        """Spool files left by earlier clients (or others that died): sent like our own."""
        assert self.spool is not None
        found = []
        for path in paths:
            try:
                with open(path, "rb") as handle:
                    meta = orjson.loads(handle.readline())
                found.append(_Item(str(meta["model"]), str(meta["kind"]), int(meta["count"]), path))
            except FileNotFoundError:
                continue
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                # Unreadable: claiming it moves it aside and says so.
                found.append(_Item("", "", 0, path))
        if found:
            with self._state:
                for item in found:
                    self._enqueue(item)
                self._state.notify_all()

    # -- senders: batches -> collector, model by model ---------------------------------------

    def _next_item(self) -> tuple[_Lane, _Item] | None:
        with self._state:
            while True:
                now = time.monotonic()
                chosen = None
                for model, lane in self._lanes.items():
                    if not lane.pending or lane.retry_at > now:
                        continue
                    if lane.failures and lane.in_flight:
                        continue  # a failing model gets one request at a time
                    if lane.in_flight == 0:
                        chosen = model
                        break
                    if chosen is None:
                        chosen = model
                if chosen is not None:
                    lane = self._lanes.pop(chosen)
                    self._lanes[chosen] = lane  # to the end: the next sender serves others first
                    lane.in_flight += 1
                    return lane, lane.pending.popleft()
                if self._stopping.is_set():
                    return None
                waits = [lane.retry_at - now for lane in self._lanes.values() if lane.pending]
                self._state.wait(max(0.01, min([0.5, *waits])))

    def _send_loop(self) -> None:
        while True:
            got = self._next_item()
            if got is None:
                return
            lane, item = got
            claimed = None
            outcome = _RETRY
            try:
                if item.path is None:
                    assert item.body is not None
                    batch = Batch(None, item.kind, item.model, item.count, item.body)
                else:
                    assert self.spool is not None
                    claimed = self.spool.claim(item.path)
                    if claimed is None:  # another client has it, or it is gone
                        outcome = _DONE
                        with self._state:
                            self._settle(item)
                        continue
                    batch = claimed[1]
                outcome = self._deliver(lane, batch)
                if outcome == _DONE:
                    if claimed is not None:
                        assert item.path is not None
                        assert self.spool is not None
                        self.spool.finish(claimed[0], item.path)
                        claimed = None
                    with self._state:
                        self._settle(item)
            except Exception:
                log.exception("driftwatch: unexpected error sending a batch; will retry")
                with self._state:
                    lane.back_off(self.max_backoff, None)
            finally:
                if claimed is not None:
                    self.spool.release(claimed[0])  # type: ignore[union-attr]
                with self._state:
                    lane.in_flight -= 1
                    if outcome != _DONE:
                        lane.pending.appendleft(item)
                    self._state.notify_all()

    def _deliver(self, lane: _Lane, batch: Batch) -> str:
        """Send one batch: _DONE when it is settled (acknowledged, refused for good or set
        aside), else _RETRY (the lane backs off)."""
        try:
            response = self._http.post(
                f"/api/v1/models/{batch.model}/{batch.kind}", content=batch.body
            )
        except httpx.HTTPError as error:
            with self._state:
                lane.back_off(self.max_backoff, None)
            log.warning(
                "driftwatch: collector %s unreachable (%s); %d %s of model %r kept and retried",
                self.url,
                type(error).__name__,
                batch.count,
                batch.kind,
                batch.model,
            )
            return _RETRY
        status = response.status_code
        if status in (200, 413) or status in UNACCEPTABLE:
            with self._state:
                lane.failures = lane.tries = 0
                lane.refused_since = None
                lane.set_aside = False
            if status == 200:
                self._report_rejections(batch, response)
            elif status == 413 and batch.count > 1:
                self._split(batch)
            else:
                self._reject_batch(batch, response)
            return _DONE
        if status < 500 and status not in RETRYABLE and status not in (401, 403):
            # Not a passing failure, and not about the key: about this model (404: no such
            # model). Retried for give_up_after, then set aside, so it never waits forever.
            with self._state:
                now = time.monotonic()
                if lane.refused_since is None:
                    lane.refused_since, lane.tries = now, 0
                lane.tries += 1
                if lane.set_aside or now - lane.refused_since >= self.give_up_after:
                    lane.set_aside = True
                    lane.retry_at = now
                    since, tries = now - lane.refused_since, lane.tries
                else:
                    since = None
                    lane.back_off(self.max_backoff, response.headers.get("retry-after"))
            if since is not None:
                self._set_aside(batch, response, since, tries)
                return _DONE
            retried = f"retried for up to {self.give_up_after:.0f} s, then set aside"
        else:
            with self._state:
                lane.back_off(self.max_backoff, response.headers.get("retry-after"))
            retried = "kept and retried"
        level = logging.WARNING if status in RETRYABLE else logging.ERROR
        log.log(
            level,
            "driftwatch: collector answered %d for %d %s of model %r (%s); %s",
            status,
            batch.count,
            batch.kind,
            batch.model,
            _detail(response),
            retried,
        )
        return _RETRY

    def _split(self, batch: Batch) -> None:
        records = _decode(batch.body)
        half = len(records) // 2
        parts = [records[:half], records[half:]]
        items = [
            self._store(batch.kind, batch.model, len(part), _encode(batch.kind, part))
            for part in parts
        ]
        with self._state:
            for item in reversed(items):
                if item is not None:
                    self._enqueue(item, front=True)

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

    def _record_ids(self, batch: Batch) -> list[Any]:
        try:
            records = _decode(batch.body)
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
            return [None] * batch.count
        return [_record_id(r) if isinstance(r, tuple | dict) else None for r in records]

    def _list_rejected(self, batch: Batch, reason: str) -> None:
        for pid in self._record_ids(batch):
            self.rejected.append(RejectedRecord(batch.model, batch.kind, pid, reason))

    def _reject_batch(self, batch: Batch, response: httpx.Response) -> None:
        error = _detail(response)
        self._list_rejected(batch, error)
        log.error(
            "driftwatch: the collector refused a batch of %d %s of model %r (%d: %s); not retried",
            batch.count,
            batch.kind,
            batch.model,
            response.status_code,
            error,
        )

    def _set_aside(self, batch: Batch, response: httpx.Response, since: float, tries: int) -> None:
        reason = (
            f"set aside: the collector answered {response.status_code} "
            f"({_detail(response)}) {tries} times over {since:.0f} s"
        )
        self.set_aside += batch.count
        self._list_rejected(batch, reason)
        log.error(
            "driftwatch: %d %s of model %r %s; listed in client.rejected, not sent",
            batch.count,
            batch.kind,
            batch.model,
            reason,
        )


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))[:500]
    except ValueError:
        return response.text[:500]


_RESERVED = frozenset({
    "prediction", "prediction_id", "timestamp", "model_version", "features", "prediction_scores",
})  # fmt: skip


def _scores_prediction(prediction: Any, scores: Mapping[Any, float]) -> dict[str, float]:
    """``prediction_scores`` as the body's prediction object (class names as text). A
    ``prediction`` given beside them must be their most probable class (the first in sorted
    order among tied ones, as the collector decides)."""
    probabilities = {str(name): float(value) for name, value in scores.items()}
    if prediction is not None and probabilities:
        best = max(sorted(probabilities), key=lambda name: probabilities[name])
        if str(prediction) != best:
            raise ValueError(
                f"log_prediction: prediction {prediction!r} is not the most probable class of "
                f"prediction_scores ({best!r})"
            )
    return probabilities


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
