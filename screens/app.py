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
        Binding("f2", "open('review')", "Review", show=False, tooltip="RevOps: saved inspections and verdict history"),
        Binding("f3", "open('dashboard')", "Dashboard", show=False, tooltip="Governance metrics and charts"),
        Binding("f4", "open('handoff')", "Handoff", show=False, tooltip="Closed-won readiness, CS acceptance, exceptions"),
        Binding("f5", "open('sync')", "Sync", show=False, tooltip="Sync deals from HubSpot or Salesforce"),
        Binding("f6", "open('import')", "Import", show=False, tooltip="Import a CSV export"),
    ]
    #: screen name -> (module under inspector.screens, class); each takes (services) and,
    #: when it opens on a deal, `deal_id=` (the deal highlighted on the current screen).
    SCREENS_BY_NAME = {
        "review": ("review_screen", "ReviewScreen"),
        "dashboard": ("dashboard_screen", "DashboardScreen"),
        "handoff": ("handoff_screen", "HandoffScreen"),
        "sync": ("sync_screen", "SyncScreen"),
        "import": ("import_screen", "ImportScreen"),
    }

    COMMANDS = App.COMMANDS | {ScreenBindings}

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    def action_open(self, name: str) -> None:
        """Open one of the app's other screens (they are imported only when first used)."""
        import importlib

        module_name, class_name = self.SCREENS_BY_NAME[name]
        try:
            module = importlib.import_module(f"inspector.screens.{module_name}")
        except ModuleNotFoundError:
            self.notify(f"The {name} screen is not available in this version", severity="warning")
            return
        screen_cls = getattr(module, class_name)
        deal_id = getattr(self.screen, "current_deal_id", lambda: None)()
        if type(self.screen) is screen_cls:
            return
        self.push_screen(screen_cls(self.services, deal_id=deal_id))

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
