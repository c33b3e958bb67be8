"""Benchmark the RevOps side: dashboard metrics, the monthly report, the Review screen's queries.

Run: python tests/bench/bench_governance.py [--deals 100000] [--weeks 52] [--keep DIR]
(not a pytest test; prints a table, asserts nothing). Targets (issue 5): all dashboard metrics
for one team and one quarter < 1 s; the full monthly report < 5 s; the Review screen's initial
queries < 1 s.

The store: `demo.seed(..., n_deals, history_weeks=weeks)`, i.e. the demo pipeline with its
change history and `weeks` past weeks of finished inspections made through the Inspections API
(so the event log is the real hash-chained log). Two top-ups, both bulk inserts and both said
in the output: synthetic deal_change rows until the history holds `--history-rows` rows, and
extra inspected deals in every past session until each has `--per-session` (the demo inspects
10 deals per team and week; these extra rows carry verdicts and calls but no events).
Timings are measured on a read-only engine, as a reviewer would open the store: each measure
runs `--repeat` times; the table shows the median (and the first, cold run).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path

TODAY = date(2026, 12, 3)
ROWS: list[tuple[str, str, str, str]] = []


def row(name: str, value: str, target: str, note: str = "") -> None:
    ROWS.append((name, value, target, note))
    print(f"  {name:<58} {value:>12}   target {target:<8} {note}", flush=True)


def timed(fn, repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return times[0], statistics.median(times), result


# -- the store ------------------------------------------------------------------------------------
def seed(db: Path, n_deals: int, weeks: int, history_rows: int, per_session: int) -> None:
    from sqlalchemy import text

    from inspector import demo
    from inspector.playbook import load_playbook
    from inspector.services import build_services

    pb = load_playbook()
    svc = build_services(db, actor="bench")
    store = svc.store
    t = time.perf_counter()
    res = demo.seed(store, pb, TODAY, n_deals, seed=7, history_weeks=weeks)
    row(f"seed {res.deals:,} deals, {weeks} weeks of inspections", f"{time.perf_counter() - t:.1f} s", "-",
        f"{res.changes:,} history rows, {res.activities:,} activities")
    rng = random.Random(2026)
    with store.engine.connect() as conn:
        changes = conn.execute(text("SELECT COUNT(*) FROM deal_change")).scalar()
        max_id = conn.execute(text("SELECT MAX(id) FROM deal")).scalar()
    extra = max(0, history_rows - changes)
    t = time.perf_counter()
    start = datetime.combine(TODAY - timedelta(weeks=weeks), dtime(9), tzinfo=timezone.utc)
    span = int((datetime.combine(TODAY, dtime(9), tzinfo=timezone.utc) - start).total_seconds())
    stages = [s.key for s in pb.open_stages]
    cats = ["pipeline", "best_case", "commit"]
    batch: list[dict] = []
    for k in range(extra):
        field = rng.choice(("close_date", "amount_minor", "stage", "forecast_category", "next_step"))
        at = start + timedelta(seconds=rng.randrange(span))
        if field == "close_date":
            old = at.date() + timedelta(days=rng.randint(5, 60))
            new = old + timedelta(days=rng.choice([-7, 7, 14, 30, 45]))
            old, new = old.isoformat(), new.isoformat()
        elif field == "amount_minor":
            old = rng.randrange(1_000_00, 500_000_00)
            old, new = str(old), str(int(old * rng.choice([0.8, 0.9, 1.1, 1.25])))
        elif field == "stage":
            i = rng.randrange(len(stages) - 1)
            old, new = stages[i], stages[i + 1]
        elif field == "forecast_category":
            old, new = rng.sample(cats, 2)
        else:
            old, new = "Follow up", rng.choice(["Send proposal", "Book demo", "Security review"])
        batch.append({"deal_id": rng.randint(1, max_id), "field": field, "old": old, "new": new,
                      "changed_at": at, "source": "bench"})
        if len(batch) == 20_000 or k == extra - 1:
            store.bulk_insert("deal_change", batch)
            batch = []
    if extra:
        row("top-up: synthetic history rows (bulk insert)", f"{time.perf_counter() - t:.1f} s", "-",
            f"+{extra:,} rows, {changes + extra:,} in all")

    # extra inspected deals in every past session (bulk rows, no events)
    t = time.perf_counter()
    with store.engine.connect() as conn:
        sessions = conn.execute(text("SELECT id, team, week_of, started_at FROM inspection_session")).fetchall()
        in_session: dict[int, set[int]] = {}
        for sid, did in conn.execute(text("SELECT session_id, deal_id FROM inspection")):
            in_session.setdefault(sid, set()).add(did)
        by_team: dict[str, list[tuple]] = {}
        for r in conn.execute(text("SELECT id, team, stage, amount_minor, close_date, forecast_category, "
                                   "created_on, closed_on FROM deal WHERE status <> 'removed'")):
            by_team.setdefault(r[1], []).append(r)
    from inspector.storage.repo import read_date

    added, risks = [], []
    for sid, team, week_of, started in sessions:
        week = read_date(week_of)
        have = in_session.get(sid, set())
        need = per_session - len(have)
        if need <= 0:
            continue
        pool = by_team.get(team, [])
        picks = []
        while len(picks) < need and pool:
            d = pool[rng.randrange(len(pool))]
            created, closed = read_date(d[6]), read_date(d[7])
            if d[0] in have or (created and created > week) or (closed and closed <= week) or d[2] not in stages:
                continue
            have.add(d[0])
            picks.append(d)
        for pos, d in enumerate(picks, start=len(have) - len(picks)):
            verdict = rng.choices(["supported", "overstated", "understated"], [75, 20, 5])[0]
            call = rng.choice(cats + ["omit"])
            met = rng.random() < 0.6 if call == "commit" else None
            added.append({"session_id": sid, "deal_id": d[0], "position": pos, "status": "inspected",
                          "skip_reason": "", "stage_at": d[2], "amount_minor_at": d[3] or 0,
                          "close_date_at": read_date(d[4]), "rep_category": d[5] or "pipeline",
                          "stage_verdict": verdict,
                          "supported_stage": stages[max(0, stages.index(d[2]) - 1)] if verdict == "overstated" else None,
                          "close_date_verdict": rng.choices(["realistic", "at_risk", "not_credible"], [70, 20, 10])[0],
                          "forecast_call": call, "commit_criteria_met": met,
                          "commit_exception": "VP approved" if met is False and rng.random() < 0.6 else "",
                          "notes": "", "updated_at": datetime.combine(week + timedelta(days=1), dtime(10),
                                                                      tzinfo=timezone.utc),
                          "version": 2})
    if added:
        for i in range(0, len(added), 5000):
            store.bulk_insert("inspection", added[i:i + 5000])
        row("top-up: extra inspected deals per session (bulk insert)", f"{time.perf_counter() - t:.1f} s", "-",
            f"+{len(added):,} inspections, {per_session} per session")
    with store.engine.connect() as conn:
        counts = {tbl: conn.execute(text(f"SELECT COUNT(*) FROM {tbl}")).scalar()
                  for tbl in ("deal", "deal_change", "activity", "inspection_session", "inspection", "risk",
                              "inspection_event")}
    row("store", ", ".join(f"{k} {v:,}" for k, v in counts.items()), "-")
    svc.store.engine.dispose()


# -- the measures -----------------------------------------------------------------------------------
def measure(db: Path, repeat: int) -> None:
    from inspector.metrics import DASHBOARD_KEYS, Scope, compute_all
    from inspector.playbook import load_playbook
    from inspector.reports import RENDERERS, build_report
    from inspector import review as rv
    from inspector.services import build_services

    pb = load_playbook()
    svc = build_services(db, read_only=True, playbook=pb, actor="RevOps")
    store = svc.store
    team = max(store.teams(), key=lambda t: (t[2], t[0]))[0]
    quarter = Scope(date(2026, 10, 1), date(2027, 1, 1), TODAY, team=team, label="Q4 2026")
    first, med, res = timed(lambda: compute_all(store, pb, quarter, DASHBOARD_KEYS), repeat)
    row(f"dashboard: {len(DASHBOARD_KEYS)} metrics, one team, one quarter", f"{med:.3f} s", "< 1 s",
        f"cold {first:.3f} s · {team}")
    slow = []
    for key in DASHBOARD_KEYS:  # where the time goes
        t = time.perf_counter()
        compute_all(store, pb, quarter, [key])
        slow.append((time.perf_counter() - t, key))
    slow.sort(reverse=True)
    print("    slowest metrics: " + ", ".join(f"{k} {s * 1000:.0f} ms" for s, k in slow[:5]), flush=True)

    month = Scope(date(2026, 11, 1), date(2026, 12, 1), TODAY, label="November 2026")
    now = datetime.combine(TODAY, dtime(9), tzinfo=timezone.utc)

    def full_report():
        rep = build_report(store, pb, month, now)
        return rep, {fmt: render(rep) for fmt, render in RENDERERS.items()}

    first, med, (rep, bodies) = timed(full_report, repeat)
    row("monthly report: all teams, built + md/csv/json/html", f"{med:.3f} s", "< 5 s",
        f"cold {first:.3f} s · {rep.event_count:,} events verified · html {len(bodies['html']) // 1024} KiB")
    t = time.perf_counter()
    build_report(store, pb, month, now)
    built = time.perf_counter() - t
    print(f"    of which build_report {built:.3f} s (chain verification included)", flush=True)

    def review_open():
        values = rv.filter_values(store)
        sessions = rv.list_sessions(store, rv.ReviewFilters())
        findings = rv.list_findings(store, rv.ReviewFilters())
        detail = rv.inspection_detail(store, pb, findings[0].inspection_id) if findings else None
        return values, sessions, findings, detail

    first, med, (_v, sessions, findings, _d) = timed(review_open, repeat)
    row("review screen: filter values + sessions + findings + detail", f"{med:.3f} s", "< 1 s",
        f"cold {first:.3f} s · {len(sessions):,} sessions, {len(findings):,} findings")
    over = rv.ReviewFilters(verdict="overstated", manager=sessions[0].manager if sessions else None)
    first, med, res = timed(lambda: rv.list_findings(store, over), repeat)
    row("review: one manager's overstated deals", f"{med:.3f} s", "-", f"{len(res):,} findings")
    if findings:
        first, med, h = timed(lambda: rv.deal_history(store, pb, findings[0].deal_id), repeat)
        row("review: one deal's history", f"{med:.3f} s", "-", f"{len(h.weeks)} weeks, {len(h.changes)} changes")
    svc.store.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--history-rows", type=int, default=1_000_000)
    parser.add_argument("--per-session", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="reuse/keep the seeded database in this directory")
    args = parser.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="inspector-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / f"governance-{args.deals}-{args.weeks}w.db"
    print(f"Inspector governance benchmarks · {os.cpu_count()} cores · Python {sys.version.split()[0]} · {db}")
    if not db.exists():
        seed(db, args.deals, args.weeks, args.history_rows, args.per_session)
    measure(db, args.repeat)
    print("\n| measure | value | target | note |\n|---|---|---|---|")
    for name, value, target, note in ROWS:
        print(f"| {name.strip()} | {value} | {target} | {note} |")


def run_from_run_all(tmp: Path, deals: int) -> None:
    """One call from tests/bench/run_all.py: its own store in `tmp` (seeded once, then reused)."""
    db = tmp / f"governance-{deals}-52w.db"
    if not db.exists():
        seed(db, deals, 52, 10 * deals, 50)
    measure(db, 3)


if __name__ == "__main__":
    main()
