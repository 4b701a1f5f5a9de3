"""The names of states that are stored and answered: one spelling everywhere."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """pending -> running -> done | failed; a done run goes back to pending when its window
    receives labels or predictions later (within the label horizon)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    CLEARED = "cleared"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"
