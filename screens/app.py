"""InspectorApp: the composition root. It receives Services and pushes the first screen."""
from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from inspector.services import Services


class InspectorApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "Inspector"
    SUB_TITLE = "weekly pipeline inspection"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    def on_mount(self) -> None:
        from inspector.screens.pipeline_screen import PipelineScreen

        if self.services.read_only:
            self.sub_title = "read-only review"
        self.push_screen(PipelineScreen(self.services))
