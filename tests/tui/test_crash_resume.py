"""The app is SIGKILLed mid-deal (a real process); on restart every saved answer is there
and the session resumes at that deal and question."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from inspector import demo
from inspector.clock import FixedClock
from inspector.screens.app import InspectorApp
from inspector.screens.inspect_screen import InspectScreen
from inspector.services import build_services
from inspector.storage.inspections import Inspections
from tests.tui.test_inspection_walk import TODAY_CLOCK, settle

ROOT = Path(__file__).resolve().parents[2]


async def test_killed_app_resumes_with_every_saved_answer(tmp_path, playbook):
    db = tmp_path / "crash.db"
    svc = build_services(db, clock=FixedClock.on(TODAY_CLOCK), playbook=playbook, actor="Crash Manager")
    demo.seed(svc.store, playbook, TODAY_CLOCK, 200)
    svc.store.engine.dispose()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, str(ROOT / "tests" / "tui" / "crash_child.py"), str(db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    acknowledged: list[tuple[int, int]] = []
    session_id = deal_id = None
    try:
        for line in child.stdout:
            parts = line.split()
            if parts[:1] == ["SESSION"]:
                session_id, deal_id = int(parts[1]), int(parts[3])
            elif parts[:1] == ["SAVED"]:
                acknowledged.append((int(parts[1]), int(parts[3])))
                if len(acknowledged) == 4:  # mid-deal: four of nine questions answered
                    child.send_signal(signal.SIGKILL)
                    break
    finally:
        child.wait(timeout=30)
        err = child.stderr.read()
    assert child.returncode == -signal.SIGKILL, err[-2000:]
    assert session_id is not None and len(acknowledged) == 4, err[-2000:]

    svc = build_services(db, clock=FixedClock.on(TODAY_CLOCK), playbook=playbook, actor="Crash Manager")
    insp = Inspections(svc.store)
    state = insp.state(session_id, deal_id)
    keys = [q.key for q in playbook.questions]
    for n, q in acknowledged:
        assert state.answers[keys[q - 1]][0] == f"answer {n}"
    assert insp.chain().ok

    app = InspectorApp(svc)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        assert (screen.session_id, screen.deal_id) == (session_id, deal_id)
        # resumes at the question being answered when the process died (the 4th or the 5th)
        highlighted = screen.query_one("#questions").highlighted
        assert highlighted in (acknowledged[-1][1] - 1, acknowledged[-1][1])
        assert screen.data.state.answers[keys[0]][0] == "answer 0"
    svc.store.engine.dispose()
