"""The real third-party datasets in ../shared/datasets, imported as a manager would, shown on the
Pipeline screen: the Maven CRM pipeline (8,800 opportunities) and the Salesforce apex recipes'
hostile strings. Skipped when ../shared is absent."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from inspector.screens.app import InspectorApp
from inspector.sources import csv_file

from tests.tui.test_pipeline_screen import SIZE, cell, grid_of, settle, type_text, visible_rows
from tests.unit.test_csv_import import APEX, MAVEN, hostile_csv

NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)


def _import(services, path, playbook) -> int:
    result = csv_file.parse(path, playbook)
    assert result.problem_count == 0 and not result.questions, result.report()
    return csv_file.write(services.store, playbook, result.records, now=NOW).created


@pytest.mark.skipif(not MAVEN.is_file(), reason=f"shared dataset absent: {MAVEN}")
async def test_maven_pipeline_shows_its_open_deals(sqlite_services, playbook):
    assert _import(sqlite_services, MAVEN, playbook) == 8800
    with sqlite_services.store.engine.connect() as conn:
        from sqlalchemy import text

        open_deals = conn.execute(text("SELECT COUNT(*) FROM deal WHERE status = 'open'")).scalar_one()
    app = InspectorApp(sqlite_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        assert grid.row_count == open_deals > 0
        await pilot.press("slash")
        await type_text(pilot, "cancity")
        await pilot.pause()
        rows = visible_rows(grid)
        assert rows and all("Cancity" in cell(r, "name") or "Cancity" in cell(r, "account") for r in rows)


@pytest.mark.skipif(not (APEX / "Opportunities.json").is_file(), reason=f"shared dataset absent: {APEX}")
async def test_apex_hostile_names_show_literally(sqlite_services, playbook, tmp_path):
    path, names = hostile_csv(tmp_path)
    assert _import(sqlite_services, path, playbook) == len(names)
    app = InspectorApp(sqlite_services)
    async with app.run_test(size=(200, 80)) as pilot:
        await settle(app, pilot)
        grid = grid_of(app)
        assert grid.row_count == len(names)
        shown = {cell(r, "name") for r in visible_rows(grid)}
        width = dict((c.key, c.width) for c in grid.columns)["name"]
        for name in ("Deal [/foo]", "[@click=app.quit]x[/]", "$name [b]$x[/b]"):
            assert name[:width] in shown  # as typed: no markup parsed, no action run
        await pilot.click(grid, offset=(10, 3))
        await pilot.pause()
        assert app.is_running
