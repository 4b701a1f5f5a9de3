"""Durations written as ``30s``, ``15m``, ``1h``, ``1d``, ``2w`` (windows, rule repeats)."""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str) -> timedelta:
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: write a whole number and a unit s, m, h, d or w, "
            "such as '15m', '1h' or '1d'"
        )
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(seconds: int) -> str:
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
