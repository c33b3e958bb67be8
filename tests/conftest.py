"""Shared fixtures: real SQLite files, a real PostgreSQL schema, a fixed clock."""
from __future__ import annotations

import os
import time
import uuid
from datetime import date
from pathlib import Path

import pytest

from inspector.clock import FixedClock
from inspector.playbook import load_playbook

TODAY = date(2026, 12, 3)
PG_URL = os.environ.get("INSPECTOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def playbook():
    return load_playbook()


@pytest.fixture
def clock():
    return FixedClock.on(TODAY)


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return f"PostgreSQL at {PG_URL} does not answer ({type(exc).__name__})"


@pytest.fixture(scope="session")
def pg_reason():
    return _pg_available()


@pytest.fixture
def pg_url(pg_reason):
    """A fresh schema on the test PostgreSQL server; dropped afterwards."""
    if pg_reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {pg_reason}")
        pytest.skip(pg_reason)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = PG_URL.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """Each store test runs on a real SQLite file and on a real PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inspector.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def services(db_url, clock, playbook):
    from inspector.services import build_services

    svc = build_services(db_url, clock=clock, playbook=playbook, actor="Test Manager")
    yield svc
    svc.store.engine.dispose()


@pytest.fixture
def sqlite_services(tmp_path, clock, playbook):
    from inspector.services import build_services

    svc = build_services(tmp_path / "inspector.db", clock=clock, playbook=playbook,
                         actor="Test Manager")
    yield svc
    svc.store.engine.dispose()


@pytest.fixture
def demo_services(sqlite_services, playbook):
    """A SQLite store seeded with the deterministic demo pipeline (300 deals)."""
    from inspector import demo

    demo.seed(sqlite_services.store, playbook, TODAY, 300, seed=7)
    return sqlite_services


@pytest.fixture
def review_services(sqlite_services, playbook):
    """The demo pipeline (300 deals) with 8 past weeks of finished inspections (Review, Dashboard)."""
    from inspector import demo

    demo.seed(sqlite_services.store, playbook, TODAY, 300, seed=7, history_weeks=8)
    return sqlite_services


@pytest.fixture(autouse=True)
def _utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("INSPECTOR_DB", raising=False)
    monkeypatch.delenv("INSPECTOR_PLAYBOOK", raising=False)
    yield
