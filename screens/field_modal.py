"""Choose the field a CSV column feeds (the TUI's `--map COLUMN=FIELD`).

Dismisses with the field key ("name", "amount", ..., "extra" or "ignore") or None (cancelled).
"""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from inspector.sources.csv_file import CORE_FIELDS, EVIDENCE_FIELDS, field_label
from inspector.widgets.text import styled

#: (field, label) in the order offered: keep/ignore first, then the deal's fields, then evidence.
CHOICES: tuple[tuple[str, str], ...] = (
    ("extra", "keep as an extra column (not a deal field)"),
    ("ignore", "ignore this column"),
    *((f, f"{field_label(f)} ({f})") for f in CORE_FIELDS),
    *((f, f"evidence: {field_label(f)} ({f})") for f in EVIDENCE_FIELDS),
)


class FieldModal(ModalScreen[str | None]):
    CSS_PATH = "field_modal.tcss"
    BINDINGS = [Binding("enter", "choose", "Choose", priority=True), Binding("escape", "cancel", "Cancel")]

    def __init__(self, column: str, current: str, sample: str = "") -> None:
        super().__init__()
        self.column = column
        self.current = current
        self.sample = sample

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(styled("Column [b]$column[/b] feeds which field?", column=self.column), id="field-title")
            if self.sample:
                yield Static(styled("[dim]first value:[/dim] $sample", sample=self.sample), id="field-sample")
            yield OptionList(*(Option(label, id=key) for key, label in CHOICES), id="fields")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        keys = [k for k, _l in CHOICES]
        options.highlighted = keys.index(self.current) if self.current in keys else 0
        options.focus()

    def action_choose(self) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is not None:
            self.dismiss(CHOICES[options.highlighted][0])

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
