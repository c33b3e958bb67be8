"""`inspector handoff DEAL --format md` and `inspector close-lost DEAL --reason KEY [--detail]`:
exit codes (0 ok, 2 bad input), one-line errors without a traceback, the store unchanged after
a refusal, and outside text printed literally."""
from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timezone

import pytest
from click.testing import CliRunner

from inspector.cli import main
from inspector.services import build_services
from inspector.storage.handoffs import Handoffs
from inspector.storage.inspections import Inspections

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
HOSTILE = "[@click=app.quit]x[/]"


@pytest.fixture
def db(sqlite_services, playbook, tmp_path):
    """Three deals: 1 open in commit (hostile name, a promise, an exception, an overstated
    inspection and an open risk), 2 open in commit, 3 closed won."""
    store = sqlite_services.store
    store.bulk_insert("deal", [
        {"id": i, "source": "t", "external_id": f"T-{i}", "name": name, "account": "Acme", "owner": "Zoë",
         "team": "Team A", "manager": "Mgr A", "stage": stage, "status": status, "amount_minor": 2_000_000,
         "currency": "USD", "close_date": date(2026, 12, 20), "forecast_category": "commit"}
        for i, name, stage, status in ((1, HOSTILE, "commit", "open"), (2, "Deal [/foo", "commit", "open"),
                                       (3, "Gamma", "closed_won", "won"))])
    ho = Handoffs(store, playbook)
    ho.add_promise(1, category="timeline", text_="Live in 30 days | [b]fast[/b]", promised_by="Zoë",
                   promised_on=date(2026, 11, 20), actor="Mgr A", now=NOW)
    ho.add_exception(1, "Billing entity", owner="Dana", due_date=date(2026, 12, 20), risk="Invoice delayed",
                     actor="Mgr A", now=NOW)
    insp = Inspections(store)
    sid = insp.start_session(manager="Mgr A", team="Team A", queue=[1], week_of=date(2026, 11, 23), now=NOW).id
    insp.save_decisions(insp.state(sid, 1).id, {"stage_verdict": (None, "overstated"),
                                                "supported_stage": (None, "discovery")}, actor="Mgr A", now=NOW)
    insp.add_risk(1, type="competitive_pressure", severity="high", owner="Zoë", due_date=None, mitigation="",
                  actor="Mgr A", now=NOW)
    store.engine.dispose()
    return tmp_path / "inspector.db"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def state(path, deal_id: int, playbook) -> tuple:
    svc = build_services(path, read_only=True, playbook=playbook)
    try:
        rec = Handoffs(svc.store, playbook).record(deal_id, date(2026, 12, 3))
        return rec.deal.row.status, rec.deal.row.stage, rec.lost, len(Inspections(svc.store).events())
    finally:
        svc.store.engine.dispose()


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("inspector: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


# -- handoff packet ----------------------------------------------------------------------------
def test_handoff_packet_markdown_to_stdout(db):
    result = run("--db", db, "handoff", "1", "--format", "md")
    assert result.exit_code == 0, result.output
    md = result.stdout
    assert md.startswith(f"# Handoff packet: {HOSTILE}\n")  # literal, not markup
    assert "- Readiness: **Not ready:" in md
    assert "## Promises made" in md and "Live in 30 days \\| [b]fast[/b]" in md  # table cell escaped for |
    assert "| Billing entity | Dana | 2026-12-20 | Invoice delayed | open |" in md
    for section in ("## Handoff packet", "## Closed-won requirements", "## Finance and billing",
                    "## Deal desk approvals", "## Customer-success acceptance", "Gaps without an exception:"):
        assert section in md


def test_handoff_by_external_id_to_a_file(db, tmp_path):
    out = tmp_path / "packet.md"
    result = run("--db", db, "handoff", "T-2", "--output", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"Wrote {out} (handoff packet of deal 2: Not ready")
    assert out.read_text(encoding="utf-8").startswith("# Handoff packet: Deal [/foo\n")


def test_handoff_of_unknown_deal_is_one_line_exit_2(db):
    one_line_error(run("--db", db, "handoff", "NOPE-9"), "no deal with id or external id 'NOPE-9'")


def test_handoff_unknown_format_is_a_usage_error(db):
    result = run("--db", db, "handoff", "1", "--format", "pdf")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for '--format': 'pdf'" in result.stderr


# -- close-lost -------------------------------------------------------------------------------
@pytest.mark.parametrize("args, fragment", [
    ((), "a closed-lost reason is required: one of no_decision, competitor"),
    (("--reason", "bad_luck"), "unknown closed-lost reason 'bad_luck'"),
    (("--reason", "other"), "reason 'other' (Other (describe)) needs a detail that says what happened"),
    (("--reason", "other", "--detail", "   "), "needs a detail"),
])
def test_close_lost_without_a_specific_reason_is_refused(db, playbook, args, fragment):
    before = state(db, 1, playbook)
    one_line_error(run("--db", db, "close-lost", "1", *args), fragment)
    assert state(db, 1, playbook) == before
    assert before[0] == "open"


def test_close_lost_shows_earlier_inspections_and_open_risks(db, playbook):
    result = run("--db", db, "close-lost", "T-1", "--reason", "other", "--detail", "Acquired; budget frozen")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"Closed lost: T-1 {HOSTILE}: Other (describe) (Acquired; budget frozen)"
    assert lines[1] == "Earlier inspections (1):"
    assert "stage Commit overstated (evidence supports Discovery)" in lines[2]
    assert lines[3] == "Risks open at close: Competitive pressure (high)"
    status, stage, lost, _events = state(db, 1, playbook)
    assert (status, stage, lost.reason, lost.detail) == ("lost", "closed_lost", "other", "Acquired; budget frozen")


def test_close_lost_refuses_won_unknown_and_read_only(db, playbook):
    before = state(db, 3, playbook)
    one_line_error(run("--db", db, "close-lost", "3", "--reason", "price"), "is closed won")
    assert state(db, 3, playbook) == before
    one_line_error(run("--db", db, "close-lost", "T-99", "--reason", "price"), "no deal with id or external id")
    one_line_error(run("--db", db, "--read-only", "close-lost", "2", "--reason", "price"), "drop --read-only")
    assert state(db, 2, playbook)[0] == "open"


def test_close_lost_in_a_real_process_exits_2_with_one_line(db):
    proc = subprocess.run([sys.executable, "-m", "inspector", "--db", str(db), "close-lost", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "inspector: a closed-lost reason is required: one of no_decision, competitor, price, missing_feature, "
        "poor_fit, timing, budget_shift, procurement_failure, security_legal_blocker, champion_lost, other"]
