"""Dashboard: the governance metrics, drawn where a picture reads faster than a number.

The seed's "Dashboard design" items plus the weekly trends: commit called vs won, slippage and
coverage as weekly charts; pipeline by stage, stage aging, handoff and finance completeness,
implementation risk, kickoff time and post-sale issues as bars; the top offenders (commit
exceptions, activity without progress, manager vs rep calls) as tables. Every panel shows its
metric's one-line definition. Filters: team, manager, period. Enter on a bar, a week or a table
row (or `d`) drills down to the deals behind it; from there a deal opens its review history.

Everything is computed by `inspector.metrics` in a thread worker and comes back as a message.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Select, Static
from textual.worker import Worker, WorkerState

from inspector import metrics as mx
from inspector.money import format_compact
from inspector.services import Services
from inspector.widgets.bar_chart import Bar, BarChart
from inspector.widgets.text import styled, untrusted_line, untrusted_text
from inspector.widgets.trend_chart import TrendChart

#: (metric, how it is drawn, the series a trend shows) in screen order, two panels a row.
PANELS: list[tuple[str, str, tuple[str, ...]]] = [
    ("commit_conversion", "trend", ("commit called", "won")),
    ("slippage", "trend", ("pushes",)),
    ("pipeline_by_stage", "bars", ()),
    ("stage_aging", "bars", ()),
    ("handoff", "bars", ()),
    ("finance", "bars", ()),
    ("implementation_risk", "bars", ()),
    ("kickoff", "bars", ()),
    ("promise_risk", "bars", ()),
    ("coverage", "trend", ("coverage %",)),
    ("commit_exceptions", "table", ()),
    ("no_progress", "table", ()),
    ("call_differences", "table", ()),
    ("forecast_accuracy", "bars", ()),
    ("verdict_accuracy", "bars", ()),
    ("lost_reasons", "bars", ()),
    ("deal_desk", "bars", ()),
]
PANEL_KIND = {k: kind for k, kind, _s in PANELS}
PANEL_SERIES = {k: s for k, _kind, s in PANELS}
DEFAULT_PERIOD = "last-13-weeks"
MONEY_COLUMNS = {"Amount", "Amount called", "Called amount", "Won amount"}
PCT_COLUMNS = {"Won %", "Share", "Coverage", "Slipped or lost", "Differ %", "Missing %"}


def period_presets(today: date) -> list[tuple[str, str]]:
    """(label, period) choices for the period picker, each understood by `parse_period`."""
    first = today.replace(day=1)
    last_month = first - timedelta(days=1)
    q = (today.month - 1) // 3 + 1
    lq_year, lq = (today.year, q - 1) if q > 1 else (today.year - 1, 4)
    return [("Last 4 weeks", "last-4-weeks"), ("Last 8 weeks", "last-8-weeks"),
            ("Last 13 weeks", "last-13-weeks"),
            (f"{calendar.month_name[today.month]} {today.year}", f"{today.year}-{today.month:02d}"),
            (f"{calendar.month_name[last_month.month]} {last_month.year}",
             f"{last_month.year}-{last_month.month:02d}"),
            (f"Q{q} {today.year}", f"{today.year}-Q{q}"), (f"Q{lq} {lq_year}", f"{lq_year}-Q{lq}"),
            (str(today.year), str(today.year)), (str(today.year - 1), str(today.year - 1))]


def cell_text(column: str, value: object) -> str:
    if value is None:
        return "-"
    if column in PCT_COLUMNS and isinstance(value, (int, float)):
        return f"{value:.0f}%"
    if column in MONEY_COLUMNS and isinstance(value, (int, float)):
        return format_compact(int(value))
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def bars_of(result: mx.MetricResult) -> list[Bar]:
    col = result.bar_column
    name = result.columns[col] if col < len(result.columns) else ""
    out = []
    for row, key in zip(result.rows, result.row_keys):
        value = row[col] if col < len(row) else 0
        number = float(value) if isinstance(value, (int, float)) else 0.0
        text = cell_text(name, value)
        if result.key == "stage_aging":
            text = f"{number:.0f}d avg, {row[4]} past {row[5]}d"
        elif result.key == "pipeline_by_stage":
            text = f"{text} · {row[2]} deals"
        out.append(Bar(str(key), str(row[0]), number, text))
    return out


class DashboardScreen(Screen[None]):
    CSS_PATH = "dashboard_screen.tcss"
    BINDINGS = [
        Binding("t", "pick('team')", "Team", tooltip="Only one team"),
        Binding("m", "pick('manager')", "Manager", tooltip="Only one manager"),
        Binding("p", "pick('period')", "Period", tooltip="The period the metrics look at"),
        Binding("d", "drill", "Drill", tooltip="The deals behind the highlighted bar, week or row"),
        Binding("tab", "app.focus_next", "Next", show=False),
        Binding("r", "reload", "Reload", tooltip="Compute the metrics again"),
        Binding("escape", "back", "Back", tooltip="Back to the previous screen"),
        Binding("f2", "app.open('review')", "Review"),
        Binding("f4", "app.open('handoff')", "Handoff"),
        Binding("q", "app.quit", "Quit", show=False),
    ]

    @dataclass
    class MetricsLoaded(Message):
        scope: mx.Scope
        results: dict[str, mx.MetricResult]
        options: tuple[list[str], list[tuple[str, str]]] | None

    def __init__(self, services: Services, deal_id: int | None = None) -> None:
        super().__init__()
        self.services = services
        self.deal_id = deal_id  # the Dashboard is not about one deal; kept for F2/F4
        self.results: dict[str, mx.MetricResult] = {}
        self.scope: mx.Scope | None = None
        self.pairs: list[tuple[str, str]] = []
        self._options_loaded = False
        self._quiet = False

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        today = self.services.clock.today()
        yield Header()
        with Horizontal(id="filters"):
            yield Select([], prompt="All teams", compact=True, id="team")
            yield Select([], prompt="All managers", compact=True, id="manager")
            yield Select([(Content(label), value) for label, value in period_presets(today)],
                         value=DEFAULT_PERIOD, allow_blank=False, compact=True, id="period")
        yield Static("Computing the metrics…", id="scope")
        with VerticalScroll(id="panels"):
            for i in range(0, len(PANELS), 2):
                with Horizontal(classes="panel-row"):
                    for key, kind, _series in PANELS[i:i + 2]:
                        with Vertical(classes=f"panel -{kind}", id=f"panel-{key}"):
                            yield Static(self._text(key, "Computing…"), classes="about", id=f"about-{key}")
                            yield self._chart(key, kind)
        yield Footer(compact=True)

    @staticmethod
    def _text(key: str, headline: str) -> Content:
        """The metric's one-line definition (muted) over its headline (bold)."""
        return styled("[dim]$definition[/dim]\n[b]$headline[/b]", definition=mx.DEFINITIONS[key][1],
                      headline=headline)

    def _chart(self, key: str, kind: str) -> Widget:
        if kind == "trend":
            return TrendChart(id=f"chart-{key}", value_format="{:,.0f}")
        if kind == "table":
            table = DataTable(id=f"chart-{key}", cursor_type="row", zebra_stripes=True)
            return table
        chart = BarChart(id=f"chart-{key}", label_width=24)
        chart.empty_text = "Computing…"
        return chart

    def on_mount(self) -> None:
        for key, _kind, _s in PANELS:
            self.query_one(f"#panel-{key}").border_title = mx.DEFINITIONS[key][0]
        self.app.sub_title = "Dashboard"
        self.query_one("#chart-commit_conversion").focus()
        self.compute(self._scope_from_widgets(), with_options=True)

    def current_deal_id(self) -> int | None:
        return self.deal_id

    # -- filters ---------------------------------------------------------------------------------
    def _scope_from_widgets(self) -> mx.Scope:
        today = self.services.clock.today()

        def val(id_: str):
            return self.query_one(f"#{id_}", Select).selection

        start, end, label = mx.parse_period(val("period") or DEFAULT_PERIOD, today)
        return mx.Scope(start, end, today, team=val("team"), manager=val("manager"), label=label)

    @on(Select.Changed)
    def filter_changed(self, event: Select.Changed) -> None:
        if self._quiet:
            return
        if event.select.id == "team":
            self._fill_managers()
        self.compute(self._scope_from_widgets())

    def set_filters(self, **values: str | None) -> None:
        """Set pickers by id (`team=`, `manager=`, `period=`; None clears) and compute once."""
        self._quiet = True
        try:
            for id_, v in values.items():
                select = self.query_one(f"#{id_}", Select)
                if v is None:
                    select.clear()
                else:
                    select.value = v
                if id_ == "team":
                    self._fill_managers()
        finally:
            self._quiet = False
        self.compute(self._scope_from_widgets())

    def _fill_managers(self) -> None:
        team = self.query_one("#team", Select).value
        managers = self.query_one("#manager", Select)
        current = managers.value
        names = sorted({m for m, t in self.pairs if m and (team is Select.NULL or t == team)})
        quiet, self._quiet = self._quiet, True
        managers.set_options([(untrusted_line(m), m) for m in names])
        if current in names:
            managers.value = current
        self._quiet = quiet

    def action_pick(self, which: str) -> None:
        select = self.query_one(f"#{which}", Select)
        select.focus()
        select.expanded = True

    # -- computing -------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="dashboard", exit_on_error=False)
    def compute(self, scope: mx.Scope, with_options: bool = False) -> None:
        svc = self.services
        options = mx.filter_options(svc.store) if with_options else None
        results = mx.compute_all(svc.store, svc.playbook, scope, mx.DASHBOARD_KEYS)
        self.post_message(self.MetricsLoaded(scope, results, options))

    @on(Worker.StateChanged)
    def report_failure(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.notify(untrusted_line(event.worker.error), title="Could not compute the metrics",
                        severity="error")

    @on(MetricsLoaded)
    def show_metrics(self, message: MetricsLoaded) -> None:
        if message.options is not None and not self._options_loaded:
            self._options_loaded = True
            teams, self.pairs = message.options
            self._quiet = True
            self.query_one("#team", Select).set_options([(untrusted_line(t), t) for t in teams])
            self._quiet = False
            self._fill_managers()
        self.scope = message.scope
        self.results = message.results
        self.query_one("#scope", Static).update(styled(
            "[b]$scope[/b] · $start to $last · amounts at face value · enter or d: the deals behind it",
            scope=message.scope.describe(), start=message.scope.start.isoformat(),
            last=message.scope.last_day.isoformat()))
        for key, kind, _s in PANELS:
            result = message.results.get(key)
            if result is None:
                continue
            self.query_one(f"#about-{key}", Static).update(self._text(key, result.headline))
            if kind == "trend":
                self._show_trend(key, result)
            elif kind == "table":
                self._show_table(key, result)
            else:
                chart = self.query_one(f"#chart-{key}", BarChart)
                chart.empty_text = "Nothing in this period"
                chart.set_bars(bars_of(result))

    def _show_trend(self, key: str, result: mx.MetricResult) -> None:
        names = [n for n in PANEL_SERIES[key] if n in result.series]
        weeks = sorted({w for n in names for w, _v in result.series[n]})
        series = []
        for n in names:
            values = dict(result.series[n])
            series.append((n, [values.get(w, 0.0) for w in weeks]))
        self.query_one(f"#chart-{key}", TrendChart).set_series(weeks, series)

    def _show_table(self, key: str, result: mx.MetricResult) -> None:
        table = self.query_one(f"#chart-{key}", DataTable)
        table.clear(columns=True)
        for col in result.columns:
            table.add_column(untrusted_text(col))
        for i, row in enumerate(result.rows):
            table.add_row(*(untrusted_text(cell_text(c, v)) for c, v in zip(result.columns, row)), key=str(i))
        if not result.rows:
            table.add_row(*([untrusted_text("none in this period")] + [untrusted_text("")] *
                            (len(result.columns) - 1)), key="none")

    # -- drill-down ------------------------------------------------------------------------------
    @on(BarChart.BarSelected)
    def bar_selected(self, message: BarChart.BarSelected) -> None:
        key = message.chart.id.removeprefix("chart-")
        self.open_drill(key, message.key, message.label, "rows")

    @on(TrendChart.WeekSelected)
    def week_selected(self, message: TrendChart.WeekSelected) -> None:
        key = message.chart.id.removeprefix("chart-")
        self.open_drill(key, message.week, f"week of {message.week}", "week")

    @on(DataTable.RowSelected)
    def row_selected(self, message: DataTable.RowSelected) -> None:
        key = message.data_table.id.removeprefix("chart-")
        result = self.results.get(key)
        if result is None or message.row_key.value == "none":
            return
        i = int(message.row_key.value)
        self.open_drill(key, str(result.row_keys[i]), str(result.rows[i][0]), "rows")

    def open_drill(self, key: str, bucket: str, label: str, base: str) -> None:
        from inspector.screens.drill_modal import DrillModal

        if self.scope is None:
            return
        result = self.results.get(key)
        buckets = [bucket]
        if key == "coverage" and base == "week" and result is not None:  # every team's row of that week
            buckets = [k for k in result.row_keys if str(k).startswith(bucket + "|")]
            base = "rows"
        title = mx.DEFINITIONS[key][0]
        self.app.push_screen(DrillModal(self.services, self.scope, key, buckets, base, title, label))

    def action_drill(self) -> None:
        focused = self.focused
        if isinstance(focused, BarChart):
            focused.action_select_bar()
        elif isinstance(focused, TrendChart):
            focused.action_select_week()
        elif isinstance(focused, DataTable) and focused.row_count:
            focused.action_select_cursor()
        else:
            self.notify("Move to a chart or table first (tab)", severity="warning")

    def action_reload(self) -> None:
        self.compute(self._scope_from_widgets())

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
