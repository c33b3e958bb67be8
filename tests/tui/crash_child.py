"""Child process for the crash/resume test: drives the real app headless and reports saves.

Usage: python crash_child.py DB_PATH TEAM. Prints "SESSION <id> DEAL <id>" once, then
"SAVED <n>" after each answer the app has confirmed as saved, forever, until killed.
"""
from __future__ import annotations

import asyncio
import sys

from inspector.clock import FixedClock
from inspector.screens.app import InspectorApp
from inspector.screens.inspect_screen import InspectScreen
from inspector.services import build_services
from tests.tui.test_inspection_walk import TODAY_CLOCK, settle, start, type_text


async def main(db: str) -> None:
    svc = build_services(db, clock=FixedClock.on(TODAY_CLOCK), actor="Crash Manager")
    app = InspectorApp(svc)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await start(pilot)
        print(f"SESSION {screen.session_id} DEAL {screen.deal_id}", flush=True)
        n = 0
        while True:
            for q in range(1, 10):
                assert isinstance(app.screen, InspectScreen)
                await pilot.press(str(q))
                await pilot.pause()
                await type_text(pilot, f"answer {n}")
                before = screen.last_saved
                await pilot.press("ctrl+s")
                for _ in range(50):
                    await settle(pilot)
                    if screen.last_saved and screen.last_saved != before or screen.data and \
                            screen.data.state.answers.get(svc.playbook.questions[q - 1].key, ("",))[0].endswith(f"answer {n}"):
                        break
                print(f"SAVED {n} Q {q}", flush=True)
                n += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
