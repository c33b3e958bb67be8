"""Two real OS processes saving to the same inspection at once (DB-02, AUD chain under load).

Each process does read-then-write saves of the notes field through Inspections.save_decisions,
passing the value it just read as the expected one; on StaleEdit it re-reads and retries. Each
save appends a token, so a lost update would show as a missing token. On SQLite this exercises
BEGIN IMMEDIATE and the busy timeout; on PostgreSQL the row lock and the advisory lock that
keeps the event chain from forking.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text

from inspector.services import build_services
from inspector.storage.inspections import Inspections

SAVES = 300
TAGS = ("A", "B")
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)

WORKER = r"""
import json, random, sys, time
from datetime import datetime, timezone
from inspector.playbook import load_playbook
from inspector.services import build_services
from inspector.storage.inspections import Inspections, StaleEdit

url, sid, deal, tag, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
svc = build_services(url, playbook=load_playbook(), actor=tag)
insp = Inspections(svc.store)
iid = insp.state(sid, deal).id
print("READY", flush=True)
sys.stdin.readline()  # wait for GO, so both processes start together
ok = stale = 0
errors = []
for i in range(n):
    while True:
        seen = insp.state(sid, deal).decisions["notes"] or ""
        try:
            insp.save_decisions(iid, {"notes": (seen, (seen + " " + tag + str(i)).strip())},
                                actor=tag, now=datetime.now(timezone.utc))
        except StaleEdit:
            stale += 1
            continue
        except Exception as exc:
            errors.append(type(exc).__name__ + ": " + str(exc).splitlines()[0])
            break
        ok += 1
        break
    # A manager pauses between answers. Without a pause, SQLite's busy handler can leave the
    # other process asleep for this one's whole run, and the writers would never compete.
    time.sleep(random.uniform(0.001, 0.004))
print(json.dumps({"ok": ok, "stale": stale, "errors": errors[:5], "n_errors": len(errors)}), flush=True)
"""


def prepare(url: str) -> tuple[int, int]:
    """One deal in one open session; returns (session id, deal id)."""
    svc = build_services(url, actor="setup")
    try:
        svc.store.bulk_insert("deal", [{
            "id": 1, "source": "t", "external_id": "T-1", "name": "Shared deal", "team": "Team A",
            "manager": "Mgr A", "stage": "discovery", "status": "open", "amount_minor": 1_000_000,
            "currency": "USD", "forecast_category": "pipeline"}])
        sid = Inspections(svc.store).start_session(manager="Mgr A", team="Team A", queue=[1],
                                                   week_of=date(2026, 11, 30), now=NOW).id
    finally:
        svc.store.engine.dispose()
    return sid, 1


def run_two_writers(url: str, sid: int, deal: int) -> list[dict]:
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(sid), str(deal), tag, str(SAVES)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for tag in TAGS]
    try:
        for p in procs:
            line = p.stdout.readline()
            assert line.strip() == "READY", p.stderr.read()
        for p in procs:
            p.stdin.write("GO\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def check_store(url: str, sid: int, deal: int, results: list[dict]) -> list[dict]:
    for tag, r in zip(TAGS, results):
        assert r["n_errors"] == 0, (tag, r["errors"])
        assert r["ok"] == SAVES, (tag, r)
    svc = build_services(url, actor="check")
    try:
        insp = Inspections(svc.store)
        notes = insp.state(sid, deal).decisions["notes"].split()
        expected = {f"{tag}{i}" for tag in TAGS for i in range(SAVES)}
        assert len(notes) == len(expected) and set(notes) == expected, "an update was lost or doubled"
        for tag in TAGS:  # each writer's tokens are in its own order
            mine = [int(t[1:]) for t in notes if t[0] == tag]
            assert mine == sorted(mine)
        report = insp.chain()
        assert report.ok, (report.broken_seq, report.problem)
        events = insp.events()
        saves = [e for e in events if e["kind"] == "decision.saved"]
        assert len(saves) == sum(r["ok"] for r in results) == report.count - 1
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        with svc.store.engine.connect() as conn:
            distinct_prev = conn.execute(text("SELECT COUNT(DISTINCT prev_hash) FROM inspection_event")).scalar()
        assert distinct_prev == len(events), "two events share a parent: the chain forked"
        for e in saves:  # each event records exactly the change its writer made
            old, new = e["payload"]["notes"]["old"], e["payload"]["notes"]["new"]
            assert new.split()[:-1] == (old or "").split() and new.split()[-1][0] == e["actor"]
        return events
    finally:
        svc.store.engine.dispose()


def switches(events: list[dict]) -> int:
    actors = [e["actor"] for e in events if e["kind"] == "decision.saved"]
    return sum(a != b for a, b in zip(actors, actors[1:]))


def assert_overlapped(events: list[dict], results: list[dict]) -> None:
    """The writers really competed: their saves interleaved, or one was refused as stale.

    (On SQLite one writer can be starved for the other's whole run: it waits in the busy
    handler while the other commits back to back, then its first save is stale.)
    """
    stale = sum(r["stale"] for r in results)
    assert switches(events) > 1 or stale > 0, "the writers never overlapped: nothing was tested"


@pytest.mark.slow
def test_two_sqlite_processes_read_then_write(tmp_path):
    path = tmp_path / "shared.db"
    url = f"sqlite:///{path}"
    sid, deal = prepare(url)
    results = run_two_writers(url, sid, deal)
    events = check_store(url, sid, deal, results)
    assert_overlapped(events, results)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_two_postgres_processes_read_then_write(pg_url):
    sid, deal = prepare(pg_url)
    results = run_two_writers(pg_url, sid, deal)
    events = check_store(pg_url, sid, deal, results)
    assert_overlapped(events, results)
