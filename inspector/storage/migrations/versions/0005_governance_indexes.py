"""indexes for the governance metrics (benchmark: 100k deals, 1M history rows)

- deal_change (field, changed_at, deal_id, old, new): close-date pushes in a period are read
  from the index alone (slippage), instead of every change of the period from the table.
- deal (team, status, created_on, closed_on): the deals open in a team's week (inspection
  coverage) are counted from the index alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deal_change", schema=None) as batch_op:
        batch_op.create_index("ix_deal_change_field_at", ["field", "changed_at", "deal_id", "old", "new"],
                              unique=False)
    with op.batch_alter_table("deal", schema=None) as batch_op:
        batch_op.create_index("ix_deal_team_window", ["team", "status", "created_on", "closed_on"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deal", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_team_window")
    with op.batch_alter_table("deal_change", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_change_field_at")
