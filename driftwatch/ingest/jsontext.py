"""A batch body as JSON, where one bad record does not sink the batch.

orjson refuses a whole document for one ``NaN`` or ``Infinity`` literal, one lone surrogate
(``"\\ud800"``), invalid UTF-8 or nesting deeper than 1024 levels. So: orjson on the whole body
first (the fast path, every well-formed batch); when that fails, the top-level ``records``
array is split into the raw text of each record (strings and their escapes respected), each
record is parsed alone, and one that fails becomes an ``Unreadable`` record, rejected by the
validation with its index and orjson's reason. Only a body whose envelope is broken (not an
object, an unterminated string, brackets that do not pair up) is refused whole.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from driftwatch.ingest.validation import Unreadable

# A whole string (escapes included), a lone quote (a string that never ends), or one structural
# character; everything between matches (numbers, literals, whitespace, colons) is skipped.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{},]', re.DOTALL)
_RECORDS_KEY = b'"records"'
_PREDICTION_ID = re.compile(rb'"prediction_id"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)', re.DOTALL)


class BrokenEnvelope(ValueError):
    """The body around the records is not JSON: the batch cannot be read at all."""


def loads(raw: bytes) -> Any:
    """The body parsed; a record that cannot be parsed alone is an ``Unreadable`` in its place.
    Raises ``orjson.JSONDecodeError`` (the whole body's) when the envelope is broken."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        whole = error
    try:
        span = records_span(raw)
    except BrokenEnvelope:
        raise whole from None
    if span is None:
        raise whole
    start, end, items = span
    try:
        envelope = orjson.loads(raw[:start] + b"[]" + raw[end:])
    except orjson.JSONDecodeError:
        raise whole from None
    if not isinstance(envelope, dict):
        raise whole
    envelope["records"] = [_record(raw[a:b]) for a, b in items]
    return envelope


def _record(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        return Unreadable(_reason(error, text), _text(text), _prediction_id(text))


def _reason(error: orjson.JSONDecodeError, text: bytes) -> str:
    message = str(error)
    if "depth limit" in message:
        return "not valid JSON: nested deeper than 1024 levels"
    if "surrogate" in message:
        return f"not valid JSON: a lone surrogate escape in a string ({message})"
    if re.search(rb"\b(?:NaN|-?Infinity)\b", text):
        return f"not valid JSON: NaN and Infinity are not JSON numbers ({message})"
    return f"not valid JSON ({message})"


def _text(text: bytes, limit: int = 10_000) -> str:
    """The record as sent, for the rejected-records listing (Postgres text holds no NUL)."""
    shown = text[:limit].decode("utf-8", errors="replace").replace("\x00", "\\u0000")
    return shown + ("..." if len(text) > limit else "")


def _prediction_id(text: bytes) -> str | None:
    found = _PREDICTION_ID.search(text[:100_000])
    if found is None:
        return None
    try:
        value = orjson.loads(found.group(1))
    except orjson.JSONDecodeError:
        return None
    return str(value).replace("\x00", "\\x00")


def records_span(raw: bytes) -> tuple[int, int, list[tuple[int, int]]] | None:
    """Where the top-level ``records`` array starts and ends (``raw[start:end]`` is the array,
    brackets included) and the span of each of its items; None if the body has no such array.
    Raises ``BrokenEnvelope`` where strings or brackets do not pair up."""
    depth = 0
    expect_key = False  # inside the top-level object, where a key comes next
    key: bytes | None = None
    array_start: int | None = None
    item_start = 0
    items: list[tuple[int, int]] = []
    for match in _TOKENS.finditer(raw):
        token = match.group()
        at = match.start()
        if token == b'"':
            raise BrokenEnvelope("a string that never ends")
        if array_start is not None and depth == 2 and token in (b",", b"]"):
            if raw[item_start:at].strip():
                items.append((item_start, at))
            elif token == b"," or items:
                raise BrokenEnvelope("an empty item in records")
            item_start = match.end()
            if token == b"]":
                return array_start, match.end(), items
            continue
        if token in (b"{", b"["):
            if depth == 0 and token != b"{":
                return None
            if depth == 1 and token == b"[" and key == _RECORDS_KEY:
                array_start, item_start = at, match.end()
            depth += 1
            expect_key = depth == 1
        elif token in (b"}", b"]"):
            depth -= 1
            if depth < 0:
                raise BrokenEnvelope("a closing bracket without its opening one")
            expect_key = False
        elif token == b",":
            expect_key = depth == 1
        elif depth == 1:  # a string at the top level: a key, or a value
            if expect_key:
                key, expect_key = token, False
            else:
                key = None
    if array_start is not None:
        raise BrokenEnvelope("the records array never ends")
    return None
