"""kill -9 while saving answers (DB-03): every acknowledged save survives, nothing is half-written.

A child process saves answers one by one, each into its own (deal, question) slot, and prints
"SAVED n" only after `save_answer` has returned (the commit is done). The parent SIGKILLs it
at a random moment, then reopens the store the way a restarted app would.
"""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date, datetime, timezone

import pytest

from inspector.playbook import load_playbook
from inspector.services import build_services
from inspector.storage.inspections import Inspections

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
DEALS = 10

CHILD = r"""
import sys
from datetime import datetime, timezone
from inspector.playbook import load_playbook
from inspector.services import build_services
from inspector.storage.inspections import Inspections

url, sid = sys.argv[1], int(sys.argv[2])
pb = load_playbook()
svc = build_services(url, playbook=pb, actor="child")
insp = Inspections(svc.store)
slots = [(s.id, q.key) for q in pb.questions for s in insp.states(sid)]
print("READY", flush=True)
for n, (iid, question) in enumerate(slots):
    insp.save_answer(iid, question, "answer " + str(n), "claimed", expected=("", "missing"),
                     actor="child", now=datetime.now(timezone.utc))
    print("SAVED", n, flush=True)
print("DONE", flush=True)
"""


def slots(insp: Inspections, sid: int) -> list[tuple[int, str]]:
    """The child's slot order: question by question, deal by deal (queue order)."""
    return [(s.deal_id, q.key) for q in load_playbook().questions for s in insp.states(sid)]


def prepare(url: str) -> int:
    svc = build_services(url, actor="setup")
    try:
        svc.store.bulk_insert("deal", [{
            "id": i, "source": "t", "external_id": f"T-{i}", "name": f"Deal {i}", "team": "Team A",
            "manager": "Mgr A", "stage": "discovery", "status": "open", "amount_minor": 100_000 * i,
            "currency": "USD", "forecast_category": "pipeline"} for i in range(1, DEALS + 1)])
        return Inspections(svc.store).start_session(manager="Mgr A", team="Team A",
                                                    queue=list(range(1, DEALS + 1)),
                                                    week_of=date(2026, 11, 30), now=NOW).id
    finally:
        svc.store.engine.dispose()


def kill_mid_save(url: str, sid: int, rng: random.Random) -> list[int]:
    """Run the child, SIGKILL it at a random point; returns every n it acknowledged."""
    target = rng.randint(1, 60)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, str(sid)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    acked: list[int] = []
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        while len(acked) < target:
            line = proc.stdout.readline()
            assert line.startswith("SAVED "), (line, proc.stderr.read())
            acked.append(int(line.split()[1]))
        time.sleep(rng.uniform(0, 0.02))  # land anywhere, often inside the next transaction
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # whatever it printed before dying was acknowledged too
        for line in proc.stdout.read().splitlines():
            if line.startswith("SAVED "):
                acked.append(int(line.split()[1]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return acked


def check_after_crash(url: str, sid: int, acked: list[int]) -> None:
    assert acked == list(range(len(acked))), "the child acknowledges saves in order"
    svc = build_services(url, actor="resume")  # reopening runs recovery, as a restarted app would
    try:
        insp = Inspections(svc.store)
        order = slots(insp, sid)
        states = {s.deal_id: s for s in insp.states(sid)}
        stored = {(d, q): t for d, s in states.items() for q, (t, _e) in s.answers.items()}
        for n in acked:
            assert stored.get(order[n]) == f"answer {n}", f"acknowledged save {n} was lost"
        # saves are sequential: the store holds a prefix, at most one save past the last ack
        assert len(stored) in (len(acked), len(acked) + 1)
        assert set(stored) == set(order[:len(stored)])
        assert all(stored[order[n]] == f"answer {n}" for n in range(len(stored)))
        # the answer, the inspection status and the event are one transaction
        answered = {d for d, _q in stored}
        assert {d for d, s in states.items() if s.status == "inspected"} == answered
        saves = [e for e in insp.events() if e["kind"] == "answer.saved"]
        assert [e["payload"]["new"][0] for e in saves] == [f"answer {n}" for n in range(len(stored))]
        report = insp.chain()
        assert report.ok, (report.broken_seq, report.problem)
        assert report.count == 1 + len(stored)
        # and the restarted app can carry on where it stopped
        nxt = len(stored)
        deal, question = order[nxt]
        insp.save_answer(states[deal].id, question, f"answer {nxt}", "claimed", expected=("", "missing"),
                         actor="resume", now=NOW)
        assert insp.chain().ok
    finally:
        svc.store.engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(5))
def test_sigkill_while_saving_sqlite(tmp_path, round_):
    path = tmp_path / "crash.db"
    url = f"sqlite:///{path}"
    sid = prepare(url)
    acked = kill_mid_save(url, sid, random.Random(1000 + round_))
    assert acked, "the child saved nothing before the kill"
    conn = sqlite3.connect(path)  # first, as it is on disk after the crash (WAL and all)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    check_after_crash(url, sid, acked)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("round_", range(2))
def test_sigkill_while_saving_postgres(pg_url, round_):
    sid = prepare(pg_url)
    acked = kill_mid_save(pg_url, sid, random.Random(2000 + round_))
    assert acked
    time.sleep(0.2)  # the server notices the dead client and rolls its transaction back
    check_after_crash(pg_url, sid, acked)
