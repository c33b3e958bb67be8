"""Inspect and Summary screens: outside text shows literally; stale edits are reported."""
from __future__ import annotations

from datetime import date, datetime, timezone

from textual.widgets import OptionList, Static

from inspector.screens.app import InspectorApp
from inspector.screens.inspect_screen import InspectScreen
from inspector.screens.summary_screen import SummaryScreen
from inspector.services import build_services
from inspector.storage.inspections import Inspections
from tests.tui.test_inspection_walk import settle, type_text

NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)
HOSTILE = ["[b]x[/b]", "Deal [/foo", "x [/] y", "[@click=app.quit]Click me[/]", "ACME [2024] Q3",
           "$name [b]$x[/b]", "\\", "[[b]]", "[link=file:///etc/passwd]x[/link]"]


def _seed_hostile(svc) -> list[int]:
    deals = []
    for i, name in enumerate(HOSTILE, 1):
        deals.append({"id": i, "source": "test", "external_id": f"H{i}", "name": name, "account": name,
                      "owner": name, "team": "Hostile [team]", "manager": "M", "stage": "commit",
                      "status": "open", "amount_minor": 100000 * i, "currency": "USD",
                      "close_date": date(2027, 1, i), "forecast_category": "commit",
                      "next_step": name, "next_step_date": date(2026, 12, 10),
                      "stage_entered_on": date(2026, 11, 20), "created_on": date(2026, 9, 1),
                      "last_activity_at": NOW})
    svc.store.bulk_insert("deal", deals)
    svc.store.bulk_insert("activity", [{"deal_id": i, "kind": "call", "occurred_at": NOW, "summary": name,
                                        "who": name, "is_progress": False, "progress_type": None}
                                       for i, name in enumerate(HOSTILE, 1)])
    insp = Inspections(svc.store)
    session = insp.start_session(manager=svc.actor, team="Hostile [team]", queue=list(range(1, len(HOSTILE) + 1)),
                                 week_of=svc.clock.today(), now=NOW)
    for i, name in enumerate(HOSTILE, 1):
        st = insp.state(session.id, i)
        insp.save_answer(st.id, "problem", name, "claimed", expected=None, actor=svc.actor, now=NOW)
        insp.save_decisions(st.id, {"forecast_call": (None, "commit"), "commit_criteria_met": (None, False),
                                    "commit_exception": ("", name), "notes": ("", name)},
                            actor=svc.actor, now=NOW)
        insp.add_risk(i, type="product_gap", severity="high", owner=name, due_date=None, mitigation=name,
                      actor=svc.actor, now=NOW)
    return [session.id]


def _texts(screen) -> str:
    parts = [str(w.render()) for w in screen.query(Static)]
    for ol in screen.query(OptionList):
        parts += [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]
    return "\n".join(parts)


async def test_hostile_text_is_literal_on_inspect_and_summary(sqlite_services):
    svc = sqlite_services
    (session_id,) = _seed_hostile(svc)
    app = InspectorApp(svc)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        for i, name in enumerate(HOSTILE, 1):
            assert screen.deal_id == i
            text = _texts(screen)
            for where in ("name", "answer", "exception", "risk", "activity"):
                assert name in text, (where, name)
            await pilot.click("#activities")  # clicking outside text runs no action
            assert app.is_running
            await pilot.press("n")
            await settle(pilot)
        app.switch_screen(SummaryScreen(svc, session_id))
        await settle(pilot)
        summary = _texts(app.screen)
        for name in HOSTILE:
            assert name in summary
        assert app.is_running


async def test_second_writer_is_reported_not_overwritten(demo_services):
    svc = demo_services
    from tests.tui.test_inspection_walk import start

    app = InspectorApp(svc)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await start(pilot)
        # another manager (or a RevOps process) answers the same question on another engine
        other = build_services(svc.db_label, clock=svc.clock, playbook=svc.playbook, actor="Other Manager")
        other_insp = Inspections(other.store)
        state = other_insp.state(screen.session_id, screen.deal_id)
        other_insp.save_answer(state.id, "problem", "Their answer", "confirmed", expected=("", "missing"),
                               actor="Other Manager", now=NOW)
        # this screen still holds the old value; its save must be refused and reported
        await pilot.press("1")
        await pilot.pause()
        await type_text(pilot, "My answer")
        await pilot.press("ctrl+s")
        await settle(pilot)
        notes = [n.message for n in app._notifications]
        assert any("someone else" in str(m) for m in notes), notes
        final = Inspections(svc.store).state(screen.session_id, screen.deal_id)
        assert final.answers["problem"] == ("Their answer", "confirmed")
        events = Inspections(svc.store).events(session_id=screen.session_id)
        answer_events = [e for e in events if e["kind"] == "answer.saved"]
        assert [e["actor"] for e in answer_events] == ["Other Manager"]
        # after the refusal the screen shows the other manager's answer
        assert "Their answer" in _texts(screen)
        other.store.engine.dispose()


async def test_command_palette_offers_the_screen_bindings(demo_services):
    from textual.command import CommandPalette

    from tests.tui.test_inspection_walk import start

    app = InspectorApp(demo_services)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await start(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await type_text(pilot, "skip")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        # the palette ran the screen's Skip action: the skip form is open
        from inspector.screens.form_modal import FormModal

        assert isinstance(app.screen, FormModal)
        assert "Skip" in str(app.screen.form_title)
        del screen
