"""money in 64-bit integers (a $25M deal is 2.5 billion cents)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

SQLite INTEGER is already 64-bit, so only PostgreSQL changes (no table rebuild on SQLite,
where rebuilding `deal` would cascade-delete its children).
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = [("deal", "amount_minor"), ("inspection", "amount_minor_at")]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in COLUMNS:
            op.alter_column(table, column, type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in COLUMNS:
            op.alter_column(table, column, type_=sa.Integer(), existing_nullable=False)
