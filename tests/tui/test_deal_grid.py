"""DealGrid behaviour: rendering, cursor keys, selection, filtering, hostile cells, header, empty."""
from __future__ import annotations

import html

import pytest
from rich.cells import cell_len
from textual import events
from textual.app import App, ComposeResult
from textual.message import Message

from inspector.widgets.deal_grid import Column, DealGrid

COLUMNS = [
    Column("id", "ID", 6, "right"),
    Column("name", "Deal name", 30),
    Column("amount", "Amount", 12, "right"),
    Column("stage", "Stage", 14),
    Column("owner", "Owner", 16),
]
# Line layout: one space then `width` cells per column; name column starts at x=8.
NAME_X = 1 + 6 + 1

SIZE = (100, 20)


def make_rows(n: int, start_key: int = 5000) -> tuple[list[tuple], list[int]]:
    # Keys deliberately differ from indices (and are not contiguous) to catch mix-ups.
    keys = [start_key + 7 * i for i in range(n)]
    rows = [(str(k), f"Deal {k}", f"{k * 10:,}", "Proposal", f"Owner {i % 13}") for i, k in enumerate(keys)]
    return rows, keys


class GridApp(App):
    def __init__(self) -> None:
        super().__init__()
        self.grid_messages: list[Message] = []

    def compose(self) -> ComposeResult:
        yield DealGrid(COLUMNS, id="grid")

    def on_mount(self) -> None:
        self.query_one(DealGrid).focus()


def run(app: GridApp):
    def hook(message: Message) -> None:
        # The hook sees a message once per node it bubbles through: keep the first sighting.
        if isinstance(message, (DealGrid.RowHighlighted, DealGrid.RowSelected, DealGrid.HeaderClicked)):
            if not any(seen is message for seen in app.grid_messages):
                app.grid_messages.append(message)

    return app.run_test(size=SIZE, message_hook=hook)


def lines(grid: DealGrid) -> list[str]:
    return [grid.render_line(y).text for y in range(grid.scrollable_content_region.height)]


def of_type(app: GridApp, kind: type) -> list:
    return [m for m in app.grid_messages if isinstance(m, kind)]


def svg_text(text: str) -> str:
    """How a run of text appears inside Textual's SVG screenshot."""
    return html.escape(text).replace(" ", "&#160;")


async def test_rows_visible_and_only_visible_rendered() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        rows, keys = make_rows(1000)
        grid.set_rows(rows, keys)
        await pilot.pause()
        assert grid.row_count == 1000
        shown = lines(grid)
        assert "Deal name" in shown[0] and "Amount" in shown[0]
        assert "Deal 5000" in shown[1]
        assert "Deal 5007" in shown[2]
        body = grid.scrollable_content_region.height - 1
        last_visible_key = keys[body - 1]
        assert f"Deal {last_visible_key}" in shown[body]
        assert not any(f"Deal {keys[body]} " in line for line in shown)
        # right alignment of the amount column
        assert f"{5007 * 10:,} Proposal" in shown[2]
        # and it reaches the real screen
        svg = app.export_screenshot()
        assert svg_text("Deal 5007") in svg
        assert svg_text(f"Deal {keys[100]} ") not in svg


async def test_cursor_keys_move_and_post_row_highlighted() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        rows, keys = make_rows(1000)
        grid.set_rows(rows, keys)
        await pilot.pause()
        app.grid_messages.clear()
        body = grid.scrollable_content_region.height - 1

        await pilot.press("down")
        assert grid.cursor_row == 1
        assert grid.cursor_key == keys[1]
        await pilot.press("j")
        assert grid.cursor_row == 2
        await pilot.press("k")
        assert grid.cursor_row == 1
        await pilot.press("pagedown")
        assert grid.cursor_row == 1 + body
        await pilot.press("end")
        assert grid.cursor_row == 999
        await pilot.pause()
        shown = lines(grid)
        assert f"Deal {keys[999]}" in shown[-1]  # scrolled so the last row is visible
        assert "Deal name" in shown[0]  # header stays put
        await pilot.press("pageup")
        assert grid.cursor_row == 999 - body
        await pilot.press("home")
        assert grid.cursor_row == 0
        await pilot.press("up")  # clamped at the top: no move, no message
        assert grid.cursor_row == 0
        await pilot.pause()
        assert "Deal 5000" in lines(grid)[1]

        highlighted = [m.key for m in of_type(app, DealGrid.RowHighlighted)]
        expected = [keys[i] for i in (1, 2, 1, 1 + body, 999, 999 - body, 0)]
        assert highlighted == expected
        assert all(m.control is grid for m in of_type(app, DealGrid.RowHighlighted))


async def test_cursor_row_is_highlighted_with_cursor_style() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        grid.set_rows(*make_rows(50))
        await pilot.press("down", "down")
        await pilot.pause()
        cursor_style = grid.get_component_styles("deal-grid--cursor").rich_style
        assert cursor_style.bgcolor is not None
        styles_by_line = [{seg.style for seg in grid.render_line(y)} for y in (1, 2, 3, 4)]
        assert cursor_style in styles_by_line[2]  # line 3 == row index 2
        assert all(cursor_style not in s for i, s in enumerate(styles_by_line) if i != 2)


async def test_enter_posts_row_selected_with_key() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        rows, keys = make_rows(1000)
        grid.set_rows(rows, keys)
        await pilot.press("down", "down", "down", "enter")
        await pilot.pause()
        selected = of_type(app, DealGrid.RowSelected)
        assert [m.key for m in selected] == [keys[3]]
        assert selected[0].control is grid


async def test_move_cursor_to_key() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        rows, keys = make_rows(1000)
        grid.set_rows(rows, keys)
        grid.move_cursor_to_key(keys[640])
        await pilot.pause()
        assert grid.cursor_row == 640
        assert any(f"Deal {keys[640]}" in line for line in lines(grid))
        grid.move_cursor_to_key(-1)  # unknown key: no-op
        assert grid.cursor_row == 640


async def test_set_rows_keeps_cursor_on_same_key_else_clamps() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        rows, keys = make_rows(1000)
        grid.set_rows(rows, keys)
        grid.move_cursor_to_key(keys[500])
        await pilot.pause()
        app.grid_messages.clear()

        # Filter: every third row; keys[500] survives at a new index.
        subset = list(range(0, 1000, 4))
        assert 500 in subset
        grid.set_rows([rows[i] for i in subset], [keys[i] for i in subset])
        await pilot.pause()
        assert grid.row_count == len(subset)
        assert grid.cursor_key == keys[500]
        assert grid.cursor_row == subset.index(500)
        assert any(f"Deal {keys[500]}" in line for line in lines(grid))
        assert of_type(app, DealGrid.RowHighlighted) == []  # same key: nothing to announce

        # Re-sort (reversed): still the same key.
        grid.set_rows([rows[i] for i in reversed(subset)], [keys[i] for i in reversed(subset)])
        assert grid.cursor_key == keys[500]
        assert grid.cursor_row == len(subset) - 1 - subset.index(500)

        # Filter the key away: the cursor is clamped into the shorter list.
        grid.set_rows(rows[:10], keys[:10])
        await pilot.pause()
        assert grid.cursor_row == 9
        assert grid.cursor_key == keys[9]
        shown = lines(grid)
        assert "Deal 5000" in shown[1] and f"Deal {keys[9]}" in shown[10]  # scrolled back up
        assert shown[11].strip() == ""
        assert [m.key for m in of_type(app, DealGrid.RowHighlighted)] == [keys[9]]

        # Empty: cursor key None, announced once.
        grid.set_rows([], [])
        await pilot.pause()
        assert grid.cursor_key is None
        assert of_type(app, DealGrid.RowHighlighted)[-1].key is None


HOSTILE = [
    "[b]x[/b]",
    "Deal [/foo",
    "[@click=app.quit]x[/]",
    "x [/] y",
    "[link=https://e.vil]pay[/link]",
]


async def test_hostile_cells_render_literally_and_click_only_selects() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        rows = [(str(i), text, "1", "Won", "me") for i, text in enumerate(HOSTILE)]
        rows.append(("90", "ACME\u202eVOD", "1", "Won", "me"))
        rows.append(("91", "a\x1b]52;c;SGVsbG8=\x07b", "1", "Won", "me"))
        rows.append(("92", "two\nlines\tand tab", "1", "Won", "me"))
        keys = [100 + i for i in range(len(rows))]
        grid.set_rows(rows, keys)
        await pilot.pause()

        shown = lines(grid)
        for index, text in enumerate(HOSTILE):
            assert text in shown[1 + index], (text, shown[1 + index])
        assert "ACME\ufffdVOD" in shown[6]
        assert "\u202e" not in "".join(shown)
        assert "a\ufffd]52;c;SGVsbG8=\ufffdb" in shown[7]
        assert "\x1b" not in "".join(shown) and "\x07" not in "".join(shown)
        assert "two lines and tab" in shown[8]
        # Segments carry no meta (no @click actions, no links).
        for y in range(len(shown)):
            for segment in grid.render_line(y):
                assert segment.style is None or not segment.style.meta
                assert segment.style is None or segment.style.link is None
        svg = app.export_screenshot()
        assert svg_text("[@click=app.quit]x[/]") in svg

        # Click the hostile "[@click=app.quit]" cell: first click moves the cursor...
        await pilot.click(DealGrid, offset=(NAME_X + 3, 1 + 2))
        await pilot.pause()
        assert app.is_running and app.return_code is None
        assert grid.cursor_row == 2
        assert [m.key for m in of_type(app, DealGrid.RowHighlighted)][-1] == keys[2]
        assert of_type(app, DealGrid.RowSelected) == []
        # ...a click on the highlighted row selects it, and still nothing else happens.
        await pilot.click(DealGrid, offset=(NAME_X + 3, 1 + 2))
        await pilot.pause()
        assert app.is_running and app.return_code is None
        assert [m.key for m in of_type(app, DealGrid.RowSelected)] == [keys[2]]
        # The link cell neither opens anything nor does anything but select.
        await pilot.double_click(DealGrid, offset=(NAME_X + 2, 1 + 4))
        await pilot.pause()
        assert app.is_running
        assert [m.key for m in of_type(app, DealGrid.RowSelected)] == [keys[2], keys[4]]


async def test_hostile_header_and_empty_text_are_literal() -> None:
    class HostileApp(GridApp):
        def compose(self) -> ComposeResult:
            yield DealGrid([Column("n", "[b]Name[/b]", 20), Column("s", "[@click=app.quit]S", 20)])

    app = HostileApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        grid.empty_text = "No deals [b]match[/] \x1b[2J"
        await pilot.pause()
        shown = lines(grid)
        assert "[b]Name[/b]" in shown[0]
        assert "[@click=app.quit]S" in shown[0]
        assert any("No deals [b]match[/] \ufffd[2J" in line for line in shown)
        await pilot.click(DealGrid, offset=(25, 0))
        await pilot.pause()
        assert app.is_running and app.return_code is None
        assert [m.column_key for m in of_type(app, DealGrid.HeaderClicked)] == ["s"]


async def test_truncation_by_cells_with_ellipsis() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        long_name = "A very long deal name that does not fit in thirty cells"
        cjk = "株式会社テスト商事の大型案件です"  # 16 chars, 32 cells > 30
        grid.set_rows([("1", long_name, "1", "s", "o"), ("2", cjk, "1", "s", "o")], [1, 2])
        await pilot.pause()
        width = grid.scrollable_content_region.width
        line1, line2 = grid.render_line(1), grid.render_line(2)
        assert line1.cell_length == width and line2.cell_length == width
        name1 = line1.text[NAME_X : NAME_X + 30]
        assert name1 == long_name[:29] + "…"
        assert line1.text[NAME_X + 30] == " "
        # CJK: measured in cells, so the cell is cut to 29 cells (+ a pad where a wide char
        # would straddle) plus the ellipsis; the next column still starts where it should.
        text2 = line2.text
        cut = text2[NAME_X:].split("…")[0]
        assert cell_len(cut) == 29
        assert cut.rstrip() and cjk.startswith(cut.rstrip())
        after = text2[NAME_X + len(cut) + 1 :]
        assert after.startswith("            1 s")  # amount column right-aligned in 12 cells


async def test_header_click_posts_and_sort_indicator_shows() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        grid.set_rows(*make_rows(100))
        await pilot.pause()
        await pilot.click(DealGrid, offset=(NAME_X + 2, 0))
        await pilot.click(DealGrid, offset=(NAME_X + 30 + 5, 0))  # amount column
        await pilot.pause()
        assert [m.column_key for m in of_type(app, DealGrid.HeaderClicked)] == ["name", "amount"]
        assert of_type(app, DealGrid.HeaderClicked)[0].control is grid
        assert grid.cursor_row == 0  # header clicks do not move the cursor
        assert of_type(app, DealGrid.RowSelected) == []

        grid.set_sort_indicator("name", descending=False)
        await pilot.pause()
        assert "Deal name ▲" in lines(grid)[0]
        grid.set_sort_indicator("amount", descending=True)
        await pilot.pause()
        header = lines(grid)[0]
        assert "Amount ▼" in header and "▲" not in header
        grid.set_sort_indicator(None, descending=False)
        await pilot.pause()
        assert "▲" not in lines(grid)[0] and "▼" not in lines(grid)[0]


async def test_empty_grid_shows_empty_text_centered() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        grid.empty_text = "Nothing to inspect"
        grid.set_rows([], [])
        await pilot.pause()
        shown = lines(grid)
        assert "Deal name" in shown[0]
        matches = [y for y, line in enumerate(shown) if "Nothing to inspect" in line]
        assert len(matches) == 1
        y = matches[0]
        assert 3 <= y <= len(shown) - 3  # vertically centred-ish
        left = shown[y].index("Nothing")
        right = len(shown[y]) - left - len("Nothing to inspect")
        assert abs(left - right) <= 1
        await pilot.press("enter", "down")
        await pilot.pause()
        assert of_type(app, DealGrid.RowSelected) == []
        assert grid.row_count == 0 and grid.cursor_key is None
        # Rows arrive: the message disappears.
        grid.set_rows(*make_rows(3))
        await pilot.pause()
        assert not any("Nothing to inspect" in line for line in lines(grid))


async def test_row_styles_use_component_classes() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        rows, keys = make_rows(10)
        grid.set_rows(rows, keys)
        grid.set_row_styles({keys[2]: "warn", keys[3]: "muted"})
        await pilot.pause()
        warn = grid.get_component_styles("deal-grid--warn").rich_style
        muted = grid.get_component_styles("deal-grid--muted").rich_style
        plain = {seg.style for seg in grid.render_line(1 + 1)}
        assert warn in {seg.style for seg in grid.render_line(1 + 2)}
        assert muted in {seg.style for seg in grid.render_line(1 + 3)}
        assert warn not in plain and muted not in plain
        grid.set_row_styles({})
        await pilot.pause()
        assert warn not in {seg.style for seg in grid.render_line(1 + 2)}


async def test_header_scrolls_horizontally_with_body() -> None:
    app = GridApp()
    async with app.run_test(size=(40, 12)) as pilot:
        grid = app.query_one(DealGrid)
        grid.set_rows(*make_rows(100))
        await pilot.pause()
        assert grid.max_scroll_x > 0
        assert "Amount" not in lines(grid)[0]
        grid.scroll_to(x=NAME_X + 30, animate=False)
        await pilot.pause()
        shown = lines(grid)
        assert shown[0].lstrip().startswith("Amount")
        assert shown[1].lstrip().startswith(f"{5000 * 10:,}")
        # vertical scroll does not move the header
        grid.scroll_to(y=50, animate=False)
        await pilot.pause()
        shown = lines(grid)
        assert shown[0].lstrip().startswith("Amount")
        assert shown[1].lstrip().startswith(f"{(5000 + 7 * 50) * 10:,}")


async def test_mouse_wheel_scrolls_without_moving_cursor() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        rows, keys = make_rows(1000)
        grid.set_rows(rows, keys)
        await pilot.pause()
        for _ in range(3):
            grid.post_message(events.MouseScrollDown(grid, 5, 5, 0, 1, 0, False, False, False))
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        assert grid.scroll_y > 0
        assert grid.cursor_row == 0
        first = round(grid.scroll_y)
        assert f"Deal {keys[first]}" in lines(grid)[1]


async def test_set_rows_length_mismatch_raises() -> None:
    grid = DealGrid(COLUMNS)
    with pytest.raises(ValueError):
        grid.set_rows([("a",)], [])


async def test_rows_set_before_mount_and_cursor_preset() -> None:
    rows, keys = make_rows(500)

    class PrefilledApp(GridApp):
        def compose(self) -> ComposeResult:
            grid = DealGrid(COLUMNS)
            grid.set_rows(rows, keys)
            grid.move_cursor_to_key(keys[300])
            yield grid

    app = PrefilledApp()
    async with run(app) as pilot:
        await pilot.pause()
        grid = app.query_one(DealGrid)
        assert grid.row_count == 500
        assert grid.cursor_key == keys[300]
        assert any(f"Deal {keys[300]}" in line for line in lines(grid))
        await pilot.press("enter")
        await pilot.pause()
        assert [m.key for m in of_type(app, DealGrid.RowSelected)] == [keys[300]]


async def test_only_visible_rows_are_rendered() -> None:
    """set_rows does no per-row rendering work; a paint formats just the visible rows."""
    formatted: list[int] = []

    class CountingCell(str):
        def __str__(self) -> str:
            formatted.append(1)
            return str.__str__(self)

    n = 20_000
    rows = [tuple(CountingCell(f"c{i}") for _ in COLUMNS) for i in range(n)]
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        grid.set_rows(rows, list(range(n)))
        assert formatted == []  # nothing formatted at set_rows time
        await pilot.pause()
        visible_rows = grid.scrollable_content_region.height - 1
        assert 0 < len(formatted) <= 2 * visible_rows * len(COLUMNS)
        assert "c0 " in lines(grid)[1]


async def test_theme_change_restyles_cached_lines() -> None:
    app = GridApp()
    async with run(app) as pilot:
        grid = app.query_one(DealGrid)
        grid.set_rows(*make_rows(20))
        await pilot.pause()
        before = {seg.style.bgcolor for seg in grid.render_line(1)}
        app.theme = "textual-light"
        await pilot.pause()
        after = {seg.style.bgcolor for seg in grid.render_line(1)}
        assert after != before
        expected = grid.get_component_styles("deal-grid--cursor").rich_style.bgcolor
        assert after == {expected}


class FillApp(App):
    """A grid whose last column (width 0) takes the room the fixed columns leave."""

    def compose(self) -> ComposeResult:
        yield DealGrid([Column("date", "Date", 10), Column("text", "Text", 0)], id="grid")


@pytest.mark.parametrize("width", [40, 80])
async def test_fill_column_takes_the_remaining_width(width):
    app = FillApp()
    async with app.run_test(size=(width, 10)) as pilot:
        grid = app.query_one(DealGrid)
        long = "word " * 40
        grid.set_rows([("2026-12-01", long), ("2026-12-02", "short")], [1, 2])
        await pilot.pause()
        room = grid.scrollable_content_region.width
        fill = room - (1 + 10) - 1 - 1  # date block, the fill column's space, trailing space
        assert grid.columns[1].width == fill
        shown = lines(grid)
        assert all(cell_len(line) == room for line in shown[:3])  # no horizontal overflow
        assert shown[1].rstrip().endswith("…")  # the long text is cut to the room, with an ellipsis
        assert shown[2].split() == ["2026-12-02", "short"]
