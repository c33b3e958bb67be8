"""Read-only mode for reviewers (`--read-only`, `build_services(read_only=True)`): DB-05, DB-06.

A real SQLite file in WAL mode, a manager's writer engine and a reviewer's `mode=ro` engine
side by side; no timed asserts: the writer's commit succeeds while the reader's transaction is
open, and the reader keeps its snapshot. PostgreSQL read-only sessions refuse writes too.
"""
from __future__ import annotations

import hashlib
import sqlite3
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from inspector.cli import main
from inspector.services import build_services
from inspector.storage.inspections import Inspections

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)


def add_deal(store, i: int) -> None:
    store.bulk_insert("deal", [{"id": i, "source": "t", "external_id": f"T-{i}", "name": f"Deal {i}",
                                "account": "Acme", "owner": "Rep A", "team": "Team A", "manager": "Mgr A",
                                "stage": "discovery", "status": "open", "amount_minor": 1_000 * i,
                                "currency": "USD", "close_date": date(2026, 12, 20),
                                "forecast_category": "pipeline"}])


def deal_count(conn) -> int:
    return conn.execute(text("SELECT COUNT(*) FROM deal")).scalar()


@pytest.fixture
def path(sqlite_services) -> Path:
    add_deal(sqlite_services.store, 1)
    add_deal(sqlite_services.store, 2)
    Inspections(sqlite_services.store).start_session(manager="Mgr A", team="Team A", queue=[1, 2],
                                                     week_of=date(2026, 11, 30), now=NOW)
    sqlite_services.store.engine.dispose()
    return Path(sqlite_services.db_label)


@pytest.fixture
def reviewer(path, playbook):
    svc = build_services(path, read_only=True, playbook=playbook, actor="RevOps")
    yield svc
    svc.store.engine.dispose()


@pytest.fixture
def manager(path, playbook):
    svc = build_services(path, playbook=playbook, actor="Mgr A")
    yield svc
    svc.store.engine.dispose()


def test_read_only_services_use_a_mode_ro_connection(reviewer):
    assert reviewer.read_only
    url = reviewer.store.engine.url
    assert url.query.get("mode") == "ro" and url.query.get("uri") == "true"
    with reviewer.store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert deal_count(conn) == 2


@pytest.mark.parametrize("sql", [
    "INSERT INTO deal_change (deal_id, field, old, new, changed_at, source) VALUES (1, 'stage', 'a', 'b', "
    "'2026-12-01 00:00:00.000000', 't')",
    "UPDATE deal SET name = 'Renamed' WHERE id = 1",
    "DELETE FROM activity",
    "CREATE TABLE scratch (x INTEGER)",
])
def test_any_write_raises(reviewer, path, sql):
    with pytest.raises(sa_exc.OperationalError, match="readonly database"):
        with reviewer.store.engine.begin() as conn:
            conn.execute(text(sql))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT name FROM deal WHERE id = 1").fetchone() == ("Deal 1",)
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'scratch'").fetchone() == (0,)
    finally:
        conn.close()


def test_the_inspection_api_cannot_write_through_a_read_only_store(reviewer):
    insp = Inspections(reviewer.store)
    with pytest.raises(sa_exc.OperationalError, match="readonly database"):
        insp.start_session(manager="RevOps", team="Team A", queue=[1], week_of=date(2026, 11, 30), now=NOW)
    assert [s.status for s in insp.sessions()] == ["open"]
    assert insp.chain().count == 1


def test_a_reader_does_not_block_a_writer_and_keeps_its_snapshot(reviewer, manager):
    """DB-05: the reviewer's read transaction stays open while the manager saves."""
    with reviewer.store.engine.connect() as rconn:
        rconn.begin()
        assert deal_count(rconn) == 2  # the snapshot starts at the first read
        head_before = rconn.execute(text("SELECT MAX(seq) FROM inspection_event")).scalar()

        insp = Inspections(manager.store)
        sid = insp.sessions()[0].id
        st = insp.state(sid, 1)
        insp.save_decisions(st.id, {"notes": ("", "saved while RevOps reads")}, actor="Mgr A", now=NOW)
        add_deal(manager.store, 3)  # a second, separate write transaction

        with manager.store.engine.connect() as wconn:  # committed: visible to a new reader
            assert deal_count(wconn) == 3
        assert deal_count(rconn) == 2  # the open read transaction still sees its snapshot
        assert rconn.execute(text("SELECT MAX(seq) FROM inspection_event")).scalar() == head_before
        assert rconn.execute(text("SELECT notes FROM inspection WHERE id = :i"), {"i": st.id}).scalar() == ""
        rconn.rollback()
        assert deal_count(rconn) == 3  # a new transaction sees the writes
    assert Inspections(reviewer.store).chain().ok


def test_a_writer_mid_transaction_does_not_block_the_reader(reviewer, manager):
    with manager.store.engine.connect() as wconn:
        wconn.begin()  # BEGIN IMMEDIATE: the write lock is held
        wconn.execute(text("UPDATE deal SET name = 'Uncommitted' WHERE id = 2"))
        with reviewer.store.engine.connect() as rconn:
            assert rconn.execute(text("SELECT name FROM deal WHERE id = 2")).scalar() == "Deal 2"
        wconn.commit()
    with reviewer.store.engine.connect() as rconn:
        assert rconn.execute(text("SELECT name FROM deal WHERE id = 2")).scalar() == "Uncommitted"


def test_the_reader_never_checkpoints(reviewer, manager, path):
    """DB-06: WAL frames written by the manager stay in the WAL when the reviewer asks to checkpoint."""
    # the manager's pooled connection stays open, so its WAL frames are not checkpointed on close
    add_deal(manager.store, 3)
    main_before = hashlib.sha256(path.read_bytes()).hexdigest()
    wal_before = Path(f"{path}-wal").read_bytes()
    assert len(wal_before) > 0
    with reviewer.store.engine.connect() as rconn:
        with pytest.raises(sa_exc.OperationalError):  # SQLite 3.40 says "disk I/O error"
            rconn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    with reviewer.store.engine.connect() as rconn:
        assert deal_count(rconn) == 3  # it reads through the WAL
    assert hashlib.sha256(path.read_bytes()).hexdigest() == main_before
    assert Path(f"{path}-wal").read_bytes() == wal_before


def fingerprint(path: Path) -> tuple[str, bytes]:
    """The database's content: the main file and the WAL's frames (a missing WAL reads as empty:
    SQLite may create an empty -wal/-shm pair for a read-only reader)."""
    wal = Path(f"{path}-wal")
    return hashlib.sha256(path.read_bytes()).hexdigest(), wal.read_bytes() if wal.exists() else b""


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_read_only_cli_commands_leave_the_file_unchanged(path, tmp_path):
    before = fingerprint(path)
    for args in (["report", "--period", "2026-11"], ["review"], ["review", "--sessions"],
                 ["export", "log"], ["export", "session", "1", "--format", "json"], ["log", "verify"],
                 ["db", "info"]):
        result = run("--db", str(path), "--read-only", *args)
        assert result.exit_code == 0, (args, result.output)
    assert fingerprint(path) == before


def test_read_only_close_lost_is_refused(path):
    result = run("--db", str(path), "--read-only", "close-lost", "1", "--reason", "price")
    assert result.exit_code == 2
    assert "read-only" in result.stderr and len(result.stderr.splitlines()) == 1
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT status FROM deal WHERE id = 1").fetchone() == ("open",)
    finally:
        conn.close()


def test_read_only_on_a_missing_file_does_not_create_it(tmp_path):
    from inspector.storage.db import StoreError

    with pytest.raises(StoreError, match="no such database"):
        build_services(tmp_path / "nope.db", read_only=True)
    assert not (tmp_path / "nope.db").exists()


def test_read_only_on_postgres_refuses_writes(pg_url, playbook):
    writer = build_services(pg_url, playbook=playbook, actor="Mgr A")
    reader = build_services(pg_url, read_only=True, playbook=playbook, actor="RevOps")
    try:
        add_deal(writer.store, 1)
        with pytest.raises(sa_exc.DBAPIError, match="read-only transaction"):
            with reader.store.engine.begin() as conn:
                conn.execute(text("UPDATE deal SET name = 'Renamed' WHERE id = 1"))
        with pytest.raises(sa_exc.DBAPIError, match="read-only transaction"):
            Inspections(reader.store).start_session(manager="RevOps", team="Team A", queue=[1],
                                                    week_of=date(2026, 11, 30), now=NOW)
        with reader.store.engine.connect() as rconn:  # and it reads, while the writer writes
            rconn.begin()
            assert deal_count(rconn) == 1
            add_deal(writer.store, 2)
            rconn.rollback()
            assert deal_count(rconn) == 2
    finally:
        reader.store.engine.dispose()
        writer.store.engine.dispose()
