"""Validation of ingest batches: pure, no database.

Every record is checked on its own, so one bad record never blocks the valid ones of its batch;
each rejection names the record (its index and prediction id), the field and what is wrong.

Predictions are validated column by column: a feature column whose values all have the right
type is converted in one numpy call, and only a column holding a bad value is walked element by
element to say which records are wrong. Batches arrive either as the contract's list of record
objects or as the SDK's columnar body; both become the same raw columns first.
"""

from __future__ import annotations

import base64
import binascii
import math
import reprlib
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.core.retention import Retention
from driftwatch.core.retention import describe as describe_age
from driftwatch.core.specs import EMBEDDING, EmbeddingSpec, FeatureSpec
from driftwatch.core.time import iso
from driftwatch.ingest import embedding_values
from driftwatch.ingest.embedding_values import EmbeddingColumn
from driftwatch.storage.columns import PredictionColumns
from driftwatch.text import CONTROL, CONTROL_PROBLEM

MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 1000
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class Rejection:
    index: int
    prediction_id: str | None
    error: str
    record: Any


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record of a batch that is not JSON on its own (``NaN``, a lone surrogate, nesting
    deeper than 1024 levels: see ``ingest.jsontext``), kept in its place to be rejected alone:
    why, its text as sent, and its ``prediction_id`` where one could be read from the text."""

    error: str
    text: str
    prediction_id: str | None = None


class RecordError(ValueError):
    """One record is invalid; the message says which field and why."""


@dataclass(slots=True)
class ValidPredictions:
    columns: PredictionColumns
    classes: ModelClasses  # a binary model's classes, with what this batch's predictions show
    rejected: list[Rejection] = field(default_factory=list)
    in_batch_duplicates: int = 0


@dataclass(slots=True)
class ValidGroundTruth:
    """Rows ``(prediction_id, label_value, label_class, ts)``."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    in_batch_duplicates: int = 0


@dataclass(slots=True)
class Sparse:
    """A feature column of a batch of records that give it in few of them: their positions
    and values only, so that a batch costs memory in proportion to what it holds, not its
    records times every feature any record names."""

    count: int
    positions: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def dense(self) -> list[Any]:
        out: list[Any] = [None] * self.count
        for position, value in zip(self.positions, self.values, strict=True):
            out[position] = value
        return out


Column = list[Any] | FloatArray | Sparse | EmbeddingColumn


@dataclass(slots=True)
class RawColumns:
    """A batch as parallel lists, before any value is checked."""

    count: int
    prediction_id: list[Any]
    timestamp: list[Any]
    prediction: list[Any]
    model_version: list[Any]
    features: dict[str, Column]
    record: Callable[[int], Any]  # the record as sent, kept with its rejection
    errors: dict[int, str] = field(default_factory=dict)  # structural problems found so far
    label: list[Any] | None = None  # baselines only: labels, None where a record has none


# -- single values -------------------------------------------------------------------------


NUL = "\x00"  # Postgres text cannot hold it


def _no_nul(values: list[Any]) -> bool:
    """No string among ``values`` holds a NUL character (one C-speed pass)."""
    return NUL not in "".join(v for v in values if type(v) is str)


def bounded_repr(**limits: int) -> reprlib.Repr:
    """A ``reprlib.Repr`` with these limits (``maxlevel=4``, ...)."""
    short = reprlib.Repr()
    for name, value in limits.items():
        setattr(short, name, value)
    return short


_SHORT = bounded_repr(maxlevel=4, maxstring=100, maxlong=100, maxother=100)


def describe(value: Any) -> str:
    # reprlib: a few levels and items of a nested value, never a repr of all of it (a value
    # nested a thousand levels deep would exhaust the recursion limit; a huge one, memory)
    text = _SHORT.repr(value) if isinstance(value, list | dict | tuple | set) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_timestamp(value: Any, field_name: str = "timestamp") -> datetime:
    """An ISO 8601 string or Unix seconds; a time without a zone is taken as UTC."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(
                f"{field_name}: expected an ISO 8601 time such as '2026-11-20T10:00:00Z', "
                f"got {describe(value)}"
            ) from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise RecordError(f"{field_name}: expected a finite number of seconds, got {value}")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise RecordError(f"{field_name}: {value} is out of range") from None
    raise RecordError(f"{field_name}: expected an ISO 8601 string, got {describe(value)}")


def identifier(value: Any, field_name: str) -> str:
    if isinstance(value, str):
        if not value:
            raise RecordError(f"{field_name}: must not be empty")
        if len(value) > MAX_ID_LENGTH:
            raise RecordError(f"{field_name}: longer than {MAX_ID_LENGTH} characters")
        if NUL in value:
            raise RecordError(f"{field_name}: must not contain NUL characters")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RecordError(f"{field_name}: expected a string, got {describe(value)}")


def number_or_class(value: Any, field_name: str) -> tuple[float | None, str | None]:
    """A prediction or label: a number (score, probability, value) or a class name."""
    if isinstance(value, bool):
        return (1.0 if value else 0.0), None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise RecordError(f"{field_name}: expected a finite number, got {value}")
        return number, None
    if isinstance(value, str):
        if not value:
            raise RecordError(f"{field_name}: must not be empty")
        if len(value) > MAX_TEXT_LENGTH:
            raise RecordError(f"{field_name}: longer than {MAX_TEXT_LENGTH} characters")
        if NUL in value:
            raise RecordError(f"{field_name}: must not contain NUL characters")
        return None, value
    if value is None:
        raise RecordError(f"{field_name}: required")
    raise RecordError(f"{field_name}: expected a number or a class name, got {describe(value)}")


# -- labels and predictions, in the form of the model's task ------------------------------------
# Normalised once, here, so that accuracy compares like with like: a binary label is 0/1 (or,
# for a model whose predictions are class names, one of those names), a multiclass label is a
# class name written one way, a regression label is a number.

BINARY = "binary_classification"
MULTICLASS = "multiclass_classification"
REGRESSION = "regression"
_TRUTH_WORDS = {"false": 0.0, "true": 1.0}


@dataclass(frozen=True, slots=True)
class ModelClasses:
    """What a binary model's stored predictions show of its classes: numbers (scores, or 0/1:
    its classes are 0 and 1) or class names (its classes are those names). Neither before its
    first prediction."""

    scores: bool = False
    names: frozenset[str] = frozenset()
    # a multiclass model's classes, sorted, as its stored per-class probabilities name them
    probabilities: tuple[str, ...] = ()

    def listing(self) -> str:
        return " or ".join(repr(name) for name in sorted(self.names))


UNKNOWN_CLASSES = ModelClasses()


def number_in_text(text: str) -> float | None:
    """The finite number a text spells ("3.5", "1", "-2e3"), or None."""
    if "_" in text:  # float() reads "1_000"; a label that spells it is not meant as a number
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def class_name(value: float | str) -> str:
    """A class as text, numbers written one way: 1, 1.0 and "1" are all "1"."""
    if isinstance(value, str):
        number = number_in_text(value)
        if number is None:
            return value
        value = number
    return str(int(value)) if value.is_integer() else repr(value)


def zero_or_one(value: float | str) -> float | None:
    """A binary label written as 0/1, 0.0/1.0, "0"/"1" or true/false (any case), as 0.0 or
    1.0; None for anything else."""
    if isinstance(value, str):
        word = _TRUTH_WORDS.get(value.strip().lower())
        if word is not None:
            return word
        number = number_in_text(value)
        if number is None:
            return None
        value = number
    return value if value in (0.0, 1.0) else None


def prediction_value(value: Any, task: str) -> tuple[float | None, str | None]:
    """A prediction as ``(number, None)`` or ``(None, class name)``: numbers written as text
    ("0.83") are numbers, and a binary model's true/false is 1/0."""
    if isinstance(value, bool) and task == REGRESSION:
        raise RecordError(f"prediction: a regression model predicts numbers, got {value}")
    number, text = number_or_class(value, "prediction")
    if text is None:
        return number, None
    if task == BINARY and text.strip().lower() in _TRUTH_WORDS:
        return _TRUTH_WORDS[text.strip().lower()], None
    number = number_in_text(text)
    if number is not None:
        return number, None
    if task == REGRESSION:
        raise RecordError(f"prediction: a regression model predicts numbers, got {describe(value)}")
    return None, text


def label_value(
    value: Any, task: str, classes: ModelClasses = UNKNOWN_CLASSES
) -> tuple[float | None, str | None]:
    """A label as stored: ``(number, None)`` for regression and binary 0/1, ``(None, name)``
    for a class name. Raises RecordError saying what the task expects."""
    if isinstance(value, bool) and task == REGRESSION:
        raise RecordError(f"label: a regression model's labels are numbers, got {value}")
    number, text = number_or_class(value, "label")
    given = number if text is None else text
    assert given is not None
    if task == REGRESSION:
        number = number if text is None else number_in_text(text)
        if number is None:
            raise RecordError(
                f"label: a regression model's labels are numbers, got {describe(value)}"
            )
        return number, None
    if task != BINARY:
        return None, class_name(given)
    if classes.names:
        if text is not None and (text in classes.names or len(classes.names) < 2):
            return None, text
        raise RecordError(
            f"label: expected {classes.listing()} (the classes this binary classification "
            f"model predicts), got {describe(value)}"
        )
    binary = zero_or_one(given)
    if binary is not None:
        return binary, None
    if text is not None and not classes.scores:
        return None, text  # before the model's first prediction: a class name, checked later
    raise RecordError(
        f"label: expected 0 or 1 (or true/false) for a binary classification model, "
        f"got {describe(value)}"
    )


@dataclass(slots=True)
class LabelCheck:
    """A batch's labels, checked in turn: each in the form of the task and of the model's
    ``classes``; and, binary, at most two class names: those its predictions show, its stored
    labels give (``named``) or the labels before in the batch. A third one is refused."""

    task: str
    classes: ModelClasses = UNKNOWN_CLASSES
    named: frozenset[str] = frozenset()
    names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.names |= self.classes.names | self.named

    def value(self, value: Any) -> tuple[float | None, str | None]:
        number, name = label_value(value, self.task, self.classes)
        if self.task != BINARY or name is None or name in self.names:
            return number, name
        if len(self.names) >= 2:
            known = ModelClasses(names=frozenset(self.names))
            raise RecordError(
                f"label: a binary classification model has two classes, here "
                f"{known.listing()}; got {describe(value)}"
            )
        self.names.add(name)
        return number, name


def numerical_value(name: str, value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
        raise RecordError(f"feature {name!r}: expected a finite number, got {value}")
    raise RecordError(f"feature {name!r}: expected a number, got {describe(value)}")


def categorical_value(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        if value is not None and len(value) > MAX_TEXT_LENGTH:
            raise RecordError(f"feature {name!r}: longer than {MAX_TEXT_LENGTH} characters")
        if value is not None and NUL in value:
            raise RecordError(f"feature {name!r}: must not contain NUL characters")
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise RecordError(
        f"feature {name!r}: expected a category (string or number), got {describe(value)}"
    )


# -- schema inference -------------------------------------------------------------------------


def bad_name(name: Any) -> str | None:
    """What is wrong with a feature name a batch gives, or None."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if len(name) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters"
    if CONTROL.search(name):
        return CONTROL_PROBLEM
    return None


def infer_features(raw: RawColumns) -> list[FeatureSpec]:
    """Feature schema from a first batch, in order of first appearance.

    A feature is numerical when most of its present values are numbers, so that one stray
    string is rejected as a bad value rather than turning the feature categorical.
    """
    specs = []
    for name, values in raw.features.items():
        if bad_name(name) is not None:
            continue  # its records are rejected, saying why (``_check_unknown``)
        if isinstance(values, np.ndarray):
            specs.append(FeatureSpec(name, "numerical"))
            continue
        if isinstance(values, EmbeddingColumn) or _holds_arrays(values):
            continue  # an embedding is declared with its dimensions, never inferred
        numbers = others = 0
        for value in values.values if isinstance(values, Sparse) else values:
            if isinstance(value, int | float) and not isinstance(value, bool):
                numbers += 1
            elif value is not None:
                others += 1
        specs.append(FeatureSpec(name, "numerical" if numbers >= others else "categorical"))
    return specs


def _holds_arrays(values: list[Any] | Sparse) -> bool:
    present = values.values if isinstance(values, Sparse) else values
    return any(isinstance(v, list) for v in present)


# -- batches into raw columns -------------------------------------------------------------------


def columns_from_records(records: list[Any]) -> RawColumns:
    """The contract's ``{"records": [...]}`` as columns; a feature absent from a record is None."""
    count = len(records)
    errors: dict[int, str] = {}
    names: dict[str, None] = {}
    feature_dicts: list[dict[str, Any]] = []
    empty: dict[str, Any] = {}
    given = 0  # feature values the records give
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors[index] = (record.error if isinstance(record, Unreadable)
                             else f"expected an object, got {describe(record)}")  # fmt: skip
            feature_dicts.append(empty)
            continue
        features = record.get("features")
        if not isinstance(features, dict):
            errors[index] = f"features: expected an object, got {describe(features)}"
            feature_dicts.append(empty)
            continue
        feature_dicts.append(features)
        given += len(features)
        for name in features:
            if name not in names:
                names[name] = None
    rows = [r if isinstance(r, dict) else empty for r in records]
    if given * 2 >= count * len(names):  # most records give most features: plain lists
        columns: dict[str, Column] = {name: [f.get(name) for f in feature_dicts] for name in names}
    else:
        columns = _sparse_columns(feature_dicts, names, count)
    return RawColumns(
        count=count,
        prediction_id=[r.get("prediction_id") for r in rows],
        timestamp=[r.get("timestamp") for r in rows],
        prediction=[r.get("prediction", _ABSENT) for r in rows],
        model_version=[r.get("model_version") for r in rows],
        features=columns,
        record=records.__getitem__,
        errors=errors,
        label=[r.get("label") for r in rows],
    )


def _sparse_columns(
    feature_dicts: list[dict[str, Any]], names: dict[str, None], count: int
) -> dict[str, Column]:
    sparse = {name: Sparse(count) for name in names}
    for index, features in enumerate(feature_dicts):
        for name, value in features.items():
            column = sparse[name]
            column.positions.append(index)
            column.values.append(value)
    return dict(sparse)


def columns_from_body(columns: Any) -> RawColumns:
    """The SDK's columnar body ``{"columns": {"prediction": [...], "features": {...}}}``.

    Raises RecordError for a body whose columns do not line up (there is no record to blame).
    """
    if not isinstance(columns, dict):
        raise RecordError("columns: expected an object of lists")
    predictions = columns.get("prediction")
    if not isinstance(predictions, list):
        raise RecordError("columns.prediction: required, a list")
    count = len(predictions)

    def column(name: str) -> list[Any]:
        value = columns.get(name)
        if value is None:
            return [None] * count
        if not isinstance(value, list) or len(value) != count:
            raise RecordError(f"columns.{name}: expected a list of {count} values")
        return value

    features = columns.get("features") or {}
    if not isinstance(features, dict):
        raise RecordError("columns.features: expected an object of lists")
    features = {name: _feature_column(name, values, count) for name, values in features.items()}
    raw = RawColumns(
        count=count,
        prediction_id=column("prediction_id"),
        timestamp=column("timestamp"),
        prediction=predictions,
        model_version=column("model_version"),
        features=features,
        record=lambda i: None,
    )
    raw.record = lambda i: _record_at(raw, i)
    return raw


def _feature_column(name: str, values: Any, count: int) -> list[Any] | FloatArray | EmbeddingColumn:
    """A feature column: a JSON list, or ``{"f8": base64}`` of little-endian float64 values
    (NaN = missing), which the SDK sends for columns of floats, or ``{"f4": ...}`` for an
    embedding's arrays (see ``ingest.embedding_values``)."""
    if isinstance(values, dict) and "f4" in values and isinstance(values["f4"], str):
        column = embedding_values.from_body(name, values, count)
        if isinstance(column, str):
            raise RecordError(column)
        return column
    if isinstance(values, dict) and set(values) == {"f8"} and isinstance(values["f8"], str):
        try:
            array = np.frombuffer(base64.b64decode(values["f8"], validate=True), dtype="<f8")
        except (binascii.Error, ValueError):
            raise RecordError(f"columns.features.{name}: 'f8' is not base64 float64") from None
        if len(array) != count:
            raise RecordError(f"columns.features.{name}: expected {count} values")
        return array
    if not isinstance(values, list) or len(values) != count:
        raise RecordError(f"columns.features.{name}: expected a list of {count} values")
    return values


def _as_list(values: Column) -> list[Any]:
    """A feature column as Python values, NaN of a float64 column as None (missing)."""
    if isinstance(values, Sparse):
        return values.dense()
    if isinstance(values, EmbeddingColumn):
        return values.values()
    if isinstance(values, np.ndarray):
        return [None if v != v else v for v in values.tolist()]
    return values


def _value_at(column: Column, index: int) -> Any:
    if isinstance(column, EmbeddingColumn):
        return column.value(index)
    if isinstance(column, Sparse):
        return next((v for p, v in zip(column.positions, column.values, strict=True)
                     if p == index), None)  # fmt: skip
    return _as_list(column[index : index + 1])[0]


def _record_at(raw: RawColumns, index: int) -> dict[str, Any]:
    values = {name: _value_at(column, index) for name, column in raw.features.items()}
    return {
        "prediction_id": raw.prediction_id[index],
        "timestamp": raw.timestamp[index],
        "features": {n: v for n, v in values.items() if v is not None},
        "prediction": raw.prediction[index],
        "model_version": raw.model_version[index],
    }


_ABSENT = object()


# -- column checks: fast path for clean columns, element by element otherwise ----------------
# A column is clean when the set of its value types (``map(type, ...)`` runs at C speed) is
# within what the field allows; only then is it converted in one numpy call.

_STR_TYPE = frozenset({str})
_FLOAT_TYPE = frozenset({float})


def _check_ids(values: list[Any], errors: dict[int, str]) -> list[str]:
    if (
        _STR_TYPE.issuperset(map(type, values))
        and (not values or (0 < min(map(len, values)) and max(map(len, values)) <= MAX_ID_LENGTH))
        and _no_nul(values)
    ):
        return values
    checked = []
    for index, value in enumerate(values):
        try:
            checked.append(
                uuid.uuid4().hex if value is None else identifier(value, "prediction_id")
            )
        except RecordError as error:
            errors.setdefault(index, str(error))
            checked.append("")
    return checked


_FIRST_US = -62_135_596_800 * 10**6  # 0001-01-01, the first time Python's datetime holds
_LAST_US = 253_402_300_799 * 10**6  # 9999-12-31T23:59:59
_AHEAD_US = 86_400 * 10**6  # a prediction may be dated up to a day after its receipt


def _check_timestamps(values: list[Any], errors: dict[int, str], received_us: int) -> IntArray:
    if _FLOAT_TYPE.issuperset(map(type, values)):  # the SDK sends Unix seconds
        seconds = np.asarray(values, dtype=np.float64)
        micros = np.round(seconds * 1e6)
        if np.all((micros >= _FIRST_US) & (micros <= _LAST_US)):
            return micros.astype(np.int64)
    out = np.empty(len(values), dtype=np.int64)
    for index, value in enumerate(values):
        if value is None:
            out[index] = received_us
            continue
        try:
            out[index] = _to_us(parse_timestamp(value))
        except RecordError as error:
            errors.setdefault(index, str(error))
            out[index] = 0
    return out


DEFAULT_MAX_AGE = timedelta(days=365)  # DRIFTWATCH_MAX_RECORD_AGE


def age_refusal(moment: datetime, max_age: timedelta, received_at: datetime) -> str | None:
    """Why a record dated ``moment`` is refused as too old (``max_age`` before its receipt)."""
    oldest = received_at - max_age
    if moment >= oldest:
        return None
    return (
        f"timestamp {iso(moment)}: older than {describe_age(max_age)} "
        f"(DRIFTWATCH_MAX_RECORD_AGE): records dated before {iso(oldest)} are refused"
    )


def ahead_refusal(moment: datetime, received_at: datetime) -> str | None:
    if moment <= received_at + timedelta(microseconds=_AHEAD_US):
        return None
    return (
        f"timestamp {iso(moment)}: more than a day after the collector's clock "
        f"({iso(received_at)}); is the sender's clock right?"
    )


def _check_stored_time(
    timestamps: IntArray, errors: dict[int, str], retention: Retention, received_at: datetime,
    max_age: timedelta,
) -> None:  # fmt: skip
    """A logged prediction's time must lie between the retention cutoff (and ``max_age``
    before its receipt) and a day after it: later means the sender's clock is wrong (and would
    hold a window open forever); older would make a partition for every month it reaches."""
    for index in np.flatnonzero(timestamps < _to_us(received_at - max_age)).tolist():
        moment = _UNIX_EPOCH + timedelta(microseconds=int(timestamps[index]))
        errors.setdefault(index, age_refusal(moment, max_age, received_at) or "")
    latest = _to_us(received_at) + _AHEAD_US
    for index in np.flatnonzero(timestamps > latest).tolist():
        moment = _UNIX_EPOCH + timedelta(microseconds=int(timestamps[index]))
        errors.setdefault(index, ahead_refusal(moment, received_at) or "")
    cutoff = retention.cutoff(received_at)
    if cutoff is None:
        return
    for index in np.flatnonzero(timestamps < _to_us(cutoff)).tolist():
        moment = _UNIX_EPOCH + timedelta(microseconds=int(timestamps[index]))
        errors.setdefault(index, f"timestamp {iso(moment)}: {retention.refusal(cutoff)}")


def _to_us(moment: datetime) -> int:
    delta = moment - _UNIX_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _check_predictions(
    values: list[Any], errors: dict[int, str], task: str, known: ModelClasses,
    required: bool = True,
) -> tuple[FloatArray, list[str | None], ModelClasses]:  # fmt: skip
    """Predictions as numbers and class names, and (binary) the classes they show; a binary
    model's predictions are all numbers or all names of its two classes."""
    if _FLOAT_TYPE.issuperset(map(type, values)) and not (task == BINARY and known.names):
        numbers = np.asarray(values, dtype=np.float64)
        if np.all(np.isfinite(numbers)):
            return numbers, [None] * len(values), ModelClasses(scores=known.scores or bool(values))
    numbers = np.full(len(values), np.nan)
    classes: list[str | None] = [None] * len(values)
    for index, value in enumerate(values):
        try:
            if value is _ABSENT or (value is None and not required):
                if required:
                    raise RecordError("prediction: required")
                continue
            number, label = prediction_value(value, task)
        except RecordError as error:
            errors.setdefault(index, str(error))
            continue
        if number is None:
            classes[index] = label
        else:
            numbers[index] = number
    if task != BINARY:
        return numbers, classes, known
    return numbers, classes, _one_form(numbers, classes, errors, known)


# -- per-class probabilities (a multiclass model) ------------------------------------------------
# ``"prediction": {"cat": 0.7, "dog": 0.3}``: the predicted class is the most probable one (the
# first in sorted order among tied ones), stored where a class prediction is; the probabilities
# are kept beside it (the chunk's ``prediction_scores``).

PROBABILITY_SUM_TOLERANCE = 0.01  # |sum - 1| allowed: probabilities rounded to 2 decimals pass


@dataclass(slots=True)
class Probabilities:
    """A batch's per-class probabilities: (records, classes) in the sorted ``classes``' order,
    NaN on the rows of records that gave a class (or were refused)."""

    classes: tuple[str, ...]
    scores: FloatArray


def probability_prediction(value: dict[Any, Any]) -> dict[str, float]:
    """A prediction given as class -> probability, checked: at least two classes, names
    written one way (as labels are: 1, 1.0 and "1" are "1"), each probability a finite number
    in [0, 1], summing to 1 within ``PROBABILITY_SUM_TOLERANCE``."""
    if len(value) < 2:
        raise RecordError(
            f"prediction: per-class probabilities name at least two classes, got {describe(value)}"
        )
    out: dict[str, float] = {}
    for key, probability in value.items():
        _number, text = number_or_class(key if isinstance(key, str) else str(key),
                                        "prediction: a class name")  # fmt: skip
        name = class_name(text or str(key))
        if name in out:
            raise RecordError(f"prediction: class {name!r} is given twice")
        where = f"prediction[{describe(key)}]"
        if isinstance(probability, bool) or not isinstance(probability, int | float):
            raise RecordError(
                f"{where}: expected a probability in [0, 1], got {describe(probability)}"
            )
        number = float(probability)
        if not (math.isfinite(number) and 0.0 <= number <= 1.0):
            raise RecordError(f"{where}: expected a probability in [0, 1], got {probability!r}")
        out[name] = number
    total = math.fsum(out.values())
    if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
        raise RecordError(
            f"prediction: the class probabilities sum to {total:.6g}; they must sum to 1 "
            f"(within {PROBABILITY_SUM_TOLERANCE})"
        )
    return out


def _check_probabilities(
    values: list[Any], errors: dict[int, str], known: ModelClasses
) -> tuple[list[Any], Probabilities | None]:
    """The batch's predictions with each probability object replaced by its predicted class,
    and the probabilities (None: the batch has none). Each object must name the model's
    classes: those its stored probabilities name, else those of the batch's first valid one."""
    positions = [i for i, value in enumerate(values) if type(value) is dict]
    if not positions:
        return values, None
    checked: dict[int, dict[str, float]] = {}
    for index in positions:
        try:
            checked[index] = probability_prediction(values[index])
        except RecordError as error:
            errors.setdefault(index, str(error))
    classes = known.probabilities or (
        tuple(sorted(next(iter(checked.values())))) if checked else ()
    )
    if not classes:
        return values, None
    listing = ", ".join(repr(name) for name in classes)
    scores = np.full((len(values), len(classes)), np.nan)
    out = list(values)
    for index, given in checked.items():
        if tuple(sorted(given)) != classes:
            errors.setdefault(index, (
                f"prediction: expected the probabilities of this model's classes {listing}; "
                f"got {', '.join(repr(name) for name in sorted(given))}"
            ))  # fmt: skip
            continue
        row = np.array([given[name] for name in classes])
        scores[index] = row
        out[index] = classes[int(np.argmax(row))]  # the first of tied maxima: sorted order
    return out, Probabilities(classes, scores)


def _one_form(
    numbers: FloatArray, classes: list[str | None], errors: dict[int, str], known: ModelClasses
) -> ModelClasses:
    """Refuse a binary prediction of the other form than the model's (scores or class names,
    as stored, else as most of the batch), or a third class name; the classes that follow."""
    valid = [i for i in range(len(classes)) if i not in errors]
    named = [i for i in valid if classes[i] is not None]
    scored = [i for i in valid if not math.isnan(numbers[i])]
    if known.scores or (not known.names and len(scored) >= len(named)):
        for index in named:
            errors.setdefault(
                index,
                f"prediction: this binary classification model's predictions are scores (or "
                f"0/1), not class names; got {describe(classes[index])}",
            )
        return ModelClasses(scores=bool(known.scores or scored))
    names = set(known.names)
    by_count = Counter(classes[i] for i in named).most_common()
    for name, _ in by_count:
        if len(names) < 2 and name is not None:
            names.add(name)
    resolved = ModelClasses(names=frozenset(names))
    for index in scored:
        errors.setdefault(
            index,
            f"prediction: expected {resolved.listing()} (the classes this binary "
            f"classification model predicts), got {describe(float(numbers[index]))}",
        )
    for index in named:
        if classes[index] not in names:
            errors.setdefault(
                index,
                f"prediction: a binary classification model has two classes, here "
                f"{resolved.listing()}; got {describe(classes[index])}",
            )
    return resolved


def _check_labels(values: list[Any] | None, errors: dict[int, str], labels: LabelCheck) -> None:
    """Baseline labels: optional, each in the form the task and the model's classes expect."""
    for index, value in enumerate(values or ()):
        if value is not None and index not in errors:
            try:
                labels.value(value)
            except RecordError as error:
                errors[index] = str(error)


def _check_versions(values: list[Any], errors: dict[int, str]) -> list[str | None]:
    if all(v is None or (type(v) is str and 0 < len(v) <= MAX_ID_LENGTH) for v in values) and (
        _no_nul(values)
    ):
        return values
    checked: list[str | None] = []
    for index, value in enumerate(values):
        try:
            checked.append(None if value is None else identifier(value, "model_version"))
        except RecordError as error:
            errors.setdefault(index, str(error))
            checked.append(None)
    return checked


_NUMBER_TYPES = frozenset({float, int, type(None)})
_CATEGORY_TYPES = frozenset({str, type(None)})


def _fill_numerical(
    name: str, values: Column | None, errors: dict[int, str], out: FloatArray
) -> None:
    """Check a numerical column and write it into ``out`` (a column of the batch's matrix,
    NaN where no value is given): a sparse column only where its records give it."""
    if values is None:
        return
    if isinstance(values, EmbeddingColumn):  # arrays where numbers belong: each is refused
        values = _as_list(values)
    if not isinstance(values, Sparse):
        out[:] = _check_numerical(name, values, errors)
        return
    given = values.values
    if _NUMBER_TYPES.issuperset(map(type, given)):
        try:
            numbers = np.asarray(given, dtype=np.float64)
        except OverflowError:
            numbers = None
        if numbers is not None and not np.isinf(numbers).any():
            out[values.positions] = numbers
            return
    for position, value in zip(values.positions, given, strict=True):
        try:
            out[position] = numerical_value(name, value)
        except RecordError as error:
            errors.setdefault(position, str(error))


def _check_numerical(
    name: str, values: list[Any] | FloatArray, errors: dict[int, str]
) -> FloatArray:
    if isinstance(values, np.ndarray):
        if not np.isinf(values).any():
            return values
        values = _as_list(values)
    if _NUMBER_TYPES.issuperset(map(type, values)):
        try:
            numbers = np.asarray(values, dtype=np.float64)  # None becomes NaN
        except OverflowError:
            numbers = None
        if numbers is not None and not np.isinf(numbers).any():
            return numbers
    numbers = np.empty(len(values), dtype=np.float64)
    for index, value in enumerate(values):
        try:
            numbers[index] = numerical_value(name, value)
        except RecordError as error:
            errors.setdefault(index, str(error))
            numbers[index] = math.nan
    return numbers


def _check_categorical(name: str, values: Column, errors: dict[int, str]) -> list[str | None]:
    values = _as_list(values)
    if _CATEGORY_TYPES.issuperset(map(type, values)):
        present = [v for v in values if v is not None]
        if not present or (max(map(len, present)) <= MAX_TEXT_LENGTH and _no_nul(present)):
            return values
    checked: list[str | None] = []
    for index, value in enumerate(values):
        try:
            checked.append(categorical_value(name, value))
        except RecordError as error:
            errors.setdefault(index, str(error))
            checked.append(None)
    return checked


def _check_unknown(raw: RawColumns, known: dict[str, str], errors: dict[int, str]) -> None:
    unknown = [name for name in raw.features if name not in known]
    if not unknown:
        return
    listing = ", ".join(sorted(known)) or "none"
    for name in sorted(unknown, key=str):
        problem = bad_name(name)
        error = (
            f"feature {name!r}: not a feature of this model (known: {listing})" if problem is None
            else f"feature name {describe(name)}: {problem}"
        )  # fmt: skip
        column = raw.features[name]
        pairs = (
            zip(column.positions, column.values, strict=True) if isinstance(column, Sparse)
            else enumerate(_as_list(column))
        )  # fmt: skip
        for index, value in pairs:
            if value is not None:  # an unknown feature sent as null carries nothing: ignored
                errors.setdefault(index, error)


def _record_id(record: Any) -> str | None:
    if isinstance(record, Unreadable):
        return record.prediction_id
    if isinstance(record, dict):
        value = record.get("prediction_id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)[:MAX_ID_LENGTH]
    return None


def validate_columns(
    raw: RawColumns,
    features: list[FeatureSpec],
    *,
    task: str,
    received_at: datetime,
    require_prediction: bool = True,
    retention: Retention | None = None,
    known_classes: ModelClasses = UNKNOWN_CLASSES,
    label_names: frozenset[str] = frozenset(),
    max_age: timedelta = DEFAULT_MAX_AGE,
    embeddings: Sequence[EmbeddingSpec] = (),
) -> ValidPredictions:
    """Check every record; ``require_prediction=False`` for baselines (a training set may
    have labels and no predictions; their labels are checked too). With a ``retention``
    (predictions to be stored), records older than it keeps, or dated more than a day ahead,
    are refused, and so are those dated more than ``max_age`` before receipt.
    ``known_classes``: what a binary model's stored predictions are; ``label_names``: the
    class names its stored labels give. ``embeddings``: the model's embedding features, each
    value checked for its length and finite numbers."""
    errors = dict(raw.errors)
    known = {f.name: str(f.kind) for f in features} | {e.name: EMBEDDING for e in embeddings}
    ids = _check_ids(raw.prediction_id, errors)
    timestamps = _check_timestamps(raw.timestamp, errors, _to_us(received_at))
    if retention is not None:
        _check_stored_time(timestamps, errors, retention, received_at, max_age)
    predictions, probabilities = raw.prediction, None
    if task == MULTICLASS:
        predictions, probabilities = _check_probabilities(raw.prediction, errors, known_classes)
    values, classes, model_classes = _check_predictions(
        predictions, errors, task, known_classes, require_prediction
    )
    if probabilities is not None:
        model_classes = ModelClasses(probabilities=probabilities.classes)
    _check_labels(raw.label, errors, LabelCheck(task, model_classes, label_names))
    versions = _check_versions(raw.model_version, errors)
    # One matrix, column-major (as chunks store it): each column is checked into place, with
    # no other copy of the batch's numbers held at the same time.
    numerical = [f for f in features if f.kind == "numerical"]
    matrix = np.full((raw.count, len(numerical)), np.nan, order="F")
    for position, feature in enumerate(numerical):
        _fill_numerical(feature.name, raw.features.get(feature.name), errors, matrix[:, position])
    missing = [None] * raw.count
    categorical = [
        _check_categorical(f.name, raw.features.get(f.name, missing), errors)
        for f in features
        if f.kind == "categorical"
    ]
    embedding_matrices = [
        embedding_values.check_column(
            e.name, e.dimensions, _embedding_column(raw.features.get(e.name), raw.count), errors
        )
        for e in embeddings
    ]
    _check_unknown(raw, known, errors)

    keep: list[int] = []
    seen: set[str] = set()
    duplicates = 0
    for index, prediction_id in enumerate(ids):
        if index in errors:
            continue
        if prediction_id in seen:
            duplicates += 1
            continue
        seen.add(prediction_id)
        keep.append(index)
    rejected = [
        Rejection(index, _record_id(raw.record(index)), errors[index], raw.record(index))
        for index in sorted(errors)
    ]
    columns = PredictionColumns(
        prediction_ids=ids,
        timestamps_us=timestamps,
        model_versions=versions,
        prediction_values=values,
        prediction_classes=classes,
        num_values=matrix,
        cat_values=categorical,
        emb_values=embedding_matrices,
        emb_names=[e.name for e in embeddings],
        prediction_scores=None if probabilities is None else probabilities.scores,
        score_classes=() if probabilities is None else probabilities.classes,
    )
    if len(keep) != raw.count:
        columns = columns.take(keep)
    return ValidPredictions(columns, model_classes, rejected, duplicates)


def _embedding_column(values: Column | None, count: int) -> list[Any] | EmbeddingColumn:
    if values is None:
        return [None] * count
    if isinstance(values, EmbeddingColumn):
        return values
    return _as_list(values)


def validate_predictions(
    records: list[Any], features: list[FeatureSpec], *, task: str, received_at: datetime
) -> ValidPredictions:
    """Validate the contract's list of prediction records."""
    return validate_columns(
        columns_from_records(records), features, task=task, received_at=received_at
    )


KeyedRow = tuple[Any, tuple[Any, ...]]  # a record's idempotency key within the batch, its row


def _keyed(
    records: list[Any], *, joins: str, parse: Callable[[dict[str, Any], str], KeyedRow]
) -> ValidGroundTruth:
    """Records keyed by the prediction they join (labels, shadow predictions): each an object
    naming its ``prediction_id`` (``joins`` says what the id joins), the rest read by
    ``parse``, which returns the record's key and row. A key repeated in the batch counts once
    (the first)."""
    result = ValidGroundTruth()
    seen: set[Any] = set()
    for index, record in enumerate(records):
        try:
            if isinstance(record, Unreadable):
                raise RecordError(record.error)
            if not isinstance(record, dict):
                raise RecordError(f"expected an object, got {describe(record)}")
            if record.get("prediction_id") is None:
                raise RecordError(f"prediction_id: required, to join {joins}")
            key, row = parse(record, identifier(record["prediction_id"], "prediction_id"))
        except RecordError as error:
            result.rejected.append(Rejection(index, _record_id(record), str(error), record))
            continue
        if key in seen:
            result.in_batch_duplicates += 1
            continue
        seen.add(key)
        result.rows.append(row)
    return result


def validate_ground_truth(
    records: list[Any],
    *,
    task: str,
    received_at: datetime,
    retention: Retention | None = None,
    classes: ModelClasses = UNKNOWN_CLASSES,
    label_names: frozenset[str] = frozenset(),
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> ValidGroundTruth:
    """Rows ``(prediction_id, label_value, label_class, ts)``, each label in the form of the
    task (and, binary, of the ``classes`` its predictions show, and at most two class names
    with the ``label_names`` of its stored labels); with a ``retention``, labels older than it
    keeps are refused; so are labels dated more than ``max_age`` before receipt or more than a
    day after it."""
    labels = LabelCheck(task, classes, label_names)
    cutoff = retention.cutoff(received_at) if retention is not None else None

    def parse(record: dict[str, Any], prediction_id: str) -> KeyedRow:
        if "label" not in record:
            raise RecordError("label: required")
        raw_ts = record.get("timestamp")
        ts = received_at if raw_ts is None else parse_timestamp(raw_ts)
        if cutoff is not None and ts < cutoff:
            assert retention is not None
            raise RecordError(f"timestamp {iso(ts)}: {retention.refusal(cutoff)}")
        refusal = age_refusal(ts, max_age, received_at) or ahead_refusal(ts, received_at)
        if refusal is not None:
            raise RecordError(refusal)
        value, label = labels.value(record["label"])  # last: a class name counts if kept
        return prediction_id, (prediction_id, value, label, ts)

    return _keyed(records, joins="the label to its prediction", parse=parse)


def validate_shadow_predictions(records: list[Any], *, task: str) -> ValidGroundTruth:
    """Rows ``(prediction_id, model_version, prediction_value, prediction_class)`` of shadow
    predictions (CONTRACT section 10): each names the served prediction it shadows and its
    version, and predicts in the form of the task. A record repeated in the batch (same id
    and version) counts once."""

    def parse(record: dict[str, Any], prediction_id: str) -> KeyedRow:
        if record.get("model_version") is None:
            raise RecordError("model_version: required, the shadow version's name")
        version = identifier(record["model_version"], "model_version")
        if "prediction" not in record or record["prediction"] is None:
            raise RecordError("prediction: required")
        value, name = prediction_value(record["prediction"], task)
        return (prediction_id, version), (prediction_id, version, value, name)

    return _keyed(records, joins="the shadow prediction to the served one", parse=parse)
