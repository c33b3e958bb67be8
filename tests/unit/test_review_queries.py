"""RevOps review queries on a small hand-built history with known answers (SQLite and PostgreSQL).

The story, November 2026:

    Team A (Mgr A): weeks of 11-02 (S1: deals 1, 2, 3), 11-09 (S2: 1, 2, 3), 11-16 (S3: 1, 2)
    Team B (Mgr B): weeks of 11-02 (S4: deal 4), 11-09 (S5: 4 skipped, 5), 11-16 (S6: 5, still open)
    An abandoned session (S7, Mgr B) that the review never shows.

    deal 1 (Rep A): overstated three weeks running; called Best case against the rep's Commit twice
    deal 2 (Rep B): Commit without the criteria in weeks 1 and 3, with an exception each time
    deal 3 (Rep A): pushed on Monday 11-09 before the week-2 inspection judged its close date not
                    credible, then pushed again on 11-12 by 31 days
    deal 4 (Rep C): a security-review risk recorded in week 1; skipped in week 2
    deal 5 (Rep C): upgraded to Commit (criteria met); has an open handoff exception
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from inspector import review as rv
from inspector.cli import main
from inspector.review import ReviewFilters
from inspector.storage.inspections import Inspections

W1, W2, W3 = date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)


def ts(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)


def deal(i: int, name: str, owner: str, team: str, manager: str, **kw) -> dict:
    base = {"id": i, "source": "t", "external_id": f"R-{i}", "name": name, "account": "Acme", "owner": owner,
            "team": team, "manager": manager, "stage": "commercial_review", "status": "open",
            "amount_minor": 1_000_000 * i, "currency": "USD", "close_date": date(2026, 11, 30),
            "forecast_category": "commit", "close_pushes": 0}
    base.update(kw)
    return base


def build(svc) -> dict[str, int]:
    store = svc.store
    store.bulk_insert("deal", [
        deal(1, "Overstated Co", "Rep A", "Team A", "Mgr A"),
        deal(2, "Exception Inc", "Rep B", "Team A", "Mgr A"),
        deal(3, "Pushed Ltd", "Rep A", "Team A", "Mgr A", forecast_category="best_case",
             close_date=date(2026, 12, 31), close_pushes=2),
        deal(4, "Risky GmbH", "Rep C", "Team B", "Mgr B", forecast_category="pipeline"),
        deal(5, "Handoff SA", "Rep C", "Team B", "Mgr B", forecast_category="best_case"),
    ])
    store.bulk_insert("deal_change", [
        # pushed on the Monday morning before the week-2 inspection: not "then pushed"
        {"deal_id": 3, "field": "close_date", "old": "2026-11-23", "new": "2026-11-30",
         "changed_at": ts(W2, 8), "source": "t"},
        {"deal_id": 3, "field": "close_date", "old": "2026-11-30", "new": "2026-12-31",
         "changed_at": ts(date(2026, 11, 12)), "source": "t"},
        {"deal_id": 3, "field": "stage", "old": "solution_fit", "new": "commercial_review",
         "changed_at": ts(date(2026, 10, 20)), "source": "t"}])
    store.bulk_insert("handoff_exception", [{"deal_id": 5, "missing_item": "use case", "status": "open",
                                             "created_at": ts(W2)}])
    insp = Inspections(store)

    def session(manager: str, team: str, week: date, rows, *, finish: bool = True) -> int:
        started = ts(week + timedelta(days=1), 9)
        s = insp.start_session(manager=manager, team=team, queue=[r[0] for r in rows], week_of=week, now=started)
        with store.engine.begin() as conn:
            for deal_id, rep_cat, *_ in rows:
                conn.execute(text("UPDATE inspection SET rep_category = :r WHERE session_id = :s AND deal_id = :d"),
                             {"r": rep_cat, "s": s.id, "d": deal_id})
        for k, (deal_id, _rep, decisions, risk) in enumerate(rows):
            st = insp.state(s.id, deal_id)
            now = started + timedelta(minutes=5 * (k + 1))
            if decisions == "skip":
                insp.set_status(st.id, "skipped", "Rep out", expected="pending", actor=manager, now=now)
                continue
            if decisions:
                insp.save_decisions(st.id, {f: ("" if f in ("commit_exception", "notes") else None, v)
                                            for f, v in decisions.items()}, actor=manager, now=now)
            if risk:
                insp.add_risk(deal_id, type=risk, severity="high", owner="Rep", due_date=week + timedelta(days=14),
                              mitigation="", actor=manager, now=now, inspection_id=st.id, session_id=s.id)
        if finish:
            insp.finish(s.id, actor=manager, now=started + timedelta(hours=1))
        return s.id

    over = lambda call: {"stage_verdict": "overstated", "supported_stage": "solution_fit",  # noqa: E731
                         "close_date_verdict": "at_risk", "forecast_call": call}
    ids = {}
    ids["S1"] = session("Mgr A", "Team A", W1, [
        (1, "commit", over("best_case"), None),
        (2, "commit", {"stage_verdict": "supported", "forecast_call": "commit", "commit_criteria_met": False,
                       "commit_exception": "CFO ok"}, None),
        (3, "pipeline", {"stage_verdict": "supported", "close_date_verdict": "realistic",
                         "forecast_call": "pipeline"}, None)])
    ids["S4"] = session("Mgr B", "Team B", W1, [
        (4, "pipeline", {"stage_verdict": "supported", "forecast_call": "pipeline"}, "security_review")])
    ids["S2"] = session("Mgr A", "Team A", W2, [
        (1, "commit", over("best_case"), "missing_exec_sponsor"),
        (2, "commit", {"stage_verdict": "supported", "forecast_call": "commit", "commit_criteria_met": True},
         None),
        (3, "best_case", {"stage_verdict": "supported", "close_date_verdict": "not_credible",
                          "proposed_close_date": date(2026, 12, 31), "forecast_call": "best_case"}, None)])
    ids["S5"] = session("Mgr B", "Team B", W2, [
        (4, "pipeline", "skip", None),
        (5, "best_case", {"stage_verdict": "supported", "close_date_verdict": "at_risk",
                          "forecast_call": "commit", "commit_criteria_met": True}, None)])
    ids["S3"] = session("Mgr A", "Team A", W3, [
        (1, "best_case", over("best_case"), None),
        (2, "commit", {"stage_verdict": "supported", "forecast_call": "commit", "commit_criteria_met": False,
                       "commit_exception": "VP push"}, None)])
    ids["S6"] = session("Mgr B", "Team B", W3, [(5, "best_case", None, None)], finish=False)
    ids["S7"] = session("Mgr B", "Team B", W3 - timedelta(days=7), [(4, "pipeline", over("omit"), None)])
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE inspection_session SET status = 'abandoned' WHERE id = :s"), {"s": ids["S7"]})
    return ids


@pytest.fixture
def hist(services):
    ids = build(services)
    return services, ids


def findings(svc, **kw) -> list[tuple[str, int]]:
    """(session name, deal id) of each finding, in the order the query returns them."""
    names = {v: k for k, v in svc.ids.items()}
    return [(names[f.session_id], f.deal_id) for f in rv.list_findings(svc.store, ReviewFilters(**kw))]


@pytest.fixture
def svc(hist):
    services, ids = hist
    services.ids = ids
    return services


# -- sessions ------------------------------------------------------------------------------------------
def test_list_sessions_newest_week_first_with_counts(svc):
    rows = rv.list_sessions(svc.store)
    names = {v: k for k, v in svc.ids.items()}
    assert [names[s.id] for s in rows] == ["S3", "S6", "S2", "S5", "S1", "S4"]  # no abandoned S7
    by = {names[s.id]: s for s in rows}
    # (deals, inspected, skipped, overstated, commit calls, commit exceptions, not credible, risks)
    counts = lambda s: (s.deals, s.inspected, s.skipped, s.overstated, s.commit_calls,  # noqa: E731
                        s.commit_exceptions, s.not_credible, s.risks)
    assert counts(by["S1"]) == (3, 3, 0, 1, 1, 1, 0, 0)
    assert counts(by["S2"]) == (3, 3, 0, 1, 1, 0, 1, 1)
    assert counts(by["S3"]) == (2, 2, 0, 1, 1, 1, 0, 0)
    assert counts(by["S4"]) == (1, 1, 0, 0, 0, 0, 0, 1)
    assert counts(by["S5"]) == (2, 1, 1, 0, 1, 0, 0, 0)
    assert counts(by["S6"]) == (1, 0, 0, 0, 0, 0, 0, 0)
    assert (by["S6"].status, by["S6"].finished_at) == ("open", None)
    assert by["S1"].week_of == W1 and by["S1"].manager == "Mgr A" and by["S1"].team == "Team A"
    assert by["S1"].finished_at == ts(W1 + timedelta(days=1), 10)


@pytest.mark.parametrize("kw,expected", [
    ({"manager": "Mgr B"}, ["S6", "S5", "S4"]),
    ({"team": "Team A"}, ["S3", "S2", "S1"]),
    ({"week_from": W2, "week_to": W2}, ["S2", "S5"]),
    ({"week_from": W2}, ["S3", "S6", "S2", "S5"]),
    ({"week_to": W1}, ["S1", "S4"]),
    ({"manager": "Mgr A", "week_from": W2}, ["S3", "S2"]),
    ({"manager": "Nobody"}, []),
    ({"rep": "Rep C"}, ["S3", "S6", "S2", "S5", "S1", "S4"]),  # a rep does not narrow sessions
])
def test_list_sessions_filters(svc, kw, expected):
    names = {v: k for k, v in svc.ids.items()}
    assert [names[s.id] for s in rv.list_sessions(svc.store, ReviewFilters(**kw))] == expected


# -- findings --------------------------------------------------------------------------------------------
def test_list_findings_default_order_and_content(svc):
    assert findings(svc) == [("S6", 5), ("S3", 1), ("S3", 2), ("S5", 4), ("S5", 5), ("S2", 1), ("S2", 2),
                             ("S2", 3), ("S4", 4), ("S1", 1), ("S1", 2), ("S1", 3)]
    f = next(x for x in rv.list_findings(svc.store) if x.session_id == svc.ids["S2"] and x.deal_id == 1)
    assert (f.deal, f.rep, f.manager, f.team, f.week_of) == ("Overstated Co", "Rep A", "Mgr A", "Team A", W2)
    assert (f.stage_verdict, f.supported_stage, f.close_date_verdict) == ("overstated", "solution_fit", "at_risk")
    assert (f.rep_category, f.forecast_call, f.call_differs) == ("commit", "best_case", True)
    assert f.risks == ("missing_exec_sponsor",) and f.amount_minor == 1_000_000 and f.status == "inspected"
    g = next(x for x in rv.list_findings(svc.store) if x.session_id == svc.ids["S3"] and x.deal_id == 2)
    assert (g.commit_criteria_met, g.commit_exception) == (False, "VP push")


@pytest.mark.parametrize("kw,expected", [
    ({"manager": "Mgr B"}, [("S6", 5), ("S5", 4), ("S5", 5), ("S4", 4)]),
    ({"team": "Team A"}, [("S3", 1), ("S3", 2), ("S2", 1), ("S2", 2), ("S2", 3), ("S1", 1), ("S1", 2),
                          ("S1", 3)]),
    ({"rep": "Rep A"}, [("S3", 1), ("S2", 1), ("S2", 3), ("S1", 1), ("S1", 3)]),
    ({"week_from": W2, "week_to": W2}, [("S5", 4), ("S5", 5), ("S2", 1), ("S2", 2), ("S2", 3)]),
    ({"week_from": W3}, [("S6", 5), ("S3", 1), ("S3", 2)]),
    ({"verdict": "overstated"}, [("S3", 1), ("S2", 1), ("S1", 1)]),
    ({"verdict": "not_credible"}, [("S2", 3)]),
    ({"verdict": "at_risk"}, [("S3", 1), ("S5", 5), ("S2", 1), ("S1", 1)]),
    ({"verdict": "realistic"}, [("S1", 3)]),
    ({"verdict": "understated"}, []),
    ({"risk_type": "security_review"}, [("S4", 4)]),
    ({"risk_type": "missing_exec_sponsor"}, [("S2", 1)]),
    ({"exception": "commit"}, [("S3", 2), ("S1", 2)]),
    ({"exception": "category_change"}, [("S5", 5), ("S2", 1), ("S1", 1)]),
    ({"exception": "handoff"}, [("S6", 5), ("S5", 5)]),
    ({"exception": "any"}, [("S6", 5), ("S3", 2), ("S5", 5), ("S2", 1), ("S1", 1), ("S1", 2)]),
    ({"manager": "Mgr A", "verdict": "overstated", "week_from": W2, "week_to": W3}, [("S3", 1), ("S2", 1)]),
    ({"rep": "Rep A", "exception": "commit"}, []),
])
def test_list_findings_filters(svc, kw, expected):
    assert findings(svc, **kw) == expected


def test_category_change_on_deal_1_week_3_is_not_an_exception(svc):
    # rep already at Best case in week 3, so the manager's Best case is no change
    assert ("S3", 1) not in findings(svc, exception="category_change")


def test_bad_filter_values_are_refused(svc):
    with pytest.raises(ValueError, match="verdict must be one of"):
        rv.list_findings(svc.store, ReviewFilters(verdict="bogus"))
    with pytest.raises(ValueError, match="exception must be one of"):
        rv.list_findings(svc.store, ReviewFilters(exception="bogus"))


def test_filter_values_lists_what_was_recorded(svc):
    v = rv.filter_values(svc.store)
    assert v["managers"] == ["Mgr A", "Mgr B"] and v["teams"] == ["Team A", "Team B"]
    assert v["reps"] == ["Rep A", "Rep B", "Rep C"]
    assert v["risk_types"] == ["missing_exec_sponsor", "security_review"]
    assert v["weeks"] == [W3.isoformat(), W2.isoformat(), W1.isoformat()]


def test_inspection_detail_has_answers_risks_and_decisions(svc, playbook):
    f = next(x for x in rv.list_findings(svc.store, ReviewFilters(risk_type="missing_exec_sponsor")))
    d = rv.inspection_detail(svc.store, playbook, f.inspection_id)
    assert d.finding == f
    assert [r["type"] for r in d.risks] == ["missing_exec_sponsor"] and d.risks[0]["severity"] == "high"
    with pytest.raises(KeyError):
        rv.inspection_detail(svc.store, playbook, 99_999)


# -- one deal's history and its patterns -------------------------------------------------------------
def test_overstated_three_weeks_running(svc, playbook):
    h = rv.deal_history(svc.store, playbook, 1)
    assert [w.week_of for w in h.weeks] == [W1, W2, W3]  # oldest first; the abandoned session is not there
    assert [w.stage_verdict for w in h.weeks] == ["overstated"] * 3
    assert "Stage judged overstated 3 weeks running" in h.patterns
    assert "Manager's call differed from the rep's 2 times" in h.patterns
    assert not any("Commit called" in p for p in h.patterns)
    assert [e["kind"] for e in h.events] == ["decision.saved", "decision.saved", "risk.added", "decision.saved"]


def test_commit_called_with_an_exception_twice(svc, playbook):
    h = rv.deal_history(svc.store, playbook, 2)
    assert h.patterns == ["Commit called without the criteria 2 times (2 with an exception recorded)"]
    assert [w.commit_exception for w in h.weeks] == ["CFO ok", "", "VP push"]


def test_close_date_not_credible_then_pushed(svc, playbook):
    h = rv.deal_history(svc.store, playbook, 3)
    assert h.patterns == ["Close date judged not credible in the week of 2026-11-09, then pushed on "
                          "2026-11-12 (+31 days)"]
    assert [(c.field, c.old, c.new) for c in h.changes] == [("stage", "solution_fit", "commercial_review"),
                                                            ("close_date", "2026-11-23", "2026-11-30"),
                                                            ("close_date", "2026-11-30", "2026-12-31")]
    assert (h.close_date, h.close_pushes, h.status) == (date(2026, 12, 31), 2, "open")


def test_a_quiet_deal_has_no_patterns_and_an_unknown_deal_is_a_key_error(svc, playbook):
    h = rv.deal_history(svc.store, playbook, 4)
    assert h.patterns == []
    assert [w.status for w in h.weeks] == ["inspected", "skipped"]
    with pytest.raises(KeyError):
        rv.deal_history(svc.store, playbook, 404)


def test_a_closed_deal_reports_what_the_last_inspection_said(svc, playbook):
    with svc.store.engine.begin() as conn:
        conn.execute(text("UPDATE deal SET status = 'lost', stage = 'closed_lost', closed_on = :d WHERE id = 1"),
                     svc.store.params(conn, {"d": date(2026, 11, 25)}))
    h = rv.deal_history(svc.store, playbook, 1)
    assert h.patterns[-1] == ("Closed lost on 2026-11-25; last inspection (2026-11-16) said overstated, "
                              "call Best case")


# -- `inspector review` ----------------------------------------------------------------------------------
def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def db(svc, db_url):
    svc.store.engine.dispose()
    return db_url


def test_cli_review_findings_with_filters(db):
    result = run("--db", db, "review", "--manager", "Mgr A", "--verdict", "overstated")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [ln[:10] for ln in lines] == ["2026-11-16", "2026-11-09", "2026-11-02"]
    assert all("#1 " in ln and "Overstated Co" in ln and "commit->best_case" in ln for ln in lines[1:])
    result = run("--db", db, "review", "--exception", "commit")
    assert result.exit_code == 0
    assert [ln.split("exception: ")[1] for ln in result.stdout.splitlines()] == ["VP push", "CFO ok"]


def test_cli_review_sessions(db):
    result = run("--db", db, "review", "--sessions", "--team", "Team B")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert "2026-11-09" in lines[1] and "finished" in lines[1] and "1/2 inspected" in lines[1]
    assert "open" in lines[0]


def test_cli_review_deal_history(db):
    result = run("--db", db, "review", "--deal", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[0].startswith("Pushed Ltd (#3) · Rep A · Team A · open")
    assert "  ! Close date judged not credible in the week of 2026-11-09, then pushed on 2026-11-12 (+31 days)" in out
    assert "2026-11-12 close_date: 2026-11-30 -> 2026-12-31" in out
    assert "not_credible" in out


def test_cli_review_with_nothing_matching_and_bad_input(db):
    result = run("--db", db, "review", "--manager", "Nobody")
    assert (result.exit_code, result.stdout) == (0, "No inspections match (manager: Nobody)\n")
    bad = run("--db", db, "review", "--weeks", "last week")
    assert bad.exit_code == 2 and bad.stderr.startswith("inspector: --weeks") and len(bad.stderr.splitlines()) == 1
    missing = run("--db", db, "review", "--deal", "404")
    assert (missing.exit_code, missing.stderr) == (2, "inspector: no deal 404\n")
    assert run("--db", db, "review", "--verdict", "bogus").exit_code == 2


# -- RevOps across deals: open handoff exceptions and post-sale feedback patterns (issue 6) -------------
OVERDUE_DUE = date(2020, 1, 15)  # overdue whatever the machine's clock says (the CLI reads it)
LATER_DUE = date(2099, 1, 15)
HOSTILE_ITEM = "PO\nnumber \x1b[31m[b]x[/b]"


def add_handoff_items(svc) -> None:
    store = svc.store
    store.bulk_insert("handoff_exception", [
        {"deal_id": 2, "missing_item": HOSTILE_ITEM, "owner": "Rep B", "due_date": OVERDUE_DUE,
         "risk": "Invoice late", "status": "open", "created_at": ts(W1)},
        {"deal_id": 3, "missing_item": "Billing contact", "owner": "Rep A", "due_date": LATER_DUE,
         "risk": "Kickoff slips", "status": "open", "created_at": ts(W2)},
        {"deal_id": 3, "missing_item": "Closed already", "owner": "Rep A", "due_date": OVERDUE_DUE,
         "risk": "-", "status": "closed", "created_at": ts(W1), "closed_at": ts(W2)}])
    store.bulk_insert("feedback_item", [
        {"deal_id": 4, "category": "timeline_oversold", "text": "a", "recorded_by": "CS",
         "recorded_at": ts(date(2026, 11, 10))},
        {"deal_id": 4, "category": "timeline_oversold", "text": "b", "recorded_by": "CS",
         "recorded_at": ts(date(2026, 11, 20))},
        {"deal_id": 5, "category": "timeline_oversold", "text": "c", "recorded_by": "CS",
         "recorded_at": ts(date(2026, 11, 21))},
        {"deal_id": 5, "category": "stakeholder_map_wrong", "text": "d", "recorded_by": "CS",
         "recorded_at": ts(date(2026, 11, 22))}])


@pytest.fixture
def revops(svc):
    add_handoff_items(svc)
    return svc


def test_open_handoff_exceptions_earliest_due_first_with_age_and_overdue(revops):
    today = date(2026, 11, 25)
    rows = rv.handoff_exceptions(revops.store, today)
    assert [(x.deal_id, x.missing_item) for x in rows] == [(2, HOSTILE_ITEM), (3, "Billing contact"),
                                                          (5, "use case")]  # no due date last; closed left out
    first, second, no_date = rows
    assert (first.deal, first.owner, first.risk, first.due_date) == ("Exception Inc", "Rep B", "Invoice late",
                                                                     OVERDUE_DUE)
    assert first.overdue and first.overdue_days == (today - OVERDUE_DUE).days
    assert first.age_days == (today - W1).days == 23
    assert not second.overdue and second.overdue_days == 0 and second.age_days == 16
    assert (no_date.due_date, no_date.owner, no_date.overdue) == (None, "", False)
    assert [x.deal_id for x in rv.handoff_exceptions(revops.store, today, team="Team B")] == [5]
    assert [x.deal_id for x in rv.handoff_exceptions(revops.store, today, manager="Mgr A")] == [2, 3]
    assert rv.handoff_exceptions(revops.store, today, team="Team B", manager="Mgr A") == []


def test_feedback_patterns_repeated_categories_first_with_their_deals(revops, playbook):
    pats = rv.feedback_pattern_rows(revops.store, playbook)
    assert [(p.category, p.label, p.items, p.repeated) for p in pats] == [
        ("timeline_oversold", "Timeline was oversold", 3, True),
        ("stakeholder_map_wrong", "Stakeholder map was wrong", 1, False)]
    assert [(d.deal_id, d.deal, d.items) for d in pats[0].deals] == [(4, "Risky GmbH", 2), (5, "Handoff SA", 1)]
    assert pats[0].deals[0].last_at == ts(date(2026, 11, 20))
    # a period: [since, until)
    window = rv.feedback_pattern_rows(revops.store, playbook, since=date(2026, 11, 20), until=date(2026, 11, 22))
    assert [(p.category, p.items, [d.deal_id for d in p.deals]) for p in window] == [
        ("timeline_oversold", 2, [4, 5])]
    assert [p.category for p in rv.feedback_pattern_rows(revops.store, playbook, team="Team B",
                                                         since=date(2026, 11, 21))] == [
        "stakeholder_map_wrong", "timeline_oversold"]  # neither repeated: by label
    assert rv.feedback_pattern_rows(revops.store, playbook, manager="Mgr A") == []


@pytest.fixture
def revops_db(revops, db_url):
    revops.store.engine.dispose()
    return db_url


def test_cli_review_exceptions_and_feedback(revops_db):
    result = run("--db", revops_db, "review", "--exceptions")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Open handoff exceptions: 3, 1 overdue (as of ")
    assert len(lines) == 4  # one line a row: the newline in the item does not break it
    assert lines[1].startswith(f"{OVERDUE_DUE.isoformat()}  OVERDUE ") and "#2 " in lines[1]
    assert "Exception Inc" in lines[1] and "PO number \ufffd[31m[b]x[/b]" in lines[1]
    assert "Rep B" in lines[1] and lines[1].endswith("risk: Invoice late")
    assert "\x1b" not in result.stdout
    assert lines[2].startswith(f"{LATER_DUE.isoformat()}  ") and "OVERDUE" not in lines[2]
    assert lines[3].startswith("no date") and "no owner" in lines[3] and "Handoff SA" in lines[3]
    team_b = run("--db", revops_db, "review", "--exceptions", "--team", "Team B").stdout.splitlines()
    assert len(team_b) == 2 and "#5 " in team_b[1]

    result = run("--db", revops_db, "review", "--feedback")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Post-sale feedback: 4 items in 2 categories, 1 repeated"
    assert lines[1].startswith("REPEATED  3 items, 2 deals") and "Timeline was oversold" in lines[1]
    assert lines[1].endswith("#4 Risky GmbH (2), #5 Handoff SA")
    assert lines[2].startswith("          1 item, 1 deal") and "Stakeholder map was wrong" in lines[2]
    weeks = run("--db", revops_db, "review", "--feedback", "--weeks", "2026-11-16..2026-11-16").stdout
    assert weeks.splitlines()[0] == "Post-sale feedback: 3 items in 2 categories, 1 repeated"

    both = run("--db", revops_db, "review", "--exceptions", "--feedback", "--limit", "1").stdout.splitlines()
    assert both[0].startswith("Open handoff exceptions: 3") and both[2] == "... and 2 more (--limit)"
    assert both[3] == "" and both[4].startswith("Post-sale feedback:") and len(both) == 6
