"""`inspector export session` and `inspector log verify` (headless, exit codes, AUD-02)."""
from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import sys
from datetime import date, datetime, timezone

import pytest
from click.testing import CliRunner

from inspector.cli import main
from inspector.storage.inspections import Inspections

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def store_path(sqlite_services, tmp_path):
    """A SQLite store with one session of three deals and a few events; returns (path, session id)."""
    store = sqlite_services.store
    store.bulk_insert("deal", [
        {"id": i, "source": "t", "external_id": f"T-{i}", "name": name, "account": "Acme",
         "owner": "Zoë", "team": "Team A", "manager": "Mgr A", "stage": "discovery", "status": "open",
         "amount_minor": amount, "currency": "USD", "close_date": date(2026, 12, 20),
         "forecast_category": cat}
        for i, name, amount, cat in ((1, "Alpha", 12_000_050, "commit"), (2, "=Beta", -120_000, "pipeline"),
                                     (3, "Gamma", 500_000, "best_case"))])
    insp = Inspections(store)
    sid = insp.start_session(manager="Mgr A", team="Team A", queue=[1, 2, 3], week_of=date(2026, 11, 30),
                             now=NOW).id
    st = insp.state(sid, 1)
    insp.save_answer(st.id, "problem", "Invoices are wrong", "confirmed", expected=None, actor="Mgr A", now=NOW)
    insp.save_decisions(st.id, {"forecast_call": (None, "commit"), "commit_exception": ("", "CFO said yes")},
                        actor="Mgr A", now=NOW)
    sqlite_services.store.engine.dispose()
    return tmp_path / "inspector.db", sid


def chain_head(path) -> str:
    from inspector.services import build_services

    svc = build_services(path, read_only=True)
    try:
        return Inspections(svc.store).chain().head
    finally:
        svc.store.engine.dispose()


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_export_markdown_to_stdout(store_path):
    path, sid = store_path
    head = chain_head(path)
    result = run("--db", str(path), "export", "session", str(sid), "--format", "md")
    assert result.exit_code == 0, result.output
    md = result.stdout
    assert md.startswith("# Pipeline inspection: Team A")
    assert "3 in the session: 1 inspected, 0 skipped, 2 pending" in md
    assert "| Alpha | CFO said yes |" in md
    assert md.rstrip().endswith(f"Event log: 3 events, chain head {head}")
    assert result.stderr == ""


def test_export_csv_to_file_is_written_atomically(store_path, tmp_path):
    path, sid = store_path
    out = tmp_path / "exports" / "week.csv"
    out.parent.mkdir()
    out.write_text("old content", encoding="utf-8")
    result = run("--db", str(path), "export", "session", str(sid), "--format", "csv", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"Wrote {out}" in result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["week.csv"]  # no temp file left behind
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"), newline="")))
    assert [r["deal"] for r in rows] == ["Alpha", "'=Beta", "Gamma"]
    assert [r["amount"] for r in rows] == ["120000.50", "-1200.00", "5000.00"]
    assert {r["event_count"] for r in rows} == {"3"} and len({r["chain_head"] for r in rows}) == 1
    assert rows[0]["q_problem"] == "Invoices are wrong"
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8


def test_export_to_stdout_csv_has_no_bom(store_path):
    path, sid = store_path
    result = run("--db", str(path), "export", "session", str(sid), "--format", "csv")
    assert result.exit_code == 0
    assert result.stdout.startswith("session_id,deal_id,deal,")


def test_export_unknown_session_is_one_line_exit_2(store_path):
    path, _sid = store_path
    result = run("--db", str(path), "export", "session", "999", "--format", "md")
    assert result.exit_code == 2
    assert result.stderr == "inspector: no inspection session 999\n"
    assert result.stdout == "" and "Traceback" not in result.output


@pytest.mark.parametrize("args", [["export", "session", "x"], ["export", "session", "1", "--format", "pdf"]])
def test_export_bad_usage_exits_2(store_path, args):
    path, _sid = store_path
    assert run("--db", str(path), *args).exit_code == 2


def test_export_missing_database_is_a_user_error(tmp_path):
    result = run("--db", str(tmp_path / "nope.db"), "export", "session", "1")
    assert result.exit_code == 2
    assert "no such database" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "nope.db").exists()


def test_export_to_unwritable_place_is_one_line_exit_1(store_path, tmp_path):
    path, sid = store_path
    result = run("--db", str(path), "export", "session", str(sid), "--output", str(tmp_path / "no" / "x.md"))
    assert result.exit_code == 1
    assert result.stderr.startswith("inspector: ") and len(result.stderr.splitlines()) == 1


def test_export_does_not_import_textual(store_path, tmp_path):
    path, sid = store_path
    code = ("import sys\nfrom inspector.cli import main\n"
            f"main(['--db', {str(path)!r}, 'export', 'session', '{sid}', '--output', "
            f"{str(tmp_path / 'r.md')!r}], standalone_mode=False)\n"
            "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.md").read_text(encoding="utf-8").startswith("# Pipeline inspection")


def test_log_verify_ok(store_path):
    path, _sid = store_path
    result = run("--db", str(path), "log", "verify")
    assert result.exit_code == 0
    assert result.stdout == f"ok: 3 events, head {chain_head(path)}\n"


def test_log_verify_names_the_tampered_event(store_path):
    path, _sid = store_path
    conn = sqlite3.connect(path)
    with conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE inspection_event SET payload = '{}' WHERE seq = 2")
    with conn:
        conn.execute("DROP TRIGGER inspection_event_no_update")
        conn.execute("DROP TRIGGER inspection_event_no_delete")
        conn.execute("""UPDATE inspection_event SET payload = '{"question":"problem","old":["","missing"],"""
                     """"new":["Nothing is wrong","confirmed"]}' WHERE seq = 2""")
    conn.close()
    result = run("--db", str(path), "log", "verify")
    assert result.exit_code == 1
    assert result.stderr == "broken at event 2: content does not match its hash\n"
    assert result.stdout == ""


def test_log_verify_on_an_empty_store(tmp_path):
    from inspector.services import build_services

    build_services(tmp_path / "empty.db").store.engine.dispose()
    result = run("--db", str(tmp_path / "empty.db"), "log", "verify")
    assert result.exit_code == 0 and result.stdout == "ok: 0 events, head " + "0" * 64 + "\n"


@pytest.mark.postgres
def test_export_and_verify_on_postgres(pg_url):
    from inspector.services import build_services

    svc = build_services(pg_url, actor="setup")
    try:
        svc.store.bulk_insert("deal", [{"id": 1, "source": "t", "external_id": "T-1", "name": "Alpha",
                                        "team": "Team A", "stage": "discovery", "status": "open",
                                        "amount_minor": 1_000, "currency": "USD",
                                        "forecast_category": "pipeline"}])
        sid = Inspections(svc.store).start_session(manager="Mgr A", team="Team A", queue=[1],
                                                   week_of=date(2026, 11, 30), now=NOW).id
        head = Inspections(svc.store).chain().head
    finally:
        svc.store.engine.dispose()
    result = run("--db", pg_url, "export", "session", str(sid), "--format", "csv")
    assert result.exit_code == 0, result.output
    [row] = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert (row["deal"], row["amount"], row["chain_head"], row["event_count"]) == ("Alpha", "10.00", head, "1")
    result = run("--db", pg_url, "log", "verify")
    assert (result.exit_code, result.stdout) == (0, f"ok: 1 events, head {head}\n")
    assert run("--db", pg_url, "export", "session", "999").exit_code == 2
