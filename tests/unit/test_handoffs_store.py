"""Handoffs store: promises, tier and steps, CS owner, deal-desk approvals, exceptions,
closed-won submit / CS accept / return to sales, closed-lost, post-sale feedback.

Every test taking `services` runs twice: on a real SQLite file and on a fresh PostgreSQL
schema. Each write is checked for its stored state, its hash-chained event, and (where the
write has an `expected=` compare-and-set) for refusing a stale edit without changing anything.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from inspector import demo
from inspector.handoff import review, risks_at_close
from inspector.storage.handoffs import DealClosed, Handoffs, NotReady, feedback_patterns, open_exceptions
from inspector.storage.inspections import Inspections, NotFound, StaleEdit

TODAY = date(2026, 12, 3)  # tests/conftest.py's clock day
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
DUE = date(2026, 12, 20)
ACTOR = "Test Manager"
CS = "Keiko Satō"


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


@pytest.fixture
def seeded(services, playbook):
    demo.seed(services.store, playbook, TODAY, 120)
    return services


@pytest.fixture
def ho(seeded, playbook) -> Handoffs:
    return Handoffs(seeded.store, playbook)


@pytest.fixture
def insp(seeded) -> Inspections:
    return Inspections(seeded.store)


def fresh_open(ho: Handoffs, n: int = 1) -> list[int]:
    """Open deals in commit or closing with nothing stored about their handoff yet."""
    ids = [c.id for c in ho.candidates() if c.status == "open" and c.handoff_status == ""]
    assert len(ids) >= n, "the demo should have open deals in commit without a handoff"
    return ids[:n]


def kinds(insp: Inspections, deal_id: int) -> list[str]:
    return [e["kind"] for e in insp.events(deal_id=deal_id)]


def last_event(insp: Inspections, deal_id: int) -> dict:
    return insp.events(deal_id=deal_id)[-1]


def snapshot(ho: Handoffs, insp: Inspections, deal_id: int) -> tuple:
    """Everything a refused write must leave alone."""
    rec = ho.record(deal_id, TODAY)
    with ho.engine.connect() as conn:
        deal = tuple(conn.execute(text("SELECT status, stage, closed_on, version FROM deal WHERE id = :d"),
                                  {"d": deal_id}).one())
    return (deal, rec.handoff, rec.steps, rec.approvals, rec.promises, rec.exceptions, rec.lost, rec.feedback,
            len(insp.events()))


def cover(ho: Handoffs, deal_id: int, gaps, minutes: int = 1) -> list[int]:
    if not gaps:
        return []
    return ho.add_exceptions(deal_id, [g.label for g in gaps], owner="Dana Ortiz", due_date=DUE,
                             risk="Kickoff slips", actor=ACTOR, now=at(minutes))


def assert_chain_ok(insp: Inspections) -> None:
    report = insp.chain()
    assert report.ok, (report.broken_seq, report.problem)


# -- promises ------------------------------------------------------------------------------
def test_add_promise_stores_who_and_when_and_appends_an_event(ho, insp):
    (deal,) = fresh_open(ho)
    before = len(insp.events())
    pid = ho.add_promise(deal, category="timeline", text_="  Live in 30 days  ", promised_by="Zoë Adams",
                         promised_on=date(2026, 11, 20), actor=ACTOR, now=at(1))
    (p,) = [p for p in ho.record(deal, TODAY).promises if p.id == pid]
    assert (p.category, p.text, p.promised_by, p.promised_on) == ("timeline", "Live in 30 days", "Zoë Adams",
                                                                  date(2026, 11, 20))
    assert len(insp.events()) == before + 1
    ev = last_event(insp, deal)
    assert (ev["kind"], ev["entity"], ev["entity_id"], ev["actor"]) == ("promise.added", "promise", pid, ACTOR)
    assert ev["payload"]["text"] == "Live in 30 days" and ev["payload"]["promised_on"] == "2026-11-20"
    assert_chain_ok(insp)


@pytest.mark.parametrize("category, text_, fragment", [("roadmap", "Anything", "unknown promise category"),
                                                       ("timeline", "   ", "needs its text")])
def test_bad_promise_is_refused_and_nothing_changes(ho, insp, category, text_, fragment):
    (deal,) = fresh_open(ho)
    before = snapshot(ho, insp, deal)
    with pytest.raises(ValueError, match=fragment):
        ho.add_promise(deal, category=category, text_=text_, promised_by="Zoë", promised_on=None, actor=ACTOR,
                       now=at(1))
    assert snapshot(ho, insp, deal) == before


def test_promise_on_unknown_deal_is_not_found(ho):
    with pytest.raises(NotFound):
        ho.add_promise(999_999, category="timeline", text_="x", promised_by="Zoë", promised_on=None, actor=ACTOR,
                       now=at(1))


# -- tier and steps --------------------------------------------------------------------------
def test_set_tier_compare_and_set(ho, insp, playbook):
    (deal,) = fresh_open(ho)
    suggested = ho.review(deal, TODAY).tier.suggested.key
    chosen = next(t.key for t in playbook.handoff_tiers if t.key != suggested)
    ho.set_tier(deal, chosen, expected="", actor=ACTOR, now=at(1))
    rv = ho.review(deal, TODAY)
    assert (rv.handoff.tier, rv.handoff.tier_set_by, rv.tier.chosen.key) == (chosen, ACTOR, chosen)
    assert rv.tier.overridden and rv.tier.suggested.key == suggested
    ev = last_event(insp, deal)
    assert ev["kind"] == "handoff.tier" and ev["payload"] == {"old": "", "new": chosen}

    before = snapshot(ho, insp, deal)
    with pytest.raises(StaleEdit):  # someone else's screen still shows the suggested tier
        ho.set_tier(deal, suggested, expected="", actor="Other Manager", now=at(2))
    assert snapshot(ho, insp, deal) == before

    ho.set_tier(deal, "", expected=chosen, actor=ACTOR, now=at(3))  # back to the suggestion
    rv = ho.review(deal, TODAY)
    assert (rv.handoff.tier, rv.handoff.tier_set_by, rv.tier.chosen.key) == ("", "", suggested)
    with pytest.raises(ValueError, match="unknown handoff tier"):
        ho.set_tier(deal, "platinum", expected="", actor=ACTOR, now=at(4))
    assert kinds(insp, deal).count("handoff.tier") == 2


def test_set_step_compare_and_set(ho, insp):
    (deal,) = fresh_open(ho)
    ho.set_tier(deal, "managed", expected="", actor=ACTOR, now=at(1))
    ho.set_step(deal, "handoff_note", True, expected=False, actor=ACTOR, now=at(2))
    rv = ho.review(deal, TODAY)
    step = next(s for s in rv.steps if s.key == "handoff_note")
    assert (step.done, step.done_by) == (True, ACTOR) and step.done_at is not None
    assert not any(g.key == "step:handoff_note" for g in rv.accept_gaps)
    assert any(g.key == "step:sales_cs_review" for g in rv.accept_gaps)
    ev = last_event(insp, deal)
    assert ev["kind"] == "handoff.step" and ev["payload"] == {"step": "handoff_note", "old": False, "new": True}

    before = snapshot(ho, insp, deal)
    with pytest.raises(StaleEdit):
        ho.set_step(deal, "handoff_note", False, expected=False, actor="Other", now=at(3))
    assert snapshot(ho, insp, deal) == before
    with pytest.raises(ValueError, match="derived"):
        ho.set_step(deal, "required_fields", True, expected=False, actor=ACTOR, now=at(4))
    with pytest.raises(ValueError, match="unknown handoff step"):
        ho.set_step(deal, "party", True, expected=False, actor=ACTOR, now=at(4))
    assert snapshot(ho, insp, deal) == before

    ho.set_step(deal, "handoff_note", False, expected=True, actor=ACTOR, now=at(5))
    step = ho.record(deal, TODAY).steps["handoff_note"]
    assert (step.done, step.done_by, step.done_at) == (False, "", None)


def test_set_cs_owner_and_kickoff_compare_and_set(ho, insp):
    (deal,) = fresh_open(ho)
    ho.set_cs(deal, f"  {CS} ", date(2026, 12, 10), expected=("", None), actor=ACTOR, now=at(1))
    h = ho.handoff_state(deal)
    assert (h.cs_owner, h.kickoff_on) == (CS, date(2026, 12, 10))
    rv = ho.review(deal, TODAY)
    assert next(i for i in rv.packet if "cs_owner" in i.fields).state == "present"
    ev = last_event(insp, deal)
    assert ev["kind"] == "handoff.cs" and ev["payload"]["new"] == {"cs_owner": CS, "kickoff_on": "2026-12-10"}

    before = snapshot(ho, insp, deal)
    with pytest.raises(StaleEdit):
        ho.set_cs(deal, "Jonas Weber", None, expected=("", None), actor="Other", now=at(2))
    assert snapshot(ho, insp, deal) == before


# -- deal desk -------------------------------------------------------------------------------
def test_record_approval_compare_and_set(ho, insp, seeded):
    (deal,) = fresh_open(ho)
    with seeded.store.engine.begin() as conn:  # make the custom-terms trigger fire on this deal
        conn.execute(text("UPDATE deal SET custom_terms = :t WHERE id = :d"), {"t": True, "d": deal})
    desk = {d.key: d for d in ho.review(deal, TODAY).desk}
    assert desk["custom_terms"].status == "not recorded" and desk["custom_terms"].approver == "Legal"
    assert any(g.key == "desk:custom_terms" for g in ho.review(deal, TODAY).close_blockers)

    ho.record_approval(deal, "custom_terms", "pending", "asked Legal", expected=None, actor=ACTOR, now=at(1))
    ho.record_approval(deal, "custom_terms", "approved", "MSA redlines ok", expected="pending", actor="Legal Counsel",
                       now=at(2))
    rv = ho.review(deal, TODAY)
    d = next(d for d in rv.desk if d.key == "custom_terms")
    assert (d.status, d.decided_by, d.note, d.approver) == ("approved", "Legal Counsel", "MSA redlines ok", "Legal")
    assert not any(g.key == "desk:custom_terms" for g in rv.close_gaps)
    assert seeded.store.approved_triggers(deal)[deal] >= {"custom_terms"}
    ev = last_event(insp, deal)
    assert ev["kind"] == "approval.recorded" and ev["payload"]["old"] == "pending" and ev["payload"]["new"] == "approved"

    before = snapshot(ho, insp, deal)
    with pytest.raises(StaleEdit):  # another screen saw no approval at all
        ho.record_approval(deal, "custom_terms", "rejected", expected=None, actor="Other", now=at(3))
    with pytest.raises(ValueError, match="unknown deal-desk trigger"):
        ho.record_approval(deal, "golf_day", "approved", expected=None, actor=ACTOR, now=at(3))
    with pytest.raises(ValueError, match="approval status"):
        ho.record_approval(deal, "custom_terms", "maybe", expected="approved", actor=ACTOR, now=at(3))
    assert snapshot(ho, insp, deal) == before


# -- exceptions ------------------------------------------------------------------------------
def test_exceptions_are_open_until_closed_and_listed_for_revops(ho, insp, seeded):
    (deal,) = fresh_open(ho)
    ids = ho.add_exceptions(deal, ["Billing entity", "  Kickoff date ", ""], owner="Dana Ortiz", due_date=DUE,
                            risk="Invoice goes to the wrong entity", actor=ACTOR, now=at(1))
    assert len(ids) == 2
    mine = {ox.exception.id: ox for ox in open_exceptions(seeded.store) if ox.exception.deal_id == deal}
    assert set(mine) == set(ids)
    ox = mine[ids[1]]
    assert (ox.exception.missing_item, ox.exception.owner, ox.exception.due_date, ox.exception.risk) == (
        "Kickoff date", "Dana Ortiz", DUE, "Invoice goes to the wrong entity")
    assert ox.deal_name == ho.record(deal, TODAY).deal.row.name and ox.deal_status == "open"
    assert [ox.exception.id for ox in open_exceptions(seeded.store, [deal])] == ids
    assert kinds(insp, deal)[-2:] == ["exception.added", "exception.added"]

    ho.close_exception(ids[0], actor=ACTOR, now=at(2), note="Finance confirmed Holding GmbH")
    still = [ox.exception.id for ox in open_exceptions(seeded.store, [deal])]
    assert still == [ids[1]]
    closed = next(e for e in ho.record(deal, TODAY).exceptions if e.id == ids[0])
    assert closed.status == "closed" and closed.closed_at is not None
    ev = last_event(insp, deal)
    assert ev["kind"] == "exception.closed" and ev["payload"]["note"] == "Finance confirmed Holding GmbH"

    before = snapshot(ho, insp, deal)
    with pytest.raises(StaleEdit):  # closed already (by this or another screen)
        ho.close_exception(ids[0], actor="Other", now=at(3))
    with pytest.raises(NotFound):
        ho.close_exception(999_999, actor=ACTOR, now=at(3))
    assert snapshot(ho, insp, deal) == before


@pytest.mark.parametrize("kw, fragment", [
    ({"items": []}, "names the missing item"),
    ({"owner": " "}, "needs an owner"),
    ({"due_date": None}, "needs a due date"),
    ({"risk": ""}, "needs the risk"),
])
def test_exception_needs_item_owner_due_date_and_risk(ho, insp, kw, fragment):
    (deal,) = fresh_open(ho)
    args = {"items": ["Billing entity"], "owner": "Dana", "due_date": DUE, "risk": "Billing delayed"} | kw
    before = snapshot(ho, insp, deal)
    with pytest.raises(ValueError, match=fragment):
        ho.add_exceptions(deal, args.pop("items"), **args, actor=ACTOR, now=at(1))
    assert snapshot(ho, insp, deal) == before


# -- closed-won, CS acceptance, return to sales ----------------------------------------------------
def test_submit_with_uncovered_gaps_is_refused_naming_them(ho, insp):
    (deal,) = fresh_open(ho)
    rv = ho.review(deal, TODAY)
    assert rv.close_blockers, "a demo deal in commit lacks some handoff data"
    before = snapshot(ho, insp, deal)
    with pytest.raises(NotReady) as err:
        ho.submit(deal, expected_status="draft", actor=ACTOR, now=at(1), today=TODAY, close_won=True)
    assert rv.close_blockers[0].label in str(err.value)
    assert f"{len(rv.close_blockers)} gap(s) without an exception" in str(err.value)
    assert snapshot(ho, insp, deal) == before


def test_close_won_with_exceptions_then_cs_accepts(ho, insp, playbook):
    (deal,) = fresh_open(ho)
    stage_before = ho.record(deal, TODAY).deal.row.stage
    cover(ho, deal, ho.review(deal, TODAY).uncovered)
    rv = ho.review(deal, TODAY)
    assert rv.verdict == "ready_with_exceptions" and rv.can_close_won

    ho.submit(deal, expected_status="draft", actor=ACTOR, now=at(2), today=TODAY, close_won=True)
    rec = ho.record(deal, TODAY)
    won = next(s.key for s in playbook.stages if s.kind == "won")
    assert (rec.deal.row.status, rec.deal.row.stage, rec.closed_on) == ("won", won, TODAY)
    assert rec.handoff.status == "submitted"
    assert kinds(insp, deal)[-2:] == ["deal.closed_won", "handoff.submitted"]
    closed_ev = insp.events(deal_id=deal)[-2]
    assert closed_ev["payload"] == {"old_stage": stage_before, "new_stage": won, "closed_on": TODAY.isoformat()}

    before = snapshot(ho, insp, deal)
    with pytest.raises(StaleEdit):  # a second submit from a screen that still shows the draft
        ho.submit(deal, expected_status="draft", actor="Other", now=at(3), today=TODAY)
    assert snapshot(ho, insp, deal) == before

    ho.accept(deal, expected_status="submitted", actor=CS, now=at(4), note="Kickoff booked", today=TODAY)
    h = ho.handoff_state(deal)
    assert (h.status, h.decided_by, h.decided_at) == ("accepted", CS, at(4))
    ev = last_event(insp, deal)
    assert ev["kind"] == "handoff.accepted" and ev["actor"] == CS and ev["payload"]["note"] == "Kickoff booked"
    before = snapshot(ho, insp, deal)
    with pytest.raises(StaleEdit):
        ho.accept(deal, expected_status="submitted", actor=CS, now=at(5), today=TODAY)
    assert snapshot(ho, insp, deal) == before
    assert_chain_ok(insp)


def test_cs_cannot_accept_with_gaps_returns_to_sales_then_accepts(ho, insp):
    (deal,) = fresh_open(ho)
    ho.set_tier(deal, "managed", expected="", actor=ACTOR, now=at(1))
    cover(ho, deal, ho.review(deal, TODAY).close_blockers, minutes=2)  # enough to close, not to accept
    ho.submit(deal, expected_status="draft", actor=ACTOR, now=at(3), today=TODAY, close_won=True)
    rv = ho.review(deal, TODAY)
    assert rv.accept_blockers and not rv.can_accept
    assert {"step:handoff_note", "step:sales_cs_review"} <= {g.key for g in rv.accept_blockers}

    before = snapshot(ho, insp, deal)
    with pytest.raises(NotReady, match="not ready to accept"):
        ho.accept(deal, expected_status="submitted", actor=CS, now=at(4), today=TODAY)
    assert snapshot(ho, insp, deal) == before
    with pytest.raises(ValueError, match="names what is missing"):
        ho.return_to_sales(deal, ["  "], "incomplete", expected_status="submitted", actor=CS, now=at(4))
    assert snapshot(ho, insp, deal) == before

    missing = [g.label for g in rv.accept_blockers]
    ho.return_to_sales(deal, missing, "Onboarding cannot start without these", expected_status="submitted",
                       actor=CS, now=at(5))
    h = ho.handoff_state(deal)
    assert (h.status, h.returned_items, h.returned_reason, h.decided_by) == (
        "returned", tuple(missing), "Onboarding cannot start without these", CS)
    ev = last_event(insp, deal)
    assert ev["kind"] == "handoff.returned" and ev["payload"]["items"] == missing

    # sales does the tier steps, covers the rest, and hands it off again
    ho.set_step(deal, "handoff_note", True, expected=False, actor=ACTOR, now=at(6))
    ho.set_step(deal, "sales_cs_review", True, expected=False, actor=ACTOR, now=at(7))
    cover(ho, deal, ho.review(deal, TODAY).uncovered, minutes=8)
    ho.submit(deal, expected_status="returned", actor=ACTOR, now=at(9), today=TODAY)
    ho.accept(deal, expected_status="submitted", actor=CS, now=at(10), today=TODAY)
    assert ho.handoff_state(deal).status == "accepted"
    assert kinds(insp, deal)[-2:] == ["handoff.submitted", "handoff.accepted"]
    assert kinds(insp, deal).count("handoff.submitted") == 2
    assert_chain_ok(insp)


def test_only_closed_won_deals_go_to_cs(ho):
    (deal,) = fresh_open(ho)
    cover(ho, deal, ho.review(deal, TODAY).uncovered)
    with pytest.raises(DealClosed, match="only closed-won deals"):
        ho.submit(deal, expected_status="draft", actor=ACTOR, now=at(2), today=TODAY, close_won=False)
    with pytest.raises(DealClosed):
        ho.accept(deal, expected_status="draft", actor=CS, now=at(2), today=TODAY)


# -- closed-lost -------------------------------------------------------------------------------
@pytest.mark.parametrize("reason, detail, fragment", [
    (None, "", "a closed-lost reason is required: one of no_decision"),
    ("  ", "lost it", "a closed-lost reason is required"),
    ("bad_luck", "", "unknown closed-lost reason 'bad_luck'"),
    ("other", "  ", "needs a detail"),
])
def test_close_lost_without_a_specific_reason_is_refused(ho, insp, reason, detail, fragment):
    (deal,) = fresh_open(ho)
    before = snapshot(ho, insp, deal)
    with pytest.raises(ValueError, match=fragment):
        ho.close_lost(deal, reason, detail, actor=ACTOR, now=at(1), today=TODAY)
    assert snapshot(ho, insp, deal) == before
    assert ho.record(deal, TODAY).deal.row.status == "open"


def test_close_lost_links_back_to_earlier_inspections_and_open_risks(ho, insp, seeded, playbook):
    (deal,) = fresh_open(ho)
    row = ho.record(deal, TODAY).deal.row
    s = insp.start_session(manager="Mgr One", team=row.team, queue=[deal], week_of=date(2026, 11, 23), now=at(-9000))
    st = insp.state(s.id, deal)
    insp.save_decisions(st.id, {"stage_verdict": (None, "overstated"), "supported_stage": (None, "discovery")},
                        actor="Mgr One", now=at(-8990))
    rid = insp.add_risk(deal, type="competitive_pressure", severity="high", owner=row.owner, due_date=None,
                        mitigation="", actor="Mgr One", now=at(-8980))

    ho.close_lost(deal, "other", "Acquired mid-cycle; purchases frozen", actor=ACTOR, now=at(1), today=TODAY)
    rec = ho.record(deal, TODAY)
    lost = next(s.key for s in playbook.stages if s.kind == "lost")
    assert (rec.deal.row.status, rec.deal.row.stage, rec.closed_on) == ("lost", lost, TODAY)
    assert (rec.lost.reason, rec.lost.detail, rec.lost.recorded_by) == ("other", "Acquired mid-cycle; purchases frozen",
                                                                        ACTOR)
    (past,) = [i for i in rec.inspections if i.session_id == s.id]
    assert (past.stage_verdict, past.supported_stage, past.manager) == ("overstated", "discovery", "Mgr One")
    assert any(r.id == rid for r, state in risks_at_close(rec) if state == "open at close")
    evs = insp.events(deal_id=deal)
    assert [e["kind"] for e in evs[-2:]] == ["deal.closed_lost", "closed_lost.reason"]
    assert "competitive_pressure" in evs[-2]["payload"]["open_risks"]
    assert evs[-1]["payload"] == {"old": None, "new": "other", "detail": "Acquired mid-cycle; purchases frozen"}

    # correcting the reason of a lost deal: compare-and-set on the reason seen
    before = snapshot(ho, insp, deal)
    with pytest.raises(StaleEdit):
        ho.close_lost(deal, "price", "", actor="Other", now=at(2), today=TODAY, expected_reason=None)
    assert snapshot(ho, insp, deal) == before
    ho.close_lost(deal, "price", "", actor=ACTOR, now=at(3), today=TODAY, expected_reason="other")
    assert ho.record(deal, TODAY).lost.reason == "price"
    assert kinds(insp, deal).count("deal.closed_lost") == 1


def test_a_won_deal_cannot_be_closed_lost(ho, insp):
    (deal,) = fresh_open(ho)
    cover(ho, deal, ho.review(deal, TODAY).uncovered)
    ho.submit(deal, expected_status="draft", actor=ACTOR, now=at(2), today=TODAY, close_won=True)
    before = snapshot(ho, insp, deal)
    with pytest.raises(DealClosed, match="closed won"):
        ho.close_lost(deal, "price", "", actor=ACTOR, now=at(3), today=TODAY)
    assert snapshot(ho, insp, deal) == before


# -- post-sale feedback ------------------------------------------------------------------------
def won_with_promise(ho: Handoffs, deal: int, minutes: int) -> int:
    pid = ho.add_promise(deal, category="timeline", text_="Live in 30 days", promised_by="Zoë",
                         promised_on=TODAY, actor=ACTOR, now=at(minutes))
    cover(ho, deal, ho.review(deal, TODAY).uncovered, minutes=minutes + 1)
    ho.submit(deal, expected_status="draft", actor=ACTOR, now=at(minutes + 2), today=TODAY, close_won=True)
    return pid


def test_feedback_is_tied_to_deal_and_promise_and_repeats_surface(ho, insp, seeded):
    a, b = fresh_open(ho, 2)
    before_patterns = {c: (n, set(ds)) for c, n, ds in feedback_patterns(seeded.store)}
    with pytest.raises(DealClosed, match="post-sale feedback is for closed-won deals"):
        ho.add_feedback(a, "timeline_oversold", "x", actor=CS, now=at(1))
    pa = won_with_promise(ho, a, 2)
    pb_ = won_with_promise(ho, b, 10)

    fid = ho.add_feedback(a, "timeline_oversold", "Plan says 75 days", pa, actor=CS, now=at(20))
    ho.add_feedback(b, "timeline_oversold", "Go-live promised in a month", pb_, actor=CS, now=at(21))
    ho.add_feedback(b, "stakeholder_map_wrong", "", actor=CS, now=at(22))
    (fb,) = [f for f in ho.record(a, TODAY).feedback if f.id == fid]
    assert (fb.category, fb.text, fb.promise_id, fb.recorded_by) == ("timeline_oversold", "Plan says 75 days", pa, CS)
    ev = last_event(insp, a)
    assert ev["kind"] == "feedback.added" and ev["payload"]["promise_id"] == pa

    before = snapshot(ho, insp, a)
    with pytest.raises(ValueError, match="is not a promise of deal"):
        ho.add_feedback(a, "timeline_oversold", "x", pb_, actor=CS, now=at(23))
    with pytest.raises(ValueError, match="unknown feedback category"):
        ho.add_feedback(a, "bad_vibes", "x", actor=CS, now=at(23))
    assert snapshot(ho, insp, a) == before

    patterns = {c: (n, set(ds)) for c, n, ds in feedback_patterns(seeded.store)}
    n0, d0 = before_patterns.get("timeline_oversold", (0, set()))
    assert patterns["timeline_oversold"] == (n0 + 2, d0 | {a, b})
    ordered = feedback_patterns(seeded.store)
    assert [n for _c, n, _d in ordered] == sorted((n for _c, n, _d in ordered), reverse=True)
    # since: only what was recorded from then on
    recent = {c: (n, set(ds)) for c, n, ds in feedback_patterns(seeded.store, since=at(20))}
    assert recent == {"timeline_oversold": (2, {a, b}), "stakeholder_map_wrong": (1, {b})}
    assert_chain_ok(insp)


# -- reads ---------------------------------------------------------------------------------------
def test_resolve_by_id_and_external_id(ho):
    (deal,) = fresh_open(ho)
    ext = ho.record(deal, TODAY).external_id
    assert ho.resolve(str(deal)) == deal and ho.resolve(ext) == deal and ho.resolve(f"  {ext} ") == deal
    with pytest.raises(NotFound, match="no deal with id or external id 'NOPE-1'"):
        ho.resolve("NOPE-1")


def test_review_matches_the_pure_rules(ho, playbook):
    (deal,) = fresh_open(ho)
    rec = ho.record(deal, TODAY)
    assert ho.review(deal, TODAY).verdict == review(playbook, rec, TODAY).verdict
