"""Looks of the inspection walk: Pipeline with change badges, Inspect, Summary.

Fixed clock (2026-12-03), fixed terminal sizes (120x40 and 160x50), workers settled.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from inspector.inspect import build_queue
from inspector.screens.app import InspectorApp
from inspector.screens.pipeline_screen import PipelineScreen
from inspector.screens.summary_screen import SummaryScreen
from inspector.storage.inspections import Inspections

from tests.pilot_helpers import settle

TEAM = "EMEA Enterprise"
NOW = datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc)
SIZES = [(120, 40), (160, 50)]


def _session(svc, *, answered: bool = True) -> tuple[int, list[int]]:
    insp = Inspections(svc.store)
    today = svc.clock.today()
    queue = build_queue(svc.store, insp, svc.playbook, today, TEAM)
    session = insp.start_session(manager=svc.actor, team=TEAM, queue=queue, week_of=today, now=NOW)
    if answered:
        first = insp.state(session.id, queue[0])
        insp.save_answer(first.id, "problem", "Forecast misses cost a quarter of planning accuracy",
                         "confirmed", expected=None, actor=svc.actor, now=NOW)
        insp.save_answer(first.id, "economic_buyer", "CFO [Anna] — not met yet", "claimed",
                         expected=None, actor=svc.actor, now=NOW)
        insp.save_decisions(first.id, {"stage_verdict": (None, "overstated"),
                                       "supported_stage": (None, "discovery"),
                                       "forecast_call": (None, "commit"),
                                       "commit_criteria_met": (None, False),
                                       "commit_exception": ("", "CFO verbal yes on the 12th")},
                            actor=svc.actor, now=NOW)
        insp.add_risk(queue[0], type="security_review", severity="high", owner="Zoë Brontë",
                      due_date=date(2026, 12, 12), mitigation="Send the security pack", actor=svc.actor,
                      now=NOW, inspection_id=first.id, session_id=session.id)
        second = insp.state(session.id, queue[1])
        insp.set_status(second.id, "skipped", "Rep on leave", expected="pending", actor=svc.actor, now=NOW)
        insp.save_decisions(insp.state(session.id, queue[2]).id, {
            "close_date_verdict": (None, "not_credible"), "proposed_close_date": (None, date(2027, 2, 1)),
            "forecast_call": (None, "best_case")}, actor=svc.actor, now=NOW)
    return session.id, queue


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_pipeline_with_change_badges(demo_services, snap_compare, size):
    async def run_before(pilot):
        await settle(pilot)
        pilot.app.switch_screen(PipelineScreen(demo_services, TEAM))
        await settle(pilot)
        await pilot.press("s", "s", "s", "s", "s", "S")  # sort by amount, largest first
        await settle(pilot)

    assert snap_compare(InspectorApp(demo_services), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_inspect_screen(demo_services, snap_compare, size):
    _session(demo_services)

    async def run_before(pilot):
        await settle(pilot)  # the app resumes the open session on the first deal

    assert snap_compare(InspectorApp(demo_services), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_session_summary(demo_services, snap_compare, size):
    session_id, _queue = _session(demo_services)
    Inspections(demo_services.store).finish(session_id, actor=demo_services.actor, now=NOW)

    async def run_before(pilot):
        await settle(pilot)
        pilot.app.switch_screen(SummaryScreen(demo_services, session_id))
        await settle(pilot)

    assert snap_compare(InspectorApp(demo_services), terminal_size=size, run_before=run_before)
