"""Closed-won handoff by keyboard alone: from a demo deal in commit through the closed-won
review (tier, step, promise, exceptions), the handoff to customer success and CS acceptance,
and a second deal that CS returns to sales. Assertions on the stored state and the event log."""
from __future__ import annotations

from datetime import date

from sqlalchemy import text
from textual.widgets import Input, Select, Static, TextArea

from inspector.screens.app import InspectorApp
from inspector.screens.form_modal import FormModal
from inspector.screens.handoff_screen import DealPicker, HandoffScreen
from inspector.storage.handoffs import Handoffs
from inspector.storage.inspections import Inspections

from tests.pilot_helpers import settle

TODAY = date(2026, 12, 3)
HOSTILE = "[@click=app.quit]x[/]"


async def type_text(pilot, value: str) -> None:
    for ch in value:
        await pilot.press("space" if ch == " " else ch)


async def choose(pilot, steps: int) -> None:
    """The focused Select: open it, move `steps` down, pick."""
    await pilot.press("enter")
    await pilot.pause()
    for _ in range(steps):
        await pilot.press("down")
    await pilot.press("enter")
    await pilot.pause()


async def key_form(pilot, key: str) -> FormModal:
    await pilot.press(key)
    await settle(pilot)
    assert isinstance(pilot.app.screen, FormModal), f"{key!r} should open a form"
    return pilot.app.screen


async def save_form(pilot) -> None:
    await pilot.press("ctrl+s")
    await settle(pilot)
    assert isinstance(pilot.app.screen, HandoffScreen), "the form should have saved and closed"


async def open_deal(pilot, ext: str, deal_id: int) -> HandoffScreen:
    await pilot.press("g")
    await settle(pilot)
    assert isinstance(pilot.app.screen, DealPicker)
    await type_text(pilot, ext)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, HandoffScreen) and screen.rv is not None
    assert screen.rv.deal.row.id == deal_id
    return screen


def kinds_since(insp: Inspections, deal_id: int, seq: int) -> list[str]:
    return [e["kind"] for e in insp.events(deal_id=deal_id) if e["seq"] > seq]


def last_seq(insp: Inspections) -> int:
    evs = insp.events()
    return evs[-1]["seq"] if evs else 0


async def test_commit_deal_through_closed_won_review_to_cs_acceptance(demo_services, playbook):
    svc = demo_services
    ho = Handoffs(svc.store, playbook)
    insp = Inspections(svc.store)
    fresh = [c for c in ho.candidates() if c.status == "open" and c.handoff_status == ""]
    deal, other = fresh[0].id, fresh[1].id
    with svc.store.engine.begin() as conn:
        conn.execute(text("UPDATE deal SET name = :n WHERE id = :d"), {"n": HOSTILE, "d": deal})
    ext, other_ext = fresh[0].external_id, fresh[1].external_id
    owner = fresh[0].owner
    assert ho.review(deal, TODAY).close_blockers, "the demo deal starts with gaps"

    app = InspectorApp(svc)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        assert isinstance(app.screen, HandoffScreen)
        screen = await open_deal(pilot, ext, deal)
        title = screen.query_one("#title", Static).render()
        assert HOSTILE in str(title)  # shown literally, not parsed as markup
        assert screen.rv.verdict == "not_ready"
        seq0 = last_seq(insp)

        # -- the manager sets the tier: Managed (options: suggested, strategic, managed, standard)
        await key_form(pilot, "t")
        await choose(pilot, 2)
        await save_form(pilot)
        assert ho.handoff_state(deal).tier == "managed"
        assert screen.rv.tier.chosen.key == "managed"

        # -- ticks the first tier step (handoff note) as done
        form = await key_form(pilot, "s")
        assert form.query_one("#f-step", Select).value == "handoff_note"
        await save_form(pilot)
        assert ho.record(deal, TODAY).steps["handoff_note"].done

        # -- logs a promise: Timeline expectations (third category), promised by the rep today
        await key_form(pilot, "p")
        await choose(pilot, 2)
        await pilot.press("tab")
        assert isinstance(app.focused, TextArea)
        await type_text(pilot, "Live in 30 days [b]")
        await save_form(pilot)
        (promise,) = ho.record(deal, TODAY).promises
        assert (promise.category, promise.text, promise.promised_by, promise.promised_on) == (
            "timeline", "Live in 30 days [b]", owner, TODAY)

        # -- closes with gaps: one exception per gap still open (the form's first choice)
        gaps = [g.label for g in screen.rv.uncovered]
        assert len(gaps) > 1
        form = await key_form(pilot, "e")
        assert form.query_one("#f-item", Select).value == "__all__"
        await pilot.press("tab", "tab")  # past "name it" to the owner (prefilled with the rep)
        assert isinstance(app.focused, Input) and app.focused.value == owner
        await pilot.press("tab")
        await type_text(pilot, "2026-12-20")
        await pilot.press("tab")
        await type_text(pilot, "Kickoff slips")
        await save_form(pilot)
        excs = ho.record(deal, TODAY).exceptions
        assert sorted(e.missing_item for e in excs) == sorted(gaps)
        assert {(e.owner, e.due_date, e.risk, e.status) for e in excs} == {(owner, date(2026, 12, 20),
                                                                            "Kickoff slips", "open")}
        assert screen.rv.verdict == "ready_with_exceptions"

        # -- hands off: close won and submit to customer success
        await key_form(pilot, "w")
        await save_form(pilot)
        rec = ho.record(deal, TODAY)
        assert (rec.deal.row.status, rec.closed_on, rec.handoff.status) == ("won", TODAY, "submitted")
        assert screen.shown_view(screen.rv) == "packet"  # CS reviews the packet
        assert str(screen.query_one("#left").border_title).startswith("Handoff packet")

        # -- CS accepts
        await key_form(pilot, "y")
        await type_text(pilot, "Kickoff booked")
        await save_form(pilot)
        h = ho.handoff_state(deal)
        assert (h.status, h.decided_by) == ("accepted", svc.actor)
        assert kinds_since(insp, deal, seq0) == (
            ["handoff.tier", "handoff.step", "promise.added"] + ["exception.added"] * len(gaps)
            + ["deal.closed_won", "handoff.submitted", "handoff.accepted"])
        accepted = insp.events(deal_id=deal)[-1]
        assert accepted["payload"]["note"] == "Kickoff booked" and accepted["actor"] == svc.actor
        # the exceptions stay open (visible) after acceptance, for RevOps
        assert len(screen.rv.open_exceptions) == len(gaps)

        # -- a second deal: handed off with exceptions, CS returns it naming what is missing
        screen = await open_deal(pilot, other_ext, other)
        await key_form(pilot, "e")
        await pilot.press("tab", "tab", "tab")
        await type_text(pilot, "2026-12-22")
        await pilot.press("tab")
        await type_text(pilot, "CS repeats discovery")
        await save_form(pilot)
        await key_form(pilot, "w")
        await save_form(pilot)
        assert ho.handoff_state(other).status == "submitted"
        seq1 = last_seq(insp)

        form = await key_form(pilot, "r")
        assert isinstance(app.focused, TextArea) and form.query_one("#f-items", TextArea).text == ""
        await pilot.press("ctrl+s")  # nothing named: the form refuses
        await settle(pilot)
        assert app.screen is form
        assert "is required" in str(form.query_one("#form-error", Static).render())
        await type_text(pilot, "Success criteria are vague")
        await pilot.press("tab")
        await type_text(pilot, "Cannot plan onboarding")
        await save_form(pilot)
        h = ho.handoff_state(other)
        assert (h.status, h.returned_items, h.returned_reason) == (
            "returned", ("Success criteria are vague",), "Cannot plan onboarding")
        assert kinds_since(insp, other, seq1) == ["handoff.returned"]
        assert str(screen.query_one("#verdict", Static).render()).startswith("Handoff: returned to sales")
        # sales can hand it off again; CS can no longer accept the returned handoff
        assert screen.check_action("hand_off", ()) and not screen.check_action("accept", ())
    assert insp.chain().ok


async def test_promise_captured_during_inspection_reaches_the_handoff(demo_services, playbook):
    from textual.widgets import OptionList

    from inspector.screens.inspect_screen import InspectScreen

    svc = demo_services
    ho = Handoffs(svc.store, playbook)
    insp = Inspections(svc.store)
    app = InspectorApp(svc)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot)
        await pilot.press("t")  # choose the team, then start this week's inspection
        await settle(pilot)
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        target = next(i for i, label in enumerate(labels) if label.startswith("EMEA Enterprise"))
        await pilot.press(*["down"] * target, "enter")
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        deal = screen.deal_id
        before = len(ho.record(deal, TODAY).promises)

        await pilot.press("p")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, FormModal)
        await choose(pilot, 6)  # Commercial concessions
        await pilot.press("tab")
        await type_text(pilot, "Second year at 10% off")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, InspectScreen)
        promises = ho.record(deal, TODAY).promises
        assert len(promises) == before + 1
        p = promises[-1]
        assert (p.category, p.text, p.promised_on) == ("commercial", "Second year at 10% off", TODAY)
        assert p.promised_by == ho.record(deal, TODAY).deal.row.owner
        ev = insp.events(deal_id=deal)[-1]
        assert (ev["kind"], ev["entity_id"], ev["actor"]) == ("promise.added", p.id, svc.actor)


async def test_export_the_packet_from_the_screen(demo_services, playbook, tmp_path, monkeypatch):
    svc = demo_services
    ho = Handoffs(svc.store, playbook)
    cand = next(c for c in ho.candidates() if c.status == "won" and c.handoff_status == "accepted")
    monkeypatch.chdir(tmp_path)
    app = InspectorApp(svc)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot)
        app.push_screen(HandoffScreen(svc, cand.id))
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
    body = (tmp_path / f"handoff-{cand.external_id}.md").read_text(encoding="utf-8")
    assert body.startswith(f"# Handoff packet: {cand.name}\n")
    assert "- Handoff status: **accepted** by " in body
    assert not list(tmp_path.glob("*.tmp"))
