"""Store: migrations, schema vs metadata, round trips, filters, the append-only event log.

Every test taking `services` runs twice: on a real SQLite file and on a fresh PostgreSQL schema.
"""
from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

import inspector.storage.db as dbmod
from inspector.storage.db import SCHEMA_HEAD, StoreError, current_revision, ensure_schema, make_engine
from inspector.storage.events import (
    GENESIS,
    append_event,
    canonical_json,
    event_hash,
    verify_chain,
)
from inspector.storage.repo import Store
from inspector.storage.tables import metadata

TODAY = date(2026, 12, 3)
UTC = timezone.utc
MIGRATIONS = Path(dbmod.__file__).parent / "migrations"

HOSTILE_NAME = "Crème Brûlée — \"Big\" deal, O'Brien's [b]x[/b] [@click=app.quit]y[/] 50%"


def is_pg(services) -> bool:
    return services.store.dialect == "postgresql"


def deal_row(id_: int, **over) -> dict:
    row = {
        "id": id_, "source": "test", "external_id": f"EXT-{id_}", "name": f"Deal {id_}",
        "account": "Acme", "owner": "José Álvarez", "team": "EMEA", "manager": "Siobhán O'Connor",
        "stage": "commit", "crm_stage": "Negotiation/Review", "status": "open",
        "amount_minor": 1_000_000, "currency": "USD", "close_date": date(2026, 12, 20),
        "forecast_category": "commit", "next_step": "Legal redlines",
        "next_step_date": date(2026, 12, 8), "created_on": date(2026, 9, 1),
        "stage_entered_on": date(2026, 11, 23), "close_pushes": 0,
        "last_activity_at": None, "last_progress_at": None,
        "business_problem": "", "custom_terms": False, "legal_exception": False,
        "discount_pct": None, "renewal_date": None, "payment_terms": "",
    }
    row.update(over)
    return row


# -- migrations ------------------------------------------------------------------------------


def test_migrations_create_all_tables_and_reach_head(services):
    engine = services.store.engine
    tables = set(sa.inspect(engine).get_table_names())
    assert set(metadata.tables) <= tables
    assert tables - set(metadata.tables) == {"alembic_version"}
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head == SCHEMA_HEAD
    assert current_revision(engine) == SCHEMA_HEAD


def test_migrated_schema_matches_sqlmodel_metadata(services):
    with services.store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_ensure_schema_twice_is_a_noop(services, monkeypatch):
    engine = services.store.engine
    services.store.bulk_insert("deal", [deal_row(1)])
    before = {t: sorted(c["name"] for c in sa.inspect(engine).get_columns(t))
              for t in sa.inspect(engine).get_table_names()}

    def boom(_engine):
        raise AssertionError("ensure_schema migrated a store that is already at head")

    monkeypatch.setattr(dbmod, "run_migrations", boom)
    ensure_schema(engine)
    ensure_schema(engine)
    monkeypatch.undo()
    # running the Alembic upgrade itself again is harmless too
    dbmod.run_migrations(engine)
    after = {t: sorted(c["name"] for c in sa.inspect(engine).get_columns(t))
             for t in sa.inspect(engine).get_table_names()}
    assert after == before
    assert current_revision(engine) == SCHEMA_HEAD
    assert services.store.deal_count() == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM alembic_version")).scalar_one() == 1


def test_upgrade_from_the_first_revision_keeps_data(db_url):
    """A store created by an older release is migrated on start, its rows kept."""
    from alembic import command
    from alembic.config import Config

    first = ScriptDirectory(str(MIGRATIONS)).get_base()
    engine = make_engine(db_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, first)
        assert current_revision(engine) == first
        Store(engine).bulk_insert("deal", [deal_row(1, name="Zoë's [b]deal[/b]")])
        ensure_schema(engine)
        assert current_revision(engine) == SCHEMA_HEAD
        assert [r.name for r in Store(engine).list_deals(TODAY)] == ["Zoë's [b]deal[/b]"]
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


# -- round trips -----------------------------------------------------------------------------


def _seed_one(services) -> None:
    store = services.store
    deal = deal_row(
        7, name=HOSTILE_NAME, account="Zürich Rückversicherung \\ \"AG\"", owner="Zoë Brontë",
        amount_minor=1_234_567_89, currency="EUR", close_date=date(2027, 2, 28),
        next_step="Send 'final' [i]pricing[/i]", next_step_date=date(2026, 12, 10),
        stage_entered_on=date(2026, 11, 19), close_pushes=2,
        last_activity_at=datetime(2026, 12, 1, 15, 30, tzinfo=UTC),
        last_progress_at=datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        business_problem="Forecast misses — «cost» 25%", custom_terms=True, discount_pct=12.5,
        renewal_date=date(2027, 12, 31), payment_terms="Net 60",
    )
    store.bulk_insert("deal", [deal])
    store.bulk_insert("deal_change", [
        {"deal_id": 7, "field": "created", "old": None, "new": "qualification",
         "changed_at": datetime(2026, 9, 1, 9, 0, tzinfo=UTC), "source": "test"},
        {"deal_id": 7, "field": "close_date", "old": "2027-01-31", "new": "2027-02-28",
         "changed_at": datetime(2026, 11, 30, 9, 0, tzinfo=UTC), "source": "test"},
        # +02:00: stored and returned as the same instant, in UTC
        {"deal_id": 7, "field": "amount_minor", "old": "100000000", "new": "123456789",
         "changed_at": datetime(2026, 12, 2, 11, 0, tzinfo=timezone(timedelta(hours=2))),
         "source": "test"},
    ])
    store.bulk_insert("activity", [
        {"deal_id": 7, "kind": "call", "occurred_at": datetime(2026, 12, 1, 15, 30, tzinfo=UTC),
         "summary": "Call with [b]CFO[/b] — «ok»", "who": "Zoë Brontë", "is_progress": False,
         "progress_type": None},
        {"deal_id": 7, "kind": "meeting", "occurred_at": datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
         "summary": "Buyer confirmed the problem", "who": "Zoë Brontë", "is_progress": True,
         "progress_type": "buyer_confirmed_problem"},
    ])


def test_list_deals_round_trip(services):
    _seed_one(services)
    rows = services.store.list_deals(TODAY)
    assert len(rows) == 1
    r = rows[0]
    assert r.id == 7
    assert r.name == HOSTILE_NAME
    assert r.account == "Zürich Rückversicherung \\ \"AG\""
    assert r.owner == "Zoë Brontë"
    assert r.amount_minor == 1_234_567_89 and type(r.amount_minor) is int
    assert r.currency == "EUR"
    assert r.close_date == "2027-02-28"
    assert r.next_step == "Send 'final' [i]pricing[/i]"
    assert r.next_step_date == "2026-12-10"
    assert r.created_on == "2026-09-01"
    assert r.days_in_stage == (TODAY - date(2026, 11, 19)).days
    assert r.close_pushes == 2
    assert r.last_activity == "2026-12-01"
    assert r.days_since_activity == 2
    assert r.days_since_progress == (TODAY - date(2026, 11, 20)).days
    assert r.status == "open"


def test_get_deal_round_trip(services):
    _seed_one(services)
    d = services.store.get_deal(7, TODAY)
    assert d.row == services.store.list_deals(TODAY)[0]
    f = d.fields
    assert f["business_problem"] == "Forecast misses — «cost» 25%"
    assert f["renewal_date"] == date(2027, 12, 31)
    assert f["discount_pct"] == 12.5
    assert f["payment_terms"] == "Net 60"
    assert f["custom_terms"] == True  # noqa: E712 - value check; the type is checked below
    assert f["legal_exception"] == False  # noqa: E712
    # changes, oldest first, timestamps aware UTC
    assert [c.field for c in d.changes] == ["created", "close_date", "amount_minor"]
    for c in d.changes:
        assert c.changed_at.utcoffset() == timedelta(0)
        assert c.deal_id == 7 and c.source == "test"
    assert d.changes[0].old is None and d.changes[0].new == "qualification"
    assert d.changes[2].changed_at == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    assert (d.changes[1].old, d.changes[1].new) == ("2027-01-31", "2027-02-28")
    # activities, newest first; progress flag is a real bool
    assert [a.kind for a in d.activities] == ["call", "meeting"]
    call, meeting = d.activities
    assert call.summary == "Call with [b]CFO[/b] — «ok»"
    assert call.occurred_at == datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
    assert call.occurred_at.utcoffset() == timedelta(0)
    assert call.is_progress is False and call.progress_type is None
    assert meeting.is_progress is True and meeting.progress_type == "buyer_confirmed_problem"
    assert d.risks == () and d.promises_count == 0
    assert d.version == 1


def test_get_deal_booleans_are_bools(services, request):
    _seed_one(services)
    f = services.store.get_deal(7, TODAY).fields
    for name in ("custom_terms", "legal_exception", "product_commitment", "scope_change"):
        assert type(f[name]) is bool, (name, f[name])


def test_large_amount_round_trips(services, request):
    """$25M in cents does not fit a 32-bit INTEGER; money columns must hold it on both backends."""
    services.store.bulk_insert("deal", [deal_row(1, amount_minor=2_500_000_000)])
    assert services.store.list_deals(TODAY)[0].amount_minor == 2_500_000_000


def test_get_deal_unknown_id(services):
    with pytest.raises(KeyError):
        services.store.get_deal(999, TODAY)


# -- filters -----------------------------------------------------------------------------------


def test_list_deals_filters_team_owners_status(services):
    services.store.bulk_insert("deal", [
        deal_row(1, team="EMEA", owner="José Álvarez"),
        deal_row(2, team="EMEA", owner="Zoë Brontë"),
        deal_row(3, team="APAC", owner="Hiroshi Tanaka"),
        deal_row(4, team="EMEA", owner="Zoë Brontë", status="won", stage="closed_won"),
        deal_row(5, team="APAC", owner="Zoë Brontë"),
    ])
    store = services.store
    assert [r.id for r in store.list_deals(TODAY)] == [1, 2, 3, 5]
    assert [r.id for r in store.list_deals(TODAY, team="EMEA")] == [1, 2]
    assert [r.id for r in store.list_deals(TODAY, owners=["Zoë Brontë"])] == [2, 5]
    assert [r.id for r in store.list_deals(TODAY, team="EMEA", owners=["Zoë Brontë"])] == [2]
    assert [r.id for r in store.list_deals(TODAY, owners=["José Álvarez", "Hiroshi Tanaka"])] == [1, 3]
    assert [r.id for r in store.list_deals(TODAY, statuses=("won",))] == [4]
    assert [r.id for r in store.list_deals(TODAY, statuses=("open", "won"), team="EMEA")] == [1, 2, 4]
    assert store.list_deals(TODAY, team="Nowhere") == []
    assert store.teams() == [("APAC", "Siobhán O'Connor", 2), ("EMEA", "Siobhán O'Connor", 2)]
    assert store.reps("EMEA") == ["José Álvarez", "Zoë Brontë"]


def test_changes_since_only_later(services):
    store = services.store
    store.bulk_insert("deal", [deal_row(1), deal_row(2)])
    t = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    store.bulk_insert("deal_change", [
        {"deal_id": 1, "field": "stage", "old": "discovery", "new": "commit",
         "changed_at": t - timedelta(seconds=1), "source": "test"},
        {"deal_id": 1, "field": "amount_minor", "old": "100", "new": "200",
         "changed_at": t, "source": "test"},  # exactly at `since`: not "since"
        {"deal_id": 2, "field": "close_date", "old": "2026-12-01", "new": "2026-12-31",
         "changed_at": t + timedelta(seconds=1), "source": "test"},
        {"deal_id": 1, "field": "forecast_category", "old": "pipeline", "new": "commit",
         "changed_at": t + timedelta(days=3), "source": "test"},
    ])
    got = store.changes_since(t)
    assert [(c.deal_id, c.field) for c in got] == [(2, "close_date"), (1, "forecast_category")]
    assert all(c.changed_at > t for c in got)
    assert all(c.changed_at.tzinfo is not None for c in got)
    assert [c.field for c in store.changes_since(t, deal_ids=[1])] == ["forecast_category"]
    # an aware non-UTC `since` is the same instant
    same = store.changes_since(t.astimezone(timezone(timedelta(hours=-5))))
    assert [(c.deal_id, c.field) for c in same] == [(2, "close_date"), (1, "forecast_category")]
    assert store.changes_since(t + timedelta(days=10)) == []


# -- event log ---------------------------------------------------------------------------------

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _append_three(engine) -> list[str]:
    hashes = []
    with engine.begin() as conn:
        for i in range(3):
            hashes.append(append_event(
                conn, at=T0 + timedelta(minutes=i), actor="Zoë Brontë", kind="answer",
                entity="inspection", entity_id=i + 1, session_id=1, deal_id=10 + i,
                payload={"question": "problem", "text": f"Réponse {i} [b]x[/b]", "n": i}))
    return hashes


def test_event_chain_appends_and_verifies(services):
    engine = services.store.engine
    hashes = _append_three(engine)
    assert len(set(hashes)) == 3
    with engine.connect() as conn:
        report = verify_chain(conn)
        rows = conn.execute(text(
            "SELECT seq, prev_hash, hash, payload FROM inspection_event ORDER BY seq")).fetchall()
    assert report.ok and report.count == 3 and report.head == hashes[-1]
    assert report.broken_seq is None
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[0][1] == GENESIS
    assert rows[1][1] == hashes[0] and rows[2][1] == hashes[1]
    assert json.loads(rows[2][3]) == {"question": "problem", "text": "Réponse 2 [b]x[/b]", "n": 2}


def test_empty_chain_verifies(services):
    with services.store.engine.connect() as conn:
        report = verify_chain(conn)
    assert report.ok and report.count == 0 and report.head == GENESIS


@pytest.mark.parametrize("sql", [
    "UPDATE inspection_event SET payload = '{}' WHERE seq = 2",
    "UPDATE inspection_event SET actor = 'Mallory'",
    "DELETE FROM inspection_event WHERE seq = 3",
    "DELETE FROM inspection_event",
])
def test_event_log_refuses_update_and_delete(services, sql):
    engine = services.store.engine
    _append_three(engine)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text(sql))
    with engine.connect() as conn:
        report = verify_chain(conn)
    assert report.ok and report.count == 3


@pytest.mark.postgres
def test_event_log_refuses_truncate_on_postgres(pg_url, clock, playbook):
    """TRUNCATE exists only on PostgreSQL (SQLite has no such statement to guard)."""
    from inspector.services import build_services

    svc = build_services(pg_url, clock=clock, playbook=playbook, actor="Test Manager")
    try:
        _append_three(svc.store.engine)
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with svc.store.engine.begin() as conn:
                conn.execute(text("TRUNCATE inspection_event"))
        with svc.store.engine.connect() as conn:
            assert verify_chain(conn).count == 3
    finally:
        svc.store.engine.dispose()


def _disable_guards(conn) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE inspection_event DISABLE TRIGGER USER"))
    else:
        conn.execute(text("DROP TRIGGER inspection_event_no_update"))
        conn.execute(text("DROP TRIGGER inspection_event_no_delete"))


def test_tampered_payload_breaks_chain_at_that_event(services):
    engine = services.store.engine
    _append_three(engine)
    with engine.begin() as conn:
        _disable_guards(conn)
        conn.execute(text("UPDATE inspection_event SET payload = :p WHERE seq = 2"),
                     {"p": canonical_json({"question": "problem", "text": "rewritten", "n": 1})})
    with engine.connect() as conn:
        report = verify_chain(conn)
    assert not report.ok
    assert report.broken_seq == 2
    assert report.count == 1
    assert "hash" in report.problem


def test_deleted_middle_event_breaks_chain(services):
    engine = services.store.engine
    _append_three(engine)
    with engine.begin() as conn:
        _disable_guards(conn)
        conn.execute(text("DELETE FROM inspection_event WHERE seq = 2"))
    with engine.connect() as conn:
        report = verify_chain(conn)
    assert not report.ok and report.broken_seq == 3


def test_recomputed_hash_still_breaks_the_next_link(services):
    """Rewriting one event and fixing its own hash still breaks the chain at the next event."""
    engine = services.store.engine
    _append_three(engine)
    with engine.begin() as conn:
        _disable_guards(conn)
        seq, at, actor, kind, entity, entity_id, session_id, deal_id, _p, prev = conn.execute(text(
            "SELECT seq, at, actor, kind, entity, entity_id, session_id, deal_id, payload, prev_hash "
            "FROM inspection_event WHERE seq = 2")).one()
        from inspector.storage.events import read_ts
        payload = canonical_json({"forged": True})
        forged = event_hash(seq, read_ts(at), actor, kind, entity, entity_id, session_id, deal_id,
                            payload, prev)
        conn.execute(text("UPDATE inspection_event SET payload = :p, hash = :h WHERE seq = 2"),
                     {"p": payload, "h": forged})
    with engine.connect() as conn:
        report = verify_chain(conn)
    assert not report.ok and report.broken_seq == 3


# -- canonical hashing (golden values, AUD-05) ---------------------------------------------------

GOLDEN_AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_event_hash_golden():
    args = (1, GOLDEN_AT, "a", "k", "e", 1, None, None, "{}", GENESIS)
    h = event_hash(*args)
    assert h == event_hash(*args)
    assert h == "02bf4baea5f9c46b3e6f20b285eb99f6a2c639be6480ab17d92e18af39712218"
    # independently: sha256 of the documented canonical body
    body = ('{"actor":"a","at":"2026-12-03T09:00:00.000000Z","deal_id":null,"entity":"e",'
            '"entity_id":1,"kind":"k","payload":"{}","prev":"' + GENESIS + '","seq":1,'
            '"session_id":null}')
    assert h == hashlib.sha256(body.encode()).hexdigest()


def test_event_hash_same_instant_in_any_zone():
    local = GOLDEN_AT.astimezone(timezone(timedelta(hours=-8)))
    args = ("a", "k", "e", 1, None, None, "{}", GENESIS)
    assert event_hash(1, local, *args) == event_hash(1, GOLDEN_AT, *args)
    assert event_hash(2, GOLDEN_AT, *args) != event_hash(1, GOLDEN_AT, *args)


def test_canonical_json_decimal_datetime_golden():
    payload = {"z": 1, "amount": Decimal("10.50"), "at": datetime(2026, 12, 3, 10, 0,
               tzinfo=timezone(timedelta(hours=1))), "day": date(2026, 12, 24),
               "tags": {"b", "a"}, "name": "Zoë [b]"}
    expected = ('{"amount":"10.50","at":"2026-12-03T09:00:00.000000Z","day":"2026-12-24",'
                '"name":"Zoë [b]","tags":["a","b"],"z":1}')
    assert canonical_json(payload) == expected
    reordered = dict(reversed(list(payload.items())))
    assert canonical_json(reordered) == expected
    h = event_hash(5, GOLDEN_AT, "Zoë", "answer", "inspection", 3, 2, 9, canonical_json(payload),
                   "ab" * 32)
    assert h == event_hash(5, GOLDEN_AT, "Zoë", "answer", "inspection", 3, 2, 9,
                           canonical_json(reordered), "ab" * 32)
    assert h == "6464bbff210a0c35b68de977a835a289841a94ec69502d5c5aa5ee5f2501d058"


def test_canonical_json_refuses_unknown_types():
    with pytest.raises(TypeError):
        canonical_json({"x": object()})


# -- engines -------------------------------------------------------------------------------------


def test_sqlite_pragmas_on_every_pooled_connection(sqlite_services):
    engine = sqlite_services.store.engine
    raws = [engine.raw_connection() for _ in range(3)]
    try:
        assert len({id(r.driver_connection) for r in raws}) == 3
        for raw in raws:
            cur = raw.driver_connection.cursor()
            got = {p: cur.execute(f"PRAGMA {p}").fetchone()[0]
                   for p in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")}
            cur.close()
            assert got == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 5000,
                           "foreign_keys": 1}
    finally:
        for raw in raws:
            raw.close()


def test_sqlite_foreign_keys_enforced(sqlite_services):
    engine = sqlite_services.store.engine
    with pytest.raises(Exception, match="FOREIGN KEY"):
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO deal_change (deal_id, field, changed_at, source) "
                "VALUES (12345, 'stage', '2026-12-03 09:00:00.000000', 'test')")


@pytest.mark.parametrize("case", ["foreign_key", "unique"])
def test_bulk_insert_constraint_errors_are_sqlalchemy_errors(services, request, case):
    """Callers catch one exception type whatever the backend (e.g. duplicate ids on import)."""
    store = services.store
    store.bulk_insert("deal", [deal_row(1)])
    if case == "foreign_key":
        rows, table = [{"deal_id": 12345, "field": "stage", "old": "a", "new": "b",
                        "changed_at": T0, "source": "test"}], "deal_change"
    else:
        rows, table = [deal_row(2, external_id="EXT-1")], "deal"
    with pytest.raises(sa.exc.IntegrityError):
        store.bulk_insert(table, rows)
    assert store.deal_count() == 1


def test_read_only_engine_refuses_writes(services, db_url):
    services.store.bulk_insert("deal", [deal_row(1)])
    ro = make_engine(db_url, read_only=True)
    try:
        assert [r.id for r in Store(ro).list_deals(TODAY)] == [1]
        with pytest.raises(sa.exc.DBAPIError):
            with ro.begin() as conn:
                conn.execute(text("INSERT INTO deal (external_id, name, stage) VALUES ('x', 'y', 'z')"))
        with pytest.raises(sa.exc.DBAPIError):
            with ro.begin() as conn:
                conn.execute(text("UPDATE deal SET name = 'changed'"))
        with pytest.raises(sa.exc.DBAPIError):
            with ro.begin() as conn:
                append_event(conn, at=T0, actor="x", kind="k", entity="e", entity_id=1, payload={})
    finally:
        ro.dispose()
    assert services.store.get_deal(1, TODAY).row.name == "Deal 1"
    assert services.store.deal_count() == 1


def test_read_only_sqlite_needs_an_existing_file(tmp_path):
    with pytest.raises(StoreError):
        make_engine(f"sqlite:///{tmp_path / 'missing.db'}", read_only=True)
    assert not (tmp_path / "missing.db").exists()
