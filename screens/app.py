"""InspectorApp: the composition root. It receives Services and pushes the first screen."""
from __future__ import annotations

from textual import work
from textual.app import App
from textual.binding import Binding

from inspector.screens.commands import ScreenBindings
from inspector.services import Services


class InspectorApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "Inspector"
    SUB_TITLE = "weekly pipeline inspection"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
    ]

    COMMANDS = App.COMMANDS | {ScreenBindings}

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    def on_mount(self) -> None:
        from inspector.screens.pipeline_screen import PipelineScreen

        if self.services.read_only:
            self.sub_title = "read-only review"
            self.push_screen(PipelineScreen(self.services))
            return
        self.resume_or_start()

    @work(thread=True, exclusive=True, group="startup", exit_on_error=False)
    def resume_or_start(self) -> None:
        """Open on the Pipeline; if this user has an unfinished inspection, resume it."""
        from sqlalchemy import text

        svc = self.services
        with svc.store.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT id, team, current_deal_id, current_question, queue FROM inspection_session "
                "WHERE manager = :m AND status = 'open' ORDER BY started_at DESC, id DESC LIMIT 1"),
                {"m": svc.actor}).first()
        self.call_from_thread(self._open, row)

    def _open(self, row) -> None:
        import json

        from inspector.screens.pipeline_screen import PipelineScreen

        if row is None:
            self.push_screen(PipelineScreen(self.services))
            return
        session_id, team, deal_id, question, queue = row
        self.push_screen(PipelineScreen(self.services, team))
        pipeline = self.screen
        assert isinstance(pipeline, PipelineScreen)
        pipeline._open_session(session_id, deal_id or json.loads(queue)[0], question, True)
