"""Deterministic demo pipeline: teams, reps, deals with history, activities and evidence.

Everything derives from `random.Random(seed)` and the `today` passed in, so the same
arguments always give the same store. Rows are built as plain dicts and written with
executemany in a few transactions (no per-row ORM objects), so 100k deals seed in seconds.
"""
from __future__ import annotations

import operator
import random
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from inspector import subproc
from inspector.playbook import Playbook
from inspector.storage.repo import Store, sqlite_values

TEAMS = [
    ("EMEA Enterprise", "Siobhán O'Connor",
     ["José Álvarez", "Zoë Brontë", "Łukasz Wiśniewski", "Renée Dubois-Martin", "Søren Kjær"]),
    ("North America Mid-Market", "Marcus \"Mac\" Whitfield",
     ["Priya Raghunathan", "D'Andre Jackson", "Emily Nguyễn", "Tomás O'Neill", "Hannah Schmidt"]),
    ("APAC Growth", "Mei-Ling Zhāng",
     ["Hiroshi Tanaka", "Aarav Mehta", "Chloé Martin", "Nguyễn Thị Hà", "Liam O'Brien"]),
    ("Public Sector & Education", "Grace Okafor-Smith",
     ["Björn Andersson", "Ana María Peña", "Yusuf Demir", "Ingrid Østergaard"]),
]
ACCOUNT_WORDS = [
    "Société Générale Services", "Müller & Söhne GmbH", "O'Brien Logistics", "Café Olé S.A.",
    "Zürich Rückversicherung", "Nordlys AS", "Acme [EMEA] Ltd.", "Brontë Analytics",
    "São Paulo Energia", "Kraków Fintech Sp. z o.o.", "Hōkū Robotics", "Niño Health",
    "Smith, Jones & Partners", "Blue/Green Retail", "100% Organic Co.", "Ørsted Wind Partners",
    "Łódź Logistics", "Crème Brûlée Bakeries", "Tōkyō Components", "Data \"Lake\" Inc.",
    "Fjällräven Outdoor", "Córdoba Mining", "Hélène & Fils", "Über Mobility Labs",
    "Dæmon Security", "Quantum-Leap AI", "Maple & Oak Insurance", "Pacific Rim Freight",
    "Northwind Traders", "Contoso Pharma", "Fabrikam Steel", "Litware Learning",
    "Adatum Health", "Tailspin Toys", "Wingtip Toys", "Proseware, Inc.",
    "Woodgrove Bank", "Alpine Ski House", "Lucerne Publishing", "Coho Winery",
]
PRODUCTS = ["Platform", "Analytics add-on", "Enterprise suite", "Onboarding services",
            "Data connectors", "Premium support", "Forecasting module", "Security pack"]
DEAL_KINDS = ["new business", "expansion", "renewal + upsell", "pilot", "multi-year",
              "cross-sell", "replacement"]
OPEN_STAGES = ["qualification", "discovery", "solution_fit", "commercial_review", "commit"]
OPEN_WEIGHTS = [22, 24, 22, 18, 14]
ACTIVITY_SUMMARIES = {
    "call": ["Intro call", "Discovery call", "Follow-up call", "Pricing call", "Check-in call"],
    "email": ["Sent deck", "Sent proposal", "Follow-up email", "Shared case study",
              "Sent pricing"],
    "meeting": ["Demo", "Workshop", "Executive briefing", "Technical deep dive",
                "On-site visit"],
    "note": ["Internal note", "Call notes", "Competitive intel"],
    "task": ["Prepare proposal", "Send recap", "Book follow-up"],
}
PROGRESS_SUMMARIES = {
    "buyer_confirmed_problem": "Buyer confirmed the problem in writing",
    "buyer_introduced_stakeholders": "Buyer introduced the IT and finance leads",
    "buyer_agreed_approach": "Buyer agreed our approach fits their process",
    "shared_approval_path": "Buyer shared the approval path and sign-off order",
    "agreed_next_action": "Buyer agreed the next action and date",
    "economic_buyer_engaged": "CFO joined the call and asked for the business case",
    "mutual_close_plan_signed": "Mutual close plan agreed with the buyer",
    "agreed_timeline": "Buyer confirmed the go-live timeline",
    "legal_review_started": "Buyer sent the contract to legal",
}
DATE_FIELDS = {"contract_signed_on", "contract_start", "contract_end", "renewal_date",
               "kickoff_date"}
RISK_TYPES = ["missing_exec_sponsor", "unclear_success_criteria", "complex_procurement",
              "product_gap", "integration_dependency", "security_review",
              "implementation_capacity", "competitive_pressure", "timeline_risk", "pricing_discount"]
FIELD_TEXT = {
    "business_problem": ["Forecast misses cost them a quarter of planning accuracy",
                         "Manual onboarding takes 6 weeks per customer",
                         "Billing errors on 8% of invoices"],
    "buyer_role": ["VP Sales Operations", "Head of Finance Systems", "CIO", "Director of CS"],
    "contract_scope": ["Platform for 250 seats + onboarding", "Analytics add-on, 2 regions",
                       "Enterprise suite, EMEA entities only"],
    "agreed_value": ["Cut forecast variance from 18% to 8%", "Save 2 FTE in billing ops",
                     "Onboard customers in 2 weeks"],
    "decision_process": ["Champion → CFO → procurement → legal", "Steering committee monthly",
                         "Security review, then CFO sign-off"],
    "mutual_close_plan": ["MCP v2 shared in deal room", "Close plan agreed on the last call"],
    "economic_buyer": ["Anna Kovács (CFO)", "Raj Patel (COO)", "Émilie Laurent (CRO)"],
    "billing_entity": ["Holding GmbH", "US Inc.", "APAC Pte. Ltd."],
    "payment_terms": ["Net 30", "Net 45", "Net 60", "Annual upfront"],
    "use_case": ["Weekly forecast inspection", "Customer onboarding", "Revenue reporting"],
    "success_criteria": ["Forecast within 5% for two quarters", "Go-live in 30 days"],
    "stakeholders": ["CFO, VP Sales, RevOps lead", "CIO, Head of CS, procurement"],
}


@dataclass(frozen=True)
class SeedResult:
    deals: int
    changes: int
    activities: int
    seconds: float = 0.0


def _at(d: date, rng: random.Random) -> datetime:
    """A working-hours moment on day d (one random draw)."""
    r = rng.getrandbits(16)
    return datetime(d.year, d.month, d.day, 8 + r % 10, (r >> 4) % 4 * 15, tzinfo=timezone.utc)


def generate(pb: Playbook, n_deals: int, today: date, seed: int = 7,
             activities_per_deal: float = 5.0) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """Deals, deal changes, activities and risks as row dicts (deal ids assigned from 1)."""
    out: tuple[list[dict], list[dict], list[dict], list[dict]] = ([], [], [], [])
    for part in iter_generate(pb, n_deals, today, seed, activities_per_deal):
        for whole, piece in zip(out, part):
            whole.extend(piece)
    return out


def iter_generate(pb: Playbook, n_deals: int, today: date, seed: int = 7,
                  activities_per_deal: float = 5.0, chunk: int = 10000):
    """`generate` in chunks of `chunk` deals (same rows, bounded memory)."""
    rng = random.Random(seed)
    risks: list[dict] = []
    deals: list[dict] = []
    changes: list[dict] = []
    acts: list[dict] = []
    act_id = 0
    reps = [(team, mgr, rep) for team, mgr, rs in TEAMS for rep in rs]
    for deal_id in range(1, n_deals + 1):
        team, manager, owner = reps[rng.randrange(len(reps))]
        account = rng.choice(ACCOUNT_WORDS)
        if deal_id % 997 == 0:  # a few hostile names, as CRMs really contain
            account = rng.choice(["[b]Bold[/b] Corp", "Deal [/foo Ltd", "x [/] y GmbH",
                                  "[@click=app.quit]Click Me Inc[/]"])
        name = f"{account} — {rng.choice(PRODUCTS)} {rng.choice(DEAL_KINDS)}"
        created = today - timedelta(days=rng.randint(10, 200))
        roll = rng.random()
        status = "won" if roll < 0.10 else "lost" if roll < 0.18 else "open"
        if status == "open":
            stage = rng.choices(OPEN_STAGES, OPEN_WEIGHTS)[0]
        else:
            stage = "closed_won" if status == "won" else "closed_lost"
        currency = "EUR" if team.startswith("EMEA") and rng.random() < 0.6 else "USD"
        amount = rng.choice([8, 12, 15, 20, 25, 30, 45, 60, 75, 90, 120, 150, 220, 300, 480]) * 1000
        amount = int(amount * rng.uniform(0.8, 1.3)) // 100 * 100
        # -- history: creation, stage moves (mostly forward, some back), pushes, amount changes.
        # Every change lies strictly between creation and today, and each field's changes are
        # stamped in increasing time, so the history replays to the deal's current values.
        target = OPEN_STAGES.index(stage) if status == "open" else rng.randint(2, 4)
        # the last stage move: most deals moved within their stage's aging limit, some stall
        limit = (21, 30, 30, 21, 14)[target]
        if target == 0:
            created = today - timedelta(days=rng.randint(2, 35))
        age = (today - created).days  # >= 2
        created_at = datetime(created.year, created.month, created.day, 7, tzinfo=timezone.utc)
        last_stamp: dict[str, datetime] = {}

        def stamp(day: date, chain: str) -> datetime:
            moment = max(_at(day, rng), created_at + timedelta(minutes=1))
            previous = last_stamp.get(chain)
            if previous is not None and moment <= previous:
                moment = previous + timedelta(minutes=20)
            last_stamp[chain] = moment
            return moment

        def some_day() -> date:  # a day after creation and before today
            return created + timedelta(days=rng.randint(1, age - 1))

        changes.append({"deal_id": deal_id, "field": "created", "old": None, "new": "qualification",
                        "changed_at": created_at, "source": "demo"})
        last_move = today - timedelta(days=rng.randint(1, limit) if rng.random() < 0.82
                                      else rng.randint(limit, limit * 3))
        if last_move <= created:
            last_move = created + timedelta(days=1)
        moves: list[tuple[date, int]] = []
        if target:
            gap = max((last_move - created).days, target)
            days = sorted(rng.sample(range(1, gap + 1), target - 1)) if target > 1 else []
            for i, d in enumerate(days):
                moves.append((created + timedelta(days=d), i + 1))
            moves.append((last_move, target))
        if target >= 2 and rng.random() < 0.15:  # moved back a stage, then forward again
            back = moves[-2][0] + timedelta(days=1)
            if back < moves[-1][0]:
                moves.insert(len(moves) - 1, (back, target - 2))
                moves.insert(len(moves) - 1, (back + timedelta(days=1), target - 1))
        current = 0
        stage_entered = created
        for day, idx in moves:
            day = min(day, today - timedelta(days=1))
            changes.append({"deal_id": deal_id, "field": "stage", "old": OPEN_STAGES[current],
                            "new": OPEN_STAGES[idx], "changed_at": stamp(day, "stage"), "source": "demo"})
            current, stage_entered = idx, day
        closed_on = None
        if status != "open":
            closed_on = min(today - timedelta(days=rng.randint(1, 90)), stage_entered + timedelta(days=rng.randint(5, 40)))
            closed_on = min(max(closed_on, stage_entered), today - timedelta(days=1))
            changes.append({"deal_id": deal_id, "field": "stage", "old": OPEN_STAGES[current],
                            "new": stage, "changed_at": stamp(closed_on, "stage"), "source": "demo"})
            stage_entered = closed_on
        final_close = today + timedelta(days=rng.randint(3, 120))
        pushes = 0
        n_push = rng.choices([0, 1, 2, 3, 4], [55, 25, 10, 7, 3])[0]
        steps = [rng.choice([7, 14, 21, 30, 45]) for _ in range(n_push)]
        close = final_close - timedelta(days=sum(steps))
        for day, step in zip(sorted(some_day() for _ in steps), steps):
            new_close = close + timedelta(days=step)
            changes.append({"deal_id": deal_id, "field": "close_date", "old": close.isoformat(),
                            "new": new_close.isoformat(), "changed_at": stamp(day, "close"), "source": "demo"})
            close, pushes = new_close, pushes + 1
        if status == "open" and rng.random() < 0.12:
            close = today - timedelta(days=rng.randint(1, 20))  # slipped past, not yet updated
        if status != "open":
            close = closed_on
        n_amount = rng.choices([0, 1, 2, 3], [50, 30, 15, 5])[0]
        for day in sorted(some_day() for _ in range(n_amount)):
            new_amount = int(amount * rng.choice([0.8, 0.9, 1.1, 1.25, 1.5])) // 100 * 100
            changes.append({"deal_id": deal_id, "field": "amount_minor", "old": str(amount * 100),
                            "new": str(new_amount * 100), "changed_at": stamp(day, "amount"), "source": "demo"})
            amount = new_amount
        category = {"commit": "commit", "commercial_review": rng.choice(["best_case", "commit"]),
                    "solution_fit": rng.choice(["best_case", "pipeline"])}.get(stage, "pipeline")
        if status == "won":
            category = "commit"
        elif status == "lost":
            category = "omit"
        if rng.random() < 0.2 and status == "open":
            old_cat = rng.choice(["pipeline", "best_case"])
            if old_cat != category:
                day = max(created + timedelta(days=1), today - timedelta(days=rng.randint(1, 20)))
                changes.append({"deal_id": deal_id, "field": "forecast_category", "old": old_cat,
                                "new": category, "changed_at": stamp(day, "category"), "source": "demo"})
        # -- evidence: most deals have what their stage needs; "optimistic" ones skip steps
        optimistic = rng.random() < 0.3
        p_ev = 0.55 if optimistic else 0.93
        stage_pos = OPEN_STAGES.index(stage) if status == "open" else len(OPEN_STAGES)
        fills: dict[str, str] = {}
        progress_due: list[str] = []
        risky = False
        for s_key in OPEN_STAGES[:stage_pos + 1]:
            exits = pb.stage_by_key[s_key].exit_evidence
            # exit evidence of earlier stages is what the current stage needs; the current
            # stage's own exit evidence is sometimes already there (ready to move on)
            p = p_ev if s_key != stage else 0.25
            for key in exits:
                ev = pb.evidence_by_key[key]
                if rng.random() >= p:
                    continue
                if ev.fields:
                    for f in ev.fields:
                        if f in DATE_FIELDS:
                            fills[f] = today - timedelta(days=rng.randint(1, 20))
                        else:
                            fills[f] = rng.choice(FIELD_TEXT.get(f, ["Documented in the deal room"]))
                elif ev.progress:
                    progress_due.append(ev.progress[0])
                elif ev.source == "risks":
                    risky = True
        # -- activities: seller activity, plus buyer progress where the buyer really moved
        n_act = max(0, int(rng.gauss(activities_per_deal, activities_per_deal / 2)))
        if optimistic:
            n_act += 2
        last_act = last_prog = None
        quiet = rng.random() < 0.1  # deal has gone quiet
        stalled = optimistic and rng.random() < 0.6  # lots of activity, no recent progress
        plan = [(None, rng.randint(1, 40) if not quiet else rng.randint(25, 120)) for _ in range(n_act)]
        if not optimistic and not quiet and rng.random() < 0.8:
            progress_due.append("agreed_next_action")
        for ptype in progress_due:
            recent = not stalled and not quiet and rng.random() < 0.6
            plan.append((ptype, rng.randint(1, 28) if recent else rng.randint(35, 150)))
        for ptype, back in plan:
            act_id += 1
            when = _at(max(created, today - timedelta(days=back)), rng)
            if ptype:
                kind, summary = rng.choice(["call", "meeting", "email"]), PROGRESS_SUMMARIES[ptype]
            else:
                kind = rng.choices(["call", "email", "meeting", "note", "task"], [30, 35, 20, 10, 5])[0]
                summary = rng.choice(ACTIVITY_SUMMARIES[kind])
            acts.append({"id": act_id, "deal_id": deal_id, "kind": kind, "occurred_at": when,
                         "summary": summary, "who": owner, "is_progress": ptype is not None,
                         "progress_type": ptype})
            last_act = when if last_act is None or when > last_act else last_act
            if ptype:
                last_prog = when if last_prog is None or when > last_prog else last_prog
        if risky or rng.random() < 0.15:
            risks.append({"deal_id": deal_id, "type": rng.choice(RISK_TYPES),
                          "severity": rng.choices(["low", "medium", "high"], [3, 5, 2])[0],
                          "owner": owner, "due_date": today + timedelta(days=rng.randint(-5, 30)),
                          "mitigation": rng.choice(["Exec sponsor call booked", "Security pack sent",
                                                    "Phased rollout proposed", ""]),
                          "status": "open" if status == "open" else "closed",
                          "created_at": _at(today - timedelta(days=rng.randint(2, 60)), rng)})
        deal = {
            "id": deal_id, "source": "demo", "external_id": f"DEMO-{deal_id:06d}", "name": name,
            "account": account, "owner": owner, "team": team, "manager": manager, "stage": stage,
            "crm_stage": stage, "status": status, "amount_minor": amount * 100, "currency": currency,
            "close_date": close, "forecast_category": category, "created_on": created,
            "stage_entered_on": stage_entered, "closed_on": closed_on, "close_pushes": pushes,
            "last_activity_at": last_act, "last_progress_at": last_prog,
            "updated_at": _at(today - timedelta(days=rng.randint(0, 10)), rng),
            "next_step": rng.choice(["Send proposal", "Security questionnaire", "Pricing review",
                                     "Exec alignment call", "Legal redlines", "Send recap",
                                     "Reference call", "Mutual plan review", "",
                                     ] if not optimistic else ["Follow up", "", "Check in"]),
            "next_step_date": today + timedelta(days=rng.randint(-20, 21) if optimistic
                                                else rng.randint(-6, 21)),
            "implementation_complexity": rng.choice(["low", "medium", "medium", "high"]),
            "products": rng.choice(PRODUCTS) if rng.random() < 0.8 else "",
            "discount_pct": rng.choice([0] * 5 + [5, 10, 10, 15, 15, 20, 25, 35]),
            "payment_terms": "", "term_months": rng.choice([12] * 15 + [24, 36]),
            "custom_terms": rng.random() < 0.06, "legal_exception": rng.random() < 0.03,
        }
        deal.update(fills)
        if status == "won":
            for f in ("use_case", "success_criteria", "stakeholders", "billing_entity", "payment_terms"):
                if rng.random() < 0.8:
                    deal[f] = rng.choice(FIELD_TEXT[f])
        deals.append(deal)
        if len(deals) == chunk or deal_id == n_deals:
            yield deals, changes, acts, risks
            deals, changes, acts, risks = [], [], [], []


def _fill(rows: list[dict]) -> list[dict]:
    """Give every row the same keys (executemany needs one shape)."""
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    defaults = {k: None for k in keys}
    str_defaults = {"business_problem", "buyer_role", "agreed_value", "use_case", "success_criteria",
                    "decision_process", "economic_buyer", "champion", "executive_sponsor",
                    "stakeholders", "mutual_close_plan", "contract_scope", "billing_entity",
                    "payment_terms", "products"}
    for k in str_defaults & keys.keys():
        defaults[k] = ""
    return [{**defaults, **r} for r in rows]


TABLES = ("deal", "deal_change", "activity", "risk")
PARALLEL_FROM = 20_000  # deals; below this a helper process costs more than it saves


def _as_tuples(deals: list[dict], changes: list[dict], acts: list[dict], risks: list[dict],
               ) -> list[tuple[str, list[str], list[tuple]]]:
    """One chunk as (table, columns, SQLite-ready tuple rows)."""
    out = []
    for table, rows in zip(TABLES, (_fill(deals), changes, acts, risks)):
        if rows:
            cols = list(rows[0])
            get = operator.itemgetter(*cols)
            out.append((table, cols, sqlite_values([get(r) if len(cols) > 1 else (get(r),) for r in rows])))
    return out


def _produce() -> None:
    """Helper process: read the arguments from stdin, write the pipeline to stdout chunk by
    chunk (`_as_tuples`), then None."""
    out = sys.stdout.buffer
    try:
        playbook, n_deals, today, seed = subproc.receive(None, sys.stdin.buffer)
        for part in iter_generate(playbook, n_deals, today, seed):
            subproc.send(out, _as_tuples(*part))
        subproc.send(out, None)
    except BaseException:
        subproc.send_failure(out)


def _generated_elsewhere(playbook: Playbook, n_deals: int, today: date, seed: int):
    """`iter_generate` run in a helper process (as `_as_tuples` chunks), so generating the
    next chunk overlaps with writing this one: the seed is then bound by the writes."""
    proc = subproc.start("inspector.demo", "_produce", "demo generator")
    finished = False
    try:
        subproc.send(proc.stdin, (playbook, n_deals, today, seed))
        proc.stdin.close()
        while (chunk := subproc.receive(proc)) is not None:
            yield chunk
        finished = True
    finally:
        subproc.stop(proc, finished=finished)


def seed(store: Store, playbook: Playbook, today: date, n_deals: int = 600, seed: int = 7, *,
         history_weeks: int = 0, parallel: bool | None = None) -> SeedResult:
    """Write a generated pipeline into an empty store.

    `parallel`: generate in a helper process while this one writes (default: on SQLite from
    PARALLEL_FROM deals). Either way the rows are the same.
    """
    if parallel is None:
        parallel = store.dialect == "sqlite" and n_deals >= PARALLEL_FROM
    chunks = (_generated_elsewhere(playbook, n_deals, today, seed) if parallel else
              (_as_tuples(*part) if store.dialect == "sqlite" else
               [(t, None, rows) for t, rows in zip(TABLES, (_fill(part[0]), *part[1:]))]
               for part in iter_generate(playbook, n_deals, today, seed)))
    totals = dict.fromkeys(TABLES, 0)
    with store.engine.begin() as conn, store.indexes_deferred(conn, TABLES[:3]):
        for chunk in chunks:
            for table, cols, rows in chunk:
                if cols is None:
                    store.bulk_insert(table, rows, conn)
                else:
                    store.insert_rows(table, cols, rows, conn)
                totals[table] += len(rows)
    # -- extra demo content (past inspections, handoffs): one call per module below --
    __import__("inspector.demo_handoff", fromlist=["seed_handoff"]).seed_handoff(store, playbook, today, seed)
    if history_weeks:  # past weeks of finished inspections (Review, Dashboard, reports)
        from inspector.demo_history import seed_history
        seed_history(store, playbook, today, seed, weeks=history_weeks)
    return SeedResult(totals["deal"], totals["deal_change"], totals["activity"])
