"""deal_change by (deal_id, field, changed_at, old, new) instead of (deal_id, changed_at)

"Did this deal's close date move later after the inspection?" (verdict accuracy, deal history)
is a lookup by deal and field. With only (deal_id, changed_at) and (field, changed_at, ...),
SQLite chose the field index and read every close-date change after the inspection for each
inspected deal: 1.1 s per verdict column on 100k deals and 1M history rows, 7 ms with this one.
The new index starts with deal_id, so it also serves what (deal_id, changed_at) served.

Also deal (status, closed_on): deals won or lost in a period (handoff and finance completeness,
lost reasons, kickoff) are found from the index, not from every won deal ever (10k rows read per
requirement on the benchmark store, ~400 with it).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deal_change", schema=None) as batch_op:
        batch_op.create_index("ix_deal_change_deal_field", ["deal_id", "field", "changed_at", "old", "new"],
                              unique=False)
        batch_op.drop_index("ix_deal_change_deal_at")
    with op.batch_alter_table("deal", schema=None) as batch_op:
        batch_op.create_index("ix_deal_status_closed", ["status", "closed_on"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deal", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_status_closed")
    with op.batch_alter_table("deal_change", schema=None) as batch_op:
        batch_op.create_index("ix_deal_change_deal_at", ["deal_id", "changed_at"], unique=False)
        batch_op.drop_index("ix_deal_change_deal_field")
