"""Kill -9 mid-sync: a real `inspector sync` process is SIGKILLed after page N commits (while it
waits for page N+1); the next run resumes at page N+1 with no duplicates and no gaps."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import text

from inspector.services import build_services
from inspector.sources.crm import Cursor
from inspector.sync import read_state, sync_source
from tests.emulators.fixtures import hubspot_source
from tests.emulators.hubspot import HubSpotEmulator, _b64

ROOT = Path(__file__).resolve().parents[2]
PAGE = 50
N = 2  # pages committed before the kill


def _env(tmp_path: Path, emu: HubSpotEmulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTOR_")}
    env.update(INSPECTOR_HUBSPOT_TOKEN=emu.token, INSPECTOR_CONFIG_DIR=str(tmp_path / "cfg"), TZ="UTC",
               PYTHONPATH=str(ROOT))
    return env


def _rows(result) -> list[tuple]:
    return sorted((tuple("" if v is None else str(v) for v in r) for r in result))


def _snapshot(db) -> tuple:
    svc = build_services(db)
    try:
        with svc.store.engine.connect() as conn:
            deals = _rows(conn.execute(text(
                "SELECT external_id, name, account, owner, stage, amount_minor, close_date, forecast_category, "
                "status FROM deal")))
            changes = _rows(conn.execute(text(
                "SELECT d.external_id, c.field, c.old, c.new, c.changed_at FROM deal_change c "
                "JOIN deal d ON d.id = c.deal_id")))
            acts = _rows(conn.execute(text(
                "SELECT d.external_id, a.external_id, a.kind, a.occurred_at FROM activity a "
                "JOIN deal d ON d.id = a.deal_id")))
        return deals, changes, acts
    finally:
        svc.store.engine.dispose()


def test_sigkill_after_page_n_resumes_at_page_n_plus_1(tmp_path, playbook, clock):
    emu = HubSpotEmulator(deals=5 * PAGE)
    db = tmp_path / "resume.db"
    held, release = threading.Event(), threading.Event()
    next_after = _b64(emu.order[N * PAGE - 1])  # the cursor of page N+1

    def hold_page_n_plus_1(seen) -> None:
        if seen.method == "GET" and seen.path == "/crm/v3/objects/deals" and seen.query.get("after") == next_after \
                and not release.is_set():
            held.set()
            release.wait(60)

    emu.hook = hold_page_n_plus_1
    argv = [sys.executable, "-m", "inspector", "--db", str(db), "sync", "hubspot", "--full", "--base-url", emu.url]
    child = subprocess.Popen(argv, cwd=ROOT, env=_env(tmp_path, emu), stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        for line in child.stderr:
            lines.append(line)
            if f"page {N} committed" in line:
                break
        assert held.wait(60), "".join(lines)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL, "".join(lines)

    # the checkpoint: N pages committed, the cursor points at page N+1
    svc = build_services(db)
    state = read_state(svc.store, "hubspot")
    with svc.store.engine.connect() as conn:
        committed = conn.execute(text("SELECT COUNT(*) FROM deal")).scalar()
    svc.store.engine.dispose()
    assert state.status == "running" and Cursor.load(state.cursor).after == next_after
    assert committed == N * PAGE and state.counts["pages"] == N

    emu.hook = None
    emu.seen.clear()
    done = subprocess.run(argv, cwd=ROOT, env=_env(tmp_path, emu), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"resuming an interrupted full sync at page {N + 1}" in done.stderr
    lists = [s.query.get("after") for s in emu.requests_to("/crm/v3/objects/deals", "GET")]
    assert lists[0] == next_after and None not in lists  # pages 1..N were not fetched again
    assert len(lists) == 5 - N
    assert read_state(build_services(db).store, "hubspot").status == "idle"

    # no duplicates, no gaps: identical to one uninterrupted run
    ref_db = tmp_path / "reference.db"
    ref = build_services(ref_db, clock=clock, playbook=playbook)
    src = hubspot_source(emu, playbook)
    sync_source(ref.store, playbook, src, full=True, now=datetime(2026, 12, 3, 9, tzinfo=timezone.utc))
    src.close()
    ref.store.engine.dispose()
    resumed, reference = _snapshot(db), _snapshot(ref_db)
    assert len(resumed[0]) == 5 * PAGE and len(resumed[2]) == 5 * PAGE * 5
    assert resumed == reference
    emu.close()
