"""TrendChart: weekly series as side-by-side columns of block characters, on the line API.

Dumb: `set_series(weeks, series)` gives it the data; Left/Right move a week cursor and Enter
(or a click on a week) posts `WeekSelected` with the week's label. Series names are ours;
week labels are ISO dates. Everything is still emitted as plain `Segment`s via `one_line`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

from rich.cells import cell_len
from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from inspector.text import one_line

__all__ = ["TrendChart"]

_LEVELS = " ▁▂▃▄▅▆▇█"
_SERIES_CLASSES = ("trend-chart--s0", "trend-chart--s1", "trend-chart--s2")


class TrendChart(Widget, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left,h", "cursor_left", "Earlier", show=False),
        Binding("right,l", "cursor_right", "Later", show=False),
        Binding("enter", "select_week", "Drill down", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {*_SERIES_CLASSES, "trend-chart--axis", "trend-chart--cursor"}
    DEFAULT_CSS = """
    TrendChart {
        height: 9;
        & > .trend-chart--s0 { color: $primary; }
        & > .trend-chart--s1 { color: $success; }
        & > .trend-chart--s2 { color: $warning; }
        & > .trend-chart--axis { color: $text-muted; }
        & > .trend-chart--cursor { background: $block-cursor-blurred-background; }
        &:focus > .trend-chart--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    }
    """

    @dataclass
    class WeekSelected(Message):
        week: str
        chart: "TrendChart"

        @property
        def control(self) -> "TrendChart":
            return self.chart

    cursor: reactive[int] = reactive(0)

    def __init__(self, *, value_format: str = "{:,.0f}", name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.value_format = value_format
        self._weeks: list[str] = []
        self._series: list[tuple[str, list[float]]] = []

    @property
    def weeks(self) -> tuple[str, ...]:
        return tuple(self._weeks)

    def set_series(self, weeks: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]) -> None:
        """`weeks` are the x labels (ISO Mondays); each series has one value per week."""
        self._weeks = list(weeks)
        self._series = [(name, [float(v) for v in values]) for name, values in series][:3]
        self.cursor = max(0, len(self._weeks) - 1)
        self.refresh()

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self._weeks) - 1)) if self._weeks else 0

    def watch_cursor(self) -> None:
        self.refresh()

    def action_cursor_left(self) -> None:
        self.cursor -= 1

    def action_cursor_right(self) -> None:
        self.cursor += 1

    def action_select_week(self) -> None:
        if self._weeks:
            self.post_message(self.WeekSelected(self._weeks[self.cursor], self))

    # -- geometry --------------------------------------------------------------------------------
    def _layout(self, width: int) -> tuple[int, int, int]:
        """(axis width, group width, first x of the plot)."""
        axis = max((cell_len(self._fmt(self._top())), 3)) + 1
        n = max(1, len(self._weeks))
        group = max(len(self._series) + 1, min(7, (width - axis - 1) // n))
        return axis, group, axis + 1

    def _top(self) -> float:
        return max((v for _n, vals in self._series for v in vals), default=0.0)

    def _fmt(self, v: float) -> str:
        if abs(v) >= 1e6:
            return f"{v / 1e6:.1f}M"
        if abs(v) >= 1e4:
            return f"{v / 1e3:.0f}k"
        return self.value_format.format(v)

    def _week_at(self, x: int) -> int | None:
        axis, group, x0 = self._layout(self.size.width)
        if x < x0:
            return None
        i = (x - x0) // group
        return i if i < len(self._weeks) else None

    async def _on_click(self, event: events.Click) -> None:
        i = self._week_at(event.x)
        if i is not None:
            self.cursor = i
            self.action_select_week()

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        base = self.rich_style
        muted = base + self.get_component_rich_style("trend-chart--axis", partial=True)
        if not self._weeks or not self._series:
            return Strip([Segment("No weeks in this period" if y == 0 else "", muted)]).adjust_cell_length(
                width, base)
        plot_h = max(1, height - 2)
        axis, group, x0 = self._layout(width)
        top = self._top()
        cursor_style = self.get_component_rich_style("trend-chart--cursor", partial=True)
        styles = [self.get_component_rich_style(c, partial=True) for c in _SERIES_CLASSES]
        segs: list[Segment] = []
        if y < plot_h:  # plot rows, top first
            label = self._fmt(top) if y == 0 else ("0" if y == plot_h - 1 else "")
            segs.append(Segment(label.rjust(axis - 1) + " ┤" if label else " " * axis + "│", muted))
            for i in range(len(self._weeks)):
                cell_style = base + cursor_style if i == self.cursor else base
                for s, (_name, values) in enumerate(self._series):
                    v = values[i] if i < len(values) else 0.0
                    eighths = round(v / top * plot_h * 8) if top > 0 and v > 0 else 0
                    if v > 0:
                        eighths = max(1, eighths)
                    fill = max(0, min(8, eighths - (plot_h - 1 - y) * 8))
                    segs.append(Segment(_LEVELS[fill], cell_style + styles[s]))
                segs.append(Segment(" " * (group - len(self._series)), cell_style))
        elif y == plot_h:  # week labels (MM-DD), skipped where they would overlap
            segs.append(Segment(" " * (axis + 1), muted))
            line, free = "", 0
            for i, week in enumerate(self._weeks):
                pos = i * group
                label = week[5:10] if len(week) >= 10 else one_line(week)
                if pos >= free:
                    line += " " * (pos - len(line)) + label
                    free = pos + len(label) + 1
            segs.append(Segment(line, muted))
        else:  # legend and the highlighted week's values
            parts: list[Segment] = [Segment(" " * (axis + 1), base)]
            i = self.cursor
            for s, (name, values) in enumerate(self._series):
                v = values[i] if i < len(values) else 0.0
                parts.append(Segment("■ ", base + styles[s]))
                parts.append(Segment(f"{one_line(name)} {self._fmt(v)}  ", base))
            parts.append(Segment(f"week of {self._weeks[i]}", muted))
            segs = parts
        return Strip(segs).adjust_cell_length(width, base)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 9

    def _on_focus(self, event: events.Focus) -> None:
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self.refresh()

