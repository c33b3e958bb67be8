"""Salesforce sync end to end against the emulator (SOQL over HTTP on 127.0.0.1)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from inspector.services import build_services
from inspector.sources.http import CrmError
from inspector.sync import read_state, sync_source
from tests.emulators.base import Fault
from tests.emulators.fixtures import salesforce_emu, salesforce_source  # noqa: F401 - fixture

NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)


def _table(svc, sql: str) -> list[tuple]:
    with svc.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def _sync(svc, emu, playbook, *, full: bool, now: datetime, **kw):
    src = salesforce_source(emu, playbook)
    try:
        return sync_source(svc.store, playbook, src, full=full, now=now, **kw)
    finally:
        src.close()


def test_full_sync_follows_next_records_url_with_history_and_activities(sqlite_services, salesforce_emu, playbook):
    svc = sqlite_services
    status = _sync(svc, salesforce_emu, playbook, full=True, now=NOW)
    assert (status.state, status.pages, status.deals, status.created, status.total) == ("done", 3, 450, 450, 450)
    assert status.activities == 450 * 5
    queries = salesforce_emu.requests_to("/services/data/v59.0/query")
    assert any("/query/01gEMU" in q.path for q in queries)  # nextRecordsUrl followed
    assert queries[0].query["q"] == "SELECT COUNT() FROM Opportunity"  # the total, before the first page
    assert "ORDER BY SystemModstamp, Id" in queries[1].query["q"]
    assert queries[0].headers.get("sforce-query-options") == "batchSize=200"
    opp = salesforce_emu.order[5]  # k=5: Negotiation/Review, Commit, owner F
    (name, account, owner, stage, crm_stage, amount, close, cat, nxt), = _table(
        svc, "SELECT name, account, owner, stage, crm_stage, amount_minor, close_date, forecast_category, next_step "
             f"FROM deal WHERE external_id = '{opp}'")
    assert (name, account, owner) == ("Opportunity 5", "Account 5 Inc", "Rep F. Seller")
    assert (stage, crm_stage, amount, cat, nxt) == ("commit", "Negotiation/Review", 600000, "commit", "Send proposal 5")
    assert str(close)[:10] == "2026-10-26"
    hist = _table(svc, "SELECT field, old, new FROM deal_change c JOIN deal d ON d.id = c.deal_id "
                       f"WHERE d.external_id = '{opp}' ORDER BY changed_at, field")
    assert ("stage", "commercial_review", "commit") in hist  # OpportunityHistory: Proposal -> Negotiation
    assert ("forecast_category", "pipeline", "commit") in hist  # OpportunityFieldHistory
    assert ("amount_minor", "300000", "600000") in hist
    kinds = _table(svc, "SELECT a.kind, COUNT(*) FROM activity a JOIN deal d ON d.id = a.deal_id "
                        f"WHERE d.external_id = '{opp}' GROUP BY a.kind ORDER BY a.kind")
    assert kinds == [("call", 1), ("email", 1), ("meeting", 2), ("task", 1)]


def test_incremental_by_systemmodstamp_and_idempotent(sqlite_services, salesforce_emu, playbook):
    svc = sqlite_services
    _sync(svc, salesforce_emu, playbook, full=True, now=NOW)
    before = _table(svc, "SELECT COUNT(*) FROM deal_change"), _table(svc, "SELECT COUNT(*) FROM activity")
    again = _sync(svc, salesforce_emu, playbook, full=False, now=NOW + timedelta(hours=1))
    assert (again.created, again.updated, again.changes, again.activities) == (0, 0, 0, 0)
    assert (_table(svc, "SELECT COUNT(*) FROM deal_change"), _table(svc, "SELECT COUNT(*) FROM activity")) == before
    opp = salesforce_emu.order[10]
    salesforce_emu.modify(opp, StageName="Closed Won", IsClosed=True, IsWon=True, Probability=100.0)
    salesforce_emu.seen.clear()
    status = _sync(svc, salesforce_emu, playbook, full=False, now=NOW + timedelta(hours=2))
    assert status.updated == 1 and status.deals < 20
    q = salesforce_emu.requests_to("/query")[0].query["q"]
    assert "WHERE SystemModstamp > 2026-" in q
    assert _table(svc, f"SELECT stage, status FROM deal WHERE external_id = '{opp}'") == [("closed_won", "won")]


def test_expired_query_locator_restarts_from_the_watermark(sqlite_services, salesforce_emu, playbook):
    svc = sqlite_services
    pages = []
    first = _sync(svc, salesforce_emu, playbook, full=True, now=NOW, progress=lambda s: pages.append(s.pages),
                  should_stop=lambda: bool(pages) and pages[-1] >= 1)
    assert first.state == "cancelled" and first.pages == 1
    assert read_state(svc.store, "salesforce").status == "interrupted"
    salesforce_emu.expire_locators()  # the server forgot the query (INVALID_QUERY_LOCATOR)
    salesforce_emu.seen.clear()
    done = _sync(svc, salesforce_emu, playbook, full=True, now=NOW + timedelta(minutes=5))
    assert done.state == "done" and done.resumed
    qs = [s.query.get("q", s.path) for s in salesforce_emu.requests_to("/query")]
    assert "SystemModstamp >= " in qs[1]  # re-run from the newest SystemModstamp committed
    assert _table(svc, "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM deal") == [(450, 450)]
    assert done.removed == 0  # nothing lost: every deal was seen by the resumed run


def test_session_expired_and_daily_limit(sqlite_services, salesforce_emu, playbook):
    svc = sqlite_services
    bad = salesforce_source(salesforce_emu, playbook, token="00Dxx!BAD")
    with pytest.raises(CrmError) as info:
        sync_source(svc.store, playbook, bad, full=True, now=NOW)
    assert info.value.kind == "auth" and info.value.code == "INVALID_SESSION_ID" and "BAD" not in str(info.value)
    salesforce_emu.add_fault(Fault(status=403, path="/query", body=[
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]))
    with pytest.raises(CrmError) as info:
        _sync(svc, salesforce_emu, playbook, full=True, now=NOW)
    assert info.value.kind == "quota" and "resume later" in str(info.value)


@pytest.mark.postgres
def test_salesforce_sync_on_postgresql(pg_url, salesforce_emu, playbook, clock):
    svc = build_services(pg_url, clock=clock, playbook=playbook, actor="T")
    try:
        status = _sync(svc, salesforce_emu, playbook, full=True, now=NOW)
        assert (status.created, status.activities) == (450, 2250)
        again = _sync(svc, salesforce_emu, playbook, full=True, now=NOW + timedelta(hours=1))
        assert (again.created, again.updated, again.changes) == (0, 0, 0)
    finally:
        svc.store.engine.dispose()
