"""Logging: readable lines on a terminal, one JSON object a line otherwise (for log shippers).

Context travels as ``extra=`` fields (``model``, ``run_id``, ``alert_id``, ``delivery_id``,
``webhook_id``), which the JSON lines carry as keys of their own.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from driftwatch.text import RedactUrls

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(level: int = logging.INFO, *, json_lines: bool | None = None) -> None:
    """Log to stderr; as JSON when stderr is not a terminal (unless told otherwise)."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        ))  # fmt: skip
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    # no log line shows a URL whole (webhook URLs carry tokens and passwords): our own lines
    # redact where they are written; this catches the libraries' (httpx's is redacted at its
    # logger too, in driftwatch.alerting.http)
    handler.addFilter(RedactUrls())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per SDK request is noise
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # a tick still running when the next is due is skipped by design (max_instances=1): not news
    logging.getLogger("apscheduler.scheduler").addFilter(_SkippedTick())
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "running upgrade" lines at each start


class _SkippedTick(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()
