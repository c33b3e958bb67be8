"""`inspector report` (the monthly governance pack) and the audit anchor every export carries.

The store is the hand-built November 2026 history of tests/unit/test_metrics.py (known answers),
plus three hostile rows: a deal named `<script>alert(1)</script>`, a deal whose name is a formula
and whose amount is -1,200.00, and a session by a manager and team whose names start with
formula characters and contain markup.
"""
from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from inspector.cli import main
from inspector.exports import FORMULA_PREFIXES
from inspector.metrics import DEFINITIONS, REPORT_KEYS, Scope
from inspector.reports import (AGENDA, AMOUNT_COLUMNS, build_report, read_anchor, report_csv,
                               report_html, report_json, verify_prefix)
from inspector.storage.inspections import Inspections
from tests.unit.test_metrics import NOV, TODAY, build, deal, ts

SCRIPT = "<script>alert(1)</script>"
FORMULA_DEAL = '=HYPERLINK("http://x/?"&A1)'
EVIL_MANAGER = "@Mgr <Evil> & Co"
EVIL_TEAM = "-Team X"
#: The seed article's governance agenda, in order.
SEED_AGENDA = ["Forecast slippage", "Stage aging", "Commit conversion", "Closed-won handoff completeness",
               "Missing finance fields", "Onboarding delays tied to sales handoff", "Closed-lost reasons",
               "Post-sale risks from promises made"]
NOV_NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)


def add_hostile(svc) -> None:
    store = svc.store
    store.bulk_insert("deal", [
        deal(8, name=SCRIPT, stage="qualification", stage_entered_on=TODAY - timedelta(days=90), close_pushes=0),
        deal(9, name=FORMULA_DEAL, team=EVIL_TEAM, manager=EVIL_MANAGER, owner="Rep X", stage="solution_fit",
             amount_minor=-120_000, stage_entered_on=TODAY - timedelta(days=3), close_pushes=0),
    ])
    insp = Inspections(store)
    week = date(2026, 11, 16)
    s = insp.start_session(manager=EVIL_MANAGER, team=EVIL_TEAM, queue=[9], week_of=week, now=ts(2026, 11, 17))
    st = insp.state(s.id, 9)
    insp.save_decisions(st.id, {"forecast_call": (None, "best_case"), "stage_verdict": (None, "supported")},
                        actor=EVIL_MANAGER, now=ts(2026, 11, 17, 11))
    insp.finish(s.id, actor=EVIL_MANAGER, now=ts(2026, 11, 17, 12))


@pytest.fixture
def store_path(sqlite_services, tmp_path):
    build(sqlite_services)
    add_hostile(sqlite_services)
    sqlite_services.store.engine.dispose()
    return tmp_path / "inspector.db"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def report(path, fmt: str, *extra: str) -> str:
    result = run("--db", str(path), "report", "--period", "2026-11", "--format", fmt, *extra)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def csv_rows(body: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"), newline="")))


def unneutralise(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_PREFIXES) else cell


# -- the pack follows the agenda, every metric carries its definition -------------------------------
def test_markdown_follows_the_seed_agenda_with_definitions(store_path):
    md = report(store_path, "md")
    assert md.startswith("# Monthly governance review: November 2026\n")
    headings = re.findall(r"^## \d+\. (.+)$", md, flags=re.M)
    assert headings[:8] == SEED_AGENDA
    agenda = re.findall(r"^\d+\. (.+)$", md.split("## Agenda", 1)[1].split("## 1.", 1)[0], flags=re.M)
    assert agenda[:8] == SEED_AGENDA
    for key in REPORT_KEYS:  # every metric: its title, then its one-line definition in italics
        title, definition = DEFINITIONS[key]
        assert f"### {title}\n\n*{definition}*\n" in md, key
    # known answers from the hand-built history
    assert "**3 pushes on 2 deals (1 pushed more than once); 48 days pushed, 16 per push**" in md
    assert "| Pushed twice | 1 | 41 |" in md
    assert "**2 of 3 deals called Commit have closed won (67%)" in md
    # the last line is the audit anchor
    assert re.search(r"\nEvent log: \d+ events, chain head [0-9a-f]{64}\n$", md)


def test_markdown_keeps_hostile_names_literal_and_tables_intact(store_path):
    md = report(store_path, "md")
    line = next(x for x in md.splitlines() if SCRIPT in x)  # longest in stage: 90 days
    assert line.startswith(f"| {SCRIPT} (#8) |") and line.count(" | ") == 5
    assert f"| {EVIL_MANAGER} |" in md  # manager vs rep calls, by manager


def test_every_metric_is_in_every_format_with_its_definition(store_path):
    js = json.loads(report(store_path, "json"))
    assert [m["key"] for m in js["metrics"]] == list(REPORT_KEYS)
    assert [a["title"] for a in js["agenda"]][:8] == SEED_AGENDA
    for m in js["metrics"]:
        assert (m["title"], m["definition"]) == DEFINITIONS[m["key"]]
        assert m["definition"] and "\n" not in m["definition"]
    rows = csv_rows(report(store_path, "csv"))
    for row in rows:
        assert row["definition"] == DEFINITIONS[row["metric"]][1]
    assert {r["metric"] for r in rows} == {k for k in REPORT_KEYS if js["metrics"][REPORT_KEYS.index(k)]["rows"]}
    html_body = report(store_path, "html")
    for key in REPORT_KEYS:
        title, definition = DEFINITIONS[key]
        assert f'<section id="{key}"><h3>{title}</h3>' in html_body
        assert f'<p class="def">{definition}</p>' in html_body.replace("&#x27;", "'")


# -- HTML: a standalone page with SVG charts, every outside string escaped --------------------------
def test_html_is_a_standalone_page_with_svg_charts_and_escaped_text(store_path):
    body = report(store_path, "html")
    assert body.startswith("<!DOCTYPE html>\n") and body.rstrip().endswith("</body></html>")
    assert '<meta charset="utf-8">' in body and "<style>" in body
    # nothing is fetched from elsewhere and nothing runs
    assert not re.search(r"<script|<link|<iframe|<img|\bsrc=|\bhref=|@import|url\(", body, flags=re.I)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; (#8)" in body
    assert "@Mgr &lt;Evil&gt; &amp; Co" in body and EVIL_MANAGER not in body
    charts = re.findall(r"<svg\b.*?</svg>", body, flags=re.S)
    assert len(charts) >= 8
    for svg in charts:  # each chart is well-formed XML (text inside escaped)
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    labels = [t.text for svg in charts for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
    assert EVIL_MANAGER in labels  # the manager bar, drawn with the literal name
    for key in ("slippage", "stage_aging", "commit_conversion", "coverage", "call_differences"):
        section = body.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]
        assert "<svg" in section, key
    assert re.search(r'<p class="anchor">Event log: \d+ events, chain head [0-9a-f]{64}</p>', body)


# -- CSV: neutralised text, numbers stay numbers, and the round trip with JSON -----------------------
def test_csv_neutralises_text_and_keeps_numbers(store_path):
    rows = csv_rows(report(store_path, "csv"))
    for row in rows:
        for col, cell in row.items():
            if cell.startswith(FORMULA_PREFIXES):  # only numbers may start with '-'
                assert col == "value" and re.fullmatch(r"-\d+(\.\d+)?", cell), (col, cell)
    mgr = [r for r in rows if r["metric"] == "call_differences" and unneutralise(r["row_key"]) == EVIL_MANAGER]
    assert mgr and {(r["row_key"], r["row_label"]) for r in mgr} == {("'" + EVIL_MANAGER, "'" + EVIL_MANAGER)}
    coverage = [r for r in rows if r["metric"] == "coverage" and r["row_key"].endswith(EVIL_MANAGER)]
    assert {r["value"] for r in coverage if r["measure"] == "Team"} == {"'" + EVIL_TEAM}
    assert {r["value"] for r in coverage if r["measure"] == "Manager"} == {"'" + EVIL_MANAGER}
    # the -1,200.00 deal is the only open Solution fit deal: the amount stays a plain number
    amount = [r["value"] for r in rows if r["metric"] == "pipeline_by_stage" and r["row_key"] == "solution_fit"
              and r["measure"] == "Amount"]
    assert amount == ["-1200.00"]


def test_csv_team_scope_cell_is_neutralised(store_path):
    rows = csv_rows(report(store_path, "csv", f"--team={EVIL_TEAM}"))
    assert rows and {r["team"] for r in rows} == {"'" + EVIL_TEAM}
    calls = {r["measure"]: r["value"] for r in rows if r["metric"] == "call_differences"}
    assert (calls["Calls"], calls["Differ"]) == ("1", "1")


def test_csv_and_json_give_the_same_numbers(store_path):
    js = json.loads(report(store_path, "json"))
    rows = csv_rows(report(store_path, "csv"))
    from_csv = {(r["metric"], unneutralise(r["row_key"]), r["measure"]): r["value"] for r in rows}
    expected = {}
    for m in js["metrics"]:
        for row, rk in zip(m["rows"], m["row_keys"]):
            for col, val in zip(m["columns"][1:], row[1:]):
                expected[(m["key"], rk, col)] = (col, val)
    assert set(from_csv) == set(expected)
    for k, (col, val) in expected.items():
        cell = from_csv[k]
        if isinstance(val, bool) or val is None or isinstance(val, str):
            assert unneutralise(cell) == ("" if val is None else str(val).lower() if isinstance(val, bool)
                                          else val), k
        elif col in AMOUNT_COLUMNS:  # JSON: minor units; CSV: currency units with two decimals
            assert re.fullmatch(r"-?\d+\.\d\d", cell) and round(float(cell) * 100) == val, (k, cell, val)
        else:
            assert float(cell) == pytest.approx(val), (k, cell, val)
    # and both carry the known answers
    assert from_csv[("slippage", "2", "Days pushed")] == "41"
    slip = next(m for m in js["metrics"] if m["key"] == "slippage")
    assert slip["values"]["days_pushed"] == 48


def test_json_is_the_report_build_report_makes(store_path, playbook):
    from inspector.services import build_services

    js = json.loads(report(store_path, "json"))
    svc = build_services(store_path, read_only=True, playbook=playbook)
    try:
        scope = Scope(NOV.start, NOV.end, date.fromisoformat(js["scope"]["as_of"]), label="November 2026")
        rep = build_report(svc.store, playbook, scope, NOV_NOW)
    finally:
        svc.store.engine.dispose()
    mine = json.loads(report_json(rep))
    assert mine["metrics"] == js["metrics"]
    assert mine["chain"] == js["chain"] and js["chain"]["verified"] is True
    assert {d["name"] for d in js["offenders"]["Longest in stage"]} >= {SCRIPT}


@pytest.mark.parametrize("bad", ["2026-13", "Nov", "2026-11-05..2026-11-01", "", "last-weeks"])
def test_bad_period_is_one_line_exit_2(store_path, bad):
    result = run("--db", str(store_path), "report", "--period", bad)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("inspector: ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_report_to_a_file(store_path, tmp_path):
    out = tmp_path / "pack.html"
    result = run("--db", str(store_path), "report", "--period", "2026-11", "--format", "html", "-o", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr.startswith(f"Wrote {out} (November 2026")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_on_postgres(pg_url, playbook, clock):
    """The renderers run on a PostgreSQL store too and give the same numbers as on SQLite."""
    from inspector.services import build_services

    svc = build_services(pg_url, clock=clock, playbook=playbook, actor="setup")
    try:
        build(svc)
        add_hostile(svc)
        rep = build_report(svc.store, playbook, Scope(NOV.start, NOV.end, TODAY, label="November 2026"), NOV_NOW)
    finally:
        svc.store.engine.dispose()
    rows = csv_rows(report_csv(rep))
    amount = [r["value"] for r in rows if r["metric"] == "pipeline_by_stage" and r["row_key"] == "solution_fit"
              and r["measure"] == "Amount"]
    assert amount == ["-1200.00"]
    assert rep.metrics["slippage"].values["days_pushed"] == 48
    assert rep.chain_ok and rep.event_count > 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report_html(rep)


# -- every export carries the anchor; verify --against proves the prefix unchanged --------------------
EXPORTS = [("report", "md"), ("report", "csv"), ("report", "json"), ("report", "html"),
           ("session", "md"), ("session", "csv"), ("session", "json"),
           ("log", "csv"), ("log", "json"), ("log", "md")]


def export(path, kind: str, fmt: str, out) -> None:
    args = {"report": ["report", "--period", "2026-11"], "session": ["export", "session", "1"],
            "log": ["export", "log"]}[kind]
    result = run("--db", str(path), *args, "--format", fmt, "--output", str(out))
    assert result.exit_code == 0, result.output


def head_and_count(path) -> tuple[int, str]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT seq, hash FROM inspection_event ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        conn.close()


def append_events(path, playbook, n_sessions: int = 1) -> None:
    from inspector.services import build_services

    svc = build_services(path, playbook=playbook, actor="later")
    try:
        insp = Inspections(svc.store)
        for k in range(n_sessions):
            s = insp.start_session(manager="Mgr A", team="Team A", queue=[1, 7], week_of=date(2026, 11, 30),
                                   now=ts(2026, 12, 1 + k))
            insp.finish(s.id, actor="Mgr A", now=ts(2026, 12, 1 + k, 11))
    finally:
        svc.store.engine.dispose()


def tamper(path, seq: int) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TRIGGER inspection_event_no_update")
        conn.execute("UPDATE inspection_event SET actor = 'Someone else' WHERE seq = ?", (seq,))
    conn.close()


@pytest.mark.parametrize("kind,fmt", EXPORTS)
def test_export_carries_the_anchor_and_verifies_as_a_prefix(store_path, tmp_path, playbook, kind, fmt):
    out = tmp_path / f"{kind}.{fmt}"
    export(store_path, kind, fmt, out)
    count, head = head_and_count(store_path)
    assert read_anchor(out) == (count, head)
    assert head in out.read_text(encoding="utf-8-sig")

    ok = run("--db", str(store_path), "log", "verify", "--against", str(out))
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith(f"{out}: ok: the export's {count} events are unchanged; nothing was added")

    append_events(store_path, playbook)
    later = run("--db", str(store_path), "log", "verify", "--against", str(out))
    assert later.exit_code == 0, later.output
    assert f"the export's {count} events are unchanged; 2 events were added since" in later.stdout

    tamper(store_path, count // 2)
    bad = run("--db", str(store_path), "log", "verify", "--against", str(out))
    assert bad.exit_code == 1
    assert bad.stdout == ""
    assert bad.stderr == f"{out}: event {count // 2} no longer matches its hash: the log was changed\n"


def test_verify_against_notices_events_removed_and_a_later_break(store_path, tmp_path, playbook):
    out = tmp_path / "log.json"
    export(store_path, "log", "json", out)
    count, _head = head_and_count(store_path)
    append_events(store_path, playbook)
    tamper(store_path, count + 2)  # after the exported prefix: the prefix holds, the chain does not
    result = run("--db", str(store_path), "log", "verify", "--against", str(out))
    assert result.exit_code == 1
    assert f"the exported prefix is intact, but the log breaks at event {count + 2}" in result.stderr
    conn = sqlite3.connect(store_path)
    with conn:
        conn.execute("DROP TRIGGER inspection_event_no_delete")
        conn.execute("DELETE FROM inspection_event WHERE seq >= ?", (count,))
    conn.close()
    result = run("--db", str(store_path), "log", "verify", "--against", str(out))
    assert result.exit_code == 1
    assert "events were removed" in result.stderr


def test_verify_against_a_file_without_an_anchor_is_exit_2(store_path, tmp_path):
    f = tmp_path / "notes.md"
    f.write_text("# Just notes\n", encoding="utf-8")
    result = run("--db", str(store_path), "log", "verify", "--against", str(f))
    assert result.exit_code == 2
    assert result.stderr.startswith("inspector: ") and "no audit anchor" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_verify_prefix_rejects_a_forged_head(store_path, playbook):
    from inspector.services import build_services

    count, head = head_and_count(store_path)
    svc = build_services(store_path, read_only=True, playbook=playbook)
    try:
        assert verify_prefix(svc.store, count, head).ok
        forged = verify_prefix(svc.store, count, "f" * 64)
        assert not forged.ok and "the log was rewritten" in forged.message
        assert not verify_prefix(svc.store, count + 5, head).ok
        assert not verify_prefix(svc.store, count, "not-a-hash").ok
    finally:
        svc.store.engine.dispose()


def test_log_csv_neutralises_actor_and_keeps_numbers(store_path, tmp_path):
    out = tmp_path / "log.csv"
    export(store_path, "log", "csv", out)
    rows = csv_rows(out.read_text(encoding="utf-8-sig"))
    js_out = tmp_path / "log.json"
    export(store_path, "log", "json", js_out)
    js = json.loads(js_out.read_text(encoding="utf-8"))
    assert len(rows) == len(js["events"]) == js["chain"]["count"]
    evil = [r for r in rows if unneutralise(r["actor"]) == EVIL_MANAGER]
    assert evil and {r["actor"] for r in evil} == {"'" + EVIL_MANAGER}
    for r, ev in zip(rows, js["events"]):  # round trip: same events, same numbers, same hashes
        assert int(r["seq"]) == ev["seq"] and r["hash"] == ev["hash"] and r["prev_hash"] == ev["prev_hash"]
        assert json.loads(unneutralise(r["payload"])) == ev["payload"]
        assert (int(r["deal_id"]) if r["deal_id"] else None) == ev["deal_id"]


def test_agenda_constant_matches_the_seed():
    assert [t for t, _k in AGENDA][:8] == SEED_AGENDA
    covered = {k for _t, keys in AGENDA for k in keys}
    assert covered == set(REPORT_KEYS)


def test_offenders_are_the_deals_drill_gives_row_by_row(services, playbook):
    """`drill_top` (one query for all rows) lists what `drill` lists row by row, cut to the limit."""
    from inspector.metrics import compute, drill, drill_top
    from inspector.reports import OFFENDERS

    build(services)
    add_hostile(services)
    for limit in (1, 2, 10):
        for key, bucket, _heading in OFFENDERS:
            buckets = [bucket] if bucket else compute(services.store, playbook, NOV, key).row_keys
            expected = [d for b in buckets for d in drill(services.store, playbook, NOV, key, b, limit=limit)]
            assert drill_top(services.store, playbook, NOV, key, buckets, limit=limit) == expected[:limit], \
                (key, bucket, limit)
    rep = build_report(services.store, playbook, NOV, NOV_NOW)
    assert [d.deal_id for d in rep.offenders["Longest in stage"]][:2] == [8, 7]  # 90 and 40 days in stage
    assert [d.deal_id for d in rep.offenders["Deals pushed twice"]] == [1]


# -- issue 6: open handoff exceptions and repeated post-sale feedback categories -----------------------
EXC_ITEM = "PO | <b>number</b>"


def add_handoff_items(svc) -> None:
    """Deal 5 already has an open exception ("use case", no owner or date) and one feedback item."""
    svc.store.bulk_insert("handoff_exception", [
        {"deal_id": 9, "missing_item": EXC_ITEM, "owner": "Dana Ortiz", "due_date": date(2026, 11, 20),
         "risk": "Invoice late", "status": "open", "created_at": ts(2026, 11, 10)},
        {"deal_id": 2, "missing_item": "Closed one", "owner": "Dana Ortiz", "due_date": date(2026, 11, 20),
         "risk": "-", "status": "closed", "created_at": ts(2026, 11, 10)}])
    svc.store.bulk_insert("feedback_item", [
        {"deal_id": 5, "category": "feature_not_in_scope", "text": "again", "recorded_at": ts(2026, 11, 29)},
        {"deal_id": 2, "category": "timeline_oversold", "text": "once", "recorded_at": ts(2026, 11, 5)},
        {"deal_id": 2, "category": "timeline_oversold", "text": "later", "recorded_at": ts(2026, 12, 1)}])


def test_report_lists_open_handoff_exceptions_and_repeated_feedback(services, playbook):
    from inspector.reports import report_markdown

    build(services)
    add_hostile(services)
    add_handoff_items(services)
    rep = build_report(services.store, playbook, NOV, NOV_NOW)
    assert [(x.deal_id, x.missing_item) for x in rep.open_exceptions] == [(9, EXC_ITEM), (5, "use case")]
    assert rep.open_exceptions[0].overdue_days == 13 and rep.open_exceptions[0].age_days == 23
    # November only: feature_not_in_scope twice on deal 5 (repeated), timeline_oversold once (December's left out)
    assert [(p.category, p.items, p.repeated) for p in rep.feedback] == [("feature_not_in_scope", 2, True),
                                                                         ("timeline_oversold", 1, False)]
    md = report_markdown(rep)
    section = md.split("## 4. Closed-won handoff completeness", 1)[1].split("## 5.", 1)[0]
    assert "**Open handoff exceptions** (2 open as of 2026-12-03, 1 overdue; earliest due first)" in section
    row = next(x for x in section.splitlines() if "Invoice late" in x)
    assert row == (f"| {FORMULA_DEAL} (#9) | PO \\| <b>number</b> | Dana Ortiz | 2026-11-20 | 13 days "
                   "| Invoice late | 23 days |")
    assert "| Deal 5 (#5) | use case | no owner | no date | - | - | 7 days |" in section
    assert "Closed one" not in md
    promises = md.split("## 8. Post-sale risks from promises made", 1)[1].split("## 9.", 1)[0]
    assert "**Repeated post-sale feedback categories** (recorded in the period more than once)" in promises
    assert "| Customer expected a feature not in scope | 2 | 1 | Deal 5 (#5) |" in promises
    assert "Timeline was oversold |" not in promises.split("**Repeated post-sale", 1)[1]

    html_body = report_html(rep)
    exc = html_body.split('<h4 id="open-handoff-exceptions">', 1)[1].split("</table>", 1)[0]
    assert "PO | &lt;b&gt;number&lt;/b&gt;" in exc and "<b>number" not in exc
    assert "Customer expected a feature not in scope" in html_body.split('<h4 id="repeated-feedback">', 1)[1]
    js = json.loads(report_json(rep))
    assert [x["missing_item"] for x in js["open_handoff_exceptions"]] == [EXC_ITEM, "use case"]
    assert js["open_handoff_exceptions"][0]["due_date"] == "2026-11-20"
    assert [(p["category"], p["items"], p["repeated"]) for p in js["feedback_patterns"]] == [
        ("feature_not_in_scope", 2, True), ("timeline_oversold", 1, False)]
    # a team scope narrows both
    team_b = build_report(services.store, playbook, Scope(NOV.start, NOV.end, TODAY, team="Team B"), NOV_NOW)
    assert team_b.open_exceptions == [] and team_b.feedback == []


def test_report_says_when_nothing_is_open_or_repeated(services, playbook):
    from inspector.reports import report_markdown

    build(services)
    with services.store.engine.begin() as conn:
        conn.execute(text("UPDATE handoff_exception SET status = 'closed'"))
    md = report_markdown(build_report(services.store, playbook, NOV, NOV_NOW))
    assert "**Open handoff exceptions** (0 open as of 2026-12-03, 0 overdue; earliest due first)\n\nNone open.\n" in md
    assert "No feedback category repeated in the period." in md
