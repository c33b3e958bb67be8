"""ReviewFilterModal: pick the Review filters (manager, team, rep, verdict, risk type,
exception, week range). Dismisses with the new `ReviewFilters`, or None (Escape)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Select

from inspector import review as rv
from inspector.playbook import Playbook
from inspector.widgets.text import untrusted_line

EXCEPTION_LABELS = {"any": "Any exception", "commit": "Commit without the criteria",
                    "handoff": "Handoff exception", "category_change": "Manager's call differs from the rep's"}


class ReviewFilterModal(ModalScreen[rv.ReviewFilters | None]):
    CSS_PATH = "review_filter_modal.tcss"
    BINDINGS = [
        Binding("ctrl+s", "apply", "Apply", priority=True),
        Binding("ctrl+x", "clear", "Clear all", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, pb: Playbook, filters: rv.ReviewFilters, values: dict[str, list[str]]) -> None:
        super().__init__()
        self.pb = pb
        self.filters = filters
        self.values = values

    def _select(self, id_: str, options: list[tuple[Content, str]], value: object) -> Select:
        current = value if value in {v for _l, v in options} else Select.NULL
        return Select(options, prompt="any", id=id_, value=current)

    def compose(self) -> ComposeResult:
        f, v = self.filters, self.values
        risk = self.pb.risk_label
        weeks = [(Content(w), w) for w in v.get("weeks", [])]
        fields = [
            ("Manager", self._select("manager", [(untrusted_line(m), m) for m in v.get("managers", [])], f.manager)),
            ("Team", self._select("team", [(untrusted_line(t), t) for t in v.get("teams", [])], f.team)),
            ("Rep", self._select("rep", [(untrusted_line(r), r) for r in v.get("reps", [])], f.rep)),
            ("Verdict", self._select("verdict", [(Content(x.replace("_", " ").capitalize()), x)
                                                 for x in rv.VERDICT_FILTERS], f.verdict)),
            ("Risk type", self._select("risk", [(untrusted_line(risk.get(r, r)), r)
                                                for r in v.get("risk_types", [])], f.risk_type)),
            ("Exception", self._select("exception", [(Content(EXCEPTION_LABELS.get(x, x)), x)
                                                     for x in rv.EXCEPTION_FILTERS], f.exception)),
            ("From week", self._select("week_from", weeks, f.week_from.isoformat() if f.week_from else None)),
            ("To week", self._select("week_to", weeks, f.week_to.isoformat() if f.week_to else None)),
        ]
        with Vertical(id="dialog"):
            yield Label(Content.from_markup("[b]Filter the inspection log[/b]"), id="filter-title")
            with Grid(id="filter-grid"):
                for label, select in fields:
                    yield Label(Content(label), classes="filter-label")
                    yield select
            with Horizontal(id="filter-buttons"):
                yield Button(Content("Apply"), variant="primary", id="apply")
                yield Button(Content("Clear all"), id="clear")
                yield Button(Content("Cancel"), id="cancel")
            yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#manager", Select).focus()

    def chosen(self) -> rv.ReviewFilters:
        def val(id_: str):
            return self.query_one(f"#{id_}", Select).selection

        wf, wt = val("week_from"), val("week_to")
        return replace(self.filters, manager=val("manager"), team=val("team"), rep=val("rep"),
                       verdict=val("verdict"), risk_type=val("risk"), exception=val("exception"),
                       week_from=date.fromisoformat(wf) if wf else None,
                       week_to=date.fromisoformat(wt) if wt else None)

    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        self.dismiss(self.chosen())

    @on(Button.Pressed, "#clear")
    def action_clear(self) -> None:
        for select in self.query(Select):
            select.clear()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
