"""Models stored before verdicts keep Evidently's rule: their drift settings say so

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 18:30:00

New models are created with the calibrated verdict (CONTRACT section 7). Every model that
existed before it gets ``"verdict": "evidently"`` written into its drift settings (a model
without drift settings gets ``{"verdict": "evidently"}``), so its runs decide drift as they
did. The downgrade takes the verdict (and the false-alarm budget) out again; a model left
with no other setting goes back to none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

models = sa.table("models", sa.column("id", sa.Integer), sa.column("drift", sa.JSON))
ADDED = ("verdict", "false_alarms_per_month")


def _rewrite(change: Any) -> None:
    bind = op.get_bind()
    for model_id, drift in bind.execute(sa.select(models.c.id, models.c.drift)).all():
        changed = change(drift if isinstance(drift, dict) else None)
        if changed is not drift:
            value = sa.null() if changed is None else changed
            bind.execute(models.update().where(models.c.id == model_id).values(drift=value))


def upgrade() -> None:
    def evidently(drift: dict[str, Any] | None) -> dict[str, Any] | None:
        if drift is not None and drift.get("verdict"):
            return drift  # says already
        return {**(drift or {}), "verdict": "evidently"}

    _rewrite(evidently)


def downgrade() -> None:
    def without(drift: dict[str, Any] | None) -> dict[str, Any] | None:
        if drift is None or not any(key in drift for key in ADDED):
            return drift
        kept = {key: value for key, value in drift.items() if key not in ADDED}
        return kept or None

    _rewrite(without)
