"""Writeback end to end against both CRM emulators (real HTTP servers on 127.0.0.1).

The manager's decisions (forecast call, next step, a note summarising the inspection) go to
the outbox, are previewed field by field, then sent in batches (HubSpot batch update ≤ 100,
Salesforce composite ≤ 200). A record the CRM refuses stays queued and is retried; pushing
twice changes nothing; a field changed in the CRM since the sync is a conflict, not
overwritten; a note whose answer was lost is found again, not created twice."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from inspector import writeback
from inspector.services import build_services
from inspector.storage.inspections import Inspections
from inspector.sync import sync_source
from tests.emulators.base import Fault
from tests.emulators.fixtures import hubspot_source, salesforce_source
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator

NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=2)
WEEK = date(2026, 11, 30)


def _table(svc, sql: str, **params) -> list[tuple]:
    with svc.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def _sync(svc, source, playbook) -> None:
    try:
        status = sync_source(svc.store, playbook, source, full=True, now=NOW)
    finally:
        source.close()
    assert status.state == "done"


def _decide(svc, source: str, decisions: dict[str, dict[str, str]], *, finish: bool = True) -> int:
    """One inspection session over the deals of `decisions` (external id -> decision fields)."""
    ids = dict(_table(svc, "SELECT external_id, id FROM deal WHERE source = :s", s=source))
    queue = [ids[e] for e in decisions]
    insp = Inspections(svc.store)
    session = insp.start_session(manager="Mia Manager", team="East", queue=queue, week_of=WEEK, now=NOW)
    for ext, fields in decisions.items():
        state = insp.state(session.id, ids[ext])
        insp.save_decisions(state.id, {f: (state.decisions.get(f), v) for f, v in fields.items()},
                            actor="Mia Manager", now=NOW)
    if finish:
        insp.finish(session.id, actor="Mia Manager", now=NOW)
    return session.id


def _outbox(svc) -> dict[tuple[str, str, str], tuple]:
    return {(r[0], r[1], r[2]): r[3:] for r in _table(
        svc, "SELECT external_id, kind, field, status, attempts, last_error, value FROM outbox")}


def _push(svc, client) -> writeback.PushResult:
    try:
        return writeback.push(svc.store, client, now=LATER, actor="Mia Manager")
    finally:
        client.close()


def _writes(emu, fragment: str, method: str = "POST") -> list:
    return [s for s in emu.requests_to(fragment, method)]


# -- HubSpot ------------------------------------------------------------------------------------
@pytest.fixture
def hs150():
    emu = HubSpotEmulator(deals=150, activities=0)
    yield emu
    emu.close()


def test_hubspot_preview_dry_run_batches_and_pushing_twice(sqlite_services, hs150, playbook):
    svc, emu = sqlite_services, hs150
    _sync(svc, hubspot_source(emu, playbook), playbook)
    # commit on all 150 deals: deals with k % 4 == 2 are already COMMIT in HubSpot
    decisions = {d: {"forecast_call": "commit", "next_step": f"Call the CFO of {d}", "notes": "Champion confirmed"}
                 for d in emu.order}
    _decide(svc, "hubspot", decisions)
    emu.seen.clear()

    dry = writeback.build_outbox(svc.store, playbook, now=LATER, dry_run=True)
    assert _table(svc, "SELECT COUNT(*) FROM outbox") == [(0,)]  # a dry run queues nothing
    assert emu.seen == []  # ...and sends nothing
    assert dry.already_in_crm == 150 // 4 + (1 if 150 % 4 > 2 else 0)  # COMMIT already there
    d3 = [line for line in dry.lines if line.external_id == "10000003"]
    by_field = {line.field: line for line in d3}
    assert set(by_field) == {"hs_manual_forecast_category", "hs_next_step", ""}
    fc = by_field["hs_manual_forecast_category"]
    assert (fc.label, fc.old, fc.new, fc.kind) == ("Forecast category", "OMIT", "COMMIT", "field")
    assert fc.text() == "Deal 3 (HubSpot 10000003) · Forecast category: OMIT → COMMIT"
    ns = by_field["hs_next_step"]
    assert (ns.label, ns.old, ns.new) == ("Next step", "Call 3", "Call the CFO of 10000003")
    note = by_field[""].new
    assert note.startswith("Pipeline inspection, week of 2026-11-30 (Mia Manager) [insp")
    assert "Forecast: manager Commit, rep Omit" in note and "Notes: Champion confirmed" in note

    built = writeback.build_outbox(svc.store, playbook, now=LATER)
    assert built.queued == len(dry.lines) == 150 + 150 + (150 - dry.already_in_crm)
    lines = writeback.preview(svc.store)
    assert [(line.field, line.old, line.new) for line in lines if line.external_id == "10000003"] == \
        [(f.field, f.old, f.new) for f in sorted(d3, key=lambda x: (x.kind, x.field))]
    assert emu.seen == []  # preview reads the local outbox only

    result = _push(svc, hubspot_source(emu, playbook))
    assert (result.sent, result.failed, result.conflicts) == (built.queued, 0, 0), result.errors
    updates = _writes(emu, "/crm/v3/objects/deals/batch/update")
    assert [len(u.body["inputs"]) for u in updates] == [100, 50]  # ≤ 100 per batch update
    creates = _writes(emu, "/crm/v3/objects/notes/batch/create")
    assert [len(c.body["inputs"]) for c in creates] == [100, 50]
    assert not _writes(emu, "/crm/v3/objects/notes", "POST")[2:]  # no single creates
    deal3 = emu.deals["10000003"].props
    assert (deal3["hs_manual_forecast_category"], deal3["hs_next_step"]) == ("COMMIT", "Call the CFO of 10000003")
    assert len(emu.notes) == 150
    assert all(len(emu.deals[d].assoc["notes"]) == 1 for d in emu.order)  # one note per deal, on the deal
    assert all(row[0] == "sent" for row in _outbox(svc).values())
    events = _table(svc, "SELECT COUNT(*) FROM inspection_event WHERE kind = 'writeback.sent'")
    assert events == [(built.queued,)]

    # pushing twice changes nothing: nothing queued, no request to the CRM at all
    emu.seen.clear()
    again = _push(svc, hubspot_source(emu, playbook))
    assert (again.sent, again.already, again.failed, again.batches) == (0, 0, 0, [])
    assert emu.seen == []
    rebuilt = writeback.build_outbox(svc.store, playbook, now=LATER)
    assert rebuilt.queued == 0 and rebuilt.already_in_crm == 300  # the CRM now has both fields
    assert writeback.push(svc.store, hubspot_source(emu, playbook), now=LATER, actor="M").sent == 0
    assert len(emu.notes) == 150 and _writes(emu, "/batch/update") == []


@pytest.fixture
def hs_small():
    emu = HubSpotEmulator(deals=6, activities=0)
    yield emu
    emu.close()


def test_hubspot_207_failure_stays_queued_and_is_retried(sqlite_services, hs_small, playbook):
    svc, emu = sqlite_services, hs_small
    _sync(svc, hubspot_source(emu, playbook), playbook)
    _decide(svc, "hubspot", {d: {"next_step": f"Demo for {d}"} for d in emu.order[:4]})
    writeback.build_outbox(svc.store, playbook, now=LATER)
    emu.fail_update_ids = {"10000001"}

    first = _push(svc, hubspot_source(emu, playbook))
    assert (first.sent, first.failed) == (3 + 4, 1)  # 3 fields + 4 notes; one refused record
    update = _writes(emu, "/batch/update")[-1]
    assert len(update.body["inputs"]) == 4  # all four went in one call; the 207 named one
    status, attempts, error, _ = _outbox(svc)[("10000001", "field", "hs_next_step")]
    assert (status, attempts) == ("queued", 1) and "VALIDATION_ERROR" in error and "read-only" in error
    assert emu.deals["10000001"].props["hs_next_step"] == "Call 1"  # not written
    assert [line.external_id for line in writeback.preview(svc.store, statuses=("queued",))] == ["10000001"]

    emu.fail_update_ids.clear()
    emu.seen.clear()
    second = _push(svc, hubspot_source(emu, playbook))
    assert (second.sent, second.failed) == (1, 0)
    assert [len(u.body["inputs"]) for u in _writes(emu, "/batch/update")] == [1]  # only the queued one
    assert not _writes(emu, "/notes/batch/create")  # notes were sent the first time
    assert emu.deals["10000001"].props["hs_next_step"] == "Demo for 10000001"
    assert _outbox(svc)[("10000001", "field", "hs_next_step")][:2] == ("sent", 2)


def test_hubspot_failure_gives_up_after_max_attempts_and_can_be_requeued(sqlite_services, hs_small, playbook):
    svc, emu = sqlite_services, hs_small
    _sync(svc, hubspot_source(emu, playbook), playbook)
    _decide(svc, "hubspot", {"10000002": {"next_step": "Send the MSA"}})
    writeback.build_outbox(svc.store, playbook, now=LATER)
    emu.fail_update_ids = {"10000002"}
    for attempt in (1, 2, 3):
        src = hubspot_source(emu, playbook)
        try:
            writeback.push(svc.store, src, now=LATER, actor="M", max_attempts=3)
        finally:
            src.close()
        expected = "failed" if attempt == 3 else "queued"
        assert _outbox(svc)[("10000002", "field", "hs_next_step")][:2] == (expected, attempt)
    emu.seen.clear()
    assert _push(svc, hubspot_source(emu, playbook)).batches == []  # failed rows are not retried silently
    assert writeback.retry_failed(svc.store, "hubspot") == 1
    emu.fail_update_ids.clear()
    assert _push(svc, hubspot_source(emu, playbook)).sent == 1
    assert emu.deals["10000002"].props["hs_next_step"] == "Send the MSA"


def test_hubspot_field_changed_in_crm_is_a_conflict_not_overwritten(sqlite_services, hs_small, playbook):
    svc, emu = sqlite_services, hs_small
    _sync(svc, hubspot_source(emu, playbook), playbook)
    _decide(svc, "hubspot", {"10000001": {"forecast_call": "commit", "next_step": "Call the CFO"},
                             "10000003": {"forecast_call": "commit"}})
    writeback.build_outbox(svc.store, playbook, now=LATER)
    emu.modify("10000001", hs_next_step="Rep says: wait for budget")  # changed in HubSpot after the sync

    result = _push(svc, hubspot_source(emu, playbook))
    assert result.conflicts == 1 and result.failed == 0
    assert any("10000001 hs_next_step" in e and "changed in HubSpot since the last sync" in e
               and "Rep says: wait for budget" in e for e in result.errors)
    assert emu.deals["10000001"].props["hs_next_step"] == "Rep says: wait for budget"  # not overwritten
    assert emu.deals["10000001"].props["hs_manual_forecast_category"] == "COMMIT"  # the other field went
    assert emu.deals["10000003"].props["hs_manual_forecast_category"] == "COMMIT"
    sent_ids = [i["id"] for u in _writes(emu, "/batch/update") for i in u.body["inputs"]
                if "hs_next_step" in i["properties"]]
    assert sent_ids == []
    assert _outbox(svc)[("10000001", "field", "hs_next_step")][0] == "conflict"
    conflict = [line for line in writeback.preview(svc.store) if line.status == "conflict"]
    assert [(c.external_id, c.old, c.new) for c in conflict] == [("10000001", "Call 1", "Call the CFO")]
    assert _table(svc, "SELECT COUNT(*) FROM inspection_event WHERE kind = 'writeback.conflict'") == [(1,)]
    emu.seen.clear()
    assert _push(svc, hubspot_source(emu, playbook)).batches == [] and not _writes(emu, "/batch/update")


def test_hubspot_note_whose_answer_was_lost_is_not_created_twice(sqlite_services, hs_small, playbook):
    svc, emu = sqlite_services, hs_small
    _sync(svc, hubspot_source(emu, playbook), playbook)
    _decide(svc, "hubspot", {"10000004": {"notes": "Legal review started"}})
    writeback.build_outbox(svc.store, playbook, now=LATER)
    emu.add_fault(Fault(kind="drop_after", path="/notes/batch/create"))  # created, answer lost

    first = _push(svc, hubspot_source(emu, playbook))
    assert first.failed == 1 and len(emu.notes) == 1
    assert len(_writes(emu, "/notes/batch/create")) == 1  # a create is never retried blindly
    assert _outbox(svc)[("10000004", "note", "")][:2] == ("queued", 1)

    second = _push(svc, hubspot_source(emu, playbook))
    assert (second.sent, second.already) == (0, 1)  # found by its marker
    assert len(emu.notes) == 1 and len(_writes(emu, "/notes/batch/create")) == 1
    assert emu.deals["10000004"].assoc["notes"] == list(emu.notes)
    assert _outbox(svc)[("10000004", "note", "")][0] == "sent"


# -- Salesforce ---------------------------------------------------------------------------------
@pytest.fixture
def sf250():
    emu = SalesforceEmulator(opportunities=250, tasks=0, events=0)
    yield emu
    emu.close()


def _tasks_on(emu, opp: str) -> list[dict]:
    return [t for t in emu.objects["Task"].values() if t.get("WhatId") == opp]


def test_salesforce_composite_batches_saveresult_failure_conflict_and_twice(sqlite_services, sf250, playbook):
    svc, emu = sqlite_services, sf250
    _sync(svc, salesforce_source(emu, playbook), playbook)
    decisions = {o: {"forecast_call": "best_case", "next_step": f"Proposal review {i}"}
                 for i, o in enumerate(emu.order)}
    _decide(svc, "salesforce", decisions)
    bad, changed = emu.order[7], emu.order[8]
    emu.fail_update_ids = {bad}
    emu.modify(changed, NextStep="Customer asked to pause")

    built = writeback.build_outbox(svc.store, playbook, now=LATER)
    # k % 6 == 4 is already "Best Case" in Salesforce
    already = sum(1 for k in range(250) if k % 6 == 4)
    assert built.already_in_crm == already and built.queued == 250 + 250 + (250 - already)
    first = next(line for line in writeback.preview(svc.store, source="salesforce")
                 if line.external_id == emu.order[1] and line.kind == "field" and line.field == "ForecastCategoryName")
    assert (first.label, first.old, first.new) == ("Forecast category", "Pipeline", "Best Case")
    emu.seen.clear()

    result = _push(svc, salesforce_source(emu, playbook))
    patches = _writes(emu, "/composite/sobjects", "PATCH")
    posts = _writes(emu, "/composite/sobjects", "POST")
    assert [len(p.body["records"]) for p in patches] == [200, 50]  # ≤ 200 records per composite call
    held = [r for p in patches for r in p.body["records"] if r["id"] == changed]
    assert held == [{"attributes": {"type": "Opportunity"}, "id": changed, "ForecastCategoryName": "Best Case"}]
    assert all(r["attributes"] == {"type": "Opportunity"} for r in patches[0].body["records"])
    assert [len(p.body["records"]) for p in posts] == [200, 50]  # a Task per opportunity
    assert result.conflicts == 1 and result.failed == 2  # both fields of the refused record
    assert any(bad in e and "FIELD_CUSTOM_VALIDATION_EXCEPTION" in e for e in result.errors)
    opp = emu.objects["Opportunity"]
    assert opp[emu.order[1]]["NextStep"] == "Proposal review 1" and opp[emu.order[1]]["ForecastCategoryName"] == "Best Case"
    assert opp[changed]["NextStep"] == "Customer asked to pause"  # conflict: not overwritten
    assert opp[bad]["NextStep"] != "Proposal review 7"
    rows = _outbox(svc)
    assert rows[(bad, "field", "NextStep")][:2] == ("queued", 1)
    assert rows[(changed, "field", "NextStep")][0] == "conflict"
    assert all(len(_tasks_on(emu, o)) == 1 for o in emu.order)
    task = _tasks_on(emu, emu.order[1])[0]
    assert task["Subject"].startswith("Pipeline inspection, week of 2026-11-30") and task["Status"] == "Completed"
    assert "Next step: Proposal review 1" in task["Description"]

    emu.fail_update_ids.clear()
    emu.seen.clear()
    retry = _push(svc, salesforce_source(emu, playbook))
    assert (retry.sent, retry.failed) == (2, 0)
    assert [len(p.body["records"]) for p in _writes(emu, "/composite/sobjects", "PATCH")] == [1]
    assert not _writes(emu, "/composite/sobjects", "POST")
    assert opp[bad]["NextStep"] == "Proposal review 7"

    emu.seen.clear()
    twice = _push(svc, salesforce_source(emu, playbook))
    assert (twice.sent, twice.batches) == (0, [])
    assert emu.seen == [] and all(len(_tasks_on(emu, o)) == 1 for o in emu.order)


def test_salesforce_task_whose_answer_was_lost_is_not_created_twice(sqlite_services, playbook):
    svc = sqlite_services
    with SalesforceEmulator(opportunities=3, tasks=0, events=0) as emu:
        _sync(svc, salesforce_source(emu, playbook), playbook)
        opp = emu.order[2]
        _decide(svc, "salesforce", {opp: {"notes": "Budget holder met"}})
        writeback.build_outbox(svc.store, playbook, now=LATER)
        emu.add_fault(Fault(kind="drop_after", path="/composite/sobjects", method="POST"))
        assert _push(svc, salesforce_source(emu, playbook)).failed == 1
        assert len(_tasks_on(emu, opp)) == 1
        second = _push(svc, salesforce_source(emu, playbook))
        assert second.already == 1 and len(_tasks_on(emu, opp)) == 1
        assert len(_writes(emu, "/composite/sobjects", "POST")) == 1


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_push_dry_run_sends_nothing_then_push_and_failure_exit(tmp_path, hs_small, playbook, clock, monkeypatch):
    from inspector.cli import main

    emu = hs_small
    db = tmp_path / "push.db"
    svc = build_services(db, clock=clock, playbook=playbook, actor="Mia Manager")
    try:
        _sync(svc, hubspot_source(emu, playbook), playbook)
        _decide(svc, "hubspot", {"10000001": {"forecast_call": "commit", "next_step": "Call [b]CFO[/b]"},
                                 "10000002": {"next_step": "Send contract"}})
    finally:
        svc.store.engine.dispose()
    monkeypatch.setenv("INSPECTOR_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("INSPECTOR_HUBSPOT_TOKEN", emu.token)
    monkeypatch.setenv("INSPECTOR_HUBSPOT_URL", emu.url)
    emu.seen.clear()
    runner = CliRunner()

    r = runner.invoke(main, ["--db", str(db), "push", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "5 change(s) to push:" in r.stdout and "dry run: nothing was queued or sent." in r.stdout
    assert "Deal 1 (HubSpot 10000001) · Forecast category: BEST_CASE → COMMIT" in r.stdout
    assert "Deal 1 (HubSpot 10000001) · Next step: Call 1 → Call [b]CFO[/b]" in r.stdout
    assert emu.seen == []
    svc = build_services(db)
    try:
        assert _table(svc, "SELECT COUNT(*) FROM outbox") == [(0,)]
    finally:
        svc.store.engine.dispose()

    emu.fail_update_ids = {"10000002"}
    r = runner.invoke(main, ["--db", str(db), "push"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "HubSpot: 4 sent, 0 already there, 0 conflicts, 1 failed (kept queued)" in r.stdout
    assert "10000002 hs_next_step: VALIDATION_ERROR" in r.stderr
    assert "stay queued for the next push" in r.stderr
    assert emu.deals["10000001"].props["hs_next_step"] == "Call [b]CFO[/b]"

    emu.fail_update_ids.clear()
    r = runner.invoke(main, ["--db", str(db), "push"])
    assert r.exit_code == 0, r.output
    assert "1 change(s) to push" in r.stdout and "HubSpot: 1 sent" in r.stdout
    r = runner.invoke(main, ["--db", str(db), "push"])
    assert r.exit_code == 0 and "Nothing to push." in r.stdout
    assert len(emu.notes) == 2
