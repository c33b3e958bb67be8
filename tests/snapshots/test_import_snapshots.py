"""Looks of the Import screen (F6): a Salesforce export read and previewed (what was recognised,
each column's field and format, the dry run field by field, with creates, updates and a hostile
deal name shown literally), and a file with problems. Fixed clock (2026-12-03 via the `clock`
fixture), 120x40, workers settled. Update with `--snapshot-update` and read the SVGs.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from inspector.screens.app import InspectorApp
from inspector.screens.import_screen import ImportScreen
from inspector.sources import csv_file
from inspector.widgets.csv_tree import CsvTree

from tests.pilot_helpers import settle as settle_workers

SIZE = (120, 40)
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
HEAD = "Opportunity ID,Opportunity Name,Account Name,Opportunity Owner,Stage,Amount,Close Date,Forecast Category\n"
BEFORE = HEAD + ("006A1,Alpha renewal,Acme,Dana Lee,Discovery,\"$1,200.50\",2026-12-20,Pipeline\n"
                 "006A2,Beta expansion,Globex,Dana Lee,Solution Fit,\"$30,000.00\",2026-12-28,Best Case\n")
AFTER = HEAD + ("006A1,Alpha renewal,Acme,Sam Roe,Discovery,\"$1,500.00\",2027-01-20,Pipeline\n"
                "006A2,Beta expansion,Globex,Dana Lee,Commit,\"$30,000.00\",2026-12-28,Commit\n"
                "006A3,[@click=app.quit]x[/] Deal [/foo,Initech,Sam Roe,Discovery,$950.00,2027-01-15,Pipeline\n")
BAD = ("Opportunity ID,Opportunity Name,Account Name,Stage,Amount,Close Date\n"
       "006B1,Good one,Acme,Discovery,100.00,2026-12-20\n"
       "006B2,Bad stage,Acme,Nonsense Stage,100.00,2026-12-20\n"
       "006B3,Bad amount,Acme,Discovery,12 apples,03/04/2027\n")


@pytest.fixture
def exports(tmp_path, sqlite_services):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "before.csv").write_text(BEFORE, encoding="utf-8")
    svc = sqlite_services
    result = csv_file.parse(folder / "before.csv", svc.playbook)
    csv_file.write(svc.store, svc.playbook, result.records, now=NOW)
    (folder / "pipeline-december.csv").write_text(AFTER, encoding="utf-8")
    (folder / "broken.csv").write_text(BAD, encoding="utf-8")
    return folder


async def settle(pilot) -> None:
    """Wait for the screens' workers (not the DirectoryTree's loader, which never ends)."""
    await settle_workers(pilot, skip=(CsvTree,))


def open_file(svc, folder, name: str):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.app.push_screen(ImportScreen(svc, start_dir=folder))
        screen = pilot.app.screen
        tree = screen.query_one(CsvTree)
        for _ in range(200):
            if len(tree.root.children) == 3:
                break
            await pilot.pause(0.05)
        screen.query_one("#path").value = name
        await pilot.press("enter")  # the path box has focus: Enter reads the file
        for _ in range(200):
            if screen.state not in ("idle", "reading"):
                break
            await pilot.pause(0.05)
        await settle(pilot)

    return run_before


def test_import_preview(sqlite_services, exports, snap_compare):
    assert snap_compare(InspectorApp(sqlite_services), terminal_size=SIZE,
                        run_before=open_file(sqlite_services, exports, "pipeline-december.csv"))


def test_import_problems(sqlite_services, exports, snap_compare):
    assert snap_compare(InspectorApp(sqlite_services), terminal_size=SIZE,
                        run_before=open_file(sqlite_services, exports, "broken.csv"))
