"""Closed-won readiness rules, from the default playbook: checklist states, doubtful values,
tier suggestion, steps, deal desk, exception coverage, closed-lost reasons, the packet."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from inspector.domain import DealDetail, DealRow, RiskItem
from inspector.handoff import (ApprovalItem, ExceptionItem, HandoffRecord, HandoffState, PastInspection,
                               PromiseItem, RiskRecord, StepItem, lost_reason_problem, packet_markdown,
                               placeholder, review, risks_at_close, suggest_tier)
from inspector.playbook import default_playbook_text, parse_playbook

TODAY = date(2026, 12, 3)
NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)

COMPLETE = {
    "business_problem": "Forecast misses", "use_case": "Weekly forecast inspection",
    "success_criteria": "Forecast within 5% for two quarters", "stakeholders": "CFO, VP Sales, RevOps",
    "champion": "Lena Fischer", "executive_sponsor": "Anna Kovács (CFO)", "contract_scope": "Platform, 120 seats",
    "products": "Platform", "implementation_notes": "CRM sync first", "renewal_date": date(2027, 12, 15),
    "expansion_signals": "APAC asked for a demo", "billing_entity": "Holding GmbH",
    "contract_start": date(2026, 12, 15), "contract_end": date(2027, 12, 14), "payment_terms": "Net 30",
    "discount_pct": 0.0, "discount_approved_by": "", "bookings_attribution": "New logo",
    "revenue_type": "Subscription", "cs_owner": "Keiko Satō", "kickoff_date": date(2026, 12, 10),
    "timeline_commitments": "Live in 60 days", "billing_caveats": "PO on invoices",
    "first_customer_action": "Send the SSO admin list", "implementation_complexity": "low",
    "custom_terms": False, "legal_exception": False, "product_commitment": False, "scope_change": False,
    "partner_margin_pct": None, "term_months": 12, "contract_signed_on": date(2026, 12, 1),
}


@pytest.fixture(scope="module")
def pb():
    return parse_playbook(default_playbook_text())


def row(**kw) -> DealRow:
    base = dict(id=1, name="Acme — Platform", account="Acme", owner="Zoë", team="EMEA", manager="Mgr",
                stage="commit", amount_minor=2_000_000, currency="USD", close_date="2026-12-05",
                forecast_category="commit", next_step="Sign", next_step_date="2026-12-04", created_on="2026-09-01",
                days_in_stage=5, close_pushes=0, last_activity="2026-12-01", days_since_activity=2,
                days_since_progress=2, status="open")
    base.update(kw)
    return DealRow(**base)


def risk(i: int = 1, severity: str = "medium", status: str = "open", mitigation: str = "Plan") -> RiskItem:
    return RiskItem(i, 1, "timeline_risk", severity, "Zoë", None, mitigation, status,
                    datetime(2026, 11, 1, tzinfo=timezone.utc))


def record(fields: dict | None = None, *, row_kw: dict | None = None, risks=(risk(),), promises: int = 1,
           handoff: HandoffState | None = None, steps=None, approvals=None, exceptions=(),
           closed_on: date | None = None, **kw) -> HandoffRecord:
    f = dict(COMPLETE)
    f.update(fields or {})
    deal = DealDetail(row(**(row_kw or {})), f, (), (), tuple(risks), promises)
    prom = tuple(PromiseItem(i, 1, "timeline", f"Promise {i}", "Zoë", date(2026, 11, 20), NOW)
                 for i in range(1, promises + 1))
    return HandoffRecord(deal, "EXT-1", closed_on, handoff or HandoffState(1), steps or {}, approvals or {},
                         prom, tuple(exceptions), risks=tuple(RiskRecord(r, None) for r in risks), **kw)


def exc(item: str, status: str = "open", i: int = 1) -> ExceptionItem:
    return ExceptionItem(i, 1, item, "Zoë", date(2026, 12, 20), "Kickoff slips", status, NOW)


def item(items, key):
    return next(i for i in items if i.key == key)


# -- values ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["TBD", "tbd", "?", "Unknown", "n/a", "Net 60?", "to be confirmed",
                                   "  TBC ", "CFO (tbd)", "-"])
def test_placeholders_are_doubtful(value):
    assert placeholder(value)


@pytest.mark.parametrize("value", ["Net 30", "Anna Kovács (CFO)", "Known limitations: offline", 42, None])
def test_real_values_are_not_placeholders(value):
    assert not placeholder(value)


# -- the checklist -----------------------------------------------------------------------------
def test_complete_standard_deal_is_ready(pb):
    rv = review(pb, record(), TODAY)
    assert all(i.ok for i in rv.requirements + rv.finance + rv.acceptance + rv.packet), \
        [(i.label, i.state, i.note) for i in rv.requirements + rv.finance + rv.acceptance if not i.ok]
    assert rv.tier.chosen.key == "standard" and not rv.desk
    assert rv.verdict == "ready" and rv.verdict_text == "Ready to receive"
    assert rv.can_close_won and rv.in_scope
    assert [s.key for s in rv.steps] == ["required_fields", "automated_task"] and all(s.auto for s in rv.steps)
    assert item(rv.finance, "discount_approval").value == "not needed"


def test_missing_fields_and_sources(pb):
    rv = review(pb, record({"success_criteria": "", "champion": ""}, risks=(), promises=0), TODAY)
    assert item(rv.requirements, "success_criteria").state == "missing"
    champ = item(rv.requirements, "champion_sponsor")
    assert champ.state == "missing" and champ.note == "missing champion"
    assert "Anna" in champ.value  # what is there is still shown
    assert item(rv.requirements, "promises").state == "missing"
    assert item(rv.requirements, "risks").state == "missing"
    assert rv.verdict == "not_ready" and not rv.can_close_won
    labels = {g.label for g in rv.close_blockers}
    assert {"Success criteria", "Champion and executive sponsor", "Promises made"} <= labels


@pytest.mark.parametrize("fields, key, fragment", [
    ({"use_case": "TBD"}, "use_case", "placeholder"),
    ({"renewal_date": date(2026, 6, 1)}, "renewal_date", "in the past"),
    ({"renewal_date": date(2026, 12, 10)}, "renewal_date", "not after the contract start"),
    ({"contract_end": date(2026, 1, 1)}, "contract_dates", "ends before it starts"),
    ({"payment_terms": "Net 90"}, "payment_terms", "outside standard (Net 30, Net 45); needs Finance approval"),
])
def test_doubtful_values(pb, fields, key, fragment):
    rv = review(pb, record(fields), TODAY)
    found = [i for i in rv.requirements + rv.finance if i.key == key]
    assert found and all(i.state == "doubtful" for i in found), found
    assert fragment in found[0].note
    assert rv.verdict == "not_ready"


def test_kickoff_before_close_is_doubtful(pb):
    rv = review(pb, record({"kickoff_date": date(2026, 12, 1)}), TODAY)  # close date 2026-12-05
    kick = item(rv.acceptance, "kickoff")
    assert kick.state == "doubtful" and "before the close (2026-12-05)" in kick.note
    # a won deal compares with the day it closed
    rv = review(pb, record({"kickoff_date": date(2026, 12, 1)}, closed_on=date(2026, 11, 28),
                           row_kw={"status": "won", "stage": "closed_won"}), TODAY)
    assert item(rv.acceptance, "kickoff").ok


def test_handoff_cs_owner_and_kickoff_override_deal_fields(pb):
    h = HandoffState(1, cs_owner="Jonas Weber", kickoff_on=date(2026, 12, 12), version=1)
    rv = review(pb, record({"cs_owner": "", "kickoff_date": None}, handoff=h), TODAY)
    assert item(rv.acceptance, "account_owner").value == "Jonas Weber"
    assert item(rv.acceptance, "kickoff").value == "2026-12-12"


def test_approved_payment_terms_are_present(pb):
    approved = {"payment_terms": ApprovalItem(1, "payment_terms", "Finance", "approved", "CFO", NOW, "")}
    rv = review(pb, record({"payment_terms": "Net 90"}, approvals=approved), TODAY)
    assert item(rv.finance, "payment_terms").ok
    assert rv.desk[0].approved and rv.verdict == "ready"


def test_discount_approval(pb):
    rv = review(pb, record({"discount_pct": 30.0}), TODAY)
    assert item(rv.finance, "discount_approval").state == "missing"
    assert [d.key for d in rv.desk] == ["non_standard_discount"] and rv.desk[0].status == "not recorded"
    assert "Deal desk approval: Non-standard discount" in {g.label for g in rv.close_blockers}
    ok = {"non_standard_discount": ApprovalItem(1, "non_standard_discount", "Finance", "approved", "Maria", NOW, "")}
    rv = review(pb, record({"discount_pct": 30.0}, approvals=ok), TODAY)
    assert item(rv.finance, "discount_approval").ok and rv.verdict == "ready"
    rv = review(pb, record({"discount_pct": 30.0, "discount_approved_by": "Maria (Finance)"}), TODAY)
    assert item(rv.finance, "discount_approval").ok


def test_rejected_and_pending_approvals_stay_gaps(pb):
    for status in ("pending", "rejected"):
        a = {"custom_terms": ApprovalItem(1, "custom_terms", "Legal", status, "", None, "")}
        rv = review(pb, record({"custom_terms": True}, approvals=a), TODAY)
        assert rv.desk[0].status == status
        assert [g.key for g in rv.close_blockers] == ["desk:custom_terms"]


def test_open_high_risk_without_mitigation_is_doubtful(pb):
    rv = review(pb, record(risks=(risk(severity="high", mitigation=""),)), TODAY)
    assert item(rv.requirements, "risks").state == "doubtful"
    assert item(rv.acceptance, "implementation_risks").state == "doubtful"


# -- tiers and steps ---------------------------------------------------------------------------
@pytest.mark.parametrize("amount, complexity, high, tier", [
    (300_000_00, "low", 0, "strategic"),
    (250_000_00, "", 0, "strategic"),
    (249_999_00, "", 0, "managed"),
    (60_000_00, "low", 0, "managed"),
    (10_000_00, "high", 0, "strategic"),
    (10_000_00, "Medium", 0, "managed"),
    (10_000_00, "low", 1, "strategic"),
    (10_000_00, "low", 0, "standard"),
])
def test_tier_suggestion(pb, amount, complexity, high, tier):
    got, reasons = suggest_tier(pb, amount, "USD", complexity, high)
    assert got.key == tier and reasons


def test_tier_reasons_name_the_rule(pb):
    _t, reasons = suggest_tier(pb, 300_000_00, "USD", "high", 2)
    assert reasons == ("amount $300,000 ≥ 250,000", "implementation complexity high", "2 open high risk(s)")


def test_custom_playbook_tiers(pb):
    text = default_playbook_text().replace("min_amount = 250000", "min_amount = 1000000")
    custom = parse_playbook(text)
    assert suggest_tier(custom, 300_000_00, "USD", "low", 0)[0].key == "managed"
    assert suggest_tier(pb, 300_000_00, "USD", "low", 0)[0].key == "strategic"


def test_manager_tier_and_its_steps(pb):
    h = HandoffState(1, tier="strategic", tier_set_by="Mgr", version=2)
    steps = {"live_handoff": StepItem("live_handoff", True, "Zoë", NOW)}
    rv = review(pb, record(handoff=h, steps=steps), TODAY)
    assert rv.tier.chosen.key == "strategic" and rv.tier.suggested.key == "standard" and rv.tier.overridden
    assert [(s.key, s.done, s.auto) for s in rv.steps] == [
        ("live_handoff", True, False), ("risk_review", False, False), ("success_plan", False, False),
        ("finance_check", False, False)]
    assert {g.key for g in rv.accept_blockers} == {"step:risk_review", "step:success_plan", "step:finance_check"}
    assert not rv.close_blockers and rv.can_close_won  # steps are due before CS accepts, not before close
    back = review(pb, record(handoff=HandoffState(1, tier="", version=3)), TODAY)
    assert back.tier.chosen.key == "standard" and not back.tier.overridden


def test_managed_steps_block_acceptance_until_done(pb):
    won = {"row_kw": {"status": "won", "stage": "closed_won", "amount_minor": 80_000_00},
           "closed_on": date(2026, 12, 1)}
    rv = review(pb, record(handoff=HandoffState(1, status="submitted", version=2), **won), TODAY)
    assert rv.tier.chosen.key == "managed" and not rv.can_accept
    done = {k: StepItem(k, True, "Zoë", NOW) for k in ("handoff_note", "sales_cs_review")}
    rv = review(pb, record(handoff=HandoffState(1, status="submitted", version=2), steps=done, **won), TODAY)
    assert rv.can_accept and rv.verdict == "ready"


def test_packet_items_beyond_the_checklists_block_acceptance_not_closing(pb):
    won = {"row_kw": {"status": "won", "stage": "closed_won"}, "closed_on": date(2026, 12, 1),
           "handoff": HandoffState(1, status="submitted", version=2)}
    rv = review(pb, record({"first_customer_action": "", "billing_caveats": "TBD", "stakeholders": ""}, **won), TODAY)
    assert item(rv.packet, "first_customer_action").state == "missing"
    assert item(rv.packet, "billing_caveats").state == "doubtful"
    pkt = [g for g in rv.accept_gaps if g.key.startswith("pkt:")]
    # stakeholders is already a gap of the checklists: the packet does not add it twice
    assert sorted(g.key for g in pkt) == ["pkt:billing_caveats", "pkt:first_customer_action"]
    assert not any(g.key.startswith("pkt:") for g in rv.close_gaps)
    assert not rv.can_accept
    covered = review(pb, record({"first_customer_action": "", "billing_caveats": "TBD", "stakeholders": ""},
                                exceptions=(exc("First customer action", i=1), exc("billing caveats", i=2),
                                            exc("Key stakeholders", i=3)), **won), TODAY)
    assert covered.accept_blockers == () and covered.can_accept


# -- exceptions --------------------------------------------------------------------------------
def test_exception_covers_the_gap_in_every_checklist(pb):
    rv = review(pb, record({"stakeholders": "", "renewal_date": None}), TODAY)
    assert {g.label for g in rv.uncovered} >= {"Key stakeholders", "Primary stakeholders are listed",
                                                "Renewal date", "Renewal date is captured"}
    rv = review(pb, record({"stakeholders": "", "renewal_date": None},
                           exceptions=(exc("Key stakeholders", i=1), exc("renewal_date", i=2))), TODAY)
    assert rv.uncovered == ()
    assert rv.verdict == "ready_with_exceptions" and rv.verdict_text == "Ready with 4 exception(s)"
    assert rv.can_close_won


def test_closed_exception_does_not_cover(pb):
    rv = review(pb, record({"stakeholders": ""}, exceptions=(exc("Key stakeholders", status="closed"),)), TODAY)
    assert rv.verdict == "not_ready"


def test_exception_matching_is_case_and_space_insensitive(pb):
    rv = review(pb, record({"success_criteria": ""}, exceptions=(exc("  success   CRITERIA "),)), TODAY)
    assert not rv.close_blockers


def test_desk_gap_covered_by_exception(pb):
    rv = review(pb, record({"custom_terms": True}, exceptions=(exc("Deal desk approval: Custom contract terms"),)),
                TODAY)
    assert rv.verdict == "ready_with_exceptions"


def test_scope(pb):
    assert review(pb, record(row_kw={"stage": "discovery", "forecast_category": "commit"}), TODAY).in_scope
    assert not review(pb, record(row_kw={"stage": "discovery", "forecast_category": "pipeline"}), TODAY).in_scope
    assert review(pb, record(row_kw={"stage": "commit", "forecast_category": "pipeline"}), TODAY).in_scope


# -- closed-lost ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reason, detail, fragment", [
    (None, "", "a closed-lost reason is required: one of no_decision, competitor"),
    ("  ", "", "a closed-lost reason is required"),
    ("vibes", "", "unknown closed-lost reason 'vibes': use one of"),
    ("other", "", "reason 'other' (Other (describe)) needs a detail"),
    ("other", "   ", "needs a detail"),
])
def test_lost_reason_refused(pb, reason, detail, fragment):
    assert fragment in lost_reason_problem(pb, reason, detail)


@pytest.mark.parametrize("reason, detail", [("competitor", ""), ("no_decision", "Went dark"),
                                            ("other", "Acquired; purchases frozen")])
def test_lost_reason_accepted(pb, reason, detail):
    assert lost_reason_problem(pb, reason, detail) == ""


def test_risks_at_close(pb):
    closed = date(2026, 11, 20)
    r_open, r_before, r_after, r_unknown = (risk(1), risk(2, status="closed"), risk(3, status="closed"),
                                            risk(4, status="closed"))
    rec = record(row_kw={"status": "lost", "stage": "closed_lost"}, closed_on=closed)
    rec = HandoffRecord(rec.deal, rec.external_id, closed, rec.handoff, risks=(
        RiskRecord(r_open, None), RiskRecord(r_before, datetime(2026, 11, 2, tzinfo=timezone.utc)),
        RiskRecord(r_after, datetime(2026, 11, 25, tzinfo=timezone.utc)), RiskRecord(r_unknown, None)))
    states = [s for _r, s in risks_at_close(rec)]
    assert states == ["open at close", "closed 2026-11-02", "open at close", "closed (date unknown)"]


# -- the packet --------------------------------------------------------------------------------
def test_packet_markdown(pb):
    past = PastInspection(3, date(2026, 11, 23), "Mgr", "inspected", "commit", "overstated", "discovery",
                          "commit", "commit", "CFO said yes", "at_risk", "")
    rec = record({"billing_caveats": "Split | invoices\nper region", "renewal_date": None},
                 exceptions=(exc("Renewal date"),), inspections=(past,))
    rv = review(pb, rec, TODAY)
    md = packet_markdown(pb, rv, generated_at=NOW)
    for r in pb.handoff_packet:
        assert f"| {r.label} |" in md
    assert "# Handoff packet: Acme — Platform" in md
    assert "Readiness: **Ready with 2 exception(s)**" in md
    assert "Split \\| invoices<br>per region" in md  # outside text cannot break the table
    assert "| Timeline expectations | Promise 1 | Zoë | 2026-11-20 |" in md
    assert "| Renewal date | Zoë | 2026-12-20 | Kickoff slips | open |" in md
    assert "Generated: 2026-12-03 09:00 UTC" in md
    assert "Closed-lost learning" not in md


def test_packet_of_lost_deal_links_inspections(pb):
    past = PastInspection(3, date(2026, 11, 23), "Mgr", "inspected", "commit", "overstated", "discovery",
                          "pipeline", "commit", "CFO said yes", "at_risk", "")
    from inspector.handoff import LostReasonItem

    rec = record(row_kw={"status": "lost", "stage": "closed_lost"}, closed_on=date(2026, 11, 30),
                 inspections=(past,), lost=LostReasonItem(1, "competitor", "Chose the incumbent", "Zoë", NOW))
    md = packet_markdown(pb, review(pb, rec, TODAY))
    assert "## Closed-lost learning" in md and "Reason: **Competitor**: Chose the incumbent" in md
    assert "| 2026-11-23 | Mgr | Commit | overstated → Discovery | Pipeline | Commit | CFO said yes | at_risk |" in md
    assert "| Timeline risk | medium | open at close |" in md
