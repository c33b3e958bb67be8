"""The demo store's past inspections (`demo.seed(..., history_weeks=8)`): Review, Dashboard and the
monthly report have real content on first launch.

One SQLite demo store (300 deals, seed 7, today 2026-12-03) is seeded once for the module and
only read by the tests.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from inspector import demo
from inspector import review as rv
from inspector.metrics import REPORT_KEYS, Scope, compute_all
from inspector.reports import build_report, report_markdown
from inspector.review import ReviewFilters
from inspector.storage.events import read_ts
from inspector.storage.inspections import Inspections
from inspector.storage.repo import read_date

TODAY = date(2026, 12, 3)
THIS_MONDAY = date(2026, 11, 30)
WEEKS = [THIS_MONDAY - timedelta(weeks=k) for k in range(8, 0, -1)]  # 2026-10-05 .. 2026-11-23
NOVEMBER = Scope(date(2026, 11, 1), date(2026, 12, 1), TODAY, label="November 2026")


@pytest.fixture(scope="module")
def store(tmp_path_factory, playbook):
    from inspector.clock import FixedClock
    from inspector.services import build_services

    svc = build_services(tmp_path_factory.mktemp("demo") / "demo.db", clock=FixedClock.on(TODAY),
                         playbook=playbook, actor="demo")
    demo.seed(svc.store, playbook, TODAY, 300, seed=7, history_weeks=8)
    yield svc.store
    svc.store.engine.dispose()


def q(store, sql: str, **p):
    with store.engine.connect() as conn:
        return conn.execute(text(sql), store.params(conn, p)).fetchall()


def test_every_team_manager_has_a_finished_session_each_past_week(store):
    teams = {(t, m) for t, m, _n in store.teams()}
    assert len(teams) >= 3
    sessions = rv.list_sessions(store)
    assert {(s.team, s.manager) for s in sessions} == teams
    assert {s.status for s in sessions} == {"finished"}
    for team, manager in teams:
        assert sorted(s.week_of for s in sessions if s.team == team) == WEEKS, team
    assert all(s.finished_at and s.finished_at.date() < TODAY and s.inspected > 0 for s in sessions)
    assert Inspections(store).open_session_for(*next(iter(teams))[::-1]) is None


def test_sessions_hold_verdicts_calls_risks_and_exceptions(store):
    found = rv.list_findings(store, limit=100_000)
    assert {f.stage_verdict for f in found if f.status == "inspected"} >= {"supported", "overstated"}
    assert {f.close_date_verdict for f in found if f.status == "inspected"} >= {"realistic", "at_risk",
                                                                                "not_credible"}
    assert {f.forecast_call for f in found if f.status == "inspected"} >= {"commit", "best_case", "pipeline"}
    assert any(f.call_differs for f in found)
    assert any(f.commit_exception for f in found)
    assert any(f.forecast_call == "commit" and f.commit_criteria_met is False for f in found)
    assert sum(len(f.risks) for f in found) >= 10
    assert any(f.status == "skipped" for f in found)
    # every inspection holds the deal as it was that week, and the answers are in the log
    assert all(f.stage_at and f.rep_category for f in found)
    kinds = {e["kind"] for e in Inspections(store).events()}
    assert {"session.started", "decision.saved", "answer.saved", "risk.added", "session.finished"} <= kinds
    assert Inspections(store).chain().ok


def test_some_inspected_deals_later_slipped_closed_or_were_lost(store):
    rows = q(store, "SELECT i.deal_id, s.started_at, d.status, d.closed_on FROM inspection i "
                    "JOIN inspection_session s ON s.id = i.session_id JOIN deal d ON d.id = i.deal_id "
                    "WHERE i.status = 'inspected'")
    pushes: dict[int, list[datetime]] = {}
    for deal_id, at, old, new in q(store, "SELECT deal_id, changed_at, old, new FROM deal_change "
                                          "WHERE field = 'close_date'"):
        if old and new and new > old:
            pushes.setdefault(deal_id, []).append(read_ts(at))
    slipped = {d for d, started, _s, _c in rows if any(p > read_ts(started) for p in pushes.get(d, ()))}
    won = {d for d, started, status, closed in rows if status == "won" and read_date(closed) > read_ts(started).date()}
    lost = {d for d, started, status, closed in rows if status == "lost" and read_date(closed) > read_ts(started).date()}
    assert len(slipped) >= 3 and len(won) >= 3 and len(lost) >= 3, (len(slipped), len(won), len(lost))


def test_the_november_report_has_content(store, playbook):
    rep = build_report(store, playbook, NOVEMBER, datetime(2026, 12, 3, 9, tzinfo=timezone.utc))
    m = rep.metrics
    assert set(m) == set(REPORT_KEYS)
    assert m["slippage"].values["pushes"] > 0
    assert m["commit_conversion"].values["called"] > 0
    assert m["commit_exceptions"].values["calls"] > 0
    assert m["call_differences"].values["calls"] > 0 and m["call_differences"].values["differ"] > 0
    assert m["coverage"].values["weeks"] == 4 and m["coverage"].values["inspected"] > 0
    assert m["verdict_accuracy"].values["stage_verdict:overstated"]["deals"] > 0
    assert m["handoff"].values["won"] > 0 and m["lost_reasons"].values["lost"] > 0
    assert m["stage_aging"].values["open"] > 0 and m["pipeline_by_stage"].values["open_deals"] > 0
    assert m["pipeline_by_stage"].series  # the weekly inspected-pipeline chart has points
    assert rep.offenders and rep.chain_ok and rep.event_count > 1000
    md = report_markdown(rep)
    assert md.count("| ") > 200 and "Commit calls without the criteria" in md


def test_the_dashboard_for_one_team_and_quarter_has_content(store, playbook):
    team = store.teams()[0][0]
    res = compute_all(store, playbook, Scope(date(2026, 10, 1), date(2027, 1, 1), TODAY, team=team, label="Q4"))
    assert res["coverage"].values["weeks"] == 8
    assert res["commit_conversion"].series and res["slippage"].series
    assert res["call_differences"].values["calls"] > 0


def test_review_filters_and_deal_histories_have_content(store, playbook):
    values = rv.filter_values(store)
    assert len(values["managers"]) >= 3 and len(values["risk_types"]) >= 3 and len(values["weeks"]) == 8
    manager = values["managers"][0]
    over = rv.list_findings(store, ReviewFilters(manager=manager, verdict="overstated"))
    assert over and {f.manager for f in over} == {manager}
    assert rv.list_findings(store, ReviewFilters(exception="commit"))
    assert rv.list_findings(store, ReviewFilters(risk_type=values["risk_types"][0]))
    assert rv.list_findings(store, ReviewFilters(week_from=WEEKS[-2], week_to=WEEKS[-1]))
    # deals inspected several weeks show patterns a reviewer should notice
    repeated = q(store, "SELECT deal_id FROM inspection WHERE status = 'inspected' GROUP BY deal_id "
                        "HAVING COUNT(*) >= 3 ORDER BY deal_id")
    assert len(repeated) >= 10
    patterns = [p for (d,) in repeated for p in rv.deal_history(store, playbook, d).patterns]
    assert any("overstated" in p for p in patterns)
    assert any(p.startswith("Commit called without the criteria") for p in patterns)
    assert any(p.startswith("Closed ") for p in patterns)


def test_the_demo_command_seeds_history(tmp_path):
    from inspector.cli import main

    db = tmp_path / "demo.db"
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--db", str(db), "--deals", "120", "--no-tui"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    sessions = runner.invoke(main, ["--db", str(db), "--read-only", "review", "--sessions"])
    assert sessions.exit_code == 0
    assert len(sessions.stdout.splitlines()) >= 8 and "finished" in sessions.stdout
