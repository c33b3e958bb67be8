"""Looks of the Pipeline screen: the demo pipeline, and hostile deal names shown literally.

Fixed clock (2026-12-03 via the `clock` fixture), fixed terminal size, workers settled.
Update baselines with `pytest tests/snapshots --snapshot-update` and review the SVGs.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from textual.worker import WorkerCancelled

from inspector.screens.app import InspectorApp

SIZE = (120, 40)
TODAY = date(2026, 12, 3)


async def settle(pilot) -> None:
    for _ in range(3):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:
            pass
        await pilot.pause()
    # Re-highlight the first row so #detail is rendered from the settled view whatever the
    # order of the loading phases (see test_detail_follows_the_complete_findings, which
    # checks the refresh itself).
    await pilot.press("down", "up")
    await pilot.pause()


def test_pipeline_demo(snap_compare, demo_services):
    assert snap_compare(InspectorApp(demo_services), terminal_size=SIZE, run_before=settle)


HOSTILE = ["[b]x[/b]", "Deal [/foo", "x [/] y", "[@click=app.quit]Click me[/]", "ACME [2024] Q3",
           "\\", "[[b]]", "A\x1b]52;c;UFdORUQ=\x07B", "ACME\u202eVOD"]


def test_pipeline_hostile_names(snap_compare, sqlite_services):
    at = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    sqlite_services.store.bulk_insert("deal", [{
        "id": i + 1, "source": "crm", "external_id": f"H-{i + 1}", "name": name,
        "account": "[red]Acme[/red]", "owner": "[u]Rep[/u]", "team": "[b]Team[/b]",
        "manager": "Mgr", "stage": "commit", "status": "open", "amount_minor": 100_000 * (i + 1),
        "currency": "USD", "close_date": TODAY + timedelta(days=10 + i),
        "forecast_category": "commit", "next_step": "[i]call[/i]",
        "next_step_date": TODAY + timedelta(days=2), "stage_entered_on": TODAY - timedelta(days=3),
        "last_activity_at": at,
    } for i, name in enumerate(HOSTILE)])
    assert snap_compare(InspectorApp(sqlite_services), terminal_size=SIZE, run_before=settle)
