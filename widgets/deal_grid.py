"""DealGrid: a fast, read-only, virtualised table built on Textual's line API.

Only the lines that are on screen are ever rendered, so `set_rows` with 100k rows costs two
list copies and a repaint of one screenful. Rendered lines are kept in an LRU cache keyed by
(row index, is-cursor, width, scroll_x), cleared whenever the rows, row styles or the theme
(any CSS/style update, focus change included) change.

Security: cells are outside data (CRM deal names). Every cell, header label and the empty
text goes through `inspector.text.one_line` (control chars -> U+FFFD, newlines/tabs -> space)
and is emitted as a plain `Segment(text, style)`; nothing is ever parsed as markup, and no
segment carries `@click` (or any other) meta, so clicking a cell can only move/select the row.

Mouse: the first click on a row moves the cursor there (posting `RowHighlighted`); a click on
the row that is already highlighted (so also the second click of a double click) posts
`RowSelected`. Clicking the header posts `HeaderClicked`; the widget never sorts itself.
The mouse wheel scrolls the body without moving the cursor.

`RowHighlighted` is posted whenever the key under the cursor changes, including the first
`set_rows` (None -> first key), a filter that removes the cursor's key (clamped) and an empty
grid (key None); a re-sort/filter that keeps the key posts nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, NamedTuple, Sequence

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from inspector.text import one_line

__all__ = ["Column", "DealGrid"]

_ELLIPSIS = "…"
_ASC = "▲"
_DESC = "▼"


def _safe(value: object) -> str:
    """Make a cell fit for one terminal line: no control chars, no bidi overrides, no newlines."""
    return one_line(value)


def _fit(text: str, width: int, align: str) -> str:
    """Truncate `text` to `width` cells (with an ellipsis) and pad it to exactly `width` cells."""
    if width <= 0:
        return ""
    length = cell_len(text)
    if length > width:
        # set_cell_size crops by cells (a wide char split at the edge becomes a space).
        return set_cell_size(text, width - 1) + _ELLIPSIS
    if length == width:
        return text
    pad = " " * (width - length)
    return pad + text if align == "right" else text + pad


class _Styles(NamedTuple):
    base: Style
    header: Style
    cursor: Style
    empty: Style


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # cells; 0: this column takes the room the others leave (at least FILL_MIN)
    align: str = "left"  # "left" | "right"


FILL_MIN = 12


class DealGrid(ScrollView, can_focus=True):
    """Read-only virtualised grid of pre-formatted string cells, one row per integer key.

    Layout of a line: for every column one space then `width` cells, then one trailing space.
    Line 0 of the widget is the header; it never scrolls vertically but follows `scroll_x`.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first_row", "First", show=False),
        Binding("end", "last_row", "Last", show=False),
        Binding("enter", "select_row", "Open", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "deal-grid--header",
        "deal-grid--cursor",
        "deal-grid--warn",
        "deal-grid--muted",
        "deal-grid--good",
        "deal-grid--empty",
    }

    DEFAULT_CSS = """
    DealGrid {
        background: $surface;
        color: $foreground;
        height: 1fr;
        & > .deal-grid--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .deal-grid--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .deal-grid--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .deal-grid--warn {
            color: $warning;
        }
        & > .deal-grid--muted {
            color: $text-muted;
        }
        & > .deal-grid--good {
            color: $success;
            text-style: bold;
        }
        & > .deal-grid--empty {
            color: $text-muted;
            text-style: italic;
        }
    }
    """

    # ------------------------------------------------------------------ messages

    @dataclass
    class RowHighlighted(Message):
        """The cursor moved to a row with a different key (None when the grid became empty)."""

        key: int | None
        grid: DealGrid

        @property
        def control(self) -> DealGrid:
            return self.grid

    @dataclass
    class RowSelected(Message):
        """Enter on the cursor row, or a click on the already highlighted row."""

        key: int
        grid: DealGrid

        @property
        def control(self) -> DealGrid:
            return self.grid

    @dataclass
    class HeaderClicked(Message):
        """A column header was clicked; the owner re-sorts and calls `set_rows`."""

        column_key: str
        grid: DealGrid

        @property
        def control(self) -> DealGrid:
            return self.grid

    # ------------------------------------------------------------------ state

    cursor_row: reactive[int] = reactive(0, repaint=False)
    """Index (into the current row order) of the highlighted row."""

    empty_text: reactive[str] = reactive("No rows")
    """Shown (literally, muted, centred) when there are no rows."""

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._spec: tuple[Column, ...] = tuple(columns)
        self._columns: tuple[Column, ...] = ()
        self._column_starts: list[int] = []
        self._total_width = 0
        self._lay_out_columns(0)
        self._rows: list[tuple] = []
        self._keys: list[int] = []
        self._row_styles: dict[int, str] = {}
        self._sort_key: str | None = None
        self._sort_descending = False
        self._line_cache: LRUCache[tuple, Strip] = LRUCache(1024)
        self._styles_snapshot: _Styles | None = None
        self._named_styles: dict[str, Style | None] = {}
        self._highlighted_key: int | None = None
        self.virtual_size = Size(self._total_width, 1)

    def _lay_out_columns(self, room: int) -> None:
        """Fix every column's width; a width-0 column gets what `room` cells leave over."""
        fixed = sum(1 + c.width for c in self._spec if c.width) + 1 + sum(1 for c in self._spec if not c.width)
        fill = max(FILL_MIN, room - fixed)
        self._columns = tuple(c if c.width else replace(c, width=fill) for c in self._spec)
        self._column_starts = []
        position = 0
        for column in self._columns:
            self._column_starts.append(position)
            position += 1 + max(0, column.width)
        self._total_width = position + 1

    # ------------------------------------------------------------------ public API

    @property
    def columns(self) -> tuple[Column, ...]:
        return self._columns

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def cursor_key(self) -> int | None:
        if not self._keys:
            return None
        return self._keys[min(self.cursor_row, len(self._keys) - 1)]

    def set_rows(self, rows: Sequence[tuple], keys: Sequence[int]) -> None:
        """Replace the rows. `rows` are tuples of formatted str cells, `keys` the row ids.

        The cursor stays on the same key if it is still present, else it is clamped.
        """
        if len(rows) != len(keys):
            raise ValueError(f"rows ({len(rows)}) and keys ({len(keys)}) differ in length")
        old_key = self.cursor_key
        old_index = self.cursor_row
        self._rows = list(rows)
        self._keys = list(keys)
        self._line_cache.clear()
        self.virtual_size = Size(self._total_width, len(self._rows) + 1)
        new_index = old_index
        if old_key is not None:
            try:
                new_index = self._keys.index(old_key)
            except ValueError:
                pass
        new_index = self.validate_cursor_row(new_index)
        if new_index != self.cursor_row:
            self.cursor_row = new_index  # watcher scrolls and posts RowHighlighted
        else:
            self._scroll_cursor_into_view()
            self._post_highlight_if_changed()
        self.refresh()

    def set_row_styles(self, styles: dict[int, str]) -> None:
        """Per-row-key style names, rendered with component class `deal-grid--<name>`."""
        self._row_styles = dict(styles)
        self._line_cache.clear()
        self.refresh()

    def set_sort_indicator(self, column_key: str | None, descending: bool) -> None:
        """Show ▲ (ascending) or ▼ (descending) after the label of `column_key` (None: none)."""
        self._sort_key = column_key
        self._sort_descending = descending
        self._line_cache.clear()
        self.refresh()

    def move_cursor_to_key(self, key: int) -> None:
        """Move the cursor to the row with `key`; no-op if the key is not shown."""
        try:
            index = self._keys.index(key)
        except ValueError:
            return
        self.cursor_row = index

    # ------------------------------------------------------------------ cursor

    def validate_cursor_row(self, value: int) -> int:
        count = len(self._rows)
        if count == 0:
            return 0
        return max(0, min(int(value), count - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._refresh_row(old)
        self._refresh_row(new)
        self._scroll_cursor_into_view()
        self._post_highlight_if_changed()

    def _post_highlight_if_changed(self) -> None:
        key = self.cursor_key
        if key != self._highlighted_key:
            self._highlighted_key = key
            self.post_message(self.RowHighlighted(key, self))

    def _refresh_row(self, index: int) -> None:
        if not self.is_mounted:
            return
        line = index - round(self.scroll_y) + 1  # widget line; line 0 is the header
        if 1 <= line < self.size.height:
            self.refresh_line(index + 1)  # ScrollView.refresh_line takes a virtual y

    @property
    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        if not self.is_mounted:
            return
        if not self._rows:
            if self.scroll_y:
                self.scroll_to(y=0, animate=False, force=True)
            return
        cursor = self.cursor_row
        top = round(self.scroll_y)
        body = self._body_height
        if cursor < top:
            self.scroll_to(y=cursor, animate=False, force=True)
        elif cursor >= top + body:
            self.scroll_to(y=cursor - body + 1, animate=False, force=True)

    def action_cursor_up(self) -> None:
        self.cursor_row -= 1

    def action_cursor_down(self) -> None:
        self.cursor_row += 1

    def action_page_up(self) -> None:
        self.cursor_row -= self._body_height

    def action_page_down(self) -> None:
        self.cursor_row += self._body_height

    def action_first_row(self) -> None:
        self.cursor_row = 0

    def action_last_row(self) -> None:
        self.cursor_row = max(0, len(self._rows) - 1)

    def action_select_row(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.RowSelected(key, self))

    # ------------------------------------------------------------------ mouse

    def _column_at(self, x: int) -> Column | None:
        """The column whose block (leading space + cells) covers virtual x."""
        for column, start in zip(self._columns, self._column_starts):
            if start <= x < start + 1 + column.width:
                return column
        return None

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        # Skip Widget._on_click (which would broker `@click` style meta into actions): our
        # segments carry no meta anyway, and nothing shown in a cell may become an action.
        event.prevent_default()
        if offset.y == 0:
            column = self._column_at(offset.x + round(self.scroll_x))
            if column is not None:
                self.post_message(self.HeaderClicked(column.key, self))
            return
        index = round(self.scroll_y) + offset.y - 1
        if not 0 <= index < len(self._rows):
            return
        if index == self.cursor_row:
            self.post_message(self.RowSelected(self._keys[index], self))
        else:
            self.cursor_row = index

    # ------------------------------------------------------------------ styles / caches

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_cache.clear()
        self._styles_snapshot = None
        self._named_styles.clear()

    def _on_resize(self, event: events.Resize) -> None:
        if any(not c.width for c in self._spec):
            self._lay_out_columns(self.scrollable_content_region.width)
            self.virtual_size = Size(self._total_width, len(self._rows) + 1)
        self._line_cache.clear()
        self._scroll_cursor_into_view()

    def _on_focus(self, event: events.Focus) -> None:
        self._line_cache.clear()
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self._line_cache.clear()
        self.refresh()

    def _current_styles(self) -> _Styles:
        return _Styles(
            base=self.rich_style,
            header=self.get_component_styles("deal-grid--header").rich_style,
            cursor=self.get_component_styles("deal-grid--cursor").rich_style,
            empty=self.get_component_styles("deal-grid--empty").rich_style,
        )

    def _row_style(self, name: str) -> Style | None:
        """Style of component class `deal-grid--<name>`, None if there is no such class."""
        if name not in self._named_styles:
            try:
                style = self.get_component_styles(f"deal-grid--{name}").rich_style
            except KeyError:
                style = None
            self._named_styles[name] = style
        return self._named_styles[name]

    def render_lines(self, crop: Region) -> list[Strip]:
        # Once per paint: if the theme, focus or CSS changed any style we use, drop the cache.
        styles = self._current_styles()
        if styles != self._styles_snapshot:
            self._line_cache.clear()
            self._named_styles.clear()
            self._styles_snapshot = styles
        return super().render_lines(crop)

    # ------------------------------------------------------------------ rendering

    def _header_text(self) -> str:
        parts: list[str] = []
        for column in self._columns:
            label = _safe(column.label)
            if column.key == self._sort_key and column.width >= 2:
                marker = _DESC if self._sort_descending else _ASC
                room = column.width - 2
                if cell_len(label) > room:
                    label = _fit(label, room, "left")
                text = _fit(f"{label} {marker}", column.width, column.align)
            else:
                text = _fit(label, column.width, column.align)
            parts.append(" " + text)
        parts.append(" ")
        return "".join(parts)

    def _row_text(self, row: tuple) -> str:
        parts: list[str] = []
        columns = self._columns
        for position, column in enumerate(columns):
            value = row[position] if position < len(row) else ""
            parts.append(" " + _fit(_safe(value), column.width, column.align))
        parts.append(" ")
        return "".join(parts)

    def _crop(self, text: str, style: Style, width: int, scroll_x: int) -> Strip:
        strip = Strip([Segment(text, style)], cell_len(text))
        if scroll_x:
            strip = strip.crop(scroll_x, scroll_x + width)
        return strip.adjust_cell_length(width, style)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x = round(self.scroll_x)
        styles = self._styles_snapshot or self._current_styles()
        if y == 0:
            key = (-1, False, width, scroll_x)
            strip = self._line_cache.get(key)
            if strip is None:
                strip = self._crop(self._header_text(), styles.header, width, scroll_x)
                self._line_cache[key] = strip
            return strip
        if not self._rows:
            return self._render_empty_line(y, width, styles.base, styles.empty)
        index = round(self.scroll_y) + y - 1
        if index >= len(self._rows):
            return Strip.blank(width, styles.base)
        is_cursor = index == self.cursor_row
        key = (index, is_cursor, width, scroll_x)
        strip = self._line_cache.get(key)
        if strip is not None:
            return strip
        if is_cursor:
            style = styles.cursor  # the cursor wins over warn/muted
        else:
            style = styles.base
            name = self._row_styles.get(self._keys[index])
            if name:
                style = self._row_style(name) or styles.base
        strip = self._crop(self._row_text(self._rows[index]), style, width, scroll_x)
        self._line_cache[key] = strip
        return strip

    def _render_empty_line(self, y: int, width: int, base: Style, empty: Style) -> Strip:
        body = self._body_height
        if y != 1 + (body - 1) // 2:
            return Strip.blank(width, base)
        text = _safe(self.empty_text)
        if cell_len(text) > width:
            text = _fit(text, width, "left")
        left = (width - cell_len(text)) // 2
        segments = [Segment(" " * left, base), Segment(text, empty)]
        return Strip(segments).adjust_cell_length(width, base)
