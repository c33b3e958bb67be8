"""Sync: pull deals from HubSpot or Salesforce (progress, counts, cancel) and push the
managers' decisions back (outbox preview field by field, then send).

The sync runs in a thread worker calling the Textual-free `inspector.sync.sync_source`:
`progress` posts a coalescing message, `should_stop` is the worker's cancellation. A
cancelled or failed run keeps what it committed; the next run resumes at the next page.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Select, Static
from textual.worker import get_current_worker

from inspector.services import Services
from inspector.sync import SyncStatus
from inspector.text import one_line
from inspector.widgets.text import styled, untrusted, untrusted_line, untrusted_text

SOURCES = (("HubSpot", "hubspot"), ("Salesforce", "salesforce"))


class SyncScreen(Screen[None]):
    CSS_PATH = "sync_screen.tcss"
    BINDINGS = [
        Binding("f", "start(True)", "Full sync", tooltip="Re-read every deal; mark deals gone from the CRM"),
        Binding("i", "start(False)", "Incremental", tooltip="Only deals changed since the last sync"),
        Binding("c", "cancel", "Cancel", tooltip="Stop after the current page (it resumes there next time)"),
        Binding("o", "next_source", "Source", tooltip="Switch between HubSpot and Salesforce"),
        Binding("p", "preview_push", "Preview push", tooltip="Queue the latest decisions and show each change"),
        Binding("s", "send_push", "Send", tooltip="Send the previewed changes to the CRM"),
        Binding("a", "toggle_scope", "All/This deal", show=False, tooltip="Push all deals or only the current one"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    class SyncProgress(Message):
        """A snapshot of the running sync; a newer one replaces an unprocessed older one."""

        def __init__(self, status: SyncStatus) -> None:
            super().__init__()
            self.status = dataclasses.replace(status)

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, SyncScreen.SyncProgress)

    class SyncFinished(Message):
        def __init__(self, status: SyncStatus | None, error: str = "") -> None:
            super().__init__()
            self.status = dataclasses.replace(status) if status else None
            self.error = error

    class PushPreviewed(Message):
        def __init__(self, lines: list, note: str = "", error: str = "") -> None:
            super().__init__()
            self.lines, self.note, self.error = lines, note, error

    class PushFinished(Message):
        def __init__(self, summary: list[str], error: str = "") -> None:
            super().__init__()
            self.summary, self.error = summary, error

    def __init__(self, services: Services, deal_id: int | None = None, *,
                 client_factory: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self.services = services
        self.deal_id = deal_id
        self.only_deal = deal_id is not None
        self.source = "hubspot"
        self.running = False
        self.last_status: SyncStatus | None = None
        self.preview_lines: list = []
        self._client_factory = client_factory

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="sync-panel"):
            with Horizontal(id="source-row"):
                yield Static(styled("[b]Source[/b]"), id="source-label")
                yield Select([(untrusted(label), key) for label, key in SOURCES], value=self.source,
                             allow_blank=False, id="source")
                yield Static(id="last-run")
            yield ProgressBar(total=None, show_eta=False, id="progress")
            yield Static(untrusted("Press f for a full sync or i for an incremental one."), id="counts")
            yield Static(id="sync-message")
        with Vertical(id="push-panel"):
            yield Static(styled("[b]Push to CRM[/b]  (p preview · s send)"), id="push-title")
            yield DataTable(id="outbox", cursor_type="row", zebra_stripes=True)
            yield Static(id="push-message")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#outbox", DataTable)
        for label in ("Deal", "CRM", "Field", "In CRM at sync", "New value", "Status"):
            table.add_column(untrusted_text(label))
        self.app.sub_title = "CRM sync and push"
        self._show_last_run()

    def current_deal_id(self) -> int | None:
        return self.deal_id

    # -- helpers ----------------------------------------------------------------------------------
    def _open_client(self, source: str, on_wait=None):
        if self._client_factory is not None:
            return self._client_factory(source, self.services.playbook)
        from inspector.sources.connect import open_client

        return open_client(source, self.services.playbook, on_wait=on_wait)

    @work(thread=True, exclusive=True, group="state", exit_on_error=False)
    def _show_last_run(self) -> None:
        from inspector.sync import read_state

        st = read_state(self.services.store, self.source)
        if st is None:
            text = "never synced"
        else:
            when = st.run_finished_at.strftime("%Y-%m-%d %H:%M UTC") if st.run_finished_at else "not finished"
            text = f"last run: {st.status}, {when}" + (f" — {st.last_error}" if st.last_error else "")
        self.app.call_from_thread(self.query_one("#last-run", Static).update, untrusted_line(text))

    # -- sync -------------------------------------------------------------------------------------
    @on(Select.Changed, "#source")
    def _source_changed(self, event: Select.Changed) -> None:
        if event.value in ("hubspot", "salesforce"):
            self.source = str(event.value)
            self._show_last_run()

    def action_next_source(self) -> None:
        if self.running:
            return
        select = self.query_one("#source", Select)
        select.value = "salesforce" if self.source == "hubspot" else "hubspot"

    def action_start(self, full: bool) -> None:
        if self.running:
            self.notify("A sync is already running (c cancels it)", severity="warning")
            return
        if self.services.read_only:
            self.notify("Read-only store: sync is not available", severity="warning")
            return
        self.running = True
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=None, progress=0)
        self.query_one("#sync-message", Static).update(untrusted("connecting…"))
        self.run_sync(self.source, full)

    def action_cancel(self) -> None:
        if not self.running:
            return
        self.workers.cancel_group(self, "sync")
        self.query_one("#sync-message", Static).update(untrusted("cancelling after the current page…"))

    @work(thread=True, exclusive=True, group="sync", exit_on_error=False)
    def run_sync(self, source: str, full: bool) -> None:
        from inspector.sync import sync_source

        worker = get_current_worker()
        svc = self.services
        status: SyncStatus | None = None

        def progress(st: SyncStatus) -> None:
            nonlocal status
            status = st
            self.post_message(self.SyncProgress(st))

        try:
            client = self._open_client(source)
            try:
                status = sync_source(svc.store, svc.playbook, client, full=full, now=svc.clock.now(),
                                     progress=progress, should_stop=lambda: worker.is_cancelled)
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - shown as one line, never a crash
            self.post_message(self.SyncFinished(status, _one_line(exc)))
            return
        self.post_message(self.SyncFinished(status))

    @on(SyncProgress)
    def _on_progress(self, message: SyncProgress) -> None:
        st = message.status
        self.last_status = st
        bar = self.query_one("#progress", ProgressBar)
        if st.total:
            bar.update(total=max(st.total, st.deals), progress=st.deals)
        self.query_one("#counts", Static).update(untrusted_line(st.line()))
        if st.message:
            self.query_one("#sync-message", Static).update(untrusted_line(st.message))

    @on(SyncFinished)
    def _on_finished(self, message: SyncFinished) -> None:
        self.running = False
        st = message.status
        bar = self.query_one("#progress", ProgressBar)
        if st is not None:
            self.last_status = st
            self.query_one("#counts", Static).update(untrusted_line(st.line()))
            if st.state == "done":
                bar.update(total=max(st.deals, 1), progress=max(st.deals, 1))
        if message.error:
            text = f"sync stopped: {message.error}"
            if st and st.pages:
                text += f" (pages 1–{st.pages} are saved; the next run resumes there)"
            self.query_one("#sync-message", Static).update(untrusted_line(text))
            self.notify(one_line(message.error), title="Sync failed", severity="error", markup=False)
        elif st is not None:
            done = {"done": "sync complete", "cancelled": st.message or "cancelled"}.get(st.state, st.state)
            self.query_one("#sync-message", Static).update(untrusted_line(done))
        self._show_last_run()

    # -- push -------------------------------------------------------------------------------------
    def action_toggle_scope(self) -> None:
        if self.deal_id is None:
            return
        self.only_deal = not self.only_deal
        self.action_preview_push()

    def action_preview_push(self) -> None:
        if self.services.read_only:
            self.notify("Read-only store: push is not available", severity="warning")
            return
        self.query_one("#push-message", Static).update(untrusted("building the outbox…"))
        self.build_preview()

    @work(thread=True, exclusive=True, group="push", exit_on_error=False)
    def build_preview(self, after: str = "") -> None:
        """Queue the latest decisions and list the outbox; `after` (the last push's summary)
        stays in front of the new note so the refresh does not hide what was just sent."""
        from inspector import writeback

        svc = self.services
        deal = self.deal_id if self.only_deal else None
        try:
            built = writeback.build_outbox(svc.store, svc.playbook, now=svc.clock.now(), deal_id=deal)
            lines = writeback.preview(svc.store, deal_id=deal)
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.PushPreviewed([], error=(after + " · " if after else "") + _one_line(exc)))
            return
        note = (f"{built.queued} new change(s) queued; {built.already_in_crm} already in the CRM"
                + (f"; {built.superseded} superseded" if built.superseded else ""))
        self.post_message(self.PushPreviewed(lines, (after + " · " if after else "") + note))

    @on(PushPreviewed)
    def _on_preview(self, message: PushPreviewed) -> None:
        from inspector.writeback import LABELS

        table = self.query_one("#outbox", DataTable)
        table.clear()
        self.preview_lines = message.lines
        for line in message.lines:
            new = line.new.splitlines()[0] if line.kind == "note" and line.new else line.new
            table.add_row(untrusted_text(line.deal_name), untrusted_text(f"{LABELS.get(line.source, line.source)} "
                                                                         f"{line.external_id}"),
                          untrusted_text(line.label), untrusted_text(line.old or "(empty)"),
                          untrusted_text(new), untrusted_text(line.status + (f": {line.last_error}"
                                                                             if line.last_error else "")))
        text = message.error or message.note
        queued = sum(1 for line in message.lines if line.status == "queued")
        if not message.error:
            text += f" · {queued} to send" + (" (this deal only; a shows all)" if self.only_deal else "")
        self.query_one("#push-message", Static).update(untrusted_line(text))

    def action_send_push(self) -> None:
        if not any(line.status == "queued" for line in self.preview_lines):
            self.notify("Nothing queued: preview the push first (p)", severity="warning")
            return
        self.query_one("#push-message", Static).update(untrusted("sending…"))
        self.send_push()

    @work(thread=True, exclusive=True, group="push", exit_on_error=False)
    def send_push(self) -> None:
        from inspector import writeback

        svc = self.services
        deal = self.deal_id if self.only_deal else None
        summary: list[str] = []
        try:
            for source in sorted({line.source for line in self.preview_lines if line.status == "queued"}):
                client = self._open_client(source)
                try:
                    result = writeback.push(svc.store, client, now=svc.clock.now(), actor=svc.actor, deal_id=deal)
                finally:
                    client.close()
                summary.append(result.line())
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.PushFinished(summary, _one_line(exc)))
            return
        self.post_message(self.PushFinished(summary))

    @on(PushFinished)
    def _on_push_finished(self, message: PushFinished) -> None:
        text = "; ".join(message.summary)
        if message.error:
            text = (text + "; " if text else "") + f"push stopped: {message.error}"
            self.notify(one_line(message.error), title="Push failed", severity="error", markup=False)
        text = text or "nothing sent"
        self.query_one("#push-message", Static).update(untrusted_line(text))
        self.build_preview(after=text)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
