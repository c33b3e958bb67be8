"""A small keyboard-first form in a modal: text, long text, date and choice fields.

Dismisses with {key: value} or None (Escape). Dates are validated as YYYY-MM-DD, required
fields must be filled, and a field can be required only when another has a given value
(e.g. an exception reason when calling Commit without the criteria).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from inspector.widgets.text import untrusted, untrusted_line


@dataclass
class FormField:
    key: str
    label: str
    kind: str = "text"  # text | textarea | date | choice
    value: Any = None
    options: list[tuple[str, str]] = field(default_factory=list)  # (label, value)
    required: bool = False
    required_when: tuple[str, Any] | None = None  # (other key, value) makes this required
    hint: str = ""


class FormModal(ModalScreen[dict[str, Any] | None]):
    CSS_PATH = "form_modal.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Save", priority=True),
    ]

    def __init__(self, title: str, fields: list[FormField], *, intro: str = "") -> None:
        super().__init__()
        self.form_title = title
        self.fields = fields
        self.intro = intro

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Label(untrusted_line(self.form_title), id="form-title")
            if self.intro:
                yield Static(untrusted(self.intro), id="form-intro")
            for f in self.fields:
                yield Label(untrusted_line(f.label + (" *" if f.required else "")), classes="field-label")
                wid = f"f-{f.key}"
                if f.kind == "textarea":
                    area = TextArea(str(f.value or ""), id=wid, soft_wrap=True, show_line_numbers=False)
                    yield area
                elif f.kind == "choice":
                    yield Select([(untrusted_line(lbl), val) for lbl, val in f.options], id=wid,
                                 value=f.value if f.value in {v for _l, v in f.options} else Select.NULL,
                                 allow_blank=not f.required)
                else:
                    value = f.value.isoformat() if isinstance(f.value, date) else str(f.value or "")
                    yield Input(value, id=wid, placeholder="YYYY-MM-DD" if f.kind == "date" else f.hint)
                if f.hint and f.kind != "text":
                    yield Label(untrusted_line(f.hint), classes="field-hint")
            yield Static(id="form-error")
            with Horizontal(id="buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        first = self.query(".field-label").first()
        del first
        for f in self.fields:
            self.query_one(f"#f-{f.key}").focus()
            break

    def _value(self, f: FormField) -> Any:
        w = self.query_one(f"#f-{f.key}")
        if isinstance(w, TextArea):
            return w.text.strip()
        if isinstance(w, Select):
            return None if w.value is Select.NULL or w.value == Select.BLANK else w.value
        return w.value.strip()

    def collect(self) -> tuple[dict[str, Any], str]:
        values: dict[str, Any] = {f.key: self._value(f) for f in self.fields}
        for f in self.fields:
            v = values[f.key]
            needed = f.required or (f.required_when is not None
                                    and values.get(f.required_when[0]) == f.required_when[1])
            if needed and v in (None, ""):
                return values, f"{f.label} is required"
            if f.kind == "date" and v:
                try:
                    values[f.key] = date.fromisoformat(v)
                except ValueError:
                    return values, f"{f.label}: '{v}' is not a date (use YYYY-MM-DD)"
            elif f.kind == "date":
                values[f.key] = None
        return values, ""

    def action_submit(self) -> None:
        values, error = self.collect()
        if error:
            self.query_one("#form-error", Static).update(untrusted_line(error))
            return
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    @on(Input.Submitted)
    def _enter(self) -> None:
        self.action_submit()
