"""A manager walks three deals by keyboard alone; assertions on stored state and the log."""
from __future__ import annotations

from datetime import date

from textual.widgets import OptionList, Select, TextArea

from inspector.screens.app import InspectorApp
from inspector.screens.form_modal import FormModal
from inspector.screens.inspect_screen import InspectScreen
from inspector.screens.pipeline_screen import PipelineScreen
from inspector.screens.summary_screen import SummaryScreen
from inspector.storage.inspections import Inspections

from tests.pilot_helpers import settle

TEAM = "EMEA Enterprise"
TODAY_CLOCK = date(2026, 12, 3)


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press("space" if ch == " " else ch)


async def choose(pilot, steps: int) -> None:
    """The focused Select: open it, move `steps` (negative = up), pick."""
    await pilot.press("enter")
    await pilot.pause()
    key = "down" if steps > 0 else "up"
    for _ in range(abs(steps)):
        await pilot.press(key)
    await pilot.press("enter")
    await pilot.pause()


async def save_form(pilot) -> None:
    await pilot.press("ctrl+s")
    await settle(pilot)


async def start(pilot) -> InspectScreen:
    await settle(pilot)
    app = pilot.app
    assert isinstance(app.screen, PipelineScreen)
    await pilot.press("t")
    await settle(pilot)
    options = app.screen.query_one(OptionList)
    labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
    target = next(i for i, label in enumerate(labels) if label.startswith(TEAM))
    for _ in range(target):
        await pilot.press("down")
    await pilot.press("enter")
    await settle(pilot)
    await pilot.press("i")
    await settle(pilot)
    assert isinstance(app.screen, InspectScreen)
    return app.screen


async def test_manager_walks_three_deals_by_keyboard(demo_services):
    svc = demo_services
    app = InspectorApp(svc)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await start(pilot)
        insp = Inspections(svc.store)
        session_id = screen.session_id
        queue = list(insp.session(session_id).queue)
        first, second, third = queue[:3]

        # -- deal 1: answer a question (confirmed), mark progress, stage verdict, Commit with
        #    exception (criteria not met), close-date verdict, a risk, next step, notes
        assert screen.deal_id == first
        await pilot.press("1")
        await pilot.pause()
        assert isinstance(app.screen, FormModal)
        assert isinstance(app.focused, TextArea)
        await type_text(pilot, "Forecast misses")
        await pilot.press("tab")
        await choose(pilot, -2)  # Missing -> Confirmed
        await save_form(pilot)
        state = insp.state(session_id, first)
        assert state.answers["problem"] == ("Forecast misses", "confirmed")

        # mark the most recent activity as buyer progress
        await pilot.press("tab")  # questions -> activities
        await pilot.pause()
        assert app.focused.id == "activities"
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, FormModal)
        await choose(pilot, 5)  # seller activity -> 5th progress type (agreed next action)
        await save_form(pilot)
        detail = svc.store.get_deal(first, svc.clock.today())
        newest = detail.activities[0]
        assert newest.is_progress and newest.progress_type == svc.playbook.progress_types[4].key

        await pilot.press("v")  # stage verdict: suggested value is prefilled
        await pilot.pause()
        verdict_field = app.screen.query_one("#f-verdict", Select)
        suggested = verdict_field.value
        await save_form(pilot)
        state = insp.state(session_id, first)
        assert state.decisions["stage_verdict"] == suggested

        data = screen.data
        assert data is not None and not data.commit.met
        await pilot.press("c")
        await pilot.pause()
        call = app.screen.query_one("#f-call", Select)
        steps = [c.key for c in svc.playbook.forecast_categories].index("commit") - \
            [c.key for c in svc.playbook.forecast_categories].index(call.value)
        if steps:
            await choose(pilot, steps)
        await save_form(pilot)  # Commit without criteria and without a reason: refused
        assert isinstance(app.screen, FormModal)
        assert "required" in str(app.screen.query_one("#form-error").render()).lower()
        await pilot.press("tab")
        await type_text(pilot, "CFO verbal yes")
        await save_form(pilot)
        state = insp.state(session_id, first)
        assert state.decisions["forecast_call"] == "commit"
        assert state.decisions["commit_criteria_met"] is False
        assert state.decisions["commit_exception"] == "CFO verbal yes"
        assert "CFO verbal yes" in str(screen.query_one("#decisions").render())

        await pilot.press("d")
        await pilot.pause()
        await choose(pilot, 2)  # Realistic -> At risk -> Not credible
        await pilot.press("tab")
        await type_text(pilot, "2027-02-15")
        await save_form(pilot)
        state = insp.state(session_id, first)
        assert state.decisions["close_date_verdict"] == "not_credible"
        assert state.decisions["proposed_close_date"] == date(2027, 2, 15)

        await pilot.press("r")
        await pilot.pause()
        await choose(pilot, 5)  # first -> 6th risk type
        await save_form(pilot)
        risks = svc.store.get_deal(first, svc.clock.today()).risks
        assert any(r.type == svc.playbook.risk_types[5].key and r.status == "open" for r in risks)

        await pilot.press("t")
        await pilot.pause()
        app.screen.query_one("#f-step").value = ""
        await type_text(pilot, "Mutual plan call")
        await pilot.press("tab")
        app.screen.query_one("#f-date").value = ""
        await type_text(pilot, "2026-12-10")
        await save_form(pilot)
        state = insp.state(session_id, first)
        assert state.decisions["next_step"] == "Mutual plan call"
        assert svc.store.get_deal(first, svc.clock.today()).row.next_step == "Mutual plan call"

        # -- deal 2: Commit *with* criteria is not possible on demo data without edits, so
        #    call Best case; and a supported verdict
        await pilot.press("n")
        await settle(pilot)
        assert screen.deal_id == second
        await pilot.press("c")
        await pilot.pause()
        call = app.screen.query_one("#f-call", Select)
        keys = [c.key for c in svc.playbook.forecast_categories]
        await choose(pilot, keys.index("best_case") - keys.index(call.value))
        await save_form(pilot)
        state = insp.state(session_id, second)
        assert state.decisions["forecast_call"] == "best_case"
        assert state.decisions["commit_exception"] == ""

        # -- deal 3: skip with a reason
        await pilot.press("n")
        await settle(pilot)
        assert screen.deal_id == third
        await pilot.press("s")
        await pilot.pause()
        await type_text(pilot, "Rep on leave")
        await save_form(pilot)
        await settle(pilot)
        state = insp.state(session_id, third)
        assert (state.status, state.skip_reason) == ("skipped", "Rep on leave")

        # -- finish
        await pilot.press("F")
        await pilot.pause()
        await save_form(pilot)
        await settle(pilot)
        assert isinstance(app.screen, SummaryScreen)
        assert insp.session(session_id).status == "finished"
        summary_text = str(app.screen.query_one("#summary").render())
        assert "CFO verbal yes" in summary_text

    events = insp.events(session_id=session_id)
    kinds = [e["kind"] for e in events]
    for kind in ("session.started", "answer.saved", "activity.progress", "decision.saved",
                 "risk.added", "inspection.skipped", "session.finished"):
        assert kind in kinds, kind
    assert all(e["actor"] == svc.actor for e in events)
    assert insp.chain().ok


async def test_commit_with_criteria_met_needs_no_exception(demo_services):
    """Fill the evidence of the first commit-category deal so all criteria hold."""
    svc = demo_services
    from sqlalchemy import text

    app = InspectorApp(svc)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await start(pilot)
        insp = Inspections(svc.store)
        deal_id = screen.deal_id
        with svc.store.engine.begin() as conn:
            conn.execute(text(
                "UPDATE deal SET business_problem='x', buyer_role='x', agreed_value='x', "
                "contract_scope='x', decision_process='x', mutual_close_plan='x', economic_buyer='x', "
                "close_date='2027-01-15', close_pushes=0, next_step='Call', next_step_date='2026-12-05' "
                "WHERE id = :d"), {"d": deal_id})
            conn.execute(text("UPDATE risk SET severity='low' WHERE deal_id = :d"), {"d": deal_id})
            conn.execute(text(
                "INSERT INTO activity (deal_id, kind, occurred_at, summary, who, is_progress, progress_type, version) "
                "VALUES (:d, 'call', '2026-12-01 10:00:00.000000', 'x', 'x', 1, 'buyer_agreed_approach', 1), "
                "(:d, 'call', '2026-12-01 11:00:00.000000', 'x', 'x', 1, 'agreed_timeline', 1)"), {"d": deal_id})
            conn.execute(text(
                "INSERT INTO risk (deal_id, type, severity, owner, mitigation, status, created_at, version) "
                "VALUES (:d, 'timeline_risk', 'low', 'x', 'x', 'open', '2026-12-01 10:00:00.000000', 1)"),
                {"d": deal_id})
        screen.load()
        await settle(pilot)
        assert screen.data.commit.met, screen.data.commit.missing
        await pilot.press("c")
        await pilot.pause()
        assert not app.screen.query("#f-exception")  # no exception field when criteria are met
        call = app.screen.query_one("#f-call", Select)
        keys = [c.key for c in svc.playbook.forecast_categories]
        if call.value != "commit":
            await choose(pilot, keys.index("commit") - keys.index(call.value))
        await save_form(pilot)
        state = insp.state(screen.session_id, deal_id)
        assert state.decisions["forecast_call"] == "commit"
        assert state.decisions["commit_criteria_met"] is True
        assert state.decisions["commit_exception"] == ""


async def test_scope_can_be_some_reps(demo_services):
    """`rep:` terms in the filter narrow the new session to those reps' deals."""
    svc = demo_services
    app = InspectorApp(svc)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        for _ in range(next(i for i, label in enumerate(labels) if label.startswith(TEAM))):
            await pilot.press("down")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("slash")
        await type_text(pilot, "rep:jos")
        await pilot.press("enter")
        await pilot.press("i")
        await settle(pilot)
        assert isinstance(app.screen, InspectScreen)
        session = Inspections(svc.store).session(app.screen.session_id)
        assert session.scope == {"team": TEAM, "reps": ["José Álvarez"]}
        owners = {r.owner for r in svc.store.list_deals(svc.clock.today()) if r.id in session.queue}
        assert owners == {"José Álvarez"}
