"""index open deals by close date (first page of the pipeline, sorted by close date)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deal", schema=None) as batch_op:
        batch_op.create_index("ix_deal_status_close", ["status", "close_date"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deal", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_status_close")
