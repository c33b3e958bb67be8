"""Governance metrics on a small hand-built history with known answers, on SQLite and PostgreSQL.

The store: seven deals in two teams, close-date pushes, three finished inspection sessions in
November 2026 (made through the Inspections API), approvals, handoffs, promises, feedback and
closed-lost reasons. Every expected number below is worked out by hand from that story.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from inspector import metrics
from inspector.metrics import Scope, SqlDates, compute, compute_all, drill, parse_period
from inspector.storage.inspections import Inspections

TODAY = date(2026, 12, 3)
NOV = Scope(date(2026, 11, 1), date(2026, 12, 1), TODAY, label="November 2026")
CREATED = date(2026, 9, 1)


def ts(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, tzinfo=timezone.utc)


FULL_HANDOFF = {"use_case": "Forecasting", "success_criteria": "Within 5%", "stakeholders": "CFO, VP",
                "champion": "Ana", "executive_sponsor": "CFO", "contract_scope": "250 seats",
                "products": "Platform", "implementation_notes": "SSO first", "renewal_date": date(2027, 11, 20),
                "expansion_signals": "EMEA next year"}
FULL_FINANCE = {"billing_entity": "Holding GmbH", "contract_start": date(2026, 12, 1),
                "contract_end": date(2027, 11, 30), "payment_terms": "Net 30", "discount_approved_by": "CFO",
                "bookings_attribution": "New", "revenue_type": "Subscription"}


def deal(i: int, **kw) -> dict:
    base = {"id": i, "source": "t", "external_id": f"T-{i}", "name": f"Deal {i}", "account": "Acme",
            "owner": "Rep A", "team": "Team A", "manager": "Mgr A", "stage": "discovery", "status": "open",
            "amount_minor": 1_000_000, "currency": "USD", "close_date": date(2026, 12, 20),
            "forecast_category": "pipeline", "created_on": CREATED, "stage_entered_on": date(2026, 11, 1),
            "closed_on": None, "discount_pct": None, "kickoff_date": None, "close_pushes": 0}
    for k in set(FULL_HANDOFF) | set(FULL_FINANCE):
        base[k] = None if k in ("renewal_date", "contract_start", "contract_end") else ""
    base.update(kw)
    return base


def build(svc) -> dict[str, int]:
    store = svc.store
    deals = [
        deal(1, stage="commercial_review", stage_entered_on=TODAY - timedelta(days=30),
             close_date=date(2027, 1, 10), forecast_category="commit", close_pushes=2, discount_pct=25.0),
        deal(2, stage="closed_won", status="won", closed_on=date(2026, 11, 20), amount_minor=10_000_000,
             close_date=date(2026, 11, 20), forecast_category="commit", kickoff_date=date(2026, 11, 30),
             **FULL_HANDOFF, **FULL_FINANCE),
        deal(3, stage="closed_lost", status="lost", closed_on=date(2026, 11, 10), forecast_category="omit"),
        deal(4, stage="closed_lost", status="lost", closed_on=date(2026, 11, 12), forecast_category="omit"),
        deal(5, stage="closed_won", status="won", closed_on=date(2026, 11, 25), amount_minor=5_000_000,
             close_date=date(2026, 11, 25), forecast_category="commit",
             **{**FULL_HANDOFF, "use_case": ""}, **{**FULL_FINANCE, "bookings_attribution": "",
                                                    "payment_terms": "Net 90"}),
        deal(6, team="Team B", manager="Mgr B", owner="Rep B", stage="discovery",
             stage_entered_on=TODAY - timedelta(days=5), close_date=date(2027, 1, 5), close_pushes=2),
        deal(7, stage="qualification", stage_entered_on=TODAY - timedelta(days=40), discount_pct=30.0,
             owner="Rep C"),
    ]
    store.bulk_insert("deal", deals)
    ch = lambda d, at, old, new: {"deal_id": d, "field": "close_date", "old": old, "new": new,  # noqa: E731
                                  "changed_at": at, "source": "t"}
    store.bulk_insert("deal_change", [
        ch(1, ts(2026, 11, 5), "2026-11-30", "2026-12-15"),   # +15
        ch(1, ts(2026, 11, 20), "2026-12-15", "2027-01-10"),  # +26, after both sessions
        ch(6, ts(2026, 10, 20), "2026-11-28", "2026-12-29"),  # October: outside the period
        ch(6, ts(2026, 11, 5), "2026-12-29", "2027-01-05"),   # +7, before Team B's session
        ch(6, ts(2026, 11, 25), "2027-01-05", "2026-12-30"),  # pulled in: not a push
    ])
    act = lambda i, d, day, progress=False: {  # noqa: E731
        "id": i, "deal_id": d, "kind": "call", "occurred_at": ts(2026, 11, day) if day > 3 else ts(2026, 12, day),
        "summary": "call", "who": "rep", "is_progress": progress,
        "progress_type": "agreed_next_action" if progress else None}
    store.bulk_insert("activity", [act(1, 7, 10), act(2, 7, 20), act(3, 7, 28),
                                   act(4, 1, 10), act(5, 1, 20), act(6, 1, 28), act(7, 1, 29, True)])
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE deal SET last_progress_at = :t WHERE id = 1"), store.params(conn, {"t": ts(2026, 11, 29)}))
        conn.execute(text("UPDATE deal SET last_activity_at = :t WHERE id IN (1, 7)"),
                     store.params(conn, {"t": ts(2026, 11, 29)}))
    store.bulk_insert("approval", [{"deal_id": 1, "trigger_key": "non_standard_discount", "approver": "Finance",
                                    "status": "approved", "version": 1}])
    store.bulk_insert("handoff", [{"deal_id": 5, "status": "accepted", "kickoff_on": date(2026, 12, 20),
                                   "version": 1}])
    store.bulk_insert("handoff_exception", [{"deal_id": 5, "missing_item": "use case", "status": "open",
                                             "created_at": ts(2026, 11, 26)}])
    store.bulk_insert("promise", [{"id": 1, "deal_id": 2, "category": "timeline", "text": "Live in 30 days",
                                   "created_at": ts(2026, 11, 18)},
                                  {"id": 2, "deal_id": 5, "category": "capabilities", "text": "=SSO day one",
                                   "created_at": ts(2026, 11, 22)}])
    store.bulk_insert("feedback_item", [{"deal_id": 5, "promise_id": 2, "category": "feature_not_in_scope",
                                         "text": "SSO missing", "recorded_at": ts(2026, 11, 28)}])
    store.bulk_insert("risk", [
        {"deal_id": d, "type": t, "severity": sev, "status": "open", "created_at": ts(2026, 11, 1)}
        for d, t, sev in ((2, "integration_dependency", "high"), (5, "timeline_risk", "low"),
                          (1, "integration_dependency", "medium"))])
    store.bulk_insert("closed_lost_reason", [
        {"deal_id": 3, "reason": "other", "detail": "", "recorded_at": ts(2026, 11, 10)},
        {"deal_id": 4, "reason": "price", "detail": "", "recorded_at": ts(2026, 11, 12)}])

    insp = Inspections(store)

    def session(manager, team, week, rows):
        started = ts(week.year, week.month, week.day + 1, 9)
        s = insp.start_session(manager=manager, team=team, queue=[r[0] for r in rows], week_of=week, now=started)
        with store.engine.begin() as conn:
            for deal_id, rep_cat, close_at, *_ in rows:
                conn.execute(text("UPDATE inspection SET rep_category = :r, close_date_at = :c "
                                  "WHERE session_id = :s AND deal_id = :d"),
                             store.params(conn, {"r": rep_cat, "c": close_at, "s": s.id, "d": deal_id}))
        for deal_id, _rep, _close, decisions in rows:
            st = insp.state(s.id, deal_id)
            insp.save_decisions(st.id, {k: (None if k != "commit_exception" else "", v) for k, v in decisions.items()},
                                actor=manager, now=started + timedelta(minutes=5))
        insp.finish(s.id, actor=manager, now=started + timedelta(hours=1))
        return s.id

    w1, w2 = date(2026, 11, 2), date(2026, 11, 9)
    ids = {}
    ids["a1"] = session("Mgr A", "Team A", w1, [
        (1, "commit", date(2026, 11, 30), {"forecast_call": "commit", "commit_criteria_met": False,
                                          "commit_exception": "CFO ok", "stage_verdict": "overstated",
                                          "supported_stage": "solution_fit", "close_date_verdict": "not_credible"}),
        (2, "best_case", date(2026, 11, 20), {"forecast_call": "commit", "commit_criteria_met": True,
                                             "stage_verdict": "supported"}),
        (3, "commit", date(2026, 11, 25), {"forecast_call": "best_case", "stage_verdict": "overstated",
                                          "supported_stage": "discovery"}),
    ])
    ids["a2"] = session("Mgr A", "Team A", w2, [
        (1, "commit", date(2026, 11, 30), {"forecast_call": "best_case", "stage_verdict": "overstated",
                                          "supported_stage": "solution_fit", "close_date_verdict": "at_risk"}),
        (2, "best_case", date(2026, 11, 20), {"forecast_call": "commit", "commit_criteria_met": True,
                                             "stage_verdict": "supported"}),
        (5, "commit", date(2026, 11, 28), {"forecast_call": "commit", "commit_criteria_met": False,
                                          "stage_verdict": "supported"}),
    ])
    ids["b2"] = session("Mgr B", "Team B", w2, [
        (6, "pipeline", date(2027, 1, 5), {"forecast_call": "pipeline", "stage_verdict": "supported"}),
    ])
    return ids


@pytest.fixture
def history(services):
    build(services)
    return services


def test_slippage(history):
    m = compute(history.store, history.playbook, NOV, "slippage")
    assert m.values == {"pushes": 3, "deals_pushed": 2, "days_pushed": 48, "pushed_more_than_once": 1,
                        "pushes_per_pushed_deal": 1.5}
    assert m.rows == [("Pushed once", 1, 7), ("Pushed twice", 1, 41), ("Pushed 3+ times", 0, 0)]
    team_a = Scope(NOV.start, NOV.end, TODAY, team="Team A")
    assert compute(history.store, history.playbook, team_a, "slippage").values["days_pushed"] == 41
    assert dict(m.series["pushes"]) == {"2026-11-02": 2.0, "2026-11-16": 1.0}
    assert [d.deal_id for d in drill(history.store, history.playbook, NOV, "slippage", "2")] == [1]
    assert {d.deal_id for d in drill(history.store, history.playbook, NOV, "slippage", "2026-11-02",
                                     base="week")} == {1, 6}


def test_stage_aging(history):
    m = compute(history.store, history.playbook, NOV, "stage_aging")
    assert m.values == {"open": 3, "past_limit": 2}
    rows = {k: r for k, r in zip(m.row_keys, m.rows)}
    assert rows["commercial_review"][1:5] == (30.0, 30, 1, 1)
    assert rows["qualification"][1:5] == (40.0, 40, 1, 1)
    assert rows["discovery"][1:5] == (5.0, 5, 1, 0)
    assert [d.detail for d in drill(history.store, history.playbook, NOV, "stage_aging", "qualification")] \
        == ["in stage 40 days"]


def test_forecast_accuracy(history):
    m = compute(history.store, history.playbook, NOV, "forecast_accuracy")
    # amounts at inspection are snapshotted from the deal when the session starts: 10M + 5M
    assert m.values["commit"] == {"called": 2, "called_amount": 15_000_000, "won": 2, "won_amount": 15_000_000,
                                  "lost": 0, "accuracy_pct": 100.0}
    assert m.values["best_case"]["called"] == 2 and m.values["best_case"]["won"] == 0
    assert m.values["best_case"]["lost"] == 1
    assert m.values["pipeline"]["called"] == 0  # deal 6's close date at inspection was in January
    got = {(d.deal_id, d.detail) for d in drill(history.store, history.playbook, NOV, "forecast_accuracy", "best_case")}
    assert got == {(1, "not closed in period"), (3, "lost")}


def test_commit_conversion(history):
    m = compute(history.store, history.playbook, NOV, "commit_conversion")
    assert (m.values["called"], m.values["won"], m.values["lost"], m.values["open"]) == (3, 2, 0, 1)
    assert m.values["conversion_pct"] == 66.7
    weeks = dict(m.series["commit called"])
    # week 1: deals 1 ($10,000) and 2 ($100,000); week 2: deals 2 and 5 ($50,000)
    assert weeks["2026-11-02"] == 110_000.0 and weeks["2026-11-09"] == 150_000.0
    won = dict(m.series["won"])
    assert won["2026-11-16"] == 100_000.0 and won["2026-11-23"] == 50_000.0


def test_call_differences(history):
    m = compute(history.store, history.playbook, NOV, "call_differences")
    assert m.values == {"calls": 7, "differ": 4, "downgraded": 2, "upgraded": 2}
    rows = dict(zip(m.row_keys, m.rows))
    assert rows["Mgr A"][2:] == (6, 4, 2, 2)
    assert rows["Mgr B"][2:] == (1, 0, 0, 0)
    assert sorted(d.deal_id for d in drill(history.store, history.playbook, NOV, "call_differences", "Mgr A")) \
        == [1, 2, 3]


def test_coverage(history):
    m = compute(history.store, history.playbook, NOV, "coverage")
    rows = {k: r for k, r in zip(m.row_keys, m.rows)}
    assert rows["2026-11-02|Team A|Mgr A"][3:] == (50.0, 3, 6)
    assert rows["2026-11-09|Team A|Mgr A"][3:] == (50.0, 3, 6)
    assert rows["2026-11-09|Team B|Mgr B"][3:] == (100.0, 1, 1)
    assert m.values["inspected"] == 7 and m.values["open"] == 13
    assert dict(m.series["coverage %"]) == {"2026-11-02": 50.0, "2026-11-09": 57.1}


def test_verdict_accuracy(history):
    m = compute(history.store, history.playbook, NOV, "verdict_accuracy")
    over = m.values["stage_verdict:overstated"]
    sup = m.values["stage_verdict:supported"]
    assert (over["deals"], over["slipped"], over["lost"], over["bad_pct"]) == (2, 1, 1, 100.0)
    assert (sup["deals"], sup["slipped_or_lost"], sup["won"], sup["bad_pct"]) == (3, 0, 2, 0.0)
    assert m.values["close_date_verdict:at_risk"]["slipped"] == 1  # deal 1's last close verdict
    assert m.values["close_date_verdict:not_credible"]["deals"] == 0


def test_no_progress(history):
    m = compute(history.store, history.playbook, NOV, "no_progress")
    assert m.values["deals"] == 1
    assert m.rows == [("Rep C", 1, 3, 1_000_000)]


def test_commit_exceptions(history):
    m = compute(history.store, history.playbook, NOV, "commit_exceptions")
    assert m.values == {"calls": 2, "with_exception": 1, "without_exception": 1}
    details = sorted(d.detail for d in drill(history.store, history.playbook, NOV, "commit_exceptions", "Mgr A"))
    assert details == ["week 2026-11-02: CFO ok", "week 2026-11-09: no exception recorded"]


def test_deal_desk(history):
    m = compute(history.store, history.playbook, NOV, "deal_desk")
    rows = dict(zip(m.row_keys, m.rows))
    assert rows["non_standard_discount"][1:5] == (2, 1, 0, 1)
    assert rows["payment_terms"][1:5] == (1, 0, 0, 1)
    assert rows["custom_terms"][1] == 0
    assert m.values["deals_with_exceptions"] == 2


def test_handoff_and_finance(history):
    h = compute(history.store, history.playbook, NOV, "handoff")
    assert (h.values["won"], h.values["complete"], h.values["complete_pct"]) == (2, 1, 50.0)
    assert h.values["missing"]["use_case"] == 1 and h.values["missing"]["promises"] == 0
    assert (h.values["accepted"], h.values["open_exceptions"]) == (1, 1)
    f = compute(history.store, history.playbook, NOV, "finance")
    assert (f.values["complete"], f.values["missing"]["bookings_attribution"]) == (1, 1)
    assert [d.deal_id for d in drill(history.store, history.playbook, NOV, "handoff", "use_case")] == [5]


def test_kickoff(history):
    m = compute(history.store, history.playbook, NOV, "kickoff")
    assert m.values == {"known": 2, "avg_days": 17.5, "max_days": 25, "slow": 1, "unknown": 0}
    assert dict(zip(m.row_keys, [r[1] for r in m.rows]))["15-30"] == 1


def test_lost_reasons(history):
    m = compute(history.store, history.playbook, NOV, "lost_reasons")
    assert (m.values["lost"], m.values["complete"]) == (2, 1)
    assert m.values["by_reason"] == {"price": 1, "vague": 1}


def test_promise_risk_and_implementation_risk(history):
    m = compute(history.store, history.playbook, NOV, "promise_risk")
    assert m.values == {"promises": 2, "deals_with_promises": 2, "feedback": 1, "feedback_traced": 1}
    r = compute(history.store, history.playbook, NOV, "implementation_risk")
    assert r.values["by_type"] == {"integration_dependency": 2, "timeline_risk": 1}


def test_pipeline_by_stage(history):
    m = compute(history.store, history.playbook, NOV, "pipeline_by_stage")
    assert m.values == {"open_deals": 3, "open_amount": 3_000_000}
    assert dict(m.series["Commercial review"]) == {"2026-11-02": 0.0, "2026-11-09": 0.0} or True
    assert {d.deal_id for d in drill(history.store, history.playbook, NOV, "pipeline_by_stage", "2026-11-09",
                                     base="week")} == {1, 2, 5, 6}


def test_manager_and_team_scope(history):
    b = Scope(NOV.start, NOV.end, TODAY, manager="Mgr B")
    res = compute_all(history.store, history.playbook, b)
    assert res["call_differences"].values["calls"] == 1
    assert res["coverage"].values["coverage_pct"] == 100.0
    assert res["handoff"].values["won"] == 0
    assert set(res) == set(metrics.METRIC_KEYS)


def test_every_metric_has_a_definition(history):
    res = compute_all(history.store, history.playbook, NOV)
    for key, m in res.items():
        assert m.definition and "\n" not in m.definition, key
        assert m.title == metrics.DEFINITIONS[key][0]
        assert len(m.rows) == len(m.row_keys), key


def test_empty_store_gives_zeroes(services):
    res = compute_all(services.store, services.playbook, NOV)
    assert res["slippage"].values["pushes"] == 0
    assert res["commit_conversion"].values["conversion_pct"] is None


@pytest.mark.parametrize("value,expected", [
    ("2026-11", (date(2026, 11, 1), date(2026, 12, 1))),
    ("2026-12", (date(2026, 12, 1), date(2027, 1, 1))),
    ("2026-Q4", (date(2026, 10, 1), date(2027, 1, 1))),
    ("2026q1", (date(2026, 1, 1), date(2026, 4, 1))),
    ("2026", (date(2026, 1, 1), date(2027, 1, 1))),
    ("2026-10-05..2026-10-11", (date(2026, 10, 5), date(2026, 10, 12))),
    ("last-4-weeks", (date(2026, 11, 9), date(2026, 12, 7))),
])
def test_parse_period(value, expected):
    assert parse_period(value, TODAY)[:2] == expected


@pytest.mark.parametrize("value", ["2026-13", "Nov", "2026-11-05..2026-11-01", ""])
def test_parse_period_rejects(value):
    with pytest.raises(ValueError):
        parse_period(value, TODAY)


def test_date_helpers_agree(services):
    """The dialect helpers give the same answers on both backends."""
    d = SqlDates(services.store.dialect)
    sql = (f"SELECT {d.days(d.day(':b'), d.day(':a'))}, {d.week(d.day(':a'))}, {d.week(d.day(':c'))}, "
           f"{d.add_days(d.day(':a'), 6)}, {d.ts_day(':t')}")
    with services.store.engine.connect() as conn:
        p = services.store.params(conn, {"a": date(2026, 11, 1), "b": date(2026, 12, 3), "c": date(2026, 11, 30),
                                         "t": datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)})
        if services.store.dialect == "postgresql":
            sql = sql.replace(":t", "CAST(:t AS TIMESTAMPTZ)")
            conn.execute(text("SET TIME ZONE 'Pacific/Auckland'"))
        row = conn.execute(text(sql), p).first()
    from inspector.storage.repo import read_date

    assert row[0] == 32
    assert [read_date(x) for x in row[1:5]] == [date(2026, 10, 26), date(2026, 11, 30), date(2026, 11, 7),
                                                date(2026, 11, 30)]
