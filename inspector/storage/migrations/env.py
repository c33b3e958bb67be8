"""Alembic environment: runs on the connection that `run_migrations` passes in."""
from alembic import context

from inspector.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - CLI use: alembic -c ... with sqlalchemy.url
    from sqlalchemy import create_engine

    connection = create_engine(context.config.get_main_option("sqlalchemy.url")).connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
