"""The inspection event log: append-only in the database, hash-chained, verifiable (AUD-01/02/05).

Every test taking `services` (or `db_url`) runs on a real SQLite file and on a PostgreSQL schema.
tests/unit/test_cli_export.py already covers a raw-SQL UPDATE refused on SQLite and a tampered
payload named by `log verify` on SQLite; this file adds DELETE, the ORM, PostgreSQL, TRUNCATE,
deleted and re-hashed events, and the canonical encoding.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from inspector.cli import main
from inspector.reports import read_anchor, verify_prefix
from inspector.services import build_services
from inspector.storage.events import GENESIS, canonical_json, event_hash, read_ts, utc_z
from inspector.storage.inspections import Inspections
from inspector.storage.tables import InspectionEvent

NOW = datetime(2026, 11, 3, 9, 0, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes, microseconds=123456)


def record_story(store) -> int:
    """Two deals, one session, five events with fixed times and ids; returns the session id."""
    store.bulk_insert("deal", [
        {"id": i, "source": "t", "external_id": f"T-{i}", "name": name, "account": "Acme", "owner": "Zoë",
         "team": "Team A", "manager": "Mgr A", "stage": "discovery", "status": "open",
         "amount_minor": amount, "currency": "EUR", "close_date": date(2026, 12, 20),
         "forecast_category": "commit"}
        for i, name, amount in ((1, "Alpha €", 12_000_050), (2, "Beta", 500_000))])
    insp = Inspections(store)
    s = insp.start_session(manager="Mgr A", team="Team A", queue=[1, 2], week_of=date(2026, 11, 2), now=at(0))
    st = insp.state(s.id, 1)
    insp.save_answer(st.id, "problem", "Invoices take 6 weeks", "confirmed", expected=None, actor="Mgr A",
                     now=at(1))
    insp.save_decisions(st.id, {"forecast_call": (None, "commit"), "commit_criteria_met": (None, False),
                                "commit_exception": ("", "CFO said yes")}, actor="Mgr A", now=at(2))
    insp.set_status(insp.state(s.id, 2).id, "skipped", "Rep out", expected="pending", actor="Mgr A", now=at(3))
    insp.finish(s.id, actor="Mgr A", now=at(4))
    return s.id


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def raw(db_url: str):
    """An engine without the app's hooks, standing in for someone with direct database access."""
    from sqlalchemy import create_engine

    return create_engine(db_url)


def drop_guards(conn, dialect: str) -> None:
    if dialect == "sqlite":
        conn.execute(text("DROP TRIGGER inspection_event_no_update"))
        conn.execute(text("DROP TRIGGER inspection_event_no_delete"))
    else:
        conn.execute(text("DROP TRIGGER inspection_event_no_change ON inspection_event"))


@pytest.fixture
def story(services):
    record_story(services.store)
    return services


# -- AUD-01: the database refuses UPDATE and DELETE --------------------------------------------------
@pytest.mark.parametrize("sql", [
    "UPDATE inspection_event SET actor = 'Someone else' WHERE seq = 2",
    "UPDATE inspection_event SET hash = hash",  # even a no-op rewrite
    "DELETE FROM inspection_event WHERE seq = 5",
    "DELETE FROM inspection_event",
])
def test_raw_sql_update_and_delete_are_refused(story, sql):
    before = Inspections(story.store).events()
    with pytest.raises(sa_exc.DBAPIError, match="append-only"):
        with story.store.engine.begin() as conn:
            conn.execute(text(sql))
    assert Inspections(story.store).events() == before
    assert Inspections(story.store).chain().ok


def test_raw_sql_outside_the_app_engine_is_refused_too(story, db_url):
    engine = raw(db_url)
    try:
        with pytest.raises(sa_exc.DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text("UPDATE inspection_event SET payload = '{}' WHERE seq = 3"))
        with pytest.raises(sa_exc.DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM inspection_event WHERE seq = 1"))
    finally:
        engine.dispose()
    assert len(Inspections(story.store).events()) == 5


def test_orm_update_and_delete_are_refused(story):
    with Session(story.store.engine) as s:
        ev = s.get(InspectionEvent, 2)
        assert ev is not None and ev.kind == "answer.saved"
        ev.actor = "Someone else"
        with pytest.raises(sa_exc.DBAPIError, match="append-only"):
            s.commit()
        s.rollback()
        ev = s.scalars(select(InspectionEvent).where(InspectionEvent.seq == 4)).one()
        s.delete(ev)
        with pytest.raises(sa_exc.DBAPIError, match="append-only"):
            s.commit()
        s.rollback()
    events = Inspections(story.store).events()
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[1]["actor"] == "Mgr A"


def test_truncate_is_refused_on_postgres(pg_url, playbook, clock):
    svc = build_services(pg_url, clock=clock, playbook=playbook, actor="t")
    try:
        record_story(svc.store)
        with pytest.raises(sa_exc.DBAPIError, match="append-only"):
            with svc.store.engine.begin() as conn:
                conn.execute(text("TRUNCATE inspection_event"))
        assert len(Inspections(svc.store).events()) == 5
    finally:
        svc.store.engine.dispose()


def test_appending_still_works_and_extends_the_chain(story):
    insp = Inspections(story.store)
    head = insp.chain().head
    s = insp.start_session(manager="Mgr A", team="Team A", queue=[1], week_of=date(2026, 11, 9), now=at(60))
    events = insp.events()
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[-1]["session_id"] == s.id and events[-1]["kind"] == "session.started"
    with story.store.engine.connect() as conn:
        assert conn.execute(text("SELECT prev_hash FROM inspection_event WHERE seq = 6")).scalar() == head
    assert insp.chain().ok and insp.chain().head == events[-1]["hash"]


# -- AUD-02: tamper out of band, `inspector log verify` names the event -------------------------------
def test_untampered_log_verifies_with_its_head(story, db_url):
    head = Inspections(story.store).chain().head
    story.store.engine.dispose()
    result = run("--db", db_url, "log", "verify")
    assert result.exit_code == 0
    assert result.stdout == f"ok: 5 events, head {head}\n"
    assert result.stderr == ""


@pytest.mark.parametrize("column,value", [("actor", "Someone else"), ("at", None), ("deal_id", 2),
                                          ("kind", "answer.saved")])
def test_editing_an_event_in_the_middle_is_named(story, db_url, column, value):
    """Drop the guard, change one column of event 3, put nothing else back: verify names event 3."""
    dialect = story.store.dialect
    engine = raw(db_url)
    try:
        with engine.begin() as conn:
            drop_guards(conn, dialect)
            if column == "at":
                old = read_ts(conn.execute(text("SELECT at FROM inspection_event WHERE seq = 3")).scalar())
                new = old + timedelta(seconds=1)
                value = new.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else new
            conn.execute(text(f"UPDATE inspection_event SET {column} = :v WHERE seq = 3"), {"v": value})
    finally:
        engine.dispose()
    story.store.engine.dispose()
    result = run("--db", db_url, "log", "verify")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "broken at event 3: content does not match its hash\n"


def test_deleting_an_event_in_the_middle_is_named(story, db_url):
    engine = raw(db_url)
    try:
        with engine.begin() as conn:
            drop_guards(conn, story.store.dialect)
            conn.execute(text("DELETE FROM inspection_event WHERE seq = 2"))
    finally:
        engine.dispose()
    result = run("--db", db_url, "log", "verify")
    assert result.exit_code == 1
    assert result.stderr == "broken at event 3: sequence gap: expected 2\n"


def test_rewriting_the_rest_of_the_chain_is_caught_by_an_earlier_export(story, db_url, tmp_path):
    """A careful forger edits event 3 and re-hashes it and every later event. The chain then
    verifies on its own, which is why exports carry the anchor: the earlier export proves it."""
    story.store.engine.dispose()
    out = tmp_path / "log.json"
    assert run("--db", db_url, "export", "log", "--format", "json", "--output", str(out)).exit_code == 0
    assert read_anchor(out)[0] == 5
    engine = raw(db_url)
    try:
        with engine.begin() as conn:
            drop_guards(conn, story.store.dialect)
            rows = conn.execute(text(
                "SELECT seq, at, actor, kind, entity, entity_id, session_id, deal_id, payload, prev_hash "
                "FROM inspection_event ORDER BY seq")).fetchall()
            prev = GENESIS
            for seq, ts_, actor, kind, entity, eid, sid, did, payload, _p in rows:
                if seq == 3:
                    payload = payload.replace("CFO said yes", "Criteria met")
                h = event_hash(seq, read_ts(ts_), actor, kind, entity, eid, sid, did, payload, prev)
                conn.execute(text("UPDATE inspection_event SET payload = :p, prev_hash = :prev, hash = :h "
                                  "WHERE seq = :s"), {"p": payload, "prev": prev, "h": h, "s": seq})
                prev = h
    finally:
        engine.dispose()
    alone = run("--db", db_url, "log", "verify")
    assert alone.exit_code == 0  # a consistent forgery: the chain alone cannot tell
    result = run("--db", db_url, "log", "verify", "--against", str(out))
    assert result.exit_code == 1
    # the export holds only the anchor (event 5), so that is the event it can name
    assert result.stderr == (f"{out}: event 5 now hashes to {alone.stdout.split()[-1][:16]}…, the export "
                             f"recorded {GOLDEN_STORY_HEAD[:16]}…: the log was rewritten\n")


def test_read_only_reviewer_verifies_without_writing(story, db_url, playbook):
    count, head = 5, Inspections(story.store).chain().head
    svc = build_services(db_url, read_only=True, playbook=playbook)
    try:
        check = verify_prefix(svc.store, count, head)
        assert check.ok and check.current_count == 5
        with pytest.raises(sa_exc.DBAPIError):
            with svc.store.engine.begin() as conn:
                conn.execute(text("INSERT INTO inspection_event (seq, at, actor, kind, entity, entity_id, "
                                  "payload, prev_hash, hash) VALUES (6, CURRENT_TIMESTAMP, 'x', 'x', 'x', 1, "
                                  "'{}', :p, :h)"), {"p": head, "h": "1" * 64})
    finally:
        svc.store.engine.dispose()
    assert Inspections(story.store).chain().count == 5


# -- AUD-05: the canonical encoding and golden hashes --------------------------------------------------
def test_canonical_json_is_sorted_compact_utf8_with_z_times_and_decimal_strings():
    value = {"b": Decimal("1200.50"), "a": datetime(2026, 11, 3, 11, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),
             "c": date(2026, 11, 30), "d": ["Zoë", None, True, 3], "e": {"y": 1, "x": frozenset({"q", "p"})}}
    assert canonical_json(value) == ('{"a":"2026-11-03T09:00:00.000005Z","b":"1200.50","c":"2026-11-30",'
                                     '"d":["Zoë",null,true,3],"e":{"x":["p","q"],"y":1}}')
    assert utc_z(datetime(2026, 11, 3, 9, 0)) == "2026-11-03T09:00:00.000000Z"  # naive means UTC


def test_event_hash_golden_value():
    payload = canonical_json({"question": "problem", "new": ["Zoë pays €1,200.50", "confirmed"],
                              "old": ["", "missing"]})
    h = event_hash(2, datetime(2026, 11, 3, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1))), "Mgr A",
                   "answer.saved", "inspection", 7, 1, 42, payload, "ab" * 32)
    # the body is spelled out here so a change to the encoding cannot go unnoticed
    body = ('{"actor":"Mgr A","at":"2026-11-03T09:00:00.123456Z","deal_id":42,"entity":"inspection",'
            '"entity_id":7,"kind":"answer.saved","payload":"{\\"new\\":[\\"Zoë pays €1,200.50\\",'
            '\\"confirmed\\"],\\"old\\":[\\"\\",\\"missing\\"],\\"question\\":\\"problem\\"}",'
            '"prev":"' + "ab" * 32 + '","seq":2,"session_id":1}')
    assert h == hashlib.sha256(body.encode("utf-8")).hexdigest()
    assert h == GOLDEN_HASH


GOLDEN_HASH = "a47591df811e9d42b27361ce98298bee7994e8fd44244504decfaea13168cd49"
GOLDEN_STORY_HEAD = "df2b6e6b2edd0168d358c63cfe1bf79e217842c098e6f92f280c6c16875e1a65"


def test_the_same_story_gives_the_same_head_on_both_backends(story):
    """Timestamps and payloads survive each backend unchanged, so the chain is the same everywhere."""
    report = Inspections(story.store).chain()
    assert report.ok and report.count == 5
    assert report.head == GOLDEN_STORY_HEAD
    from inspector.reports import log_export

    x = log_export(story.store)
    assert x.events[0]["prev_hash"] == GENESIS
    assert [e["prev_hash"] for e in x.events[1:]] == [e["hash"] for e in x.events[:-1]]
    assert x.events[1]["at"] == "2026-11-03T09:01:00.123456Z"  # microseconds kept, UTC
