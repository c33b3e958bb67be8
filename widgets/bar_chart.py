"""BarChart: horizontal bars drawn with block characters, one row per bar, on the line API.

Dumb: it shows the bars it is given (`set_bars`) and posts `BarSelected` for Enter on the
highlighted bar or a click on a bar; the owner decides what that means (a drill-down).

Security: labels and value texts are outside data (rep, manager, reason names). They go
through `inspector.text.one_line` and are emitted as plain `Segment`s with no meta, so
nothing is parsed as markup and nothing is clickable beyond moving the cursor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from inspector.text import one_line

__all__ = ["Bar", "BarChart"]

_EIGHTHS = " ▏▎▍▌▋▊▉"


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    value: float
    text: str = ""  # the value as shown (defaults to the number)


def _fit(text: str, width: int, right: bool = False) -> str:
    if width <= 0:
        return ""
    n = cell_len(text)
    if n > width:
        return set_cell_size(text, width - 1) + "…"
    pad = " " * (width - n)
    return pad + text if right else text + pad


def bar_cells(value: float, top: float, width: int) -> str:
    """`value` as a bar of `width` cells at most, in eighths of a cell."""
    if width <= 0 or top <= 0 or value <= 0:
        return ""
    eighths = max(1, round(min(value, top) / top * width * 8))
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


class BarChart(Widget, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("enter", "select_bar", "Drill down", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"bar-chart--bar", "bar-chart--cursor", "bar-chart--empty"}
    DEFAULT_CSS = """
    BarChart {
        height: auto;
        & > .bar-chart--bar { color: $primary; }
        & > .bar-chart--cursor { background: $block-cursor-blurred-background; }
        & > .bar-chart--empty { color: $text-muted; }
        &:focus > .bar-chart--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    }
    """

    @dataclass
    class BarSelected(Message):
        key: str
        label: str
        chart: "BarChart"

        @property
        def control(self) -> "BarChart":
            return self.chart

    cursor: reactive[int] = reactive(0)
    empty_text: reactive[str] = reactive("No data")

    def __init__(self, *, label_width: int = 22, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.label_width = label_width
        self._bars: list[Bar] = []

    @property
    def bars(self) -> tuple[Bar, ...]:
        return tuple(self._bars)

    def set_bars(self, bars: Sequence[Bar]) -> None:
        self._bars = list(bars)
        self.cursor = min(self.cursor, max(0, len(self._bars) - 1))
        self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, len(self._bars))

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self._bars) - 1)) if self._bars else 0

    def action_cursor_up(self) -> None:
        self.cursor -= 1

    def action_cursor_down(self) -> None:
        self.cursor += 1

    def action_select_bar(self) -> None:
        if self._bars:
            bar = self._bars[self.cursor]
            self.post_message(self.BarSelected(bar.key, bar.label, self))

    async def _on_click(self, event: events.Click) -> None:
        if 0 <= event.y < len(self._bars):
            self.cursor = event.y
            self.action_select_bar()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if not self._bars:
            if y == 0:
                style = base + self.get_component_rich_style("bar-chart--empty")
                return Strip([Segment(_fit(one_line(self.empty_text), width), style)], width)
            return Strip.blank(width, base)
        if y >= len(self._bars):
            return Strip.blank(width, base)
        bar = self._bars[y]
        label_w = min(self.label_width, max(6, width // 3))
        texts = [one_line(b.text or f"{b.value:,.0f}") for b in self._bars]
        value_w = max(cell_len(t) for t in texts)
        bar_w = max(0, width - label_w - value_w - 3)
        top = max((b.value for b in self._bars), default=0)
        cells = bar_cells(bar.value, top, bar_w)
        on_cursor = y == self.cursor
        row_style = base + self.get_component_rich_style("bar-chart--cursor") if on_cursor else base
        bar_style = row_style + self.get_component_rich_style("bar-chart--bar", partial=True)
        segments = [
            Segment(_fit(one_line(bar.label), label_w) + " ", row_style),
            Segment(cells + " " * (bar_w - cell_len(cells)), bar_style),
            Segment(" " + _fit(texts[y], value_w, right=True) + " ", row_style),
        ]
        return Strip(segments).adjust_cell_length(width, row_style)

    def watch_cursor(self) -> None:
        self.refresh()

    def _on_focus(self, event: events.Focus) -> None:
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self.refresh()
