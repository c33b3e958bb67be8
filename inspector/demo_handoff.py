"""Demo handoffs: won deals handed to customer success (accepted, with exceptions, returned,
or never reviewed), promises, deal-desk approvals, closed-lost reasons, post-sale feedback.

Deterministic: everything derives from `seed` and the deals already in the store, with its
own random stream, so the base demo pipeline is unchanged. Open deals only gain promises and
pending approvals (neither changes a finding), so the pipeline and inspection look the same.
Rows are written in bulk, like the rest of the demo (pre-existing history has no events).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text

from inspector.handoff import suggest_tier
from inspector.playbook import Playbook
from inspector.rules.evaluate import _trigger_hit
from inspector.storage.repo import Store, read_date

CS_OWNERS = ["Fatima Al-Sayed", "Jonas Weber", "Keiko Satō", "Marta Nowak", "Olúwaseun Adeyemi"]
PROMISES = {
    "outcomes": ["Forecast accuracy within 5% by Q2", "Onboarding time cut by half in the first quarter",
                 "One source of truth for pipeline reviews"],
    "capabilities": ["Two-way Salesforce sync", "SSO with Okta at launch", "Custom dashboards per region"],
    "timeline": ["Live in 30 days", "Go-live before the fiscal year end", "Pilot team running in two weeks"],
    "services": ["Two onboarding workshops included", "Implementation engineer for six weeks"],
    "reporting": ["Weekly adoption report to the CFO", "Board-ready forecast pack each month"],
    "stakeholder": ["Quarterly business review with the COO", "Named contact for the IT security team"],
    "commercial": ["Price lock for 24 months", "Second year at 10% off"],
    "limitations": ["No on-premises deployment", "Offline mode is not available"],
}
FEEDBACK = [("timeline_oversold", 30, "Customer expected go-live in 30 days; plan says 75"),
            ("success_criteria_missing", 25, "No agreed success criteria at kickoff"),
            ("implementation_underestimated", 20, "Data migration is twice the scoped effort"),
            ("feature_not_in_scope", 12, "Customer expected the forecasting module"),
            ("stakeholder_map_wrong", 8, "Economic buyer left; new VP was never met"),
            ("immediate_renewal_risk", 5, "Sponsor questions the renewal already")]
LOST = [("no_decision", 22), ("competitor", 20), ("price", 15), ("timing", 10), ("budget_shift", 8),
        ("missing_feature", 8), ("poor_fit", 6), ("champion_lost", 5), ("procurement_failure", 4),
        ("security_legal_blocker", 4), ("other", 3)]
LOST_DETAIL = {"competitor": ["Chose the incumbent's bundle", ""], "price": ["20% above budget", ""],
               "other": ["Acquired mid-cycle; all purchases frozen"], "missing_feature": ["Needs on-prem", ""]}
TEXT = {
    "use_case": ["Weekly forecast inspection", "Customer onboarding", "Revenue reporting"],
    "success_criteria": ["Forecast within 5% for two quarters", "Go-live in 30 days",
                         "All managers inspecting weekly by March"],
    "stakeholders": ["CFO, VP Sales, RevOps lead", "CIO, Head of CS, procurement"],
    "champion": ["Lena Fischer (RevOps lead)", "Sam Okoro (Sales Ops)", "Inès Moreau (VP Sales)"],
    "executive_sponsor": ["Anna Kovács (CFO)", "Raj Patel (COO)", "Émilie Laurent (CRO)"],
    "contract_scope": ["Platform for 3 regions, 120 seats", "Pilot team plus analytics add-on",
                       "Enterprise suite, all sales teams"],
    "implementation_notes": ["CRM sync first, then dashboards", "SSO and data migration in week one"],
    "expansion_signals": ["APAC team asked for a demo", "CS org interested in onboarding module", "None yet"],
    "billing_entity": ["Holding GmbH", "US Inc.", "APAC Pte. Ltd."],
    "bookings_attribution": ["New logo, field sales", "Expansion, account management"],
    "revenue_type": ["Subscription", "Subscription + services"],
    "business_problem": ["Forecast misses cost planning accuracy", "Manual pipeline reviews take a day a week"],
    "timeline_commitments": ["Kickoff within two weeks, go-live in 60 days", "Pilot live before quarter end"],
    "billing_caveats": ["Invoice per region", "PO number required on every invoice", "None"],
    "first_customer_action": ["Send the admin list for SSO", "Book the kickoff with the RevOps lead"],
    "products": ["Platform", "Enterprise suite", "Analytics add-on"],
}
FILL_FIELDS = tuple(TEXT) + ("payment_terms", "contract_signed_on", "contract_start", "contract_end",
                             "renewal_date", "discount_approved_by", "cs_owner", "kickoff_date")
DATE_FILLS = frozenset({"contract_signed_on", "contract_start", "contract_end", "renewal_date", "kickoff_date"})


@dataclass(frozen=True)
class HandoffSeedResult:
    handoffs: int
    promises: int
    exceptions: int
    approvals: int
    lost_reasons: int
    feedback: int


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=timezone.utc)


def _requirement_fields(pb: Playbook) -> list[tuple[str, str, tuple[str, ...]]]:
    """(key, label, fields) of the field-based closed-won requirements and finance fields."""
    out = []
    for r in pb.closed_won_requirements + pb.finance_fields:
        fields = tuple(f for f in r.fields if f not in ("discount_approved_by",))
        if fields:
            out.append((r.key, r.label, fields))
    return out


def seed_handoff(store: Store, playbook: Playbook, today: date, seed: int = 7) -> HandoffSeedResult:
    pb = playbook
    rng = random.Random(seed * 7919 + 6)
    cols = ("id", "owner", "status", "stage", "amount_minor", "currency", "closed_on", "close_date",
            "forecast_category", "discount_pct", "payment_terms", "term_months", "custom_terms",
            "legal_exception", "product_commitment", "scope_change", "partner_margin_pct",
            "implementation_complexity") + tuple(
        c for c in FILL_FIELDS if c != "payment_terms")
    last_open = pb.open_stages[-1].key if pb.open_stages else ""
    commit_cats = sorted(c.key for c in pb.forecast_categories if c.bucket == "commit")
    # Open deals that are not closing draw nothing from `rng` below, so leaving them out of
    # the query changes no row (and skips most of a big pipeline).
    cats = ", ".join(f":c{i}" for i in range(len(commit_cats))) or "NULL"
    with store.engine.connect() as conn:
        deals = [dict(zip(cols, r)) for r in conn.execute(text(
            f"SELECT {', '.join(cols)} FROM deal WHERE status IN ('won', 'lost') OR (status = 'open' "
            f"AND (stage = :last_open OR forecast_category IN ({cats}))) ORDER BY id"),
            {"last_open": last_open, **{f"c{i}": c for i, c in enumerate(commit_cats)}})]
        next_promise = (conn.execute(text("SELECT MAX(id) FROM promise")).scalar() or 0) + 1
    high_risks = store.open_risk_counts()
    req_fields = _requirement_fields(pb)
    tier_keys = [t.key for t in pb.handoff_tiers]
    manual_steps = {t.key: [s for s in t.steps if s not in ("required_fields", "automated_task")]
                    for t in pb.handoff_tiers}
    cat_keys = [c.key for c in pb.promise_categories]
    fb_keys = {c.key for c in pb.feedback_categories}
    lost_keys = {r.key for r in pb.closed_lost_reasons}

    updates: list[dict[str, Any]] = []
    handoffs, steps, approvals, promises, exceptions, lost, feedback, risks = [], [], [], [], [], [], [], []

    def add_promises(d: dict, n: int, around: date) -> list[tuple[int, str]]:
        nonlocal next_promise
        made = []
        for cat in rng.sample(cat_keys, min(n, len(cat_keys))):
            on = around - timedelta(days=rng.randint(5, 40))
            promises.append({"id": next_promise, "deal_id": d["id"], "category": cat,
                             "text": rng.choice(PROMISES.get(cat, ["Discussed in the final call"])),
                             "promised_by": d["owner"], "promised_on": on, "created_at": _at(on, 16)})
            made.append((next_promise, cat))
            next_promise += 1
        return made

    for d in deals:
        hits = [t for t in pb.deal_desk_triggers if _trigger_hit(t, d.get(t.field))]
        if d["status"] == "lost":
            if rng.random() < 0.85:
                reason = rng.choices([k for k, _w in LOST], [w for _k, w in LOST])[0]
                if reason in lost_keys:
                    closed = read_date(d["closed_on"]) or today
                    lost.append({"deal_id": d["id"], "reason": reason,
                                 "detail": rng.choice(LOST_DETAIL.get(reason, [""])),
                                 "recorded_by": d["owner"], "recorded_at": _at(closed, 17)})
            continue
        if d["status"] == "open":  # closing, by the query
            if rng.random() < 0.35:
                add_promises(d, rng.randint(1, 2), today)
            if hits and rng.random() < 0.3:
                t = hits[0]
                approvals.append({"deal_id": d["id"], "trigger_key": t.key, "approver": t.approver,
                                  "status": "pending", "decided_by": "", "decided_at": None,
                                  "note": "Requested by the rep", "version": 1})
            continue
        # -- won deals -----------------------------------------------------------------------
        closed = read_date(d["closed_on"]) or today - timedelta(days=10)
        fields = {k: d.get(k) for k in FILL_FIELDS}
        profile = rng.choices(["complete", "exceptions", "returned", "legacy"], [40, 25, 20, 15])[0]
        if profile == "legacy":
            continue
        start = closed + timedelta(days=rng.randint(0, 14))
        end = start + timedelta(days=30 * int(d["term_months"] or 12))
        fill: dict[str, Any] = {k: v for k, v in fields.items() if v not in (None, "")}
        for k, options in TEXT.items():
            fill.setdefault(k, rng.choice(options))
        fill.setdefault("payment_terms", rng.choice(["Net 30", "Net 30", "Net 45"]))
        fill.update({"contract_signed_on": closed, "contract_start": start, "contract_end": end,
                     "renewal_date": end})
        cs_owner = rng.choice(CS_OWNERS)
        kickoff = closed + timedelta(days=rng.randint(3, 20))
        fill.update({"cs_owner": cs_owner, "kickoff_date": kickoff})
        if any(t.field == "discount_pct" for t in hits):
            fill["discount_approved_by"] = "Finance (Maria Rossi)"
        gaps: list[tuple[str, str]] = []  # (label, how) of what this deal lacks
        fixed: list[str] = []  # gaps that had an exception, since closed (the field is filled now)
        if profile != "complete":
            for _key, label, flds in rng.sample(req_fields, rng.randint(1, 3 if profile == "exceptions" else 4)):
                if profile == "exceptions" and rng.random() < 0.25:
                    fixed.append(label)
                    continue
                f = flds[0]
                if f in DATE_FILLS:
                    fill[f] = None
                elif rng.random() < 0.3:
                    fill[f] = "TBD"
                else:
                    fill[f] = ""
                gaps.append((label, f))
        row = {k: fill.get(k, fields.get(k)) for k in FILL_FIELDS}
        updates.append({"id": d["id"], **{k: (v if v is not None or k in DATE_FILLS else "")
                                          for k, v in row.items()}})
        made = add_promises(d, rng.randint(1, 4) if profile != "returned" else rng.randint(0, 1), closed)
        if not made and profile == "returned":
            gaps.append(("Promises made", "promises"))
        risks.append({"deal_id": d["id"], "type": rng.choice([r.key for r in pb.risk_types]),
                      "severity": rng.choice(["low", "medium"]), "owner": d["owner"], "due_date": None,
                      "mitigation": "Covered in the implementation plan", "status": "closed",
                      "created_at": _at(closed - timedelta(days=rng.randint(10, 40)), 11),
                      "closed_at": _at(closed, 12), "version": 1})
        for t in hits:
            if profile == "returned" and rng.random() < 0.5:
                gaps.append((f"Deal desk approval: {t.label}", "desk"))
                continue
            day = closed - timedelta(days=rng.randint(1, 10))
            approvals.append({"deal_id": d["id"], "trigger_key": t.key, "approver": t.approver,
                              "status": "approved", "decided_by": f"{t.approver} desk", "decided_at": _at(day, 14),
                              "note": "Within the quarter's approval policy", "version": 1})
        tier = "" if rng.random() < 0.8 else rng.choice(tier_keys)
        decided = min(closed + timedelta(days=rng.randint(1, 7)), today)
        status = {"complete": "accepted", "exceptions": rng.choice(["accepted", "accepted", "submitted"]),
                  "returned": "returned"}[profile]
        handoffs.append({"deal_id": d["id"], "tier": tier, "tier_set_by": d["owner"] if tier else "",
                         "status": status, "cs_owner": cs_owner,
                         "returned_items": json.dumps([g[0] for g in gaps] if status == "returned" else [],
                                                      ensure_ascii=False),
                         "returned_reason": "Handoff lacks what onboarding needs" if status == "returned" else "",
                         "decided_by": cs_owner if status in ("accepted", "returned") else "",
                         "decided_at": _at(decided, 8) if status in ("accepted", "returned") else None,
                         "kickoff_on": kickoff, "version": 1})
        for t in pb.handoff_tiers:
            if t.key != (tier or _suggested(pb, d, high_risks.get(d["id"], (0, 0))[1])):
                continue
            for s in manual_steps[t.key]:
                done = profile == "complete" or rng.random() < 0.6
                steps.append({"deal_id": d["id"], "step": s, "done": done, "done_by": d["owner"] if done else "",
                              "done_at": _at(closed, 15) if done else None})
                if not done and profile == "exceptions":
                    gaps.append((next(x.label for x in pb.handoff_steps if x.key == s), "step"))
        if profile == "exceptions":
            for label, closed_exc in [(g[0], False) for g in gaps] + [(x, True) for x in fixed]:
                exceptions.append({"deal_id": d["id"], "missing_item": label, "owner": d["owner"],
                                   "due_date": closed + timedelta(days=rng.randint(7, 30)),
                                   "risk": rng.choice(["Kickoff slips a week", "Billing delayed",
                                                       "CS repeats discovery", "Renewal terms unclear"]),
                                   "status": "closed" if closed_exc else "open",
                                   "created_at": _at(closed, 10),
                                   "closed_at": _at(min(closed + timedelta(days=5), today), 8) if closed_exc else None})
        if status == "accepted" and rng.random() < 0.35:
            for _ in range(rng.randint(1, 2)):
                cat, _w, note = rng.choices(FEEDBACK, [w for _c, w, _t in FEEDBACK])[0]
                if cat not in fb_keys:
                    continue
                linked = next((pid for pid, pc in made if (pc, cat) in (("timeline", "timeline_oversold"),
                                                                        ("capabilities", "feature_not_in_scope"),
                                                                        ("outcomes", "success_criteria_missing"))),
                              None)
                feedback.append({"deal_id": d["id"], "promise_id": linked, "category": cat, "text": note,
                                 "recorded_by": cs_owner,
                                 "recorded_at": _at(min(decided + timedelta(days=rng.randint(3, 30)), today), 8)})

    with store.engine.begin() as conn:
        if updates:
            sets = ", ".join(f"{k} = :{k}" for k in FILL_FIELDS)
            conn.execute(text(f"UPDATE deal SET {sets} WHERE id = :id"), [store.params(conn, u) for u in updates])
        for table, rows in (("promise", promises), ("approval", approvals), ("handoff", handoffs),
                            ("handoff_step", steps), ("handoff_exception", exceptions),
                            ("closed_lost_reason", lost), ("feedback_item", feedback), ("risk", risks)):
            store.bulk_insert(table, rows, conn)
        if store.dialect == "postgresql" and promises:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('promise', 'id'), "
                              "(SELECT MAX(id) FROM promise))"))
    return HandoffSeedResult(len(handoffs), len(promises), len(exceptions), len(approvals), len(lost),
                             len(feedback))


def _suggested(pb: Playbook, d: dict, open_high_risks: int) -> str:
    tier, _why = suggest_tier(pb, d["amount_minor"] or 0, d["currency"] or "USD",
                              str(d.get("implementation_complexity") or ""), open_high_risks)
    return tier.key

