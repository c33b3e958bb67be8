"""Shared helpers for pilot (run_test) tests."""
from __future__ import annotations

from textual.worker import WorkerCancelled


async def settle(pilot, rounds: int = 4, skip: tuple[type, ...] = ()) -> None:
    """Let the app's workers finish and the screen catch up, `rounds` times (a worker's result
    often starts another). Workers of `skip` widgets are not waited for (a DirectoryTree's loader
    never ends)."""
    for _ in range(rounds):
        busy = [w for w in pilot.app.workers if not isinstance(w.node, skip)] if skip else None
        try:
            if busy is None:
                await pilot.app.workers.wait_for_complete()
            elif busy:  # (an empty list would mean every worker)
                await pilot.app.workers.wait_for_complete(busy)
        except WorkerCancelled:
            pass
        await pilot.pause()
