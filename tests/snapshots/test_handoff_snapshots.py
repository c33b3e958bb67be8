"""Looks of the Handoff screen: the manager's closed-won review of a deal in commit, and the
customer-success acceptance view (the handoff packet) of a deal handed off with exceptions.

Fixed clock (2026-12-03), 120x40, workers settled; the deals carry hostile names that must
show literally.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import text

from inspector.screens.app import InspectorApp
from inspector.screens.handoff_screen import HandoffScreen
from inspector.storage.handoffs import Handoffs

from tests.pilot_helpers import settle

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc)
SIZE = (120, 40)
TODAY = date(2026, 12, 3)


def _deals(svc) -> tuple[Handoffs, int, int]:
    ho = Handoffs(svc.store, svc.playbook)
    fresh = [c.id for c in ho.candidates() if c.status == "open" and c.handoff_status == ""]
    review_deal, cs_deal = fresh[0], fresh[1]
    with svc.store.engine.begin() as conn:
        conn.execute(text("UPDATE deal SET name = :n WHERE id = :d"), {"n": "[@click=app.quit]x[/]", "d": review_deal})
        conn.execute(text("UPDATE deal SET name = :n WHERE id = :d"), {"n": "Deal [/foo", "d": cs_deal})
    return ho, review_deal, cs_deal


def _open(svc, deal_id: int):
    async def run_before(pilot):
        await settle(pilot)
        pilot.app.push_screen(HandoffScreen(svc, deal_id))
        await settle(pilot)
    return run_before


def test_closed_won_review(demo_services, snap_compare):
    svc = demo_services
    ho, deal, _ = _deals(svc)
    row = ho.record(deal, TODAY).deal.row
    ho.set_tier(deal, "managed", expected="", actor=svc.actor, now=NOW)
    ho.set_step(deal, "handoff_note", True, expected=False, actor=svc.actor, now=NOW)
    ho.add_promise(deal, category="timeline", text_="Live in 30 days [b]guaranteed[/b]", promised_by=row.owner,
                   promised_on=date(2026, 11, 20), actor=svc.actor, now=NOW)
    ho.add_promise(deal, category="commercial", text_="Price lock for 24 months", promised_by="VP Sales",
                   promised_on=date(2026, 11, 28), actor=svc.actor, now=NOW)
    ho.add_exception(deal, "Correct billing entity", owner="Dana [/x] Ortiz", due_date=date(2026, 12, 20),
                     risk="Invoice goes to the wrong entity", actor=svc.actor, now=NOW)
    assert snap_compare(InspectorApp(svc), terminal_size=SIZE, run_before=_open(svc, deal))


def test_cs_acceptance_view(demo_services, snap_compare):
    svc = demo_services
    ho, _, deal = _deals(svc)
    row = ho.record(deal, TODAY).deal.row
    ho.add_promise(deal, category="capabilities", text_="SSO with Okta at launch", promised_by=row.owner,
                   promised_on=date(2026, 11, 18), actor=svc.actor, now=NOW)
    ho.set_cs(deal, "Keiko Satō", date(2026, 12, 14), expected=("", None), actor=svc.actor, now=NOW)
    gaps = [g.label for g in ho.review(deal, TODAY).uncovered]
    ho.add_exceptions(deal, gaps, owner=row.owner, due_date=date(2026, 12, 18), risk="CS repeats discovery",
                      actor=svc.actor, now=NOW)
    ho.submit(deal, expected_status="draft", actor=svc.actor, now=NOW, today=TODAY, close_won=True)
    assert snap_compare(InspectorApp(svc), terminal_size=SIZE, run_before=_open(svc, deal))
