"""DrillModal: the deals behind one bar, week or row of a Dashboard metric.

Enter (or a click on the highlighted row) opens that deal's review history; Escape closes.
"""
from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from inspector import metrics as mx
from inspector.money import format_compact
from inspector.services import Services
from inspector.widgets.deal_grid import Column, DealGrid
from inspector.widgets.text import styled, untrusted_line

#: why the deal is here comes right after its name, so a narrow terminal scrolls away the rest
COLUMNS = [Column("deal", "Deal", 32), Column("detail", "Why it is here", 28), Column("amount", "Amount", 8, "right"),
           Column("rep", "Rep", 16), Column("team", "Team", 16), Column("stage", "Stage", 14),
           Column("status", "Status", 6)]


class DrillModal(ModalScreen[None]):
    CSS_PATH = "drill_modal.tcss"
    BINDINGS = [
        Binding("enter", "history", "History", tooltip="This deal's review history across the weeks"),
        Binding("escape", "dismiss(None)", "Close"),
    ]

    @dataclass
    class DealsLoaded(Message):
        deals: list[mx.DrillDeal]

    def __init__(self, services: Services, scope: mx.Scope, key: str, buckets: list[str], base: str,
                 title: str, label: str) -> None:
        super().__init__()
        self.services = services
        self.scope, self.key, self.buckets, self.base = scope, key, buckets, base
        self.title_text, self.label = title, label
        self.deals: list[mx.DrillDeal] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="drill"):
            yield Static(styled("[b]$title[/b] · $label · [dim]$scope[/dim]", title=self.title_text,
                                label=self.label, scope=self.scope.describe()), id="drill-title")
            yield Static(id="drill-count")
            yield DealGrid(COLUMNS, id="drill-deals")
            yield Footer(compact=True)

    def on_mount(self) -> None:
        grid = self.query_one(DealGrid)
        grid.empty_text = "Loading the deals…"
        grid.focus()
        self.load()

    @work(thread=True, exclusive=True, group="drill", exit_on_error=False)
    def load(self) -> None:
        svc = self.services
        deals: list[mx.DrillDeal] = []
        seen: set[int] = set()
        for bucket in self.buckets:
            for d in mx.drill(svc.store, svc.playbook, self.scope, self.key, bucket, base=self.base):
                if d.deal_id not in seen:
                    seen.add(d.deal_id)
                    deals.append(d)
        self.post_message(self.DealsLoaded(deals))

    @on(Worker.StateChanged)
    def report_failure(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.notify(untrusted_line(event.worker.error), title="Could not load the deals", severity="error")

    @on(DealsLoaded)
    def show_deals(self, message: DealsLoaded) -> None:
        self.deals = message.deals
        pb = self.services.playbook
        grid = self.query_one(DealGrid)
        grid.empty_text = "No deals behind this"
        grid.set_rows([(d.name, d.detail, format_compact(d.amount_minor, d.currency), d.owner, d.team,
                        pb.stage_label(d.stage), d.status) for d in message.deals],
                      [d.deal_id for d in message.deals])
        more = " (the first 500)" if len(message.deals) >= 500 else ""
        self.query_one("#drill-count", Static).update(styled(
            "$n deals$more · enter: the deal's review history · esc: back", n=len(message.deals), more=more))

    @on(DealGrid.RowSelected)
    def open_selected(self, message: DealGrid.RowSelected) -> None:
        self._open(message.key)

    def action_history(self) -> None:
        key = self.query_one(DealGrid).cursor_key
        if key is not None:
            self._open(key)

    def _open(self, deal_id: int) -> None:
        from inspector.screens.review_screen import ReviewScreen

        self.app.push_screen(ReviewScreen(self.services, deal_id=deal_id))

    def current_deal_id(self) -> int | None:
        return self.query_one(DealGrid).cursor_key
