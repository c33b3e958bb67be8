"""Looks of the RevOps screens: the Review log, one deal's history, open handoff exceptions and feedback
patterns, the Dashboard and a drill-down.

The demo with 8 past weeks of finished inspections, fixed clock (2026-12-03 via the `clock`
fixture), 120x40, workers settled. Update with `--snapshot-update` and read the SVGs.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import text

from inspector.screens.app import InspectorApp
from inspector.screens.dashboard_screen import DashboardScreen
from inspector.screens.review_screen import ReviewScreen

from tests.pilot_helpers import settle

SIZE = (120, 40)
TODAY = date(2026, 12, 3)


def overstated_deal(store) -> int:
    """A deal judged overstated more than once (its history has patterns to show)."""
    with store.engine.connect() as conn:
        return conn.execute(text(
            "SELECT deal_id FROM inspection WHERE stage_verdict = 'overstated' GROUP BY deal_id "
            "ORDER BY COUNT(*) DESC, deal_id LIMIT 1")).scalar_one()


def test_review_log(review_services, snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.app.push_screen(ReviewScreen(review_services))
        await settle(pilot)

    assert snap_compare(InspectorApp(review_services), terminal_size=SIZE, run_before=run_before)


def test_review_deal_history(review_services, snap_compare):
    deal_id = overstated_deal(review_services.store)
    with review_services.store.engine.begin() as conn:  # outside text is shown literally
        conn.execute(text("UPDATE deal SET name = :n WHERE id = :d"), {"n": "[@click=app.quit]x[/] Deal [/foo",
                                                                         "d": deal_id})

    async def run_before(pilot):
        await settle(pilot)
        await pilot.app.push_screen(ReviewScreen(review_services, deal_id=deal_id))
        await settle(pilot)

    assert snap_compare(InspectorApp(review_services), terminal_size=SIZE, run_before=run_before)


def test_dashboard(review_services, snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.app.push_screen(DashboardScreen(review_services))
        await settle(pilot)

    assert snap_compare(InspectorApp(review_services), terminal_size=SIZE, run_before=run_before)


def test_dashboard_drill_down(review_services, snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.app.push_screen(DashboardScreen(review_services))
        await settle(pilot)
        pilot.app.screen.query_one("#chart-stage_aging").focus()
        await pilot.press("down", "enter")  # Discovery
        await settle(pilot)

    assert snap_compare(InspectorApp(review_services), terminal_size=SIZE, run_before=run_before)


def test_review_revops_exceptions_and_feedback(review_services, snap_compare):
    """`e`: open handoff exceptions (overdue highlighted) and feedback patterns, repeated first;
    a deal with a hostile name, an owner with markup and two feedback items of one category."""
    from datetime import datetime, timezone

    from inspector.storage.handoffs import Handoffs

    now = datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc)
    svc = review_services
    ho = Handoffs(svc.store, svc.playbook)
    deal = next(c.id for c in ho.candidates() if c.status == "open" and c.handoff_status == "")
    with svc.store.engine.begin() as conn:
        conn.execute(text("UPDATE deal SET name = :n WHERE id = :d"), {"n": "[@click=app.quit]x[/] Deal [/foo",
                                                                         "d": deal})
    ho.add_exceptions(deal, ["Correct billing entity"], owner="Dana [/x] Ortiz", due_date=date(2026, 11, 20),
                      risk="Invoice to the wrong entity", actor=svc.actor, now=now)
    gaps = [g.label for g in ho.review(deal, TODAY).uncovered]
    if gaps:
        ho.add_exceptions(deal, gaps, owner="Dana [/x] Ortiz", due_date=date(2026, 12, 20), risk="Kickoff slips",
                          actor=svc.actor, now=now)
    ho.submit(deal, expected_status="draft", actor=svc.actor, now=now, today=TODAY, close_won=True)
    for note in ("Took three months", "Needed a partner"):
        ho.add_feedback(deal, "implementation_underestimated", note, actor="CS Lead", now=now)

    async def run_before(pilot):
        await settle(pilot)
        await pilot.app.push_screen(ReviewScreen(review_services))
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)

    assert snap_compare(InspectorApp(review_services), terminal_size=SIZE, run_before=run_before)
