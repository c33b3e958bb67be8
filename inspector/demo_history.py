"""Past weeks of finished inspections for the demo store, so Review, Dashboard and reports
have content on first launch.

Every session, answer, decision and risk goes through the `Inspections` API, so the event
log is the real hash-chained log; timestamps are in the past relative to `today`. Each
inspection's snapshot (stage, amount, close date, rep category) is the deal's state that
week, replayed from its change history. Verdicts follow what later happened to the deal
(deals that later slipped or were lost are more often judged overstated), with seeded
randomness, so the same arguments always give the same store.

A bounded sample of deals is inspected per team and week, so seeding costs the same for a
600-deal demo and a 100k benchmark store.
"""
from __future__ import annotations

import random
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import text

from inspector.playbook import Playbook
from inspector.storage.inspections import Inspections
from inspector.storage.repo import Store, read_date

EXCEPTIONS = ["CFO confirmed budget verbally; paper follows", "Quarter-end push approved by the VP",
              "Champion owns the signature; EB sign-off is a formality", "Legal review is a rubber stamp"]
NOTES = ["Good call with the champion", "Needs an exec sponsor before Commit", "Pricing still open",
         "Procurement asked for a second quote", "Security questionnaire outstanding", "",
         "Rep is optimistic; evidence thin", "Buyer went quiet after the demo"]
ANSWERS = {
    "problem": ["Forecast misses cost a quarter of planning accuracy", "Manual onboarding takes 6 weeks"],
    "why_now": ["Board review in January", "Renewal of the incumbent in Q1", "No clear trigger"],
    "economic_buyer": ["CFO (Anna Kovács)", "COO", "Not identified yet"],
    "decision_process": ["Champion, CFO, procurement, legal", "Steering committee monthly", "Unknown"],
    "blockers": ["Security review", "Budget freeze risk", "None known"],
    "value": ["Cut forecast variance from 18% to 8%", "Save 2 FTE in billing ops"],
}
RISKS = ["missing_exec_sponsor", "complex_procurement", "security_review", "timeline_risk",
         "competitive_pressure", "pricing_discount", "integration_dependency", "implementation_capacity"]


@dataclass
class _Deal:
    id: int
    team: str
    manager: str
    owner: str
    status: str
    created_on: date | None
    closed_on: date | None
    stage: str
    amount: int
    close_date: date | None
    category: str


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.utc)


def _replay(changes: list[tuple[datetime, str, str | None, str | None]], field: str, moment: datetime,
            current):
    """The value of `field` at `moment`, from the ordered (at, field, old, new) history."""
    items = [(at, old, new) for at, f, old, new in changes if f == field]
    if not items:
        return current
    ats = [at for at, _o, _n in items]
    i = bisect_right(ats, moment)
    if i == 0:
        return items[0][1] if items[0][1] is not None else current
    return items[i - 1][2]


def seed_history(store: Store, playbook: Playbook, today: date, seed: int = 7, *, weeks: int = 8,
                 per_team: int = 10) -> int:
    """Add `weeks` past weeks of finished inspections by each team's manager; returns sessions."""
    rng = random.Random(seed * 7919 + 11)
    insp = Inspections(store)
    pb = playbook
    idx = pb.stage_index
    open_keys = [s.key for s in pb.open_stages]
    this_monday = today - timedelta(days=today.weekday())
    mondays = [this_monday - timedelta(weeks=k) for k in range(weeks, 0, -1)]
    with store.engine.connect() as conn:
        deals = [_Deal(r[0], r[1], r[2], r[3], r[4], read_date(r[5]), read_date(r[6]), r[7], r[8] or 0,
                       read_date(r[9]), r[10] or "pipeline") for r in conn.execute(text(
            "SELECT id, team, manager, owner, status, created_on, closed_on, stage, amount_minor, close_date, "
            "forecast_category FROM deal WHERE status <> 'removed' AND team <> '' ORDER BY id"))]
    if not deals:
        return 0
    by_team: dict[tuple[str, str], list[_Deal]] = defaultdict(list)
    for d in deals:
        by_team[(d.team, d.manager)].append(d)
    first, last = mondays[0], today

    def alive(d: _Deal, monday: date) -> bool:
        return ((d.created_on is None or d.created_on <= monday)
                and (d.closed_on is None or d.closed_on > monday + timedelta(days=1)))

    # a bounded candidate pool per team: deals alive at some point of the window, closing soon first
    pools: dict[tuple[str, str], list[_Deal]] = {}
    for key, ds in sorted(by_team.items()):
        live = [d for d in ds if any(alive(d, m) for m in mondays)]
        closing = [d for d in live if d.closed_on and first <= d.closed_on <= last]
        closing_ids = {d.id for d in closing}  # by id: a list scan is quadratic at 100k deals
        rest = [d for d in live if d.id not in closing_ids]
        rng.shuffle(closing)
        rng.shuffle(rest)
        pools[key] = closing[:per_team * 3] + rest[:per_team * 5]
    wanted = sorted({d.id for p in pools.values() for d in p})
    history: dict[int, list[tuple[datetime, str, str | None, str | None]]] = defaultdict(list)
    with store.engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            marks = ", ".join(str(int(i)) for i in part)
            for deal_id, field, old, new, at in conn.execute(text(
                    "SELECT deal_id, field, old, new, changed_at FROM deal_change "
                    f"WHERE deal_id IN ({marks}) ORDER BY changed_at, id")):
                history[deal_id].append((_ts(at), field, old, new))

    def pushed_after(d: _Deal, moment: datetime) -> bool:
        return any(f == "close_date" and at > moment and (new or "") > (old or "")
                   for at, f, old, new in history[d.id])

    sessions = 0
    carried: dict[tuple[str, str], list[int]] = {}
    for monday in mondays:
        for key in sorted(pools):
            team, manager = key
            pool = [d for d in pools[key] if alive(d, monday)]
            if not pool:
                continue
            keep = [d for d in pool if d.id in set(carried.get(key, ()))]
            keep = keep[: per_team // 2 + 1]
            fresh = [d for d in pool if d not in keep]
            rng.shuffle(fresh)
            chosen = (keep + fresh)[:per_team]
            carried[key] = [d.id for d in chosen]
            started = _at(monday + timedelta(days=1), 9, rng.randrange(0, 50))
            moment = started
            session = insp.start_session(manager=manager, team=team, queue=[d.id for d in chosen],
                                         week_of=monday, now=moment)
            sessions += 1
            snaps = {}
            for d in chosen:  # the deal as it was that week
                h = history[d.id]
                stage = _replay(h, "stage", moment, d.stage)
                if stage not in open_keys:  # no history: the deal's stage, or the last open one
                    stage = d.stage if d.stage in open_keys else open_keys[-1]
                amount = _replay(h, "amount_minor", moment, str(d.amount))
                close = _replay(h, "close_date", moment, d.close_date.isoformat() if d.close_date else None)
                cat = _replay(h, "forecast_category", moment, d.category)
                if cat == "omit" and d.status == "lost":
                    cat = rng.choice(["best_case", "commit", "pipeline"])
                snaps[d.id] = (stage, int(amount or 0), read_date(close), cat)
            with store.engine.begin() as conn:
                for d in chosen:
                    stage, amount, close, cat = snaps[d.id]
                    conn.execute(text("UPDATE inspection SET stage_at = :s, amount_minor_at = :a, "
                                      "close_date_at = :c, rep_category = :r WHERE session_id = :sid "
                                      "AND deal_id = :d"),
                                 store.params(conn, {"s": stage, "a": amount, "c": close, "r": cat,
                                                     "sid": session.id, "d": d.id}))
            for d in chosen:
                moment += timedelta(minutes=rng.randint(2, 9))
                stage, amount, close, cat = snaps[d.id]
                state = insp.state(session.id, d.id)
                if rng.random() < 0.05:
                    insp.set_status(state.id, "skipped", "Rep out this week", expected="pending",
                                    actor=manager, now=moment)
                    continue
                slipped = pushed_after(d, moment)
                bad = slipped or d.status == "lost"
                r = rng.random()
                if bad:
                    verdict = "overstated" if r < 0.7 else "supported"
                else:
                    verdict = "supported" if r < 0.8 else ("overstated" if r < 0.93 else "understated")
                if verdict == "overstated" and idx.get(stage, 0) == 0:
                    verdict = "supported"
                supported = None
                if verdict == "overstated":
                    supported = open_keys[max(0, idx[stage] - rng.choice([1, 1, 2]))]
                elif verdict == "understated" and idx[stage] + 1 < len(open_keys):
                    supported = open_keys[idx[stage] + 1]
                else:
                    verdict = "supported" if verdict == "understated" else verdict
                r = rng.random()
                if slipped:
                    cd_verdict = "not_credible" if r < 0.5 else ("at_risk" if r < 0.8 else "realistic")
                else:
                    cd_verdict = "realistic" if r < 0.8 else "at_risk"
                proposed = close + timedelta(days=rng.choice([14, 30, 45])) \
                    if cd_verdict == "not_credible" and close else None
                call = cat
                if verdict == "overstated" and cat == "commit" and rng.random() < 0.5:
                    call = "best_case"
                elif cat == "best_case" and not bad and rng.random() < 0.25:
                    call = "commit"
                elif cat == "pipeline" and verdict == "overstated" and rng.random() < 0.3:
                    call = "omit"
                decisions = {"stage_verdict": (None, verdict), "close_date_verdict": (None, cd_verdict),
                             "forecast_call": (None, call), "notes": ("", rng.choice(NOTES))}
                if supported:
                    decisions["supported_stage"] = (None, supported)
                if proposed:
                    decisions["proposed_close_date"] = (None, proposed)
                if call == "commit":
                    met = rng.random() < (0.45 if bad else 0.7)
                    decisions["commit_criteria_met"] = (None, met)
                    if not met and rng.random() < 0.7:
                        decisions["commit_exception"] = ("", rng.choice(EXCEPTIONS))
                insp.save_decisions(state.id, decisions, actor=manager, now=moment)
                for q in rng.sample(sorted(ANSWERS), 2):
                    answer = rng.choice(ANSWERS[q])
                    ev = "missing" if answer.startswith(("Not ", "Unknown", "No clear")) else \
                        rng.choice(["confirmed", "confirmed", "claimed"])
                    insp.save_answer(state.id, q, answer, ev, expected=None, actor=manager, now=moment)
                if rng.random() < (0.3 if bad else 0.12):
                    insp.add_risk(d.id, type=rng.choice(RISKS), severity=rng.choice(["medium", "high", "low"]),
                                  owner=d.owner, due_date=monday + timedelta(days=rng.randint(7, 21)),
                                  mitigation=rng.choice(["Exec sponsor call booked", "Security pack sent", ""]),
                                  actor=manager, now=moment, inspection_id=state.id, session_id=session.id)
            insp.finish(session.id, actor=manager, now=moment + timedelta(minutes=5))
    return sessions


def _ts(value) -> datetime:
    from inspector.storage.events import read_ts

    return read_ts(value)
