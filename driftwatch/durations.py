"""Durations written as ``30s``, ``15m``, ``1h``, ``1d``, ``2w``: see ``driftwatch.core.time``."""

from driftwatch.core.time import UNITS, format_duration, parse_duration

__all__ = ["UNITS", "format_duration", "parse_duration"]
