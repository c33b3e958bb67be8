"""Pipeline: the team's open deals, what changed, the findings; filter, sort, open a deal."""
from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import Worker, WorkerState

from inspector.money import format_compact
from inspector.pipeline import COLUMNS, COLUMN_KEYS, PipelineView, full_findings, quick_findings
from inspector.rules import summarize_changes
from inspector.services import Services
from inspector.storage.inspections import Inspections
from inspector.widgets.deal_grid import Column, DealGrid
from inspector.widgets.text import styled, untrusted_line


class PipelineScreen(Screen[None]):
    CSS_PATH = "pipeline_screen.tcss"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", tooltip="Type to filter; rep: stage: cat: has: is:changed"),
        Binding("escape", "clear_filter", "Clear", show=False),
        Binding("s", "cycle_sort", "Sort", tooltip="Sort by the next column"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("t", "choose_team", "Team", tooltip="Choose the team (scope)"),
        Binding("c", "toggle_changed", "Changed", tooltip="Show only deals changed since the last inspection"),
        Binding("f", "toggle_flagged", "Flagged", tooltip="Show only deals with findings"),
        Binding("i", "inspect", "Inspect",
                tooltip="Start or resume this week's inspection of the team (rep: filters narrow it to those reps)"),
        Binding("enter", "inspect", "Inspect", show=False),
        Binding("r", "refresh", "Reload", tooltip="Reload from the store"),
        Binding("f2", "app.open('review')", "Review"),
        Binding("f3", "app.open('dashboard')", "Metrics"),
        Binding("f4", "app.open('handoff')", "Handoff"),
        Binding("f5", "app.open('sync')", "Sync"),
        Binding("f6", "app.open('import')", "Import"),
        Binding("q", "app.quit", "Quit"),
    ]

    @dataclass
    class DealsLoaded(Message):
        """A view built in the worker; `phase` is first-page | rows | findings | complete."""

        view: PipelineView
        phase: str

    def __init__(self, services: Services, team: str | None = None) -> None:
        super().__init__()
        self.services = services
        self.team = team
        self.view = PipelineView(services.playbook, services.clock.today())
        self.sort_column: str | None = "close"
        self.sort_desc = False
        self._loaded = False
        self.phase = ""
        self.since = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="topbar"):
            yield Input(placeholder="Filter: words, rep:NAME stage:KEY cat:commit has:stale is:changed",
                        id="filter")
        yield Static(id="summary")
        yield DealGrid([Column(c.key, c.label, c.width, c.align) for c in COLUMNS], id="deals")
        yield Static(id="detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        grid = self.query_one(DealGrid)
        grid.empty_text = "Loading deals…"
        grid.set_sort_indicator(self.sort_column, self.sort_desc)
        grid.focus()
        self._update_title()
        self.load_deals()

    def _update_title(self) -> None:
        scope = self.team or "All teams"
        self.app.sub_title = f"{scope} · {self.services.clock.today().isoformat()}"

    # -- loading --------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="db", exit_on_error=False)
    def load_deals(self) -> None:
        """Progressive: the first page by close date, then every row, then the findings.

        Views are built here, off the UI thread; the screen only swaps them in."""
        from datetime import datetime, time, timedelta, timezone

        from textual.worker import get_current_worker

        worker = get_current_worker()
        svc = self.services
        pb = svc.playbook
        today = svc.clock.today()

        last: list[PipelineView] = []

        def publish(rows, phase, findings=None, changes=None) -> None:
            view = PipelineView(pb, today)
            view.load(rows, findings, changes, previous=last[0] if last else None)
            last[:] = [view]
            if not worker.is_cancelled:
                self.post_message(self.DealsLoaded(view, phase))

        publish(svc.store.list_deals(today, team=self.team, first=200), "first-page")
        rows = svc.store.list_deals(today, team=self.team)
        publish(rows, "rows")
        since = Inspections(svc.store).last_finished_at(self.team) if self.team else None
        if since is None:
            since = datetime.combine(today - timedelta(days=pb.thresholds.changes_lookback_days),
                                     time(0), tzinfo=timezone.utc)
        self.since = since
        changes = summarize_changes(pb, svc.store.changes_since(since, parse_times=False), presorted=True)
        publish(rows, "findings", quick_findings(pb, rows, today), changes)
        if worker.is_cancelled:
            return
        publish(rows, "complete", full_findings(svc.store, pb, rows, today), changes)

    @on(DealsLoaded)
    def show_deals(self, message: DealsLoaded) -> None:
        self.view = message.view
        self.phase = message.phase
        self._loaded = message.phase == "complete"
        grid = self.query_one(DealGrid)
        grid.empty_text = "No deals match" if message.view.items else "No open deals in this scope"
        self.apply_view()

    def apply_view(self) -> None:
        query = self.query_one("#filter", Input).value
        rows, keys = self.view.view(query, self.sort_column, self.sort_desc)
        grid = self.query_one(DealGrid)
        grid.set_rows(rows, keys)
        self._show_summary(rows)
        self._show_detail(grid.cursor_key)  # findings may have arrived for the same row

    def _show_summary(self, items: list) -> None:
        t = self.view.totals_of(items)
        pending = {"first-page": " · loading all deals…", "rows": " · checking findings…",
                   "findings": " · checking evidence…"}.get(self.phase, "")
        self.query_one("#summary", Static).update(styled(
            "[b]$count[/b] deals · $total · Commit [b]$commit[/b] · Best case $best · "
            "Pipeline $pipe · [b]$changed[/b] changed since $since · [b]$flagged[/b] flagged$pending",
            count=f"{t['count']:,}", total=format_compact(t["total"]), commit=format_compact(t["commit"]),
            best=format_compact(t["best_case"]), pipe=format_compact(t["pipeline"]),
            changed=t["changed"], flagged=t["flagged"], pending=pending,
            since=self.since.date().isoformat() if self.since else "last week"))

    @on(Worker.StateChanged)
    def report_failure(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.notify(untrusted_line(event.worker.error), title="Could not load deals",
                        severity="error")

    # -- interaction ----------------------------------------------------------------------------
    @on(Input.Changed, "#filter")
    def filter_changed(self) -> None:
        self.apply_view()

    @on(Input.Submitted, "#filter")
    def filter_submitted(self) -> None:
        self.query_one(DealGrid).focus()

    @on(DealGrid.RowHighlighted)
    def show_detail(self, message: DealGrid.RowHighlighted) -> None:
        self._show_detail(message.key)

    def _show_detail(self, key: int | None) -> None:
        detail = self.query_one("#detail", Static)
        item = self.view.by_id.get(key) if key is not None else None
        if item is None:
            detail.update("")
            return
        lines = [f.message for f in item.findings] or ["No findings"]
        nxt = item.row.next_step or "none"
        detail.update(styled("[b]$name[/b] · next step: $next ($date)\n$findings",
                             name=item.row.name, next=nxt, date=item.row.next_step_date or "no date",
                             findings=" · ".join(lines)))

    @on(DealGrid.HeaderClicked)
    def sort_by_header(self, message: DealGrid.HeaderClicked) -> None:
        if message.column_key == self.sort_column:
            self.sort_desc = not self.sort_desc
        else:
            self.sort_column, self.sort_desc = message.column_key, False
        self._resort()

    def _resort(self) -> None:
        self.query_one(DealGrid).set_sort_indicator(self.sort_column, self.sort_desc)
        self.apply_view()

    def action_cycle_sort(self) -> None:
        i = COLUMN_KEYS.index(self.sort_column) if self.sort_column in COLUMN_KEYS else -1
        self.sort_column, self.sort_desc = COLUMN_KEYS[(i + 1) % len(COLUMN_KEYS)], False
        self._resort()

    def action_reverse_sort(self) -> None:
        self.sort_desc = not self.sort_desc
        self._resort()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.value:
            box.value = ""
        self.query_one(DealGrid).focus()

    def current_deal_id(self) -> int | None:
        """The highlighted deal (other screens open on it)."""
        return self.query_one(DealGrid).cursor_key

    def _toggle_token(self, token: str) -> None:
        box = self.query_one("#filter", Input)
        words = box.value.split()
        box.value = " ".join(w for w in words if w != token) if token in words else " ".join(words + [token])

    def action_toggle_changed(self) -> None:
        self._toggle_token("is:changed")

    def action_toggle_flagged(self) -> None:
        self._toggle_token("is:flagged")

    def action_refresh(self) -> None:
        self.load_deals()

    def action_choose_team(self) -> None:
        from inspector.screens.team_modal import TeamModal

        def chosen(team: str | None | bool) -> None:
            if team is False:
                return
            self.team = team or None
            self._update_title()
            self.load_deals()

        self.app.push_screen(TeamModal(self.services), chosen)

    # -- the inspection ---------------------------------------------------------------------------
    def action_inspect(self) -> None:
        if self.services.read_only:
            self.notify("Read-only mode: open the Review instead", severity="warning")
            return
        if not self.team:
            self.notify("Choose the team to inspect first (t)", severity="warning")
            self.action_choose_team()
            return
        # `rep:NAME` terms in the filter narrow the scope to those reps
        wanted = [t.partition(":")[2] for t in self.query_one("#filter", Input).value.lower().split()
                  if t.startswith("rep:") and len(t) > 4]
        reps = sorted({it.row.owner for it in self.view.items
                       if any(w in it.row.owner.lower() for w in wanted)}) if wanted else None
        if wanted and not reps:
            self.notify("No rep in this team matches the rep: filter", severity="warning")
            return
        self.start_inspection(self.team, reps)

    @work(thread=True, exclusive=True, group="session", exit_on_error=False)
    def start_inspection(self, team: str, reps: list[str] | None = None) -> None:
        from inspector.inspect import build_queue

        svc = self.services
        insp = Inspections(svc.store)
        session = insp.open_session_for(svc.actor, team)
        resumed = session is not None
        if session is None:
            queue = build_queue(svc.store, insp, svc.playbook, svc.clock.today(), team, reps)
            if not queue:
                self.app.call_from_thread(self.notify, "No open deals to inspect in this scope")
                return
            scope = {"team": team, **({"reps": reps} if reps else {})}
            session = insp.start_session(manager=svc.actor, team=team, queue=queue,
                                         week_of=svc.clock.today(), now=svc.clock.now(), scope=scope)
        self.app.call_from_thread(self._open_session, session.id, session.current_deal_id or session.queue[0],
                                  session.current_question, resumed)

    def _open_session(self, session_id: int, deal_id: int, question: str | None, resumed: bool) -> None:
        from inspector.screens.inspect_screen import InspectScreen

        screen = InspectScreen(self.services, session_id, deal_id, question)
        if resumed:
            screen.last_saved = "Resumed your open inspection where you stopped"
        self.app.push_screen(screen)
