"""Session summary: what the inspection found, with exports."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import Worker, WorkerState

from inspector.inspect import SessionSummary, session_summary
from inspector.money import format_money
from inspector.services import Services
from inspector.storage.inspections import Inspections
from inspector.widgets.text import styled, untrusted_line


class SummaryScreen(Screen[None]):
    CSS_PATH = "summary_screen.tcss"
    BINDINGS = [
        Binding("m", "export('md')", "Export Markdown"),
        Binding("v", "export('csv')", "Export CSV"),
        Binding("escape", "leave", "Pipeline"),
        Binding("q", "app.quit", "Quit"),
    ]

    @dataclass
    class Ready(Message):
        summary: SessionSummary

    def __init__(self, services: Services, session_id: int, *, finish: bool = False) -> None:
        super().__init__()
        self.services = services
        self.session_id = session_id
        self.finish = finish
        self.summary: SessionSummary | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("Computing the summary…", id="summary")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.compute()

    @work(thread=True, exclusive=True, group="db", exit_on_error=False)
    def compute(self) -> None:
        from inspector.storage.inspections import StaleEdit

        svc = self.services
        insp = Inspections(svc.store)
        if self.finish and not svc.read_only:
            try:
                insp.finish(self.session_id, actor=svc.actor, now=svc.clock.now())
            except StaleEdit:
                pass  # already finished (by this manager in another window, or before a restart)
        self.post_message(self.Ready(session_summary(svc.store, Inspections(svc.store), svc.playbook,
                                                     self.session_id, svc.clock.today())))

    @on(Ready)
    def show(self, message: Ready) -> None:
        self.summary = s = message.summary
        pb = self.services.playbook
        self.app.sub_title = f"Summary · {s.session.team} · week of {s.session.week_of.isoformat()}"
        money = lambda v: format_money(v, "USD")  # noqa: E731 - totals mix currencies, shown in USD units
        lines = [
            styled("[b]Inspection of $team[/b] by $mgr · week of $week · $status",
                   team=s.session.team, mgr=s.session.manager, week=s.session.week_of.isoformat(),
                   status=s.session.status),
            styled("Deals inspected [b]$i[/b] · skipped [b]$k[/b] · not reached $p", i=s.inspected, k=s.skipped,
                   p=s.pending),
            Content(""),
            styled("[b]Stage verdicts[/b]: supported $sup · overstated [b]$over[/b] (by $steps stage(s) in total) · "
                   "understated $under", sup=s.verdicts.get("supported", 0), over=s.verdicts.get("overstated", 0),
                   steps=s.overstated_steps, under=s.verdicts.get("understated", 0)),
            styled("[b]Commit[/b]: manager $mc vs rep $rc · [b]Best case[/b]: manager $mb vs rep $rb",
                   mc=money(s.manager_commit), rc=money(s.rep_commit), mb=money(s.manager_best_case),
                   rb=money(s.rep_best_case)),
            Content(""),
        ]
        def section(title: str, items: list) -> None:
            lines.append(styled("[b]$t[/b] ($n)", t=title, n=len(items)))
            for item in items[:25]:
                lines.append(item)
            if len(items) > 25:
                lines.append(styled("[dim]… and $n more (see the export)[/dim]", n=len(items) - 25))
            lines.append(Content(""))
        section("Category changes", [styled("  $name: $a → [b]$b[/b]", name=n, a=pb.category_label(a),
                                            b=pb.category_label(b)) for _i, n, a, b in s.category_changes])
        section("Commit exceptions", [styled("  [b $error]$name[/]: $why", name=n, why=r)
                                      for _i, n, r in s.commit_exceptions])
        section("Close dates judged not credible", [styled("  $name (proposed $d)", name=n,
                                                           d=d.isoformat() if d else "no date")
                                                    for _i, n, d in s.not_credible])
        section("Deals missing evidence for their stage", [styled("  $name", name=n) for _i, n in s.missing_evidence])
        section("Activity without progress", [styled("  $name", name=n) for _i, n in s.no_progress])
        risks = [styled("  $t: $new new, $open open", t=pb.risk_label.get(t, t), new=s.new_risks.get(t, 0),
                        open=s.open_risks.get(t, 0)) for t in sorted(set(s.new_risks) | set(s.open_risks))]
        section("Risks by type", risks)
        if s.open_exceptions:
            section("Open handoff exceptions", [
                styled("  [b $warning]$name[/]: $item · owner $owner · due $due · $risk", name=n, item=item,
                       owner=owner or "none", due=due.isoformat() if due else "no date", risk=risk or "no risk noted")
                for _i, n, item, owner, due, risk in s.open_exceptions])
        lines.append(styled("[dim]Event log: $n events · chain head $h[/dim]", n=s.event_count, h=s.chain_head))
        self.query_one("#summary", Static).update(Content("\n").join(lines))

    def action_export(self, fmt: str) -> None:
        if self.summary is None:
            return
        self.write_export(fmt)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def write_export(self, fmt: str) -> None:
        from inspector.exports import session_csv, session_markdown

        assert self.summary is not None
        body = (session_markdown(self.summary, self.services.playbook) if fmt == "md"
                else session_csv(self.summary))
        path = Path.cwd() / f"inspection-{self.session_id}.{fmt}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(body, encoding="utf-8", newline="")
        tmp.replace(path)
        self.app.call_from_thread(self.notify, untrusted_line(f"Wrote {path}"), title="Exported")

    @on(Worker.StateChanged)
    def failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.notify(untrusted_line(event.worker.error), title="Something went wrong", severity="error")

    def action_leave(self) -> None:
        from inspector.screens.pipeline_screen import PipelineScreen

        self.app.switch_screen(PipelineScreen(self.services, self.summary.session.team if self.summary else None))
