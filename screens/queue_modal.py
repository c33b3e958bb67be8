"""The session queue: see every deal with its status, move deals up or down, jump to one.

Dismisses with (new order, deal to open or None), or None when cancelled.
"""
from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from inspector.money import format_money
from inspector.services import Services
from inspector.storage.inspections import Inspections
from inspector.widgets.text import styled

MARK = {"pending": "○", "inspected": "●", "skipped": "⤼"}


class QueueModal(ModalScreen[tuple[list[int], int | None] | None]):
    CSS_PATH = "queue_modal.tcss"
    BINDINGS = [
        Binding("escape", "done", "Close"),
        Binding("K,shift+up", "move(-1)", "Move up"),
        Binding("J,shift+down", "move(1)", "Move down"),
    ]

    def __init__(self, services: Services, session_id: int, current: int) -> None:
        super().__init__()
        self.services = services
        self.session_id = session_id
        self.current = current
        self.order: list[int] = []
        self.original: list[int] = []
        self.labels: dict[int, object] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Session queue · Enter opens a deal · K/J (shift+↑/↓) move it · Esc closes")
            yield OptionList(id="queue")

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="db", exit_on_error=False)
    def load(self) -> None:
        svc = self.services
        insp = Inspections(svc.store)
        session = insp.session(self.session_id)
        states = {s.deal_id: s for s in insp.states(self.session_id)}
        rows = {r.id: r for r in svc.store.list_deals(svc.clock.today(),
                                                      statuses=("open", "won", "lost", "removed"))}
        labels = {}
        for deal_id in session.queue:
            r, s = rows.get(deal_id), states.get(deal_id)
            labels[deal_id] = styled("$mark $name · $rep · $stage · $amount", mark=MARK.get(s.status if s else "", "?"),
                                     name=r.name if r else deal_id, rep=r.owner if r else "",
                                     stage=svc.playbook.stage_label(r.stage) if r else "",
                                     amount=format_money(r.amount_minor, r.currency) if r else "")
        self.app.call_from_thread(self._fill, list(session.queue), labels)

    def _fill(self, order: list[int], labels: dict[int, object]) -> None:
        self.order, self.original, self.labels = list(order), list(order), labels
        self._render(self.order.index(self.current) if self.current in self.order else 0)

    def _render(self, highlight: int) -> None:
        ol = self.query_one(OptionList)
        ol.clear_options()
        ol.add_options([Option(self.labels[d], id=str(d)) for d in self.order])
        ol.highlighted = highlight
        ol.focus()

    def action_move(self, step: int) -> None:
        ol = self.query_one(OptionList)
        i = ol.highlighted
        if i is None or not 0 <= i + step < len(self.order):
            return
        self.order[i], self.order[i + step] = self.order[i + step], self.order[i]
        self._render(i + step)

    @on(OptionList.OptionSelected)
    def open_deal(self, event: OptionList.OptionSelected) -> None:
        self.dismiss((self.order, int(event.option.id)))

    def action_done(self) -> None:
        self.dismiss((self.order, None) if self.order != self.original else None)
