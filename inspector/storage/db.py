"""Engines and migrations.

SQLite (default) follows RELIABILITY.md §2.5: WAL (refuse to run without it), busy timeout,
synchronous=FULL, foreign keys, and `BEGIN IMMEDIATE` for every transaction so that a
read-then-write never dies with "database is locked". A reviewer's read-only engine opens
the file with `mode=ro` and deferred transactions. PostgreSQL uses the same code.
"""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text

#: Alembic head revision; `ensure_schema` skips importing Alembic when the store is current.
SCHEMA_HEAD = "0006"
_MIGRATIONS = Path(__file__).parent / "migrations"


class StoreError(Exception):
    """A problem with the store that the user can act on (bad URL, unwritable path, ...)."""


def default_db_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("inspector", appauthor=False) / "inspector.db"


def resolve_url(db: str | os.PathLike | None) -> str:
    """`--db`/`INSPECTOR_DB` value to an SQLAlchemy URL: a URL is kept, a path is SQLite."""
    value = str(db) if db else os.environ.get("INSPECTOR_DB") or str(default_db_path())
    if "://" in value:
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value
    path = Path(value).expanduser()
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    path = sqlite_path(url)
    if path is None:
        if url.startswith("sqlite"):
            raise StoreError(f"unsupported SQLite URL {url!r}: use sqlite:///PATH or a file path")
        kwargs = {"pool_pre_ping": True}
        if read_only:
            kwargs["execution_options"] = {"postgresql_readonly": True}
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _utc(dbapi_conn, _record) -> None:
            # day counts and dates derived from timestamps must not depend on the server's zone
            with dbapi_conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
            dbapi_conn.commit()

        return engine
    if read_only:
        if not path.exists():
            raise StoreError(f"{path}: no such database (read-only mode does not create one)")
        engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path.parent}: cannot create the data directory ({exc.strerror})") from None
        engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=5000")
        if not read_only:
            mode = cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: WAL journal unavailable (got {mode}); "
                                 "refusing to run on this filesystem")
            cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            return None


def run_migrations(engine: Engine) -> None:
    """Upgrade the store to the newest schema (Alembic, shipped in the package)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def ensure_schema(engine: Engine) -> None:
    if current_revision(engine) != SCHEMA_HEAD:
        run_migrations(engine)
