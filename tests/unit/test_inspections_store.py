"""Inspections: sessions, compare-and-set saves, the event log they append, queue ordering.

Every test taking `services` runs twice: on a real SQLite file and on a fresh PostgreSQL schema.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from inspector import demo
from inspector.inspect import build_queue
from inspector.money import to_minor
from inspector.services import build_services
from inspector.storage.inspections import Inspections, NotFound, StaleEdit, order_queue

TODAY = date(2026, 12, 3)  # same day as tests/conftest.py (tests/ is not a package)
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(minutes=5)
WEEK_OF = date(2026, 11, 30)


def later(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


@pytest.fixture
def seeded(services, playbook):
    demo.seed(services.store, playbook, TODAY, 120)
    return services


@pytest.fixture
def insp(seeded) -> Inspections:
    return Inspections(seeded.store)


def biggest_team(services) -> tuple[str, str]:
    team, manager, _n = max(services.store.teams(), key=lambda t: (t[2], t[0]))
    return team, manager


@pytest.fixture
def session(seeded, insp, playbook):
    team, manager = biggest_team(seeded)
    queue = build_queue(seeded.store, insp, playbook, TODAY, team)
    assert len(queue) >= 5, "the seeded team should have a few open deals"
    return insp.start_session(manager=manager, team=team, queue=queue, week_of=WEEK_OF, now=NOW,
                              scope={"team": team})


@pytest.fixture
def other_writer(seeded, db_url, clock, playbook):
    """A second process's view: its own engine (own connections) on the same database."""
    svc = build_services(db_url, clock=clock, playbook=playbook, actor="RevOps Analyst")
    yield Inspections(svc.store)
    svc.store.engine.dispose()


def event_kinds(insp: Inspections) -> list[str]:
    return [e["kind"] for e in insp.events()]


def assert_chain_ok(insp: Inspections) -> None:
    report = insp.chain()
    assert report.ok, (report.broken_seq, report.problem)
    assert report.count == len(insp.events())


# -- sessions --------------------------------------------------------------------------------
def test_start_session_snapshots_every_queued_deal(seeded, insp, session):
    rows = {r.id: r for r in seeded.store.list_deals(TODAY)}
    assert session.status == "open" and session.finished_at is None
    assert session.week_of == WEEK_OF and session.started_at == NOW
    assert session.current_deal_id == session.queue[0]
    assert session.scope == {"team": session.team}
    states = insp.states(session.id)
    assert [s.deal_id for s in states] == list(session.queue)
    for pos, s in enumerate(states):
        row = rows[s.deal_id]
        assert (s.position, s.status, s.skip_reason) == (pos, "pending", "")
        assert (s.stage_at, s.amount_minor_at, s.rep_category) == (row.stage, row.amount_minor,
                                                                    row.forecast_category)
        assert s.close_date_at == (date.fromisoformat(row.close_date) if row.close_date else None)
        assert s.answers == {} and s.version == 1
        assert s.decisions["next_step"] == row.next_step
    [ev] = insp.events()
    assert (ev["seq"], ev["kind"], ev["actor"], ev["session_id"]) == (1, "session.started",
                                                                      session.manager, session.id)
    assert ev["payload"]["deals"] == len(session.queue) and ev["payload"]["week_of"] == "2026-11-30"
    assert_chain_ok(insp)


def test_session_lookup_unknown_id(insp):
    with pytest.raises(NotFound):
        insp.session(999_999)


def test_open_session_for_finds_the_open_one_not_a_finished_one(seeded, insp, session):
    team, manager = session.team, session.manager
    assert insp.open_session_for(manager, team).id == session.id
    newer = insp.start_session(manager=manager, team=team, queue=session.queue[:2], week_of=WEEK_OF,
                               now=later(10))
    insp.finish(newer.id, actor=manager, now=later(20))
    # the newer session is finished: the older open one is the one to resume
    assert insp.open_session_for(manager, team).id == session.id
    assert insp.open_session_for("Someone Else", team) is None
    insp.finish(session.id, actor=manager, now=later(30))
    assert insp.open_session_for(manager, team) is None
    assert insp.last_finished_at(team) == later(30)


def test_finish_twice_raises_stale_edit(insp, session):
    insp.finish(session.id, actor=session.manager, now=LATER)
    info = insp.session(session.id)
    assert (info.status, info.finished_at) == ("finished", LATER)
    ev = insp.events()[-1]
    assert ev["kind"] == "session.finished"
    assert ev["payload"]["counts"] == {"pending": len(session.queue)}
    with pytest.raises(StaleEdit) as err:
        insp.finish(session.id, actor=session.manager, now=later(9))
    assert (err.value.expected, err.value.current) == ("open", "finished")
    assert event_kinds(insp) == ["session.started", "session.finished"]
    assert insp.session(session.id).finished_at == LATER
    with pytest.raises(NotFound):
        insp.finish(999_999, actor="x", now=LATER)


def test_set_position_persists_without_an_event(insp, session):
    deal = session.queue[2]
    insp.set_position(session.id, deal, "why_now")
    info = insp.session(session.id)
    assert (info.current_deal_id, info.current_question) == (deal, "why_now")
    insp.set_position(session.id, None, None)
    info = insp.session(session.id)
    assert (info.current_deal_id, info.current_question) == (None, None)
    assert event_kinds(insp) == ["session.started"]


def test_reorder_keeps_the_same_deals(insp, session):
    new_queue = list(reversed(session.queue))
    insp.reorder(session.id, new_queue, actor=session.manager, now=LATER)
    assert list(insp.session(session.id).queue) == new_queue
    assert [s.deal_id for s in insp.states(session.id)] == new_queue
    assert [s.position for s in insp.states(session.id)] == list(range(len(new_queue)))
    ev = insp.events()[-1]
    assert (ev["kind"], ev["payload"]) == ("session.reordered", {"queue": new_queue})

    for bad in (new_queue[:-1], new_queue + [new_queue[0]], new_queue[:-1] + [10_000]):
        with pytest.raises(ValueError):
            insp.reorder(session.id, bad, actor=session.manager, now=later(9))
    assert list(insp.session(session.id).queue) == new_queue
    assert event_kinds(insp) == ["session.started", "session.reordered"]
    assert_chain_ok(insp)


def test_reorder_unknown_session_is_not_found(insp, session):
    with pytest.raises(NotFound):
        insp.reorder(999_999, [1], actor="x", now=LATER)


# -- answers, decisions, status --------------------------------------------------------------
def test_save_answer_updates_state_and_logs_old_and_new(insp, session):
    deal = session.queue[0]
    st = insp.state(session.id, deal)
    insp.save_answer(st.id, "problem", "Forecast misses cost a quarter", "claimed",
                     expected=("", "missing"), actor="Test Manager", now=NOW)
    insp.save_answer(st.id, "problem", "Forecast misses cost a quarter (CFO email)", "confirmed",
                     expected=("Forecast misses cost a quarter", "claimed"), actor="Test Manager", now=LATER)
    # saving what is already there is not a change: no event
    insp.save_answer(st.id, "problem", "Forecast misses cost a quarter (CFO email)", "confirmed",
                     expected=("Forecast misses cost a quarter (CFO email)", "confirmed"),
                     actor="Test Manager", now=later(6))
    after = insp.state(session.id, deal)
    assert after.answers == {"problem": ("Forecast misses cost a quarter (CFO email)", "confirmed")}
    assert after.status == "inspected" and after.version == st.version + 2
    evs = insp.events(deal_id=deal)
    assert [e["kind"] for e in evs] == ["answer.saved", "answer.saved"]
    assert evs[0]["payload"] == {"question": "problem", "old": ["", "missing"],
                                 "new": ["Forecast misses cost a quarter", "claimed"]}
    assert evs[1]["payload"]["old"] == ["Forecast misses cost a quarter", "claimed"]
    assert all(e["actor"] == "Test Manager" and e["entity"] == "inspection" and e["entity_id"] == st.id
               and e["session_id"] == session.id for e in evs)
    assert [e["at"] for e in evs] == [NOW, LATER]
    with pytest.raises(ValueError):
        insp.save_answer(st.id, "problem", "x", "probably", expected=None, actor="x", now=LATER)
    with pytest.raises(NotFound):
        insp.save_answer(999_999, "problem", "x", "claimed", expected=None, actor="x", now=LATER)
    assert_chain_ok(insp)


def test_save_decisions_stores_typed_values_and_updates_the_deal(seeded, insp, session):
    deal = session.queue[1]
    st = insp.state(session.id, deal)
    insp.save_decisions(st.id, {
        "stage_verdict": (None, "overstated"), "supported_stage": (None, "discovery"),
        "close_date_verdict": (None, "not_credible"), "proposed_close_date": (None, date(2027, 2, 15)),
        "forecast_call": (None, "commit"), "commit_criteria_met": (None, False),
        "commit_exception": ("", "CFO verbal yes"), "next_step": (st.decisions["next_step"], "Send MCP"),
        "next_step_date": (st.decisions["next_step_date"], date(2026, 12, 10)),
        "notes": ("", "Line one\nline | two"),
    }, actor="Test Manager", now=LATER)
    d = insp.state(session.id, deal).decisions
    assert d == {"stage_verdict": "overstated", "supported_stage": "discovery",
                 "close_date_verdict": "not_credible", "proposed_close_date": date(2027, 2, 15),
                 "forecast_call": "commit", "commit_criteria_met": False,
                 "commit_exception": "CFO verbal yes", "next_step": "Send MCP",
                 "next_step_date": date(2026, 12, 10), "notes": "Line one\nline | two"}
    assert insp.state(session.id, deal).status == "inspected"
    detail = seeded.store.get_deal(deal, TODAY)
    assert (detail.row.next_step, detail.row.next_step_date) == ("Send MCP", "2026-12-10")
    [ev] = insp.events(deal_id=deal)
    assert ev["kind"] == "decision.saved" and ev["actor"] == "Test Manager"
    assert ev["payload"]["proposed_close_date"] == {"old": None, "new": "2027-02-15"}
    assert ev["payload"]["commit_criteria_met"] == {"old": None, "new": False}
    assert ev["payload"]["next_step"] == {"old": st.decisions["next_step"], "new": "Send MCP"}
    # a date decision compares by value whichever way it is given
    insp.save_decisions(st.id, {"proposed_close_date": ("2027-02-15", date(2027, 3, 1)),
                                "commit_criteria_met": (False, True)}, actor="Test Manager", now=later(6))
    d = insp.state(session.id, deal).decisions
    assert (d["proposed_close_date"], d["commit_criteria_met"]) == (date(2027, 3, 1), True)
    with pytest.raises(ValueError):
        insp.save_decisions(st.id, {"amount_minor": (0, 1)}, actor="x", now=LATER)
    assert_chain_ok(insp)


def test_set_status_skip_and_back(insp, session):
    deal = session.queue[0]
    st = insp.state(session.id, deal)
    insp.set_status(st.id, "skipped", "Rep on leave", expected="pending", actor="Test Manager", now=LATER)
    s = insp.state(session.id, deal)
    assert (s.status, s.skip_reason) == ("skipped", "Rep on leave")
    with pytest.raises(StaleEdit):
        insp.set_status(st.id, "inspected", expected="pending", actor="Test Manager", now=later(6))
    insp.set_status(st.id, "pending", expected="skipped", actor="Test Manager", now=later(7))
    assert insp.state(session.id, deal).status == "pending"
    evs = insp.events(deal_id=deal)
    assert [e["kind"] for e in evs] == ["inspection.skipped", "inspection.pending"]
    assert evs[0]["payload"] == {"old": "pending", "new": "skipped", "reason": "Rep on leave"}
    with pytest.raises(ValueError):
        insp.set_status(st.id, "done", expected=None, actor="x", now=LATER)
    assert_chain_ok(insp)


# -- risks and progress ----------------------------------------------------------------------
def test_risk_add_update_close(seeded, insp, session):
    deal = session.queue[0]
    st = insp.state(session.id, deal)
    rid = insp.add_risk(deal, type="security_review", severity="medium", owner="Zoë",
                        due_date=date(2026, 12, 20), mitigation="", actor="Test Manager", now=NOW,
                        inspection_id=st.id, session_id=session.id)
    insp.update_risk(rid, {"severity": ("medium", "high"), "mitigation": ("", "Security pack sent")},
                     actor="Test Manager", now=LATER, session_id=session.id)
    risk = next(r for r in seeded.store.get_deal(deal, TODAY).risks if r.id == rid)
    assert (risk.type, risk.severity, risk.mitigation, risk.status) == (
        "security_review", "high", "Security pack sent", "open")
    assert risk.due_date == date(2026, 12, 20) and risk.created_at == NOW
    insp.update_risk(rid, {"status": ("open", "closed")}, actor="Test Manager", now=later(9))
    risk = next(r for r in seeded.store.get_deal(deal, TODAY).risks if r.id == rid)
    assert risk.status == "closed"
    with seeded.store.engine.connect() as conn:
        closed_at = conn.execute(text("SELECT closed_at FROM risk WHERE id = :r"), {"r": rid}).scalar()
    assert closed_at is not None
    evs = [e for e in insp.events() if e["entity"] == "risk"]
    assert [e["kind"] for e in evs] == ["risk.added", "risk.updated", "risk.closed"]
    assert evs[0]["payload"] == {"type": "security_review", "severity": "medium", "owner": "Zoë",
                                 "due_date": "2026-12-20", "mitigation": ""}
    assert evs[1]["payload"] == {"severity": {"old": "medium", "new": "high"},
                                 "mitigation": {"old": "", "new": "Security pack sent"}}
    assert evs[2]["payload"] == {"status": {"old": "open", "new": "closed"}}
    assert all(e["entity_id"] == rid and e["deal_id"] == deal for e in evs)
    with pytest.raises(ValueError):
        insp.update_risk(rid, {"deal_id": (deal, 1)}, actor="x", now=LATER)
    with pytest.raises(NotFound):
        insp.update_risk(999_999, {"severity": ("high", "low")}, actor="x", now=LATER)
    assert_chain_ok(insp)


def seller_activity(services, deal_id: int | None = None):
    """(deal id, activity) for a seller activity (not progress) on an open deal."""
    for row in services.store.list_deals(TODAY):
        if deal_id is not None and row.id != deal_id:
            continue
        for a in services.store.get_deal(row.id, TODAY).activities:
            if not a.is_progress:
                return row.id, a
    raise AssertionError("the demo data should have seller activities")


def test_mark_progress_and_unmark(seeded, insp, session):
    deal, act = seller_activity(seeded)
    insp.mark_progress(act.id, "agreed_next_action", expected=None, actor="Test Manager", now=LATER,
                       session_id=session.id)
    detail = seeded.store.get_deal(deal, TODAY)
    marked = next(a for a in detail.activities if a.id == act.id)
    assert (marked.is_progress, marked.progress_type) == (True, "agreed_next_action")
    last_progress = max(a.occurred_at for a in detail.activities if a.is_progress)
    assert detail.row.days_since_progress == (TODAY - last_progress.date()).days
    with pytest.raises(StaleEdit):  # the caller thought it was unmarked
        insp.mark_progress(act.id, "agreed_timeline", expected=None, actor="x", now=later(6))
    insp.mark_progress(act.id, None, expected="agreed_next_action", actor="Test Manager", now=later(7))
    unmarked = next(a for a in seeded.store.get_deal(deal, TODAY).activities if a.id == act.id)
    assert (unmarked.is_progress, unmarked.progress_type) == (False, None)
    evs = [e for e in insp.events() if e["kind"] == "activity.progress"]
    assert [e["payload"] for e in evs] == [{"old": None, "new": "agreed_next_action"},
                                           {"old": "agreed_next_action", "new": None}]
    assert evs[0]["session_id"] == session.id and evs[0]["deal_id"] == deal
    with pytest.raises(NotFound):
        insp.mark_progress(999_999, None, expected=None, actor="x", now=LATER)
    assert_chain_ok(insp)


# -- compare and set between two writers (two engines, as two processes would have) ----------
def test_stale_answer_from_a_second_writer_is_refused(insp, other_writer, session):
    deal = session.queue[0]
    st = insp.state(session.id, deal)
    seen_by_b = other_writer.state(session.id, deal).answers.get("why_now", ("", "missing"))
    insp.save_answer(st.id, "why_now", "Budget expires in March", "confirmed",
                     expected=("", "missing"), actor="Manager A", now=NOW)
    before = len(insp.events())
    with pytest.raises(StaleEdit) as err:
        other_writer.save_answer(st.id, "why_now", "No urgency", "claimed", expected=seen_by_b,
                                 actor="RevOps Analyst", now=LATER)
    assert err.value.current == ("Budget expires in March", "confirmed")
    assert insp.state(session.id, deal).answers["why_now"] == ("Budget expires in March", "confirmed")
    assert len(insp.events()) == before
    assert all(e["actor"] != "RevOps Analyst" for e in insp.events())
    # after reloading, B's save goes through and records A's value as the old one
    other_writer.save_answer(st.id, "why_now", "No urgency", "claimed",
                             expected=("Budget expires in March", "confirmed"), actor="RevOps Analyst",
                             now=LATER)
    assert insp.events()[-1]["payload"]["old"] == ["Budget expires in March", "confirmed"]
    assert_chain_ok(insp)


def test_stale_decision_from_a_second_writer_is_refused(insp, other_writer, session):
    deal = session.queue[0]
    st = insp.state(session.id, deal)
    seen_by_b = other_writer.state(session.id, deal).decisions
    insp.save_decisions(st.id, {"forecast_call": (None, "best_case"), "notes": ("", "A's notes")},
                        actor="Manager A", now=NOW)
    before = len(insp.events())
    with pytest.raises(StaleEdit):
        other_writer.save_decisions(st.id, {"notes": (seen_by_b["notes"], "B's notes")},
                                    actor="RevOps Analyst", now=LATER)
    with pytest.raises(StaleEdit):  # one stale field refuses the whole save
        other_writer.save_decisions(st.id, {"stage_verdict": (None, "supported"),
                                            "forecast_call": (seen_by_b["forecast_call"], "omit")},
                                    actor="RevOps Analyst", now=LATER)
    d = insp.state(session.id, deal).decisions
    assert (d["notes"], d["forecast_call"], d["stage_verdict"]) == ("A's notes", "best_case", None)
    assert len(insp.events()) == before
    assert_chain_ok(insp)


def test_stale_risk_update_from_a_second_writer_is_refused(seeded, insp, other_writer, session):
    deal = session.queue[0]
    rid = insp.add_risk(deal, type="product_gap", severity="low", owner="Zoë", due_date=None,
                        mitigation="", actor="Manager A", now=NOW)
    insp.update_risk(rid, {"severity": ("low", "high")}, actor="Manager A", now=LATER)
    before = len(insp.events())
    with pytest.raises(StaleEdit):
        other_writer.update_risk(rid, {"severity": ("low", "medium")}, actor="RevOps Analyst", now=LATER)
    with pytest.raises(StaleEdit):
        other_writer.update_risk(rid, {"status": ("open", "closed"), "severity": ("low", "low")},
                                 actor="RevOps Analyst", now=LATER)
    risk = next(r for r in seeded.store.get_deal(deal, TODAY).risks if r.id == rid)
    assert (risk.severity, risk.status) == ("high", "open")
    assert len(insp.events()) == before
    assert_chain_ok(insp)


def test_stale_progress_mark_from_a_second_writer_is_refused(seeded, insp, other_writer, session):
    deal, act = seller_activity(seeded)
    insp.mark_progress(act.id, "buyer_agreed_approach", expected=None, actor="Manager A", now=NOW)
    before = len(insp.events())
    with pytest.raises(StaleEdit):
        other_writer.mark_progress(act.id, "agreed_timeline", expected=None, actor="RevOps Analyst",
                                   now=LATER)
    with pytest.raises(StaleEdit):
        other_writer.mark_progress(act.id, None, expected="agreed_timeline", actor="RevOps Analyst",
                                   now=LATER)
    a = next(x for x in seeded.store.get_deal(deal, TODAY).activities if x.id == act.id)
    assert (a.is_progress, a.progress_type) == (True, "buyer_agreed_approach")
    assert len(insp.events()) == before
    assert_chain_ok(insp)


def test_stale_status_and_finish_from_a_second_writer(insp, other_writer, session):
    st = insp.state(session.id, session.queue[0])
    insp.set_status(st.id, "skipped", "duplicate", expected="pending", actor="Manager A", now=NOW)
    with pytest.raises(StaleEdit):
        other_writer.set_status(st.id, "inspected", expected="pending", actor="RevOps Analyst", now=LATER)
    insp.finish(session.id, actor="Manager A", now=LATER)
    with pytest.raises(StaleEdit):
        other_writer.finish(session.id, actor="RevOps Analyst", now=later(6))
    assert insp.state(session.id, session.queue[0]).status == "skipped"
    assert event_kinds(insp) == ["session.started", "inspection.skipped", "session.finished"]
    assert_chain_ok(insp)


def test_writes_from_two_engines_extend_one_chain(insp, other_writer, session):
    for i, deal in enumerate(session.queue[:4]):
        writer = insp if i % 2 == 0 else other_writer
        st = writer.state(session.id, deal)
        writer.save_decisions(st.id, {"notes": ("", f"note {i}")}, actor=f"writer {i % 2}", now=later(i))
    evs = insp.events()
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert [e["actor"] for e in evs[1:]] == ["writer 0", "writer 1"] * 2
    assert insp.chain() == other_writer.chain()
    assert_chain_ok(insp)


# -- queue ordering --------------------------------------------------------------------------
def test_order_queue_puts_commit_and_large_deals_first():
    # (id, commit, large, changed, flagged, high findings, amount)
    items = [
        (1, False, False, False, False, 0, 900_000),
        (2, False, False, False, True, 3, 10),
        (3, False, False, True, False, 0, 10),
        (4, False, True, False, False, 0, 20_000_000),
        (5, True, False, False, False, 0, 50),
        (6, True, True, False, False, 0, 50),
        (7, False, False, True, True, 0, 10),
        (8, False, False, False, True, 1, 10),
        (9, False, False, False, True, 1, 500),
        (10, False, False, False, False, 0, 900_000),
    ]
    assert order_queue(items) == [6, 5, 4, 7, 3, 2, 9, 8, 1, 10]
    assert order_queue([]) == []


def test_build_queue_starts_with_commit_and_large_deals(seeded, insp, playbook):
    team, _manager = biggest_team(seeded)
    queue = build_queue(seeded.store, insp, playbook, TODAY, team)
    rows = {r.id: r for r in seeded.store.list_deals(TODAY, team=team)}
    assert sorted(queue) == sorted(rows)
    large = to_minor(playbook.thresholds.large_deal_amount)
    weight = [8 * (rows[d].forecast_category == "commit") + 4 * (rows[d].amount_minor >= large)
              for d in queue]
    assert weight == sorted(weight, reverse=True), "commit, then large, deals lead the queue"
    assert weight[0] > 0, "the seeded team has commit or large deals"
    # the rep filter narrows the queue to that rep's deals
    rep = rows[queue[0]].owner
    rep_queue = build_queue(seeded.store, insp, playbook, TODAY, team, reps=[rep])
    assert set(rep_queue) == {d for d, r in rows.items() if r.owner == rep}


def test_a_finished_session_is_final(insp, session):
    """After finish, answers, decisions and statuses are refused; the log stops at the finish."""
    from inspector.storage.inspections import SessionClosed

    deal = session.queue[0]
    state = insp.state(session.id, deal)
    insp.finish(session.id, actor="M", now=later(1))
    count = len(insp.events())
    with pytest.raises(SessionClosed):
        insp.save_answer(state.id, "problem", "late", "claimed", expected=None, actor="M", now=later(2))
    with pytest.raises(SessionClosed):
        insp.save_decisions(state.id, {"notes": ("", "late")}, actor="M", now=later(2))
    with pytest.raises(SessionClosed):
        insp.set_status(state.id, "skipped", "late", expected=None, actor="M", now=later(2))
    assert len(insp.events()) == count
    assert insp.state(session.id, deal).answers == state.answers


def test_empty_or_bad_inputs_are_refused_cleanly(insp, session):
    state = insp.state(session.id, session.queue[0])
    with pytest.raises(ValueError):
        insp.save_decisions(state.id, {}, actor="M", now=later(1))
    with pytest.raises(NotFound):
        insp.start_session(manager="M", team="T", queue=[10 ** 9], week_of=WEEK_OF, now=NOW)
    with pytest.raises(ValueError):
        insp.start_session(manager="M", team="T", queue=[session.queue[0]] * 2, week_of=WEEK_OF, now=NOW)


def test_setting_the_same_status_twice_logs_once(insp, session):
    state = insp.state(session.id, session.queue[0])
    insp.set_status(state.id, "skipped", "away", expected="pending", actor="M", now=later(1))
    before = len(insp.events())
    insp.set_status(state.id, "skipped", "away", expected="skipped", actor="M", now=later(2))
    assert len(insp.events()) == before
