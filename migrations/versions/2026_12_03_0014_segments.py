"""Models name segment features; baselines keep a profile per segment; alerts per segment

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 19:00:00

CONTRACT section 10. ``models.segments`` lists the categorical features whose values are
segments and ``models.segment_min_rows`` the rows a value needs in a window (null: none, and
the default). A baseline made while the model has segments keeps, per segment feature and
value, its prepared columns in ``baseline_segment_columns`` (``baselines.segments`` lists the
features so prepared). A rule with ``per_segment`` keeps one state per segment value: the
state's key gains ``segment`` ("" for rules on the whole window) and an alert names its
segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("segments", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("segment_min_rows", sa.Integer(), nullable=True))
    with op.batch_alter_table("baselines") as batch:
        batch.add_column(sa.Column("segments", sa.JSON(), nullable=True))
    op.create_table(
        "baseline_segment_columns",
        sa.Column("baseline_id", sa.Integer(), nullable=False),
        sa.Column("segment_feature", sa.String(length=200), nullable=False),
        sa.Column("segment_value", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("sorted_values", sa.LargeBinary(), nullable=True),
        sa.Column("categories", sa.JSON(), nullable=True),
        sa.Column("counts", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["baseline_id"], ["baselines.id"],
            name=op.f("fk_baseline_segment_columns_baseline_id_baselines"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "baseline_id", "segment_feature", "segment_value", "position",
            name=op.f("pk_baseline_segment_columns"),
        ),
    )
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("segment_feature", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("segment_value", sa.Text(), nullable=True))
    with op.batch_alter_table("alert_rule_states", recreate="always") as batch:
        batch.add_column(
            sa.Column("segment", sa.Text(), nullable=False, server_default="")
        )
        batch.drop_constraint("pk_alert_rule_states", type_="primary")
        batch.create_primary_key("pk_alert_rule_states", ["model_id", "rule", "segment"])


def downgrade() -> None:
    op.execute("DELETE FROM alert_rule_states WHERE segment != ''")
    with op.batch_alter_table("alert_rule_states", recreate="always") as batch:
        batch.drop_constraint("pk_alert_rule_states", type_="primary")
        batch.create_primary_key("pk_alert_rule_states", ["model_id", "rule"])
        batch.drop_column("segment")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("segment_value")
        batch.drop_column("segment_feature")
    op.drop_table("baseline_segment_columns")
    with op.batch_alter_table("baselines") as batch:
        batch.drop_column("segments")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("segments")
        batch.drop_column("segment_min_rows")
