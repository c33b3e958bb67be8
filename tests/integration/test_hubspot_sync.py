"""HubSpot sync end to end against the emulator (a real HTTP server on 127.0.0.1)."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from inspector.services import build_services
from inspector.sources.http import CrmError
from inspector.storage.inspections import Inspections
from inspector.sync import read_state, sync_source
from tests.emulators.base import Fault
from tests.emulators.fixtures import hubspot_emu, hubspot_source  # noqa: F401 - fixture

NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)


def _deals(svc) -> dict[str, tuple]:
    with svc.store.engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(text(
            "SELECT external_id, name, account, owner, team, stage, crm_stage, status, amount_minor, currency, "
            "close_date, forecast_category, next_step, created_on, extras FROM deal WHERE source = 'hubspot'"))}


def _table(svc, sql: str) -> list[tuple]:
    with svc.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def _sync(svc, emu, playbook, *, full: bool, now: datetime, **kw):
    seen = []
    src = hubspot_source(emu, playbook)
    try:
        status = sync_source(svc.store, playbook, src, full=full, now=now, progress=seen.append, **kw)
    finally:
        src.close()
    return status, seen


def test_full_sync_maps_deals_history_and_activities(sqlite_services, hubspot_emu, playbook):
    svc = sqlite_services
    status, seen = _sync(svc, hubspot_emu, playbook, full=True, now=NOW)
    assert (status.state, status.pages, status.deals, status.created) == ("done", 3, 120, 120)
    assert status.total == 120 and status.activities == 600
    assert [s.pages for s in seen if s.pages][-1] == 3  # progress reported per page
    deals = _deals(svc)
    assert len(deals) == 120
    name, account, owner, team, stage, crm_stage, st, amount, cur, close, cat, nxt, created, extras = deals["10000003"]
    assert (name, account, owner, team) == ("Deal 3", "Company 3 Ltd", "Dee Rep", "West")
    assert (stage, crm_stage, st) == ("commercial_review", "Decision Maker Bought-In", "open")
    assert (amount, cur) == (400050, "USD")  # "4000.50" -> minor units
    assert str(close)[:10] == "2026-10-24" and cat == "omit"
    assert json.loads(extras)["crm"]["hs_manual_forecast_category"] == "OMIT"  # kept for writeback conflicts
    # a custom pipeline stage with a numeric id maps by its metadata (probability 0.5, open)
    renewal = deals["10000009"]
    assert renewal[4] in {s.key for s in playbook.open_stages} and renewal[5] == "Renewal review"
    # CRM property history becomes deal history with the CRM's timestamps
    hist = _table(svc, "SELECT field, old, new, changed_at FROM deal_change c JOIN deal d ON d.id = c.deal_id "
                       "WHERE d.external_id = '10000003' ORDER BY changed_at, field")
    fields = [h[0] for h in hist]
    assert fields.count("stage") == 2 and "amount_minor" in fields and "close_date" in fields
    stage_moves = [h for h in hist if h[0] == "stage"]
    assert stage_moves[0][1] is None and stage_moves[-1][2] == "commercial_review"
    acts = _table(svc, "SELECT a.kind, a.external_id, a.summary, a.who FROM activity a JOIN deal d ON d.id = a.deal_id "
                       "WHERE d.external_id = '10000003' ORDER BY kind")
    assert [a[0] for a in acts] == ["call", "email", "meeting", "note", "task"]
    assert acts[2][2] == "Demo 3" and acts[3][2] == "Note on deal 3"  # HTML stripped
    assert all(a[3] == "Dee Rep" for a in acts)
    state = read_state(svc.store, "hubspot")
    assert state.status == "idle" and state.cursor is None and state.watermark


def test_running_twice_changes_nothing(sqlite_services, hubspot_emu, playbook):
    svc = sqlite_services
    _sync(svc, hubspot_emu, playbook, full=True, now=NOW)
    before = (_deals(svc), _table(svc, "SELECT deal_id, field, old, new, changed_at FROM deal_change ORDER BY id"),
              _table(svc, "SELECT deal_id, external_id, kind, occurred_at FROM activity ORDER BY id"))
    again, _ = _sync(svc, hubspot_emu, playbook, full=True, now=NOW + timedelta(hours=1))
    assert (again.created, again.updated, again.unchanged, again.changes, again.activities, again.removed) == \
        (0, 0, 120, 0, 0, 0)
    incremental, _ = _sync(svc, hubspot_emu, playbook, full=False, now=NOW + timedelta(hours=2))
    assert (incremental.created, incremental.updated, incremental.changes) == (0, 0, 0)
    after = (_deals(svc), _table(svc, "SELECT deal_id, field, old, new, changed_at FROM deal_change ORDER BY id"),
             _table(svc, "SELECT deal_id, external_id, kind, occurred_at FROM activity ORDER BY id"))
    assert after == before


def test_incremental_sync_reads_only_changed_deals_and_keeps_inspections(sqlite_services, hubspot_emu, playbook):
    svc = sqlite_services
    _sync(svc, hubspot_emu, playbook, full=True, now=NOW)
    with svc.store.engine.connect() as conn:
        deal_id = conn.execute(text("SELECT id FROM deal WHERE external_id = '10000007'")).scalar()
    insp = Inspections(svc.store)
    session = insp.start_session(manager="M", team="West", queue=[deal_id], week_of=date(2026, 11, 30), now=NOW)
    state = insp.state(session.id, deal_id)
    insp.save_decisions(state.id, {"forecast_call": (None, "commit"), "notes": ("", "Looks real")},
                        actor="M", now=NOW)
    inspection_before = _table(svc, "SELECT * FROM inspection")

    hubspot_emu.modify("10000007", dealstage="contractsent", amount="99000", closedate="2027-02-01T00:00:00Z")
    hubspot_emu.add_deal(500)  # a new deal appears
    hubspot_emu.seen.clear()
    status, _ = _sync(svc, hubspot_emu, playbook, full=False, now=NOW + timedelta(days=1))
    assert not status.full and (status.created, status.updated) == (1, 1)
    assert status.deals < 20  # what changed, plus the 5-minute lookback window (deals 30 s apart)
    assert not hubspot_emu.requests_to("/crm/v3/objects/deals", "GET")  # search, not a full listing
    search = hubspot_emu.requests_to("/crm/v3/objects/deals/search")[-1].body
    assert search["filterGroups"][0]["filters"][0]["operator"] == "GTE"
    assert search["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    moved = _table(svc, f"SELECT field, old, new FROM deal_change WHERE deal_id = {deal_id} "
                        "AND changed_at > '2026-11-01' ORDER BY field")
    assert ("stage", "solution_fit", "commit") in moved
    assert ("amount_minor", "800000", "9900000") in moved
    assert _table(svc, "SELECT * FROM inspection") == inspection_before  # never overwritten by a sync
    assert insp.state(session.id, deal_id).decisions["forecast_call"] == "commit"


def test_full_sync_marks_deals_gone_from_the_crm_as_removed(sqlite_services, hubspot_emu, playbook):
    svc = sqlite_services
    _sync(svc, hubspot_emu, playbook, full=True, now=NOW)
    hubspot_emu.archive("10000011")
    incremental, _ = _sync(svc, hubspot_emu, playbook, full=False, now=NOW + timedelta(hours=1))
    assert incremental.removed == 0  # only a full run can tell what is gone
    full, _ = _sync(svc, hubspot_emu, playbook, full=True, now=NOW + timedelta(hours=2))
    assert full.removed == 1
    rows = _table(svc, "SELECT external_id, status, removed_at IS NOT NULL FROM deal WHERE status = 'removed'")
    assert rows == [("10000011", "removed", 1)]
    assert len(_deals(svc)) == 120  # marked, not deleted


def test_auth_scope_and_quota_errors_are_one_clean_line(sqlite_services, hubspot_emu, playbook):
    svc = sqlite_services
    src = hubspot_source(hubspot_emu, playbook, token="pat-na1-WRONG-TOKEN")
    with pytest.raises(CrmError) as info:
        sync_source(svc.store, playbook, src, full=True, now=NOW)
    assert info.value.kind == "auth" and info.value.exit_code == 2 and info.value.status == 401
    assert "WRONG" not in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("POST /crm/v3/objects/deals/search: HTTP 401 HubSpot rejected the token")

    hubspot_emu.scopes.discard("crm.objects.deals.read")
    with pytest.raises(CrmError) as info:
        _sync(svc, hubspot_emu, playbook, full=True, now=NOW)
    assert info.value.kind == "permission" and "crm.objects.deals.read" in str(info.value)
    hubspot_emu.scopes.add("crm.objects.deals.read")

    hubspot_emu.add_fault(Fault(status=429, path="/crm/v3/objects/deals", method="GET", body={
        "status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
        "correlationId": "c", "policyName": "DAILY", "requestId": "r"}))
    with pytest.raises(CrmError) as info:
        _sync(svc, hubspot_emu, playbook, full=True, now=NOW)
    assert info.value.kind == "quota" and "daily limit" in str(info.value)
    assert len(hubspot_emu.requests_to("/crm/v3/objects/deals", "GET")) == 1  # no retry into a daily limit
    state = read_state(svc.store, "hubspot")
    assert state.status == "failed" and "daily limit" in state.last_error


def test_both_object_paths_are_served(hubspot_emu):
    import httpx

    for path in ("/crm/v3/objects/deals", "/crm/v3/objects/0-3"):
        r = httpx.get(hubspot_emu.url + path, params={"limit": 2}, headers={"Authorization": "Bearer test-token"})
        assert r.status_code == 200 and len(r.json()["results"]) == 2
        assert "x-hubspot-ratelimit-daily-remaining" in r.headers


def test_cli_sync(tmp_path, hubspot_emu, monkeypatch):
    from inspector.cli import main

    db = tmp_path / "cli.db"
    monkeypatch.setenv("INSPECTOR_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("INSPECTOR_HUBSPOT_TOKEN", hubspot_emu.token)
    runner = CliRunner()
    r = runner.invoke(main, ["--db", str(db), "sync", "hubspot", "--full", "--base-url", hubspot_emu.url])
    assert r.exit_code == 0, r.output
    assert "page 3 committed" in r.stderr and "full sync done" in r.stdout and "120 new" in r.stdout
    r = runner.invoke(main, ["--db", str(db), "sync", "hubspot", "--base-url", hubspot_emu.url])
    assert r.exit_code == 0 and "incremental sync done" in r.stdout and "0 new, 0 updated" in r.stdout

    r = runner.invoke(main, ["--db", str(db), "sync", "hubspot", "--base-url", "http://crm.example.com"])
    assert r.exit_code == 2 and "HTTPS is required" in r.stderr and "Traceback" not in r.output
    monkeypatch.setenv("INSPECTOR_HUBSPOT_TOKEN", "wrong")
    r = runner.invoke(main, ["--db", str(db), "sync", "hubspot", "--base-url", hubspot_emu.url])
    assert r.exit_code == 2 and "rejected the token" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    monkeypatch.delenv("INSPECTOR_HUBSPOT_TOKEN")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    r = runner.invoke(main, ["--db", str(db), "sync", "hubspot", "--base-url", hubspot_emu.url])
    assert r.exit_code == 2 and "INSPECTOR_HUBSPOT_TOKEN" in r.stderr
    hubspot_emu.add_fault(Fault(status=429, body={"status": "error", "message": "You have reached your daily limit.",
                                                  "errorType": "RATE_LIMIT", "policyName": "DAILY"}))
    monkeypatch.setenv("INSPECTOR_HUBSPOT_TOKEN", hubspot_emu.token)
    r = runner.invoke(main, ["--db", str(db), "sync", "hubspot", "--base-url", hubspot_emu.url])
    assert r.exit_code == 1 and "HTTP 429" in r.stderr and "resume later" in r.stderr


@pytest.mark.postgres
def test_full_and_repeat_sync_on_postgresql(pg_url, hubspot_emu, playbook, clock):
    svc = build_services(pg_url, clock=clock, playbook=playbook, actor="T")
    try:
        first, _ = _sync(svc, hubspot_emu, playbook, full=True, now=NOW)
        assert (first.created, first.activities) == (120, 600)
        hubspot_emu.modify("10000004", dealstage="closedwon")
        again, _ = _sync(svc, hubspot_emu, playbook, full=True, now=NOW + timedelta(hours=1))
        assert (again.created, again.updated, again.unchanged) == (0, 1, 119)
        assert _table(svc, "SELECT status FROM deal WHERE external_id = '10000004'") == [("won",)]
        assert _table(svc, "SELECT COUNT(*) FROM activity") == [(600,)]
    finally:
        svc.store.engine.dispose()
