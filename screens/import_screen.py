"""Import: a CSV export into the store, from a file picker, with a preview (issue 4).

The TUI side of `inspector import FILE` (inspector/cli_import.py) and the same rules: the
file is read by the Textual-free `inspector.sources.csv_file` in a thread worker; what was
recognised (export, encoding, delimiter, rows) and each column's field and detected format
are shown; problems are listed as file:line: column: problem and block the import (all or
nothing); questions the file raises (day/month order, decimal separator) are answered once
per column with a Select; any column can be mapped to a field (`m`, the CLI's --map). After
each answer or mapping the file is read again. A dry run lists what would change, field by
field; `i` writes it in one transaction and the Pipeline underneath reloads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Checkbox, DataTable, DirectoryTree, Footer, Header, Select, Static
from textual.worker import Worker, WorkerState

from inspector.services import Services
from inspector.sources import csv_file, csv_preview
from inspector.text import one_line
from inspector.widgets.csv_tree import CsvTree
from inspector.widgets.path_input import PathInput, PathSuggester
from inspector.widgets.text import styled, untrusted, untrusted_line, untrusted_text

FORMATS = (("Auto (by its headers)", "auto"), ("Salesforce report", "salesforce"),
           ("HubSpot export", "hubspot"), ("Maven CRM", "maven"), ("Inspector export", "inspector"),
           ("Generic CSV (map columns)", "generic"))
#: the preview lists this many deals; the summary counts all of them
PREVIEW_LIMIT = 500
PROBLEMS_SHOWN = 200


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _cell(value: object) -> Text:
    """A table cell from outside text: plain, one line, cut with … when the column is narrower."""
    text = untrusted_text(one_line(value))
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def _field_shown(field: str) -> str:
    if field == "extra":
        return "(kept as extra)"
    if field == "ignore":
        return "(ignored)"
    return csv_file.field_label(field)


class ImportScreen(Screen[None]):
    CSS_PATH = "import_screen.tcss"
    BINDINGS = [
        Binding("escape", "leave", "Back"),
        Binding("ctrl+o", "focus_path", "File", tooltip="Type a file path (Tab completes, Enter loads)"),
        Binding("m", "map_column", "Map column", tooltip="Choose the field the highlighted column feeds"),
        Binding("r", "reload", "Reload", tooltip="Read the file again (after fixing it)"),
        Binding("i", "import_file", "Import", tooltip="Write the previewed changes to the store"),
    ]

    @dataclass
    class Parsed(Message):
        """The file read (and, when it has no problems or questions, a dry run of the write)."""

        generation: int
        result: Any  # csv_file.ParseResult | None
        outcome: Any  # ingest.UpsertResult | None
        error: str = ""

    @dataclass
    class Imported(Message):
        outcome: Any  # ingest.UpsertResult | None
        error: str = ""

    def __init__(self, services: Services, deal_id: int | None = None, *, start_dir: Path | str | None = None) -> None:
        super().__init__()
        self.services = services
        self.start_dir = Path(start_dir) if start_dir is not None else Path.cwd()
        self.path: Path | None = None
        self.fmt_key = "auto"
        self.amount_suffixes = False
        self.mapping: dict[str, str] = {}
        self.answers: dict[str, dict[str, str]] = {"date_order": {}, "decimal": {}}
        #: every question this file raised, (kind, column) -> Question, kept once answered
        self.asked: dict[tuple[str, str], csv_file.Question] = {}
        self.result: csv_file.ParseResult | None = None
        self.outcome = None
        self.imported = None
        #: idle | reading | problems | questions | ready | importing | imported | failed
        self.state = "idle"
        self.generation = 0
        self._previous_sub_title = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            with Vertical(id="picker"):
                yield PathInput(placeholder="Path to a CSV export (Tab completes)", id="path",
                                suggester=PathSuggester(self.start_dir))
                yield Select([(untrusted(label), key) for label, key in FORMATS], value="auto",
                             allow_blank=False, id="format")
                yield Checkbox(untrusted("1.2M / 250k amounts"), id="suffixes")
                yield CsvTree(self.start_dir, id="tree")
            with Vertical(id="result"):
                yield Static(id="recognised")
                yield DataTable(id="columns", cursor_type="row", zebra_stripes=True)
                yield Vertical(id="questions")
                with VerticalScroll(id="problems"):
                    yield Static(id="problem-list")
                yield Static(id="notes")
                yield DataTable(id="preview", cursor_type="row", zebra_stripes=True)
                yield Static(id="summary")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._previous_sub_title = self.app.sub_title
        self.app.sub_title = "Import a CSV export" + (" · read-only store: preview only"
                                                      if self.services.read_only else "")
        self.query_one("#recognised", Static).update(styled(
            "[b]Choose a CSV export[/b]: type its path (Tab completes, Enter loads) or pick it in the tree.\n"
            "Salesforce, HubSpot and Maven CRM exports are recognised by their headers; any other CSV "
            "is mapped column by column."))
        self._set_state("idle")
        self.query_one("#path", PathInput).focus()

    def current_deal_id(self) -> int | None:
        return None

    # -- state ------------------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        for name in ("idle", "reading", "problems", "questions", "ready", "importing", "imported", "failed"):
            self.set_class(state == name, f"-{name}")
        self.set_class(bool(self.asked), "-asked")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "import_file":
            return True if self.state == "ready" else None
        if action == "map_column":
            return True if self.result is not None and self.result.fmt is not None else None
        if action == "reload":
            return True if self.path is not None and self.state not in ("reading", "importing") else None
        return True

    # -- choosing the file ------------------------------------------------------------------------
    def _resolve(self, typed: str) -> Path:
        path = Path(os.path.expanduser(typed.strip()))
        return path if path.is_absolute() else self.start_dir / path

    def _label(self, path: Path) -> str:
        """How the file is named in problems: relative to the start folder when inside it."""
        try:
            return str(path.relative_to(self.start_dir))
        except ValueError:
            return str(path)

    @on(PathInput.Submitted, "#path")
    def path_entered(self, event: PathInput.Submitted) -> None:
        if not event.value.strip():
            return
        path = self._resolve(event.value)
        if path.is_dir():
            self.query_one(CsvTree).path = path
            self.query_one(CsvTree).focus()
            return
        if not path.is_file():
            self.notify(untrusted_line(f"No such file: {event.value.strip()}"), severity="warning")
            return
        self.choose(path)
        self.query_one("#columns", DataTable).focus()

    @on(DirectoryTree.FileSelected, "#tree")
    def file_picked(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.query_one("#path", PathInput).value = self._label(Path(event.path))
        self.choose(Path(event.path))

    def choose(self, path: Path) -> None:
        """A new file: answers and mappings from the previous one do not carry over."""
        self.path = path
        self.mapping = {}
        self.answers = {"date_order": {}, "decimal": {}}
        self.asked = {}
        self.query_one("#questions", Vertical).remove_children()
        self.read_file()

    @on(Select.Changed, "#format")
    def format_changed(self, event: Select.Changed) -> None:
        if event.value != self.fmt_key and isinstance(event.value, str):
            self.fmt_key = event.value
            self.mapping = {}
            if self.path is not None:
                self.read_file()

    @on(Checkbox.Changed, "#suffixes")
    def suffixes_changed(self, event: Checkbox.Changed) -> None:
        self.amount_suffixes = event.value
        if self.path is not None:
            self.read_file()

    # -- reading ----------------------------------------------------------------------------------
    def read_file(self) -> None:
        assert self.path is not None
        self.generation += 1
        self.result = self.outcome = self.imported = None
        self._set_state("reading")
        self.query_one("#summary", Static).update(untrusted_line(f"reading {self._label(self.path)}…"))
        self.parse_file(self.generation, self.path, self._label(self.path), self.fmt_key, dict(self.mapping),
                        dict(self.answers["date_order"]), dict(self.answers["decimal"]), self.amount_suffixes)

    @work(thread=True, exclusive=True, group="parse", exit_on_error=False)
    def parse_file(self, generation: int, path: Path, label: str, fmt: str, mapping: dict[str, str],
                   date_order: dict[str, str], decimal: dict[str, str], suffixes: bool) -> None:
        svc = self.services
        try:
            # the label (relative name) is what problems cite; parse reads the file by that name
            result = csv_file.parse(path if label == str(path) else _Named(path, label), svc.playbook,
                                    fmt=fmt, mapping=mapping or None, date_order=date_order or None,
                                    decimal=decimal or None, amount_suffixes=suffixes)
            outcome = None
            if result.ok:
                outcome = csv_file.write(svc.store, svc.playbook, result.records, now=svc.clock.now(),
                                         dry_run=True)
        except Exception as exc:  # noqa: BLE001 - one line on the screen, never a crash
            self.post_message(self.Parsed(generation, None, None, _one_line(exc)))
            return
        self.post_message(self.Parsed(generation, result, outcome))

    @on(Parsed)
    def show_parsed(self, message: Parsed) -> None:
        if message.generation != self.generation:
            return  # an older read finished after a newer one started
        if message.error:
            self.result = None
            self._set_state("failed")
            self.query_one("#summary", Static).update(untrusted_line(f"could not read the file: {message.error}"))
            self.notify(untrusted_line(message.error), title="Could not read the file", severity="error")
            return
        result: csv_file.ParseResult = message.result
        self.result, self.outcome = result, message.outcome
        for q in result.questions:
            self.asked.setdefault((q.kind, q.column), q)
        self._show_recognised(result)
        self._show_columns(result)
        self._show_questions()
        self._show_problems(result)
        notes = [f"note: {n}" for n in result.notes]
        self.query_one("#notes", Static).update(untrusted("\n".join(notes)))
        self.query_one("#notes", Static).display = bool(notes)
        if result.problem_count:
            state = "problems"
        elif result.questions:
            state = "questions"
        else:
            state = "ready"
        self._set_state(state)
        self._show_preview()

    def _show_recognised(self, result: csv_file.ParseResult) -> None:
        assert self.path is not None
        f = result.fmt
        name = self._label(self.path)
        if f is None:
            head = styled("[b]$name[/b]: not readable as a CSV export", name=name)
        else:
            head = styled("[b]$name[/b]: [b]$label[/b]\n$rows rows · $encoding · $delimiter-separated",
                          name=name, label=f.label, encoding=f.encoding, delimiter=f.delimiter_name,
                          rows=f"{result.rows:,}")
        if result.problem_count:
            n = result.problem_count
            status = styled("[b $error]✘ $n problem$s[/]: nothing can be imported until the file is fixed "
                            "(all or nothing)", n=f"{n:,}", s="s" if n != 1 else "")
        elif result.questions:
            n = len(result.questions)
            status = styled("[b $warning]? $n question$s[/] to answer before the preview",
                            n=n, s="s" if n != 1 else "")
        else:
            status = styled("[b $success]✔ ready[/]: no problems, every column decided")
        self.query_one("#recognised", Static).update(Content("\n").join([head, status]))

    def _show_columns(self, result: csv_file.ParseResult) -> None:
        table = self.query_one("#columns", DataTable)
        row = table.cursor_row
        table.clear(columns=True)
        for label, width in zip(("Column", "Field", "Detected", "First value"),
                                self._widths(4, (18, 17, 28, 0), (1,), minimum=(10,))):
            table.add_column(untrusted_text(label), width=width)
        f = result.fmt
        if f is None:
            return
        first = f.sample[0] if f.sample else []
        for i, column in enumerate(f.header):
            field = f.mapping.get(column, "extra")
            table.add_row(_cell(column or f"#{i + 1}"), _cell(_field_shown(field)),
                          _cell(result.column_formats.get(column, "")),
                          _cell(first[i] if i < len(first) else ""), key=str(i))
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def _widths(self, n: int, fixed: tuple[int, ...], shares: tuple[int, ...],
                minimum: tuple[int, ...]) -> list[int]:
        """Column widths that fill the result pane: `fixed` widths (0 = flexible), the rest
        shared out by `shares` with at least `minimum` (a narrow pane scrolls sideways)."""
        avail = self.query_one("#result").size.width - 2 * n - 3  # cell padding, scrollbar
        rest = max(avail - sum(fixed), 0)
        flexible = iter(max(m, rest * share // sum(shares)) for share, m in zip(shares, minimum))
        return [w if w else next(flexible) for w in fixed]

    def on_resize(self) -> None:
        if self.result is not None:
            self._show_columns(self.result)
            self._show_preview()

    def _show_questions(self) -> None:
        box = self.query_one("#questions", Vertical)
        shown = {getattr(w, "question_key", None) for w in box.query(Select)}
        if shown == set(self.asked):
            return
        box.remove_children()
        rows = []
        for key, q in self.asked.items():
            kind, column = key
            answer = self.answers[kind].get(column)
            select: Select[str] = Select([(untrusted(label), value) for value, label in q.options],
                                         prompt="Choose…", value=answer if answer else Select.NULL,
                                         classes="answer")
            select.question_key = key  # type: ignore[attr-defined]
            text = styled("[b]$column[/b]: $text", column=column, text=q.text)
            rows.append(Vertical(Static(text, classes="question"), select, classes="question-row"))
        box.mount_all(rows)

    @on(Select.Changed, ".answer")
    def question_answered(self, event: Select.Changed) -> None:
        key = getattr(event.select, "question_key", None)
        if key is None or not isinstance(event.value, str):
            return
        kind, column = key
        if self.answers[kind].get(column) == event.value:
            return
        self.answers[kind][column] = event.value
        self.read_file()

    def _show_problems(self, result: csv_file.ParseResult) -> None:
        lines = [untrusted_line(line) for line in result.report(limit=PROBLEMS_SHOWN)]
        if result.problem_count and result.fmt is not None:
            lines.append(styled("[dim]Fix the file and press r to read it again, or map a column with m "
                                "(Enter on the column).[/dim]"))
        self.query_one("#problem-list", Static).update(Content("\n").join(lines))
        self.query_one("#problems", VerticalScroll).scroll_home(animate=False)

    def _show_preview(self) -> None:
        table = self.query_one("#preview", DataTable)
        table.clear(columns=True)
        for label, width in zip(csv_preview.COLUMNS,
                                self._widths(6, (6, 8, 0, 15, 0, 0), (4, 3, 3), minimum=(16, 12, 12))):
            table.add_column(untrusted_text(label), width=width)
        summary = self.query_one("#summary", Static)
        outcome = self.outcome
        if self.state != "ready" or outcome is None:
            summary.update(untrusted("" if self.state != "questions" else
                                     "Answer the questions above; the file is read again after each answer."))
            return
        for row in csv_preview.preview_rows(outcome, self.services.playbook, limit=PREVIEW_LIMIT):
            table.add_row(*(_cell(cell) for cell in row))
        lines = csv_file.summary_lines(outcome, dry_run=True)
        more = len(outcome.changes_preview) - PREVIEW_LIMIT
        if more > 0:
            lines.append(f"the table lists the first {PREVIEW_LIMIT:,} deals; {more:,} more change")
        tail = ("read-only store: this is a preview only; import needs write access"
                if self.services.read_only else
                "dry run: nothing written yet · press i to import" if outcome.created or outcome.updated
                else "nothing to change: the store already has this file")
        summary.update(Content("\n").join([untrusted_line(x) for x in lines]
                                          + [styled("[b]$tail[/b]", tail=tail)]))

    # -- mapping ----------------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#columns")
    def column_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_map_column()

    def action_map_column(self) -> None:
        from inspector.screens.field_modal import FieldModal

        if self.result is None or self.result.fmt is None or self.state in ("reading", "importing"):
            return
        f = self.result.fmt
        table = self.query_one("#columns", DataTable)
        i = table.cursor_row
        if not 0 <= i < len(f.header):
            return
        column = f.header[i]
        current = f.mapping.get(column, "extra")
        first = f.sample[0][i] if f.sample and i < len(f.sample[0]) else ""

        def mapped(field: str | None) -> None:
            if field is None or field == current:
                return
            self.mapping[column] = field
            self.read_file()

        self.app.push_screen(FieldModal(column, current, one_line(first)), mapped)

    # -- importing --------------------------------------------------------------------------------
    def action_import_file(self) -> None:
        if self.services.read_only:
            self.notify("The store is open read-only: import needs write access. The preview shows what "
                        "would change; nothing was written.", title="Import refused", severity="warning")
            return
        if self.state != "ready" or self.result is None:
            return
        self._set_state("importing")
        self.query_one("#summary", Static).update(untrusted("importing…"))
        self.import_records(self.result.records)

    @work(thread=True, exclusive=True, group="db", exit_on_error=False)
    def import_records(self, records: list) -> None:
        svc = self.services
        try:
            outcome = csv_file.write(svc.store, svc.playbook, records, now=svc.clock.now())
        except Exception as exc:  # noqa: BLE001 - the store failed: one line, nothing committed
            self.post_message(self.Imported(None, _one_line(exc)))
            return
        self.post_message(self.Imported(outcome))

    @on(Imported)
    def show_imported(self, message: Imported) -> None:
        summary = self.query_one("#summary", Static)
        if message.error:
            self._set_state("ready")
            summary.update(untrusted_line(f"import failed, nothing was written: {message.error}"))
            self.notify(untrusted_line(message.error), title="Import failed", severity="error")
            return
        self.imported = message.outcome
        self._set_state("imported")
        lines = csv_file.summary_lines(message.outcome)
        name = self._label(self.path) if self.path else ""
        summary.update(Content("\n").join([styled("[b $success]✔ imported[/] $name", name=name)]
                                          + [untrusted_line(x) for x in lines]))
        self.notify(untrusted_line(lines[0]), title="Import done")
        self._reload_pipeline()

    def _reload_pipeline(self) -> None:
        """The Pipeline underneath shows the imported deals when the user returns to it."""
        from inspector.screens.pipeline_screen import PipelineScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, PipelineScreen):
                screen.load_deals()

    # -- other keys -------------------------------------------------------------------------------
    def action_reload(self) -> None:
        if self.path is not None and self.state not in ("reading", "importing"):
            self.read_file()

    def action_focus_path(self) -> None:
        self.query_one("#path", PathInput).focus()

    def action_leave(self) -> None:
        if self.state == "importing":
            self.notify("The import is being written; wait for it to finish", severity="warning")
            return
        self.app.sub_title = self._previous_sub_title
        self.app.pop_screen()

    @on(Worker.StateChanged)
    def report_failure(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.notify(untrusted_line(event.worker.error), title="Import screen", severity="error")


class _Named(os.PathLike):
    """A path that reads `path` but is called `label` (so problems cite the short name)."""

    def __init__(self, path: Path, label: str) -> None:
        self.path, self.label = path, label

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return self.label
