"""Pilot tests of the Review screen on the seeded demo (8 past weeks of finished inspections):
a reviewer filters to one manager's overstated deals and opens one deal's history; hostile
deal names show literally; the screen opens on a deal's history and works read-only; RevOps
sees open handoff exceptions and feedback patterns across deals and opens a deal from them."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text
from textual.widgets import Select

from inspector import demo
from inspector import review as rv
from inspector.screens.app import InspectorApp
from inspector.screens.handoff_screen import HandoffScreen
from inspector.screens.review_filter_modal import ReviewFilterModal
from inspector.screens.review_screen import ReviewScreen
from inspector.services import build_services
from inspector.storage.handoffs import Handoffs
from inspector.widgets.deal_grid import DealGrid

from tests.pilot_helpers import settle

TODAY = date(2026, 12, 3)
SIZE = (120, 40)
HOSTILE = ["[@click=app.quit]x[/]", "Deal [/foo"]


@pytest.fixture
def review_services(sqlite_services, playbook):
    demo.seed(sqlite_services.store, playbook, TODAY, 300, seed=7, history_weeks=8)
    return sqlite_services


def manager_with_overstated(store) -> tuple[str, list[int], list[int]]:
    """The manager with the most overstated inspections: (manager, inspection ids, deal ids)."""
    with store.engine.connect() as conn:
        manager = conn.execute(text(
            "SELECT s.manager FROM inspection i JOIN inspection_session s ON s.id = i.session_id "
            "WHERE i.stage_verdict = 'overstated' GROUP BY s.manager ORDER BY COUNT(*) DESC, s.manager "
            "LIMIT 1")).scalar_one()
        rows = conn.execute(text(
            "SELECT i.id, i.deal_id FROM inspection i JOIN inspection_session s ON s.id = i.session_id "
            "WHERE s.manager = :m AND s.status <> 'abandoned' AND "
            "(i.stage_verdict = 'overstated' OR i.close_date_verdict = 'overstated') ORDER BY i.id"),
            {"m": manager}).fetchall()
    return manager, [r[0] for r in rows], [r[1] for r in rows]


def rename(store, deal_id: int, name: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE deal SET name = :n WHERE id = :d"), {"n": name, "d": deal_id})


def plain(app, selector: str) -> str:
    visual = app.screen.query_one(selector).visual
    return getattr(visual, "plain", str(visual))


def grid_lines(grid: DealGrid) -> list[str]:
    return [grid.render_line(y).text for y in range(1, 1 + min(grid.row_count, grid.size.height - 1))]


async def open_review(app, pilot, services, **kw) -> ReviewScreen:
    await settle(pilot)
    await app.push_screen(ReviewScreen(services, **kw))
    await settle(pilot)
    assert isinstance(app.screen, ReviewScreen)
    return app.screen


async def test_reviewer_filters_a_managers_overstated_deals_and_opens_a_history(review_services):
    store = review_services.store
    manager, inspection_ids, deal_ids = manager_with_overstated(store)
    assert len(set(deal_ids)) >= 2
    hostile_deals = sorted(set(deal_ids))[:2]
    for deal_id, name in zip(hostile_deals, HOSTILE):
        rename(store, deal_id, name)

    app = InspectorApp(review_services)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(app, pilot, review_services)
        findings = screen.query_one("#findings", DealGrid)
        assert findings.row_count > len(inspection_ids)  # unfiltered: every manager's inspections

        await pilot.press("slash")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ReviewFilterModal)
        modal.query_one("#manager", Select).value = manager
        modal.query_one("#verdict", Select).value = "overstated"
        await pilot.press("ctrl+s")
        await settle(pilot)

        assert app.screen is screen
        assert screen.filters.manager == manager and screen.filters.verdict == "overstated"
        assert sorted(screen.findings) == inspection_ids
        shown = "\n".join(grid_lines(findings))
        for name in HOSTILE:
            assert name in shown  # literal: not parsed, not a link
        filters_line = plain(app, "#filters")
        assert manager in filters_line and "overstated" in filters_line
        assert "overstated" in plain(app, "#summary")
        sessions = screen.query_one("#sessions", DealGrid)
        assert all(manager in line for line in grid_lines(sessions))

        # highlight the deal named like a click action; its detail shows the name literally
        target = next(i for i in inspection_ids if screen.findings[i].deal_id == hostile_deals[0])
        findings.focus()
        findings.move_cursor_to_key(target)
        await settle(pilot)
        assert HOSTILE[0] in plain(app, "#detail")
        await pilot.click("#detail", offset=(3, 0))  # clicking the name must not run app.quit
        # a click on the highlighted row (border, header, then rows) opens the deal's history
        await pilot.click("#findings", offset=(10, 2 + findings.cursor_row - int(findings.scroll_y)))
        await settle(pilot)
        assert app.return_code is None and app.is_running
        assert screen.view == "history" and screen.current_deal_id() == hostile_deals[0]
        await pilot.press("escape")
        await settle(pilot)
        assert screen.view == "log"

        # the same with the key
        findings.focus()
        await pilot.press("h")
        await settle(pilot)
        assert screen.view == "history"
        assert screen.current_deal_id() == hostile_deals[0]
        head = plain(app, "#history-head")
        assert HOSTILE[0] in head and manager in head
        expected = rv.deal_history(store, review_services.playbook, hostile_deals[0])
        weeks = screen.query_one("#weeks", DealGrid)
        assert weeks.row_count == len(expected.weeks) >= 1
        week_lines = grid_lines(weeks)
        assert [line.split()[0] for line in week_lines] == [w.week_of.isoformat() for w in expected.weeks]
        assert any("overstated" in line for line in week_lines)
        shown_patterns = plain(app, "#patterns")
        assert expected.patterns and all(p in shown_patterns for p in expected.patterns)
        assert any("overstated" in p for p in expected.patterns)
        assert screen.query_one("#changes", DealGrid).row_count == len(expected.changes)

        # back to the filtered log, filters kept
        await pilot.press("escape")
        await settle(pilot)
        assert screen.view == "log" and screen.filters.verdict == "overstated"
        assert app.return_code is None


async def test_quick_keys_toggle_overstated_pick_a_session_and_clear(review_services):
    app = InspectorApp(review_services)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(app, pilot, review_services)
        everything = len(screen.findings)
        await pilot.press("o")
        await settle(pilot)
        assert screen.findings and all("overstated" in (f.stage_verdict, f.close_date_verdict)
                                       for f in screen.findings.values())
        assert len(screen.findings) < everything

        sessions = screen.query_one("#sessions", DealGrid)
        await pilot.press("s")
        await pilot.pause()
        assert app.screen.focused is sessions
        chosen = sessions.cursor_key
        await pilot.press("enter")
        await settle(pilot)
        assert screen.filters.session_id == chosen
        assert {f.session_id for f in screen.findings.values()} <= {chosen}

        await pilot.press("x")
        await settle(pilot)
        assert screen.filters == rv.ReviewFilters()
        assert len(screen.findings) == everything


async def test_opens_on_a_deals_history_read_only(review_services, tmp_path):
    store = review_services.store
    _manager, _ids, deal_ids = manager_with_overstated(store)
    deal_id = deal_ids[0]
    rename(store, deal_id, HOSTILE[1])
    review_services.store.engine.dispose()
    ro = build_services(tmp_path / "inspector.db", clock=review_services.clock,
                        playbook=review_services.playbook, read_only=True, actor="RevOps")
    assert ro.read_only
    app = InspectorApp(ro)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(app, pilot, ro, deal_id=deal_id)
        assert screen.view == "history"
        assert HOSTILE[1] in plain(app, "#history-head")
        assert screen.query_one("#weeks", DealGrid).row_count >= 1
        assert screen.log_loaded and screen.findings  # the log loaded behind it
        await pilot.press("escape")
        await settle(pilot)
        assert screen.view == "log"
        assert app.return_code is None
    ro.store.engine.dispose()


# -- RevOps across deals: open handoff exceptions and feedback patterns (issue 6) -------------------
NOW = datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc)
DUE = date(2026, 11, 20)  # overdue on the fixed clock's day
OWNER = "Dana [/x] Ortiz"


def seed_handoff_gaps(svc) -> tuple[int, list[int]]:
    """A deal closed won with open exceptions (one named, one per remaining gap) and two
    post-sale feedback items of one category: (deal id, exception ids)."""
    ho = Handoffs(svc.store, svc.playbook)
    deal = next(c.id for c in ho.candidates() if c.status == "open" and c.handoff_status == "")
    rename(svc.store, deal, HOSTILE[0])
    ids = ho.add_exceptions(deal, ["Correct billing entity"], owner=OWNER, due_date=DUE,
                            risk="Invoice goes to the wrong entity", actor=svc.actor, now=NOW)
    gaps = [g.label for g in ho.review(deal, TODAY).uncovered]
    if gaps:
        ids += ho.add_exceptions(deal, gaps, owner=OWNER, due_date=date(2026, 12, 20), risk="Kickoff slips",
                                 actor=svc.actor, now=NOW)
    ho.submit(deal, expected_status="draft", actor=svc.actor, now=NOW, today=TODAY, close_won=True)
    for note in ("Took three months, not one", "Needed a partner to implement"):
        ho.add_feedback(deal, "implementation_underestimated", note, actor="CS Lead", now=NOW)
    return deal, ids


async def test_revops_sees_open_handoff_exceptions_and_feedback_patterns(review_services):
    deal, exception_ids = seed_handoff_gaps(review_services)
    store = review_services.store
    expected = rv.handoff_exceptions(store, TODAY)
    app = InspectorApp(review_services)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(app, pilot, review_services)
        binding = screen.active_bindings["e"]
        assert binding.binding.show and binding.binding.description == "Exceptions" and binding.enabled

        await pilot.press("e")
        await settle(pilot)
        assert screen.view == "revops"
        grid = screen.query_one("#open-exceptions", DealGrid)
        assert app.screen.focused is grid
        assert grid.row_count == len(expected) and set(exception_ids) <= set(screen.exception_deals)
        head = plain(app, "#revops-head")
        overdue = sum(x.overdue for x in expected)
        assert f"{len(expected)} open handoff exceptions · {overdue} overdue" in head
        # earliest due first; the overdue rows are highlighted
        lines = grid_lines(grid)
        assert [line.split()[0] for line in lines] == [x.due_date.isoformat() for x in expected[:len(lines)]]
        named = next(line for line in lines if "Correct billing entity" in line)
        assert named.split()[:2] == [DUE.isoformat(), "13d"] and OWNER in named and HOSTILE[0][:10] in named
        assert grid._row_styles[exception_ids[0]] == "warn"
        assert all(grid._row_styles.get(x.exception_id) == ("warn" if x.overdue else None) for x in expected)

        # feedback: one row per category and deal, repeated categories first
        feedback = screen.query_one("#feedback", DealGrid)
        patterns = rv.feedback_pattern_rows(store, review_services.playbook)
        assert [p.repeated for p in patterns] == sorted((p.repeated for p in patterns), reverse=True)
        assert feedback.row_count == sum(len(p.deals) for p in patterns)
        fb_lines = grid_lines(feedback)
        ours = next(i for i, line in enumerate(fb_lines)
                    if line.startswith(" Implementation effort was underestimated"))
        assert fb_lines[ours][41:53].split() == ["2", "1"] and HOSTILE[0][:10] in fb_lines[ours]  # items, deals
        assert feedback._row_styles[ours] == "warn"  # repeated
        assert screen.feedback_deals[ours] == deal

        # Enter on an exception opens the deal's Handoff screen
        grid.move_cursor_to_key(exception_ids[0])
        await settle(pilot)
        assert screen.current_deal_id() == deal
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, HandoffScreen) and app.screen.deal_id == deal
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen and screen.view == "revops"

        # h on a feedback row opens the deal's history; Esc comes back to the RevOps list
        feedback.focus()
        feedback.move_cursor_to_key(ours)
        await settle(pilot)
        await pilot.press("h")
        await settle(pilot)
        assert screen.view == "history" and screen.current_deal_id() == deal
        assert HOSTILE[0] in plain(app, "#history-head")
        await pilot.press("escape")
        await settle(pilot)
        assert screen.view == "revops"
        # Enter on a feedback row opens the Handoff screen too
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, HandoffScreen) and app.screen.deal_id == deal
        await pilot.press("escape")
        await settle(pilot)
        # e (or Esc) goes back to the log
        await pilot.press("e")
        await settle(pilot)
        assert screen.view == "log" and app.return_code is None
