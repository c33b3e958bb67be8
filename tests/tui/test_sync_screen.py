"""The Sync screen (F5) by keyboard against the HubSpot emulator on 127.0.0.1: a full sync with
progress and counts, a slow sync cancelled with `c` that leaves the store consistent and
resumes where it stopped, and the push action (preview field by field, then send)."""
from __future__ import annotations

import threading
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text
from textual.widgets import DataTable, ProgressBar, Static

from inspector import writeback
from inspector.screens.app import InspectorApp
from inspector.screens.sync_screen import SyncScreen
from inspector.storage.inspections import Inspections
from inspector.sync import read_state
from tests.emulators.base import Fault
from tests.emulators.hubspot import HubSpotEmulator

HOSTILE = "[@click=app.quit]Deal [/foo] [b]x"
DEALS = "/crm/v3/objects/deals"
NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)


@pytest.fixture
def emu(monkeypatch, tmp_path):
    emu = HubSpotEmulator(deals=120, activities=1)
    emu.modify("10000005", dealname=HOSTILE)
    monkeypatch.setenv("INSPECTOR_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("INSPECTOR_HUBSPOT_TOKEN", emu.token)
    monkeypatch.setenv("INSPECTOR_HUBSPOT_URL", emu.url)
    yield emu
    emu.close()


def shown(screen, selector: str) -> str:
    visual = screen.query_one(selector, Static).visual
    return getattr(visual, "plain", str(visual))


async def wait_until(pilot, predicate, rounds: int = 600) -> None:
    """Let the app run until `predicate()` holds (a bounded number of short pauses)."""
    for _ in range(rounds):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


async def open_sync(pilot) -> SyncScreen:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press("f5")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, SyncScreen))
    return pilot.app.screen


def _count(svc, sql: str):
    with svc.store.engine.connect() as conn:
        return conn.execute(text(sql)).first()


async def test_full_sync_from_the_screen_shows_progress_and_counts(sqlite_services, emu):
    svc = sqlite_services
    app = InspectorApp(svc)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_sync(pilot)
        await wait_until(pilot, lambda: "never synced" in shown(screen, "#last-run"))
        held, release = threading.Event(), threading.Event()

        def hold_page_2(seen):  # the server keeps page 2 waiting until the test has looked
            if seen.path == DEALS and "after" in seen.query and not held.is_set():
                held.set()
                release.wait(30)

        emu.hook = hold_page_2
        await pilot.press("f")
        await wait_until(pilot, lambda: held.is_set() and screen.last_status is not None
                         and screen.last_status.pages == 1)
        await pilot.pause()
        bar = screen.query_one("#progress", ProgressBar)
        assert (bar.total, bar.progress) == (120, 50)
        assert shown(screen, "#counts") == "1 page, 50/120 deals: 50 new, 0 updated, 0 unchanged; 50 activities"
        assert screen.running
        release.set()
        await wait_until(pilot, lambda: not screen.running and screen.last_status is not None
                         and screen.last_status.state == "done")
        await pilot.pause()
        assert app.is_running
        counts = shown(screen, "#counts")
        assert counts == "3 pages, 120/120 deals: 120 new, 0 updated, 0 unchanged; 120 activities"
        assert shown(screen, "#sync-message") == "sync complete"
        assert bar.total == 120 and bar.progress == 120
        assert "last run: idle" in shown(screen, "#last-run")
        assert _count(svc, "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM deal") == (120, 120)
        assert _count(svc, "SELECT name FROM deal WHERE external_id = '10000005'") == (HOSTILE,)

        # an incremental run from the same screen changes nothing
        await pilot.press("i")
        await wait_until(pilot, lambda: not screen.running and "incremental" not in shown(screen, "#sync-message")
                         and screen.last_status.full is False and screen.last_status.state == "done")
        assert "0 new, 0 updated" in shown(screen, "#counts")
        assert _count(svc, "SELECT COUNT(*) FROM deal") == (120,)


async def test_cancel_a_slow_sync_keeps_the_store_consistent_and_resumes(sqlite_services, emu):
    svc = sqlite_services
    emu.add_fault(Fault(kind="slow", delay=0.4, path=DEALS, method="GET", count=99))
    app = InspectorApp(svc)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_sync(pilot)
        await pilot.press("f")
        await wait_until(pilot, lambda: screen.last_status is not None and screen.last_status.pages >= 1)
        await pilot.press("c")
        assert shown(screen, "#sync-message") == "cancelling after the current page…"
        await wait_until(pilot, lambda: not screen.running)
        await pilot.pause()
        st = screen.last_status
        assert st.state == "cancelled" and st.pages in (1, 2)
        assert shown(screen, "#sync-message") == f"cancelled after page {st.pages}; the next run resumes there"
        assert app.is_running
        # consistent: whole pages only, each deal once, a checkpoint to resume from
        committed = st.pages * 50
        assert _count(svc, "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM deal") == (committed, committed)
        assert _count(svc, "SELECT COUNT(*) FROM activity") == (committed,)
        state = read_state(svc.store, "hubspot")
        assert state.status == "interrupted" and state.cursor and state.last_error == "cancelled by the user"
        assert "interrupted" in shown(screen, "#last-run")
        lists_before = len(emu.requests_to(DEALS, "GET"))

        emu.faults.clear()
        await pilot.press("f")
        await wait_until(pilot, lambda: not screen.running and screen.last_status.state == "done")
        assert screen.last_status.resumed
        assert len(emu.requests_to(DEALS, "GET")) - lists_before == 3 - st.pages  # committed pages not re-read
        assert _count(svc, "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM deal") == (120, 120)
        assert _count(svc, "SELECT COUNT(*) FROM activity") == (120,)


async def test_push_preview_then_send_from_the_screen(sqlite_services, emu, playbook):
    svc = sqlite_services
    app = InspectorApp(svc)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_sync(pilot)
        await pilot.press("f")
        await wait_until(pilot, lambda: not screen.running and screen.last_status is not None)
        assert screen.last_status.state == "done"

        ids = dict(_row for _row in _rows(svc, "SELECT external_id, id FROM deal"))
        insp = Inspections(svc.store)
        chosen = ["10000005", "10000006"]
        session = insp.start_session(manager="Mia", team="East", queue=[ids[e] for e in chosen],
                                     week_of=date(2026, 11, 30), now=NOW)
        for e in chosen:
            st = insp.state(session.id, ids[e])
            insp.save_decisions(st.id, {"next_step": (st.decisions["next_step"], f"Call CFO {e}")}, actor="Mia", now=NOW)
        insp.finish(session.id, actor="Mia", now=NOW)
        emu.seen.clear()

        await pilot.press("p")
        await wait_until(pilot, lambda: len(screen.preview_lines) == 4)
        await pilot.pause()
        table = screen.query_one("#outbox", DataTable)
        assert table.row_count == 4
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert [HOSTILE, "HubSpot 10000005", "Next step", "Call 1", "Call CFO 10000005", "queued"] in rows \
            or [HOSTILE, "HubSpot 10000005", "Next step", "Call 5", "Call CFO 10000005", "queued"] in rows
        assert sum(1 for r in rows if r[2] == "Note") == 2
        assert "4 new change(s) queued" in shown(screen, "#push-message")
        assert emu.seen == []  # previewing sends nothing
        assert app.is_running  # the hostile name was shown, not run

        await pilot.press("s")
        await wait_until(pilot, lambda: screen.preview_lines == [] and table.row_count == 0
                         and "already in the CRM" in shown(screen, "#push-message"))
        assert emu.deals["10000005"].props["hs_next_step"] == "Call CFO 10000005"
        assert len(emu.notes) == 2
        # the summary of what was sent stays visible after the outbox refresh
        assert shown(screen, "#push-message") == ("HubSpot: 4 sent, 0 already there, 0 conflicts, 0 failed (kept queued)"
                                                  " · 0 new change(s) queued; 2 already in the CRM · 0 to send")  # both next steps
        assert writeback.preview(svc.store) == []


def _rows(svc, sql: str) -> list[tuple]:
    with svc.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]
