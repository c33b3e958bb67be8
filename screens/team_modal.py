"""Choose the scope: one team, or all teams. Dismisses with the team name, None (all) or False."""
from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from inspector.services import Services
from inspector.widgets.text import untrusted_line

ALL = "\x00all"


class TeamModal(ModalScreen[str | None | bool]):
    CSS_PATH = "team_modal.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Choose the team to inspect")
            yield OptionList(id="teams")

    def on_mount(self) -> None:
        self.load_teams()

    @work(thread=True, exclusive=True, group="db", exit_on_error=False)
    def load_teams(self) -> None:
        teams = self.services.store.teams()
        self.app.call_from_thread(self._fill, teams)

    def _fill(self, teams: list[tuple[str, str, int]]) -> None:
        options = self.query_one(OptionList)
        options.add_option(Option("All teams", id=ALL))
        for team, manager, count in teams:
            # the manager once: not after a team already named for them (Maven: "Central · Dustin
            # Brinkmann"), nor as a dash after nothing
            named = team if not manager or manager in team else f"{team} — {manager}"
            options.add_option(Option(untrusted_line(f"{named} ({count} open)"), id=team))
        options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(None if event.option.id == ALL else event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(False)
