"""Review: what managers recorded, for RevOps. Sessions by manager, team and week; every
inspection with its answers, verdicts, risks, forecast call and exceptions; filters; and one
deal's full history across the weeks (what moved, what each inspection said, the patterns);
and, across deals, the open handoff exceptions and the post-sale feedback patterns (`e`).

Read-only: every query runs in a thread worker and comes back as a message; nothing here
writes, so it works on a `--read-only` connection. Three views share the screen (a
ContentSwitcher): the log (sessions, inspections, detail of the highlighted inspection), one
deal's history, and the RevOps list (open handoff exceptions, feedback patterns; Enter opens
the deal's Handoff screen, `h` its history). Opened with `deal_id`, it starts on that deal's
history.
"""
from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, Static
from textual.worker import Worker, WorkerState

from inspector import review as rv
from inspector.money import format_compact, format_money
from inspector.services import Services
from inspector.widgets.deal_grid import Column, DealGrid
from inspector.widgets.text import styled, untrusted_line

SESSION_COLUMNS = [Column("week", "Week", 10), Column("team", "Team", 20), Column("manager", "Manager", 18),
                   Column("done", "Insp.", 5, "right"), Column("over", "Over", 4, "right"),
                   Column("exc", "Exc", 3, "right"), Column("risks", "Risk", 4, "right")]
FINDING_COLUMNS = [Column("week", "Week", 5), Column("deal", "Deal", 21), Column("stage", "Stage", 11),
                   Column("close", "Close date", 12), Column("call", "Call (rep→mgr)", 15),
                   Column("flags", "!", 3)]
WEEK_COLUMNS = [Column("week", "Week", 10), Column("stage", "Stage", 17), Column("amount", "Amount", 9, "right"),
                Column("close", "Close date", 10), Column("stage_v", "Stage verdict", 13),
                Column("close_v", "Close verdict", 13), Column("call", "Call (rep→mgr)", 21),
                Column("exception", "Exception", 30)]
EXCEPTION_COLUMNS = [Column("due", "Due", 10), Column("late", "Overdue", 7, "right"), Column("deal", "Deal", 26),
                     Column("item", "Missing item", 24), Column("owner", "Owner", 16), Column("risk", "Risk", 20),
                     Column("age", "Age", 4, "right")]
FEEDBACK_COLUMNS = [Column("category", "Category", 40), Column("items", "Items", 5, "right"),
                    Column("deals", "Deals", 5, "right"), Column("deal", "Deal", 36),
                    Column("on_deal", "On deal", 7, "right"), Column("last", "Last", 10)]
CHANGE_COLUMNS = [Column("at", "Date", 10), Column("field", "Field", 18), Column("old", "Old", 24),
                  Column("new", "New", 24), Column("source", "Source", 12)]
EXCEPTION_LABELS = {"any": "Any exception", "commit": "Commit w/o criteria", "handoff": "Handoff exception",
                    "category_change": "Call ≠ rep"}
SHORT_CAT = {"commit": "Commit", "best_case": "Best", "pipeline": "Pipe", "omit": "Omit"}


def _words(value: str) -> str:
    return value.replace("_", " ") if value else "-"


def _call(rep: str, mgr: str) -> str:
    rep_s, mgr_s = SHORT_CAT.get(rep, rep) or "-", SHORT_CAT.get(mgr, mgr)
    if not mgr or mgr == rep:
        return rep_s
    return f"{rep_s}→{mgr_s}"


CHANGE_FIELDS = {"amount_minor": "amount", "close_date": "close date", "forecast_category": "category",
                 "stage": "stage", "created": "created in stage"}


def _change_value(pb, field: str, value: str | None, currency: str) -> str:  # noqa: ANN001
    """A recorded change's old/new value as the manager reads it: labels and money, not keys."""
    if value in (None, ""):
        return "-"
    if field in ("stage", "created"):
        return pb.stage_label(value)
    if field == "forecast_category":
        return pb.category_label(value)
    if field == "amount_minor":
        try:
            return format_money(int(value), currency)
        except ValueError:
            return value
    return value


def _flags(f: rv.FindingRow) -> str:
    out = ""
    if f.forecast_call == "commit" and (f.commit_criteria_met is False or f.commit_exception.strip()):
        out += "E"
    if f.risks:
        out += "R"
    if f.call_differs:
        out += "≠"
    return out


class ReviewScreen(Screen[None]):
    CSS_PATH = "review_screen.tcss"
    BINDINGS = [
        Binding("slash", "focus_filters", "Filters", tooltip="Filter by manager, team, rep, verdict, risk, exception, weeks"),
        # o and x are named on the filter line (footer room goes to e at 120 columns)
        Binding("o", "overstated", "Overstated", show=False,
                tooltip="Only inspections with a verdict of overstated (toggle)"),
        Binding("x", "clear_filters", "Clear", show=False, tooltip="Clear every filter"),
        Binding("s", "focus_sessions", "Sessions", tooltip="Sessions by manager, team and week"),
        Binding("i", "focus_findings", "Inspections", tooltip="Every inspection matching the filters"),
        Binding("h", "history", "History", tooltip="The highlighted deal's history across the weeks"),
        Binding("e", "revops", "Exceptions",
                tooltip="Open handoff exceptions and post-sale feedback patterns, all deals (toggle)"),
        Binding("r", "reload", "Reload", tooltip="Read the log again"),
        Binding("escape", "back", "Back", tooltip="Back to the log, clear the session, or leave"),
        Binding("f3", "app.open('dashboard')", "Metrics"),
        Binding("f4", "app.open('handoff')", "Handoff"),
        Binding("q", "app.quit", "Quit", show=False),
    ]

    @dataclass
    class LogLoaded(Message):
        filters: rv.ReviewFilters
        sessions: list[rv.SessionRow]
        findings: list[rv.FindingRow]
        values: dict[str, list[str]] | None  # the filter choices, on the first load

    @dataclass
    class DetailLoaded(Message):
        detail: rv.InspectionDetail

    @dataclass
    class HistoryLoaded(Message):
        history: rv.DealHistory

    @dataclass
    class RevOpsLoaded(Message):
        exceptions: list[rv.HandoffExceptionRow]
        patterns: list[rv.FeedbackPattern]

    def __init__(self, services: Services, deal_id: int | None = None) -> None:
        super().__init__()
        self.services = services
        self.start_deal_id = deal_id
        self.filters = rv.ReviewFilters()
        self.session_id: int | None = None
        self.findings: dict[int, rv.FindingRow] = {}
        self.history: rv.DealHistory | None = None
        self.log_loaded = False
        self.values: dict[str, list[str]] | None = None
        self.exception_deals: dict[int, int] = {}  # exception id -> deal id
        self.feedback_deals: list[int] = []  # feedback grid row key -> deal id
        self.history_from = "log"  # the view Esc goes back to from a deal's history

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with ContentSwitcher(initial="log", id="views"):
            with Vertical(id="log"):
                yield Static(id="filters")
                yield Static("Loading the inspection log…", id="summary")
                with Horizontal(id="body"):
                    with Vertical(id="lists"):
                        yield DealGrid(SESSION_COLUMNS, id="sessions")
                        yield DealGrid(FINDING_COLUMNS, id="findings")
                    with VerticalScroll(id="detail-box"):
                        yield Static(id="detail")
            with Vertical(id="history"):
                yield Static("Loading the deal's history…", id="history-head")
                yield Static(id="patterns")
                yield DealGrid(WEEK_COLUMNS, id="weeks")
                yield DealGrid(CHANGE_COLUMNS, id="changes")
            with Vertical(id="revops"):
                yield Static("Loading open handoff exceptions and feedback…", id="revops-head")
                yield DealGrid(EXCEPTION_COLUMNS, id="open-exceptions")
                yield DealGrid(FEEDBACK_COLUMNS, id="feedback")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#sessions").border_title = "Sessions · enter: only this session"
        self.query_one("#findings").border_title = "Inspections · enter: history · ! E exception, R risk, ≠ call changed"
        self.query_one("#detail-box").border_title = "Inspection"
        self.query_one("#weeks").border_title = "Week by week: the deal then, and what the inspection said"
        self.query_one("#changes").border_title = "Changes recorded"
        self.query_one("#open-exceptions").border_title = (
            "Open handoff exceptions · earliest due first · enter: handoff · h: history")
        self.query_one("#feedback").border_title = "Post-sale feedback patterns · repeated first · enter: handoff"
        self.query_one("#sessions", DealGrid).empty_text = "Loading…"
        self.query_one("#findings", DealGrid).empty_text = "Loading…"
        self.app.sub_title = "Review · read-only" if self.services.read_only else "Review"
        self._show_filters()
        if self.start_deal_id is not None:
            self._show_view("history")
            self.load_history(self.start_deal_id)
        else:
            self.query_one("#findings", DealGrid).focus()
        self.load_log(self.filters, with_values=True)

    # -- workers -------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="review-log", exit_on_error=False)
    def load_log(self, filters: rv.ReviewFilters, with_values: bool = False) -> None:
        store = self.services.store
        values = rv.filter_values(store) if with_values else None
        sessions = rv.list_sessions(store, filters)
        findings = rv.list_findings(store, filters)
        self.post_message(self.LogLoaded(filters, sessions, findings, values))

    @work(thread=True, exclusive=True, group="review-detail", exit_on_error=False)
    def load_detail(self, inspection_id: int) -> None:
        self.post_message(self.DetailLoaded(
            rv.inspection_detail(self.services.store, self.services.playbook, inspection_id)))

    @work(thread=True, exclusive=True, group="review-history", exit_on_error=False)
    def load_history(self, deal_id: int) -> None:
        try:
            history = rv.deal_history(self.services.store, self.services.playbook, deal_id)
        except KeyError:
            raise LookupError(f"No deal {deal_id} in this store") from None
        self.post_message(self.HistoryLoaded(history))

    @work(thread=True, exclusive=True, group="review-revops", exit_on_error=False)
    def load_revops(self) -> None:
        store = self.services.store
        self.post_message(self.RevOpsLoaded(rv.handoff_exceptions(store, self.services.clock.today()),
                                            rv.feedback_pattern_rows(store, self.services.playbook)))

    @on(Worker.StateChanged)
    def report_failure(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.notify(untrusted_line(event.worker.error), title="Could not read the log", severity="error")

    # -- the log -------------------------------------------------------------------------------
    @on(LogLoaded)
    def show_log(self, message: LogLoaded) -> None:
        if message.values is not None:
            self.values = message.values
        self.log_loaded = True
        self.findings = {f.inspection_id: f for f in message.findings}
        sessions = self.query_one("#sessions", DealGrid)
        sessions.empty_text = "No sessions match the filters"
        sessions.set_rows([(s.week_of.isoformat(), s.team, s.manager, f"{s.inspected}/{s.deals}",
                            str(s.overstated), str(s.commit_exceptions), str(s.risks))
                           for s in message.sessions], [s.id for s in message.sessions])
        sessions.set_row_styles({s.id: "warn" for s in message.sessions if s.id == self.session_id})
        grid = self.query_one("#findings", DealGrid)
        grid.empty_text = "No inspections match the filters"
        rows, keys = [], []
        for f in message.findings:
            stage = f.stage_verdict or ("skipped" if f.status == "skipped" else f.status or "-")
            rows.append((f.week_of.isoformat()[5:], f.deal, _words(stage), _words(f.close_date_verdict),
                         _call(f.rep_category, f.forecast_call), _flags(f)))
            keys.append(f.inspection_id)
        grid.set_rows(rows, keys)
        grid.set_row_styles({f.inspection_id: "warn" for f in message.findings
                             if f.stage_verdict == "overstated" or f.close_date_verdict == "not_credible"})
        self._show_summary(message)
        if grid.cursor_key is None:
            self._show_detail_placeholder()
        else:
            self.load_detail(grid.cursor_key)

    def _show_summary(self, message: LogLoaded) -> None:
        fs = message.findings
        over = sum(f.stage_verdict == "overstated" for f in fs)
        exc = sum(_flags(f).startswith("E") for f in fs)
        scope = message.filters.describe()
        self.query_one("#summary", Static).update(styled(
            "[b]$sessions[/b] sessions · [b]$n[/b] inspections · [b]$over[/b] overstated · "
            "[b]$exc[/b] Commit calls without the criteria · [dim]$scope[/dim]",
            sessions=len(message.sessions), n=len(fs) if len(fs) < 5000 else "first 5000", over=over,
            exc=exc, scope=scope))

    def _show_filters(self) -> None:
        f = self.filters
        parts = []
        risk_label = self.services.playbook.risk_label
        for label, v in (("manager", f.manager), ("team", f.team), ("rep", f.rep),
                         ("verdict", _words(f.verdict or "") if f.verdict else None),
                         ("risk", risk_label.get(f.risk_type, f.risk_type) if f.risk_type else None),
                         ("exception", EXCEPTION_LABELS.get(f.exception, f.exception) if f.exception else None),
                         ("from week", f.week_from.isoformat() if f.week_from else None),
                         ("to week", f.week_to.isoformat() if f.week_to else None),
                         ("session", f"#{f.session_id}" if f.session_id else None)):
            if v:
                parts.append(styled("$label [b]$v[/b]", label=label, v=v))
        body = Content(" · ").join(parts) if parts else Content("none")
        self.query_one("#filters", Static).update(
            Content.assemble(Content.from_markup("[b]Filters:[/b] "), body,
                             Content.from_markup("  [dim]/ change · o overstated · x clear[/dim]")))

    def apply_filters(self, filters: rv.ReviewFilters | None = None) -> None:
        """Show the log for `filters` (default: the current ones with the session pick)."""
        from dataclasses import replace

        filters = replace(filters or self.filters, session_id=self.session_id)
        if filters != self.filters:
            self.filters = filters
            self._show_filters()
            self.load_log(filters)

    def set_filters(self, **values: object) -> None:
        """Change some filters (`manager=`, `verdict=`, `week_from=`...; None clears) and reload."""
        from dataclasses import replace

        self.apply_filters(replace(self.filters, **values))

    @on(DealGrid.RowHighlighted, "#findings")
    def finding_highlighted(self, message: DealGrid.RowHighlighted) -> None:
        if message.key is None:
            self._show_detail_placeholder()
        else:
            self.load_detail(message.key)

    @on(DealGrid.RowSelected, "#findings")
    def finding_selected(self, message: DealGrid.RowSelected) -> None:
        self.action_history()

    @on(DealGrid.RowSelected, "#sessions")
    def session_selected(self, message: DealGrid.RowSelected) -> None:
        self.session_id = None if self.session_id == message.key else message.key
        self.apply_filters()
        if self.session_id is not None:
            self.query_one("#findings", DealGrid).focus()

    def _show_detail_placeholder(self) -> None:
        self.query_one("#detail", Static).update(Content("No inspection highlighted"))

    @on(DetailLoaded)
    def show_detail(self, message: DetailLoaded) -> None:
        grid = self.query_one("#findings", DealGrid)
        if grid.cursor_key != message.detail.finding.inspection_id:
            return  # the cursor moved on while this loaded
        self.query_one("#detail", Static).update(self._detail(message.detail))

    def _detail(self, d: rv.InspectionDetail) -> Content:
        pb = self.services.playbook
        f = d.finding
        lines: list[Content] = [
            styled("[b]$deal[/b] [dim]#$id[/dim]", deal=f.deal, id=f.deal_id),
            styled("$rep · $team", rep=f.rep or "no rep", team=f.team),
            styled("Week of $week · $manager · [b]$status[/b]", week=f.week_of.isoformat(),
                   manager=f.manager, status=f.status),
            Content(""),
            styled("Stage [b]$stage[/b] · $amount", stage=pb.stage_label(f.stage_at),
                   amount=format_money(f.amount_minor, f.currency)),
            styled("  verdict [b]$v[/b]$sup", v=_words(f.stage_verdict),
                   sup=f" (supports {pb.stage_label(f.supported_stage)})" if f.supported_stage else ""),
            styled("Close date [b]$cd[/b]", cd=f.close_date_at.isoformat() if f.close_date_at else "none"),
            styled("  verdict [b]$v[/b]$prop", v=_words(f.close_date_verdict),
                   prop=f" (proposed {f.proposed_close_date.isoformat()})" if f.proposed_close_date else ""),
            styled("Call: rep [b]$rep[/b] → manager [b]$mgr[/b]", rep=pb.category_label(f.rep_category) or "-",
                   mgr=pb.category_label(f.forecast_call) or "-"),
        ]
        if f.forecast_call == "commit":
            met = {True: "met", False: "not met", None: "not judged"}[f.commit_criteria_met]
            lines.append(styled("  commit criteria $met", met=met))
        if f.commit_exception.strip():
            lines.append(styled("  [b $warning]exception:[/] $exc", exc=f.commit_exception))
        if d.next_step:
            lines.append(styled("Next step: $s ($d)", s=d.next_step,
                                d=d.next_step_date.isoformat() if d.next_step_date else "no date"))
        lines += [Content(""), Content.from_markup("[b]Answers[/b]")]
        if d.answers:
            for question, answer, evidence in d.answers:
                lines.append(styled("[dim]$q[/dim]", q=question))
                lines.append(styled("  $a [dim]($e)[/dim]", a=answer or "-", e=evidence or "no evidence state"))
        else:
            lines.append(Content("  none recorded"))
        lines += [Content(""), Content.from_markup("[b]Risks[/b]")]
        if d.risks:
            for r in d.risks:
                lines.append(styled("• $t [dim]($sev, $st)[/dim]", t=pb.risk_label.get(r["type"], r["type"]),
                                    sev=r["severity"] or "-", st=r["status"] or "-"))
                lines.append(styled("  $owner, due $due: $m", owner=r["owner"] or "no owner",
                                    due=r["due_date"].isoformat() if r["due_date"] else "-",
                                    m=r["mitigation"] or "no mitigation"))
        else:
            lines.append(Content("  none"))
        if f.notes.strip():
            lines += [Content(""), Content.from_markup("[b]Notes[/b]"), styled("$n", n=f.notes)]
        return Content("\n").join(lines)

    # -- one deal's history ----------------------------------------------------------------------
    def action_history(self) -> None:
        deal_id = self._highlighted_deal()
        if deal_id is None:
            self.notify("Highlight an inspection first" if self.view == "log" else "Highlight a deal's row first",
                        severity="warning")
            return
        self.history_from = self.view if self.view != "history" else self.history_from
        self.query_one("#history-head", Static).update(Content("Loading the deal's history…"))
        self.query_one("#patterns", Static).update(Content(""))
        self._show_view("history")
        self.load_history(deal_id)

    @on(HistoryLoaded)
    def show_history(self, message: HistoryLoaded) -> None:
        self.history = h = message.history
        pb = self.services.playbook
        self.app.sub_title = "Review · deal history"
        self.query_one("#history-head", Static).update(Content("\n").join([
            styled("[b]$name[/b] [dim]#$id[/dim] · $account", name=h.name, id=h.deal_id, account=h.account),
            styled("$owner · $team · $manager", owner=h.owner or "no rep", team=h.team or "no team",
                   manager=h.manager or "no manager"),
            styled("Now: [b]$status[/b] · $stage · $amount · close $close · $cat · $pushes",
                   status=h.status, stage=pb.stage_label(h.stage), amount=format_compact(h.amount_minor, h.currency),
                   close=h.close_date.isoformat() if h.close_date else "none",
                   cat=pb.category_label(h.forecast_category) or "no category",
                   pushes={0: "close date never pushed", 1: "close date pushed once"}.get(
                       h.close_pushes, f"close date pushed {h.close_pushes} times")),
        ]))
        patterns = [styled("[b $warning]![/] $p", p=p) for p in h.patterns] or [
            Content.from_markup("[dim]Nothing notable across the weeks[/dim]")]
        self.query_one("#patterns", Static).update(Content("\n").join(patterns))
        weeks = self.query_one("#weeks", DealGrid)
        weeks.empty_text = "Never inspected"
        weeks.set_rows([(w.week_of.isoformat(), pb.stage_label(w.stage_at),
                         format_compact(w.amount_minor, w.currency),
                         w.close_date_at.isoformat() if w.close_date_at else "-",
                         _words(w.stage_verdict or w.status), _words(w.close_date_verdict),
                         _call(w.rep_category, w.forecast_call)
                         + (" (criteria not met)" if w.forecast_call == "commit" and w.commit_criteria_met is False
                            else ""),
                         w.commit_exception or "") for w in h.weeks],
                       [w.inspection_id for w in h.weeks])
        weeks.set_row_styles({w.inspection_id: "warn" for w in h.weeks
                              if w.stage_verdict == "overstated" or w.close_date_verdict == "not_credible"})
        changes = self.query_one("#changes", DealGrid)
        changes.empty_text = "No changes recorded"
        changes.set_rows([(c.at.date().isoformat(), CHANGE_FIELDS.get(c.field, c.field),
                           _change_value(pb, c.field, c.old, h.currency), _change_value(pb, c.field, c.new, h.currency),
                           c.source) for c in h.changes], list(range(len(h.changes))))
        if self.query_one("#views", ContentSwitcher).current == "history":
            weeks.focus()

    def _show_view(self, name: str) -> None:
        self.query_one("#views", ContentSwitcher).current = name
        if name == "history":
            self.query_one("#weeks", DealGrid).focus()
        elif name == "revops":
            self.app.sub_title = "Review · handoff exceptions and feedback"
            exceptions = self.query_one("#open-exceptions", DealGrid)
            feedback = self.query_one("#feedback", DealGrid)
            if not feedback.has_focus:
                exceptions.focus()
        else:
            self.app.sub_title = "Review · read-only" if self.services.read_only else "Review"
            self.query_one("#findings", DealGrid).focus()
        self.refresh_bindings()

    @property
    def view(self) -> str:
        return self.query_one("#views", ContentSwitcher).current or "log"

    def _highlighted_deal(self) -> int | None:
        if self.view == "revops":
            return self._revops_deal()
        key = self.query_one("#findings", DealGrid).cursor_key
        f = self.findings.get(key) if key is not None else None
        return f.deal_id if f else None

    def current_deal_id(self) -> int | None:
        """The deal on screen (other screens open on it)."""
        if self.view == "history" and self.history is not None:
            return self.history.deal_id
        return self._highlighted_deal()

    # -- across deals: open handoff exceptions and feedback patterns ------------------------------
    def action_revops(self) -> None:
        if self.view == "revops":
            self._show_view("log")
            return
        self.query_one("#revops-head", Static).update(
            Content("Loading open handoff exceptions and feedback…"))
        self._show_view("revops")
        self.load_revops()

    @on(RevOpsLoaded)
    def show_revops(self, message: RevOpsLoaded) -> None:
        exceptions, patterns = message.exceptions, message.patterns
        overdue = sum(x.overdue for x in exceptions)
        repeated = sum(p.repeated for p in patterns)
        self.query_one("#revops-head", Static).update(Content.assemble(
            styled("[b]$n[/b] open handoff exceptions · [b $warning]$overdue[/] overdue · "
                   "[b]$cats[/b] feedback categories, [b]$repeated[/b] repeated",
                   n=len(exceptions), overdue=overdue, cats=len(patterns), repeated=repeated),
            Content.from_markup("  [dim]enter handoff · h history · e/esc back[/dim]")))
        grid = self.query_one("#open-exceptions", DealGrid)
        grid.empty_text = "No open handoff exceptions"
        self.exception_deals = {x.exception_id: x.deal_id for x in exceptions}
        grid.set_rows([(x.due_date.isoformat() if x.due_date else "no date",
                        f"{x.overdue_days}d" if x.overdue else "", x.deal, x.missing_item,
                        x.owner or "no owner", x.risk or "-", f"{x.age_days}d") for x in exceptions],
                      [x.exception_id for x in exceptions])
        grid.set_row_styles({x.exception_id: "warn" for x in exceptions if x.overdue})
        feedback = self.query_one("#feedback", DealGrid)
        feedback.empty_text = "No post-sale feedback recorded"
        rows, styles = [], {}
        self.feedback_deals = []
        for p in patterns:
            for i, d in enumerate(p.deals):
                key = len(self.feedback_deals)
                self.feedback_deals.append(d.deal_id)
                first = i == 0
                rows.append((p.label if first else "", str(p.items) if first else "",
                             str(len(p.deals)) if first else "", d.deal, str(d.items),
                             d.last_at.date().isoformat() if d.last_at else "-"))
                if p.repeated:
                    styles[key] = "warn"
        feedback.set_rows(rows, list(range(len(rows))))
        feedback.set_row_styles(styles)

    def _revops_deal(self) -> int | None:
        feedback = self.query_one("#feedback", DealGrid)
        if feedback.has_focus:
            key = feedback.cursor_key
            return self.feedback_deals[key] if key is not None and key < len(self.feedback_deals) else None
        key = self.query_one("#open-exceptions", DealGrid).cursor_key
        return self.exception_deals.get(key) if key is not None else None

    @on(DealGrid.RowSelected, "#open-exceptions")
    @on(DealGrid.RowSelected, "#feedback")
    def revops_selected(self, message: DealGrid.RowSelected) -> None:
        message.grid.focus()
        if self._revops_deal() is not None:
            self.app.action_open("handoff")

    # -- keys ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        log_only = {"focus_filters", "overstated", "clear_filters", "focus_sessions", "focus_findings"}
        if action in log_only and self.is_mounted and self.view != "log":
            return False
        if action == "history" and self.is_mounted and self.view == "history":
            return False
        return True

    def action_back(self) -> None:
        if self.view == "history":
            self._show_view(self.history_from)
        elif self.view == "revops":
            self._show_view("log")
        elif self.session_id is not None:
            self.session_id = None
            self.apply_filters()
        elif len(self.app.screen_stack) > 2:  # the default screen, the Pipeline, then us
            self.app.pop_screen()

    def action_focus_filters(self) -> None:
        from inspector.screens.review_filter_modal import ReviewFilterModal

        if self.values is None:
            self.notify("Still reading the log; try again in a moment", severity="warning")
            return

        def chosen(filters: rv.ReviewFilters | None) -> None:
            if filters is not None:
                self.apply_filters(filters)

        self.app.push_screen(ReviewFilterModal(self.services.playbook, self.filters, self.values), chosen)

    def action_focus_sessions(self) -> None:
        self.query_one("#sessions", DealGrid).focus()

    def action_focus_findings(self) -> None:
        self.query_one("#findings", DealGrid).focus()

    def action_overstated(self) -> None:
        self.set_filters(verdict=None if self.filters.verdict == "overstated" else "overstated")

    def action_clear_filters(self) -> None:
        self.session_id = None
        self.apply_filters(rv.ReviewFilters())

    def action_reload(self) -> None:
        self.load_log(self.filters)
        if self.view == "revops":
            self.load_revops()
        if self.view == "history" and self.history is not None:
            self.load_history(self.history.deal_id)
