"""A big sync writes (and maps) pages in a helper process while this one reads the next page
(`inspector.sync._ProcessWriter`). Against the HubSpot emulator: it stores exactly what the
in-process sync stores, and keeps every promise of the sync: cancel and CRM failures keep the
checkpoint, resume has no duplicates and no gaps, a helper that dies is an error, not a hang."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from inspector.services import build_services
from inspector.sources.crm import Cursor
from inspector.sources.hubspot import HubSpotMapper
from inspector.sources.http import CrmError
from inspector.subproc import HelperError
from inspector.sync import AHEAD, read_state, sync_source
from tests.emulators.base import Fault
from tests.emulators.fixtures import hubspot_source
from tests.emulators.hubspot import HubSpotEmulator, _b64

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)
PAGE = 50
PAGES = 10  # more than the pages the parent reads ahead of the helper (AHEAD)


@pytest.fixture
def emu():
    e = HubSpotEmulator(deals=PAGES * PAGE)
    yield e
    e.close()


def _sync(db: Path, emu, playbook, *, process: bool, now: datetime = NOW, **kw):
    svc = build_services(db, playbook=playbook)
    src = hubspot_source(emu, playbook)
    try:
        return sync_source(svc.store, playbook, src, full=True, now=now, writer_process=process, **kw)
    finally:
        src.close()
        svc.store.engine.dispose()


def _snapshot(db: Path) -> tuple:
    svc = build_services(db)
    try:
        with svc.store.engine.connect() as conn:
            def rows(sql: str) -> list[tuple]:
                return sorted(tuple("" if v is None else str(v) for v in r) for r in conn.execute(text(sql)))
            return (
                rows("SELECT external_id, name, account, owner, team, stage, crm_stage, status, amount_minor, "
                     "currency, close_date, forecast_category, next_step, created_on, crm_updated_at, extras, "
                     "stage_entered_on, close_pushes, last_activity_at FROM deal"),
                rows("SELECT d.external_id, c.field, c.old, c.new, c.changed_at, c.source FROM deal_change c "
                     "JOIN deal d ON d.id = c.deal_id"),
                rows("SELECT d.external_id, a.external_id, a.kind, a.occurred_at, a.summary, a.who FROM activity a "
                     "JOIN deal d ON d.id = a.deal_id"),
                rows("SELECT source, cursor, watermark, status, last_error FROM sync_state"),
            )
    finally:
        svc.store.engine.dispose()


def _reference(tmp_path: Path, emu, playbook) -> tuple:
    db = tmp_path / "inline.db"
    status = _sync(db, emu, playbook, process=False)
    assert status.state == "done"
    return _snapshot(db)


def test_the_helper_process_stores_what_the_inline_sync_stores(tmp_path, emu, playbook):
    reference = _reference(tmp_path, emu, playbook)
    seen: list[int] = []
    status = _sync(tmp_path / "process.db", emu, playbook, process=True, progress=lambda s: seen.append(s.pages))
    assert (status.state, status.pages, status.deals, status.created, status.activities) == \
        ("done", PAGES, PAGES * PAGE, PAGES * PAGE, PAGES * PAGE * 5)
    # progress as pages commit (several commits that land together are one report)
    # (the first report comes at the latest when AHEAD pages are out, so before the end)
    assert seen == sorted(seen) and seen[-1] == PAGES and min(set(seen) - {0}) <= AHEAD
    assert _snapshot(tmp_path / "process.db") == reference
    assert len(reference[0]) == PAGES * PAGE and len(reference[2]) == PAGES * PAGE * 5
    # a second run through the helper changes nothing
    again = _sync(tmp_path / "process.db", emu, playbook, process=True, now=NOW + timedelta(hours=1))
    assert (again.created, again.updated, again.changes, again.activities) == (0, 0, 0, 0)


def test_cancel_keeps_the_committed_pages_and_resume_completes(tmp_path, emu, playbook):
    reference = _reference(tmp_path, emu, playbook)
    db = tmp_path / "cancel.db"
    pages_seen: list[int] = []
    status = _sync(db, emu, playbook, process=True, progress=lambda s: pages_seen.append(s.pages),
                   should_stop=lambda: bool(pages_seen) and pages_seen[-1] >= 1)
    assert status.state == "cancelled" and 1 <= status.pages <= AHEAD < PAGES  # the pages read ahead commit
    state = read_state(build_services(db).store, "hubspot")
    assert state.status == "interrupted" and state.counts["pages"] == status.pages
    assert Cursor.load(state.cursor).after == _b64(emu.order[status.pages * PAGE - 1])
    emu.seen.clear()
    done = _sync(db, emu, playbook, process=True)
    assert done.state == "done" and done.resumed and done.pages == PAGES
    lists = [s.query.get("after") for s in emu.requests_to("/crm/v3/objects/deals", "GET")]
    assert None not in lists and len(lists) == PAGES - status.pages  # committed pages not fetched again
    assert _snapshot(db) == reference


def test_a_crm_failure_mid_run_keeps_the_checkpoint(tmp_path, emu, playbook):
    reference = _reference(tmp_path, emu, playbook)
    db = tmp_path / "fail.db"
    emu.seen.clear()
    # page 3's listing answers 401 (no retry): pages 1 and 2, already handed over, still commit
    third = _b64(emu.order[2 * PAGE - 1])
    status_401, body_401 = emu.auth_error()

    def refuse_page_3(seen) -> None:
        if seen.method == "GET" and seen.path == "/crm/v3/objects/deals" and seen.query.get("after") == third:
            emu.add_fault(status=status_401, body=body_401, path="/crm/v3/objects/deals", method="GET")

    emu.hook = refuse_page_3
    with pytest.raises(CrmError) as err:
        _sync(db, emu, playbook, process=True)
    emu.hook = None
    assert err.value.kind == "auth"
    state = read_state(build_services(db).store, "hubspot")
    assert state.status == "failed" and state.counts["pages"] == 2
    assert Cursor.load(state.cursor).after == third
    done = _sync(db, emu, playbook, process=True)
    assert done.resumed and done.state == "done"
    assert _snapshot(db) == reference


def test_a_body_that_is_not_json_is_a_crm_error_from_the_helper(tmp_path, emu, playbook):
    db = tmp_path / "broken.db"
    emu.faults.append(Fault(status=207, body=b'{"status": "COMPLETE", "results": [', path="/crm/v3/objects/calls/batch/read",
                            method="POST"))
    with pytest.raises(CrmError) as err:
        _sync(db, emu, playbook, process=True)
    assert err.value.endpoint == "POST /crm/v3/objects/calls/batch/read" and "not JSON" in str(err.value)
    state = read_state(build_services(db).store, "hubspot")
    assert state.status == "failed" and state.counts.get("pages", 0) == 0  # page 1 did not commit


def test_mapper_decodes_late_with_the_endpoint_in_the_error(playbook):
    mapper = HubSpotMapper("hubspot", {}, {})
    with pytest.raises(CrmError, match="GET /crm/v3/objects/deals: HTTP 200 HubSpot sent a body that is not JSON"):
        mapper.build(playbook, (b"{not json", {}, []))
    err = CrmError("GET /x", 429, "slow down", kind="rate_limited", retry_after=2.0)
    import pickle

    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.kind, back.retry_after) == (str(err), "rate_limited", 2.0)


def test_a_helper_that_dies_is_an_error_and_the_checkpoint_stands(tmp_path, emu, playbook):
    db = tmp_path / "dies.db"
    svc = build_services(db, playbook=playbook)
    svc.store.engine.dispose()

    dropped: list[bool] = []

    def sabotage(status) -> None:  # at the first commit reported: later pages fail in the helper
        if status.pages >= 1 and not dropped:
            dropped.append(True)
            with build_services(db).store.engine.begin() as conn:
                conn.execute(text("DROP TABLE activity"))

    with pytest.raises(HelperError, match="(?s)sync writer failed.*activity"):
        _sync(db, emu, playbook, process=True, progress=sabotage)
    state = read_state(build_services(db).store, "hubspot")
    # pages read ahead may have committed before the table went
    assert state.status == "failed" and 1 <= state.counts["pages"] <= AHEAD


def test_sigkill_of_the_cli_with_a_helper_resumes_without_gaps(tmp_path, emu, playbook):
    """The CLI's sync, driven down the helper path, killed while page 3 is held: the helper
    stops with it, and the next run resumes at page 3."""
    import threading

    reference = _reference(tmp_path, emu, playbook)
    db = tmp_path / "killed.db"
    held, release = threading.Event(), threading.Event()
    third = _b64(emu.order[2 * PAGE - 1])

    def hold(seen) -> None:
        if seen.method == "GET" and seen.path == "/crm/v3/objects/deals" and seen.query.get("after") == third \
                and not release.is_set():
            held.set()
            release.wait(60)

    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTOR_")}
    env.update(INSPECTOR_HUBSPOT_TOKEN=emu.token, INSPECTOR_CONFIG_DIR=str(tmp_path / "cfg"), TZ="UTC",
               PYTHONPATH=str(ROOT), INSPECTOR_SYNC_WRITER="process")
    argv = [sys.executable, "-m", "inspector", "--db", str(db), "sync", "hubspot", "--full", "--base-url", emu.url]
    emu.hook = hold
    log = (tmp_path / "sync.log").open("w")
    child = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=log, text=True)
    try:
        # page 3 is held in the emulator: pages 1 and 2 are in the helper; wait until both
        # have committed (the store says so), then kill the CLI
        assert held.wait(60), (tmp_path / "sync.log").read_text()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = read_state(build_services(db).store, "hubspot")
            if state is not None and state.counts.get("pages") == 2:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        release.set()
        emu.hook = None
        if child.poll() is None:
            child.kill()
        log.close()
    assert child.returncode == -signal.SIGKILL
    state = read_state(build_services(db).store, "hubspot")
    assert state.status == "running" and state.counts["pages"] == 2
    assert Cursor.load(state.cursor).after == third
    emu.seen.clear()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming an interrupted full sync at page 3" in done.stderr
    lists = [q.query.get("after") for q in emu.requests_to("/crm/v3/objects/deals", "GET")]
    assert lists[0] == third and None not in lists and len(lists) == PAGES - 2  # no page read twice
    assert _snapshot(db)[:3] == reference[:3]


def test_salesforce_pages_are_mapped_in_the_helper_and_store_the_same(tmp_path, playbook):
    """Through the helper, Salesforce pages carry the query rows and the mapper (`Page.deferred`)
    and are mapped where they are written; the store ends up the same as an inline sync's."""
    from tests.emulators.fixtures import salesforce_source
    from tests.emulators.salesforce import SalesforceEmulator

    emu = SalesforceEmulator(opportunities=450)
    try:
        snaps = []
        for process in (False, True):
            db = tmp_path / f"sf-{process}.db"
            svc = build_services(db, playbook=playbook)
            src = salesforce_source(emu, playbook)
            deferred: list[bool] = []
            pages = src.iter_pages

            def watched(*a, pages=pages, deferred=deferred):
                for page in pages(*a):
                    deferred.append(page.deferred is not None and not page.records)
                    yield page
            src.iter_pages = watched
            try:
                status = sync_source(svc.store, playbook, src, full=True, now=NOW, writer_process=process)
            finally:
                src.close()
                svc.store.engine.dispose()
            assert (status.state, status.pages, status.deals, status.activities) == ("done", 3, 450, 450 * 5)
            assert deferred == [process] * 3 and not src.defer_mapping
            snaps.append(_snapshot(db))
        assert snaps[0] == snaps[1] and len(snaps[0][0]) == 450
    finally:
        emu.close()
