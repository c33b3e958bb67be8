"""Pilot test of the Dashboard on the seeded demo: change the team and the period, drill into a
bar and a week, see the deals behind them, and open one deal's review history."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import text

from inspector.screens.app import InspectorApp
from inspector.screens.dashboard_screen import DashboardScreen
from inspector.screens.drill_modal import DrillModal
from inspector.screens.review_screen import ReviewScreen
from inspector.widgets.bar_chart import BarChart
from inspector.widgets.deal_grid import DealGrid
from inspector.widgets.trend_chart import TrendChart

from tests.pilot_helpers import settle

TODAY = date(2026, 12, 3)
SIZE = (120, 40)


def sql(store, query: str, **params) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(query), params)]


async def test_filter_drill_down_and_open_a_deal_history(review_services, playbook):
    store = review_services.store
    team = sql(store, "SELECT team FROM deal WHERE status = 'open' AND team <> '' "
                      "GROUP BY team ORDER BY COUNT(*) DESC, team LIMIT 1")[0][0]
    app = InspectorApp(review_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(DashboardScreen(review_services))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        assert screen.scope is not None and screen.scope.team is None
        stages = screen.query_one("#chart-pipeline_by_stage", BarChart)
        all_open = sql(store, "SELECT COUNT(*) FROM deal WHERE status = 'open'")[0][0]
        assert f"{all_open} open deals" in str(screen.query_one("#about-pipeline_by_stage").visual)
        # each panel shows its one-line definition
        assert "Open pipeline now by stage" in str(screen.query_one("#about-pipeline_by_stage").visual)

        # one team
        screen.set_filters(team=team)
        await settle(pilot)
        assert screen.scope.team == team
        open_by_stage = dict(sql(store, "SELECT stage, COUNT(*) FROM deal WHERE status = 'open' AND team = :t "
                                        "GROUP BY stage", t=team))
        shown = {b.key: b.text for b in stages.bars}
        for stage in playbook.open_stages:
            assert shown[stage.key].endswith(f"· {open_by_stage.get(stage.key, 0)} deals")
        assert team in str(screen.query_one("#scope").visual)

        # a shorter period: the weekly chart shows only its weeks
        screen.set_filters(period="last-4-weeks")
        await settle(pilot)
        monday = TODAY - timedelta(days=TODAY.weekday())
        assert screen.scope.start == monday - timedelta(weeks=3)
        trend = screen.query_one("#chart-commit_conversion", TrendChart)
        assert trend.weeks and all(w >= screen.scope.start.isoformat() for w in trend.weeks)

        # drill into the Discovery bar with the keyboard
        stages.focus()
        await pilot.pause()
        stages.cursor = [b.key for b in stages.bars].index("discovery")
        await pilot.press("enter")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, DrillModal)
        expected = {r[0] for r in sql(store, "SELECT id FROM deal WHERE status = 'open' AND team = :t "
                                             "AND stage = 'discovery'", t=team)}
        grid = modal.query_one(DealGrid)
        assert {d.deal_id for d in modal.deals} == expected and grid.row_count == len(expected)
        first_line = grid.render_line(1).text
        assert modal.deals[0].name[:20] in first_line

        # from a deal, its review history
        deal_id = grid.cursor_key
        await pilot.press("enter")
        await settle(pilot)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert review.view == "history" and review.current_deal_id() == deal_id
        await pilot.press("escape")  # history -> log
        await pilot.press("escape")  # leave the review
        await settle(pilot)
        assert app.screen is modal
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen

        # drill into a week of the commit trend with the `d` key
        trend.focus()
        await pilot.pause()
        week = trend.weeks[trend.cursor]
        await pilot.press("d")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, DrillModal) and modal.base == "week" and modal.buckets == [week]
        called = {r[0] for r in sql(
            store, "SELECT i.deal_id FROM inspection i JOIN inspection_session s ON s.id = i.session_id "
                   "WHERE s.week_of = :w AND s.team = :t AND s.status <> 'abandoned' AND i.status = 'inspected' "
                   "AND COALESCE(i.forecast_call, i.rep_category) = 'commit'", w=week, t=team)}
        won = {r[0] for r in sql(
            store, "SELECT id FROM deal WHERE status = 'won' AND team = :t AND closed_on >= :a AND closed_on < :b",
            t=team, a=week, b=(date.fromisoformat(week) + timedelta(days=7)).isoformat())}
        assert modal.deals and {d.deal_id for d in modal.deals} == called | won
        assert app.return_code is None
