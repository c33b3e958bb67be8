"""Pilot tests of the Pipeline screen on a real SQLite store: rows, filter, sort, summary, quit,
and hostile deal names (outside text is never markup, never escape sequences)."""
from __future__ import annotations

import html
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from inspector import demo
from inspector.money import format_money
from inspector.pipeline import COLUMNS
from inspector.screens.app import InspectorApp
from inspector.screens.pipeline_screen import PipelineScreen
from inspector.widgets.deal_grid import DealGrid

TODAY = date(2026, 12, 3)
SIZE = (120, 40)

_STARTS: dict[str, tuple[int, int]] = {}
_x = 0
for _c in COLUMNS:
    _STARTS[_c.key] = (_x + 1, _x + 1 + _c.width)
    _x += 1 + _c.width


def cell(line: str, key: str) -> str:
    a, b = _STARTS[key]
    return line[a:b].strip()


async def settle(app, pilot) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def grid_of(app) -> DealGrid:
    assert isinstance(app.screen, PipelineScreen)
    return app.screen.query_one(DealGrid)


def visible_rows(grid: DealGrid) -> list[str]:
    body = grid.scrollable_content_region.height - 1
    return [grid.render_line(y).text for y in range(1, 1 + min(body, grid.row_count))]


def static_text(app, selector: str) -> str:
    visual = app.screen.query_one(selector).visual
    return getattr(visual, "plain", str(visual))


def open_demo_deals(playbook) -> list[dict]:
    deals = demo.generate(playbook, 300, TODAY, seed=7)[0]  # what demo_services seeded
    return [d for d in deals if d["status"] == "open"]


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch)


# -- the demo pipeline -------------------------------------------------------------------------


async def test_grid_shows_every_open_deal(demo_services, playbook):
    app = InspectorApp(demo_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        expected = open_demo_deals(playbook)
        assert grid.row_count == len(expected)
        header = grid.render_line(0).text
        for label in ("Deal", "Account", "Rep", "Stage", "Amount", "Close"):
            assert label in header
        rows = visible_rows(grid)
        assert len(rows) == grid.scrollable_content_region.height - 1
        # default order: close date ascending
        closes = [cell(r, "close") for r in rows]
        assert closes == sorted(closes)
        assert closes[0] == min(d["close_date"] for d in expected).isoformat()
        summary = static_text(app, "#summary")
        assert f"{len(expected):,} deals" in summary
        assert "checking evidence" not in summary
        # the first row is highlighted and its deal shown in the detail line
        first_name = cell(rows[0], "name").rstrip("…")
        assert static_text(app, "#detail").startswith(first_name)


async def test_filter_narrows_and_escape_clears(demo_services, playbook):
    app = InspectorApp(demo_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        total = grid.row_count
        await pilot.press("slash")
        await type_text(pilot, "logistics")
        await pilot.pause()
        assert app.screen.query_one("#filter").value == "logistics"
        matching = [d for d in open_demo_deals(playbook)
                    if "logistics" in f"{d['name']} {d['account']} {d['owner']}".lower()]
        assert 0 < len(matching) < total
        assert grid.row_count == len(matching)
        rows = visible_rows(grid)
        assert len(rows) == len(matching)
        for r in rows:
            assert "logistics" in r.lower(), r
        assert f"{len(matching):,} deals" in static_text(app, "#summary")

        # narrowing further with a key: only these rows' reps
        rep = matching[0]["owner"]
        first = rep.split()[0].lower()
        await type_text(pilot, f" rep:{first}")
        await pilot.pause()
        narrowed = [d for d in matching if first in d["owner"].lower()]
        assert grid.row_count == len(narrowed)
        for r in visible_rows(grid):
            assert cell(r, "owner").lower().startswith(first[:10]), r

        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.query_one("#filter").value == ""
        assert grid.row_count == total
        assert app.screen.focused is grid
        assert f"{total:,} deals" in static_text(app, "#summary")


async def test_filter_with_no_match_shows_empty_text(demo_services):
    app = InspectorApp(demo_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        await pilot.press("slash")
        await type_text(pilot, "zzqqxx")
        await pilot.pause()
        assert grid.row_count == 0
        body = [grid.render_line(y).text for y in range(1, grid.scrollable_content_region.height)]
        assert any("No deals match" in line for line in body)
        assert "0 deals" in static_text(app, "#summary")
        assert static_text(app, "#detail") == ""


def _amount_value(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text))


async def test_sort_keys(demo_services, playbook):
    app = InspectorApp(demo_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        open_deals = open_demo_deals(playbook)
        assert "▲" in cell(grid.render_line(0).text, "close")
        highlighted = static_text(app, "#detail").split(" · ", 1)[0]

        await pilot.press("s")
        await pilot.pause()
        header = grid.render_line(0).text
        assert "▲" not in cell(header, "close")
        assert "▲" in cell(header, "category")  # the next column
        # re-sorting keeps the highlighted deal (the view scrolls to it)
        assert static_text(app, "#detail").split(" · ", 1)[0] == highlighted
        cats = [cell(r, "category") for r in visible_rows(grid)]
        assert cats == sorted(cats)
        await pilot.press("home")
        await pilot.pause()
        top = [cell(r, "category") for r in visible_rows(grid)]
        assert top == sorted(top)
        assert top[0] == "Best case"  # smallest key present

        await pilot.press("S")  # reverse
        await pilot.pause()
        assert "▼" in cell(grid.render_line(0).text, "category")
        await pilot.press("home")
        await pilot.pause()
        top_desc = [cell(r, "category") for r in visible_rows(grid)]
        assert top_desc == sorted(top_desc, reverse=True)
        assert top_desc[0] == "Pipeline"

        for _ in range(len(COLUMNS)):
            if "▲" in cell(grid.render_line(0).text, "amount"):
                break
            await pilot.press("s")
            await pilot.pause()
        assert "▲" in cell(grid.render_line(0).text, "amount")
        await pilot.press("home")
        await pilot.pause()
        amounts = [_amount_value(cell(r, "amount")) for r in visible_rows(grid)]
        assert amounts == sorted(amounts)
        smallest = min(open_deals, key=lambda d: d["amount_minor"])
        assert cell(visible_rows(grid)[0], "amount") == format_money(smallest["amount_minor"],
                                                                     smallest["currency"])
        await pilot.press("S")
        await pilot.pause()
        await pilot.press("home")
        await pilot.pause()
        amounts = [_amount_value(cell(r, "amount")) for r in visible_rows(grid)]
        assert amounts == sorted(amounts, reverse=True)
        assert amounts[0] == max(d["amount_minor"] for d in open_deals) / 100
        assert grid.row_count == len(open_deals)


async def test_header_click_sorts(demo_services):
    app = InspectorApp(demo_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        a, _b = _STARTS["amount"]
        await pilot.click(DealGrid, offset=(a + 2, 0))
        await pilot.pause()
        assert "▲" in cell(grid.render_line(0).text, "amount")
        await pilot.click(DealGrid, offset=(a + 2, 0))
        await pilot.pause()
        assert "▼" in cell(grid.render_line(0).text, "amount")
        amounts = [_amount_value(cell(r, "amount")) for r in visible_rows(grid)]
        assert amounts == sorted(amounts, reverse=True)


async def test_flagged_and_changed_toggles(demo_services):
    app = InspectorApp(demo_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        total = grid.row_count
        summary = static_text(app, "#summary")
        flagged = int(re.search(r"(\d+) flagged", summary).group(1))
        changed = int(re.search(r"(\d+) changed", summary).group(1))
        assert 0 < flagged < total and 0 < changed < total

        await pilot.press("f")
        await pilot.pause()
        assert app.screen.query_one("#filter").value == "is:flagged"
        assert grid.row_count == flagged
        await pilot.press("c")
        await pilot.pause()
        assert app.screen.query_one("#filter").value == "is:flagged is:changed"
        both = grid.row_count
        assert 0 < both <= min(flagged, changed)
        # every changed row shows a change badge
        for r in visible_rows(grid):
            assert cell(r, "changes"), r
        await pilot.press("f")
        await pilot.pause()
        assert app.screen.query_one("#filter").value == "is:changed"
        assert grid.row_count == changed
        await pilot.press("c")
        await pilot.pause()
        assert app.screen.query_one("#filter").value == ""
        assert grid.row_count == total


async def test_team_modal_escape_keeps_scope(demo_services):
    app = InspectorApp(demo_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        total = grid_of(app).row_count
        await pilot.press("t")
        await settle(app, pilot)
        assert not isinstance(app.screen, PipelineScreen)
        await pilot.press("escape")
        await settle(app, pilot)
        assert grid_of(app).row_count == total
        assert "All teams" in app.sub_title


async def test_q_quits_cleanly(demo_services):
    app = InspectorApp(demo_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.is_running
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
    assert app.return_code in (0, None)


async def test_q_in_the_filter_is_text_not_quit(demo_services):
    app = InspectorApp(demo_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", "q")
        await pilot.pause()
        assert app.is_running
        assert app.screen.query_one("#filter").value == "q"


# -- hostile names ------------------------------------------------------------------------------

HOSTILE = [
    "[b]x[/b]",
    "Deal [/foo",
    "x [/] y",
    "[@click=app.quit]Click me[/]",
    "ACME [2024] Q3",
    "\\",
    "[[b]]",
    "A\x1b]52;c;UFdORUQ=\x07B",
    "ACME\u202eVOD",
]
# what a terminal may show: control characters and bidi overrides become U+FFFD
SHOWN = [n.replace("\x1b", "\ufffd").replace("\x07", "\ufffd").replace("\u202e", "\ufffd")
         for n in HOSTILE]


def _hostile_rows() -> list[dict]:
    at = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    return [{
        "id": i + 1, "source": "crm", "external_id": f"H-{i + 1}", "name": name,
        "account": "[red]Acme[/red]", "owner": "[@click=q]R[/]", "team": "[b]Team[/b]",
        "manager": "Mgr [/]", "stage": "commit", "crm_stage": "commit", "status": "open",
        "amount_minor": 1_000_00 * (i + 1), "currency": "USD",
        "close_date": TODAY + timedelta(days=10 + i), "forecast_category": "commit",
        "next_step": "[i]call[/i]", "next_step_date": TODAY + timedelta(days=2),
        "stage_entered_on": TODAY - timedelta(days=3), "last_activity_at": at,
    } for i, name in enumerate(HOSTILE)]


@pytest.fixture
def hostile_services(sqlite_services):
    sqlite_services.store.bulk_insert("deal", _hostile_rows())
    return sqlite_services


async def test_hostile_names_render_literally(hostile_services):
    app = InspectorApp(hostile_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        assert grid.row_count == len(HOSTILE)
        rows = visible_rows(grid)
        # sorted by close date = insertion order here
        assert [cell(r, "name") for r in rows] == SHOWN
        for r in rows:
            assert cell(r, "account") == "[red]Acme[/red]"
            assert cell(r, "owner") == "[@click=q]R[/]"
            assert "\x1b" not in r and "\x07" not in r and "\u202e" not in r
        svg = app.export_screenshot()
        assert "\x1b" not in svg and "\u202e" not in svg
        for shown in SHOWN:
            assert html.escape(shown).replace(" ", "&#160;") in svg, shown
        assert f"{len(HOSTILE)} deals" in static_text(app, "#summary")


async def test_clicking_hostile_row_does_not_drive_the_app(hostile_services):
    app = InspectorApp(hostile_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        y = next(y for y in range(1, 1 + grid.row_count)
                 if "[@click=app.quit]" in grid.render_line(y).text)
        a, _b = _STARTS["name"]
        for x in (a, a + 5, a + 20):  # on the markup text, on "Click me", past it
            await pilot.click(DealGrid, offset=(x, y))
            await pilot.pause()
            assert app.is_running
        await pilot.double_click(DealGrid, offset=(a + 5, y))
        await pilot.pause()
        assert app.is_running
        assert isinstance(app.screen, PipelineScreen)
        assert static_text(app, "#detail").startswith("[@click=app.quit]Click me[/]")
        # the owner cell has an @click too
        await pilot.click(DealGrid, offset=(_STARTS["owner"][0] + 1, y))
        await pilot.pause()
        assert app.is_running


async def test_highlighting_each_hostile_row_shows_its_name(hostile_services):
    app = InspectorApp(hostile_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        grid.focus()
        await pilot.press("home")
        await pilot.pause()
        seen = []
        for i in range(len(HOSTILE)):
            detail = static_text(app, "#detail")
            first_line = detail.split("\n", 1)[0]
            name = first_line.rsplit(" · next step: ", 1)[0]
            seen.append(name)
            assert "[i]call[/i]" in first_line  # the next step, literally
            assert "\x1b" not in detail and "\u202e" not in detail
            await pilot.press("down")
            await pilot.pause()
        assert seen == SHOWN
        assert app.is_running


async def test_hostile_team_names_in_team_modal(hostile_services):
    # a second, ordinary team so that choosing the hostile one changes the scope
    row = _hostile_rows()[0] | {"id": 100, "external_id": "N-1", "name": "Plain deal",
                                "team": "Ops", "manager": "Ann"}
    hostile_services.store.bulk_insert("deal", [row])
    app = InspectorApp(hostile_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert grid_of(app).row_count == len(HOSTILE) + 1
        await pilot.press("t")
        await settle(app, pilot)
        from textual.widgets import OptionList

        options = app.screen.query_one(OptionList)
        prompts = [getattr(options.get_option_at_index(i).prompt, "plain",
                           str(options.get_option_at_index(i).prompt))
                   for i in range(options.option_count)]
        assert prompts[0] == "All teams"
        assert any(p.startswith("[b]Team[/b] — Mgr [/]") for p in prompts), prompts
        index = next(i for i, p in enumerate(prompts) if p.startswith("[b]Team[/b]"))
        options.highlighted = index
        await pilot.press("enter")
        await settle(app, pilot)
        grid = grid_of(app)
        assert grid.row_count == len(HOSTILE)
        assert all(cell(r, "name") != "Plain deal" for r in visible_rows(grid))
        assert app.is_running


async def test_detail_follows_the_complete_findings(hostile_services, monkeypatch):
    """Regression: #detail used to keep the quick-pass text ('No findings') for the highlighted
    deal when the complete findings arrived, because it only refreshed on a highlight change."""
    import threading

    import inspector.screens.pipeline_screen as pipeline_screen

    gate = threading.Event()
    real = pipeline_screen.full_findings

    def gated(*args, **kwargs):  # the evidence pass finishes after the first paint
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_screen, "full_findings", gated)
    app = InspectorApp(hostile_services)
    async with app.run_test(size=SIZE) as pilot:
        try:
            for _ in range(400):  # rows arrive in phases; wait for the last one before evidence
                await pilot.pause()
                if grid_of(app).row_count and static_text(app, "#detail") and \
                        "checking evidence" in static_text(app, "#summary"):
                    break
            assert "checking evidence" in static_text(app, "#summary")
        finally:
            gate.set()
        await settle(app, pilot)
        assert "checking evidence" not in static_text(app, "#summary")
        assert "9 flagged" in static_text(app, "#summary")
        detail = static_text(app, "#detail")
        assert detail.startswith("[b]x[/b] · next step")
        assert "Stage overstated" in detail and "No findings" not in detail


async def test_team_modal_names_each_manager_once(sqlite_services):
    """A team named for its manager (Maven's "Central · Dana Ruiz") is not followed by the name
    again, and a team without a manager gets no dangling dash."""
    base = _hostile_rows()[0]
    rows = [base | {"id": i + 1, "external_id": f"T-{i}", "name": f"Deal {i}", "team": team, "manager": manager}
            for i, (team, manager) in enumerate([("Central · Dana Ruiz", "Dana Ruiz"), ("Ops", ""),
                                                 ("EMEA Enterprise", "Ann Lee")])]
    sqlite_services.store.bulk_insert("deal", rows)
    app = InspectorApp(sqlite_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("t")
        await settle(app, pilot)
        from textual.widgets import OptionList

        options = app.screen.query_one(OptionList)
        prompts = sorted(str(getattr(options.get_option_at_index(i).prompt, "plain",
                                     options.get_option_at_index(i).prompt))
                         for i in range(1, options.option_count))
        assert prompts == ["Central · Dana Ruiz (1 open)", "EMEA Enterprise — Ann Lee (1 open)", "Ops (1 open)"]
