"""Pure rules on hand-built rows and facts: findings, evidence, stage check, commit check, changes."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from inspector.domain import Change, DealRow
from inspector.rules import (
    DealFacts,
    commit_check,
    deal_desk_hits,
    evaluate_deal,
    evidence_status,
    stage_check,
    summarize_changes,
)

TODAY = date(2026, 12, 3)


def iso(days: int) -> str:
    """ISO date `days` from TODAY (negative: in the past)."""
    return (TODAY + timedelta(days=days)).isoformat()


def row(**over) -> DealRow:
    base = dict(
        id=42, name="Müller & Söhne — Platform", account="Müller & Söhne GmbH", owner="Zoë Brontë",
        team="EMEA", manager="Siobhán O'Connor", stage="discovery", amount_minor=5_000_000,
        currency="EUR", close_date=iso(30), forecast_category="pipeline", next_step="Demo",
        next_step_date=iso(3), created_on=iso(-60), days_in_stage=5, close_pushes=0,
        last_activity=iso(-2), days_since_activity=2, days_since_progress=3, status="open",
    )
    base.update(over)
    return DealRow(**base)


def all_evidence(pb) -> frozenset[str]:
    return frozenset(pb.evidence_by_key)


def facts_all(pb, **over) -> DealFacts:
    """Facts with every evidence item confirmed and nothing else recorded."""
    kw = dict(confirmed_evidence=all_evidence(pb))
    kw.update(over)
    return DealFacts(**kw)


def codes(findings) -> list[str]:
    return [f.code for f in findings]


# -- list-row findings -------------------------------------------------------------------------


def test_healthy_row_has_no_findings(playbook):
    assert evaluate_deal(playbook, row(), None, TODAY) == []
    assert evaluate_deal(playbook, row(), facts_all(playbook), TODAY) == []


def test_past_close(playbook):
    fs = evaluate_deal(playbook, row(close_date=iso(-1)), None, TODAY)
    assert codes(fs) == ["past_close"]
    assert fs[0].deal_id == 42 and fs[0].severity == "high" and iso(-1) in fs[0].message
    assert "past_close" not in codes(evaluate_deal(playbook, row(close_date=iso(0)), None, TODAY))
    assert "past_close" not in codes(evaluate_deal(playbook, row(close_date=""), None, TODAY))


def test_pushed_uses_playbook_threshold(playbook):
    warn = playbook.thresholds.close_date_push_warn
    assert "pushed" in codes(evaluate_deal(playbook, row(close_pushes=warn), None, TODAY))
    assert "pushed" in codes(evaluate_deal(playbook, row(close_pushes=warn + 3), None, TODAY))
    assert "pushed" not in codes(evaluate_deal(playbook, row(close_pushes=warn - 1), None, TODAY))
    stricter = playbook.model_copy(update={
        "thresholds": playbook.thresholds.model_copy(update={"close_date_push_warn": warn + 2})})
    assert "pushed" not in codes(evaluate_deal(stricter, row(close_pushes=warn), None, TODAY))
    assert "pushed" in codes(evaluate_deal(stricter, row(close_pushes=warn + 2), None, TODAY))


@pytest.mark.parametrize("over", [
    {"next_step": ""},
    {"next_step": "   "},
    {"next_step": "Call", "next_step_date": ""},
])
def test_stale_next_step_missing(playbook, over):
    fs = evaluate_deal(playbook, row(**over), None, TODAY)
    assert codes(fs) == ["stale_next_step"]


def test_stale_next_step_by_age(playbook):
    n = playbook.thresholds.stale_next_step_days
    fs = evaluate_deal(playbook, row(next_step_date=iso(-(n + 1))), None, TODAY)
    assert codes(fs) == ["stale_next_step"]
    assert iso(-(n + 1)) in fs[0].message
    # at the limit, recent, today or in the future: not stale
    for d in (-n, -1, 0, 10):
        assert evaluate_deal(playbook, row(next_step_date=iso(d)), None, TODAY) == [], d


def test_aging(playbook):
    limit = playbook.stage_by_key["discovery"].aging_limit_days
    assert codes(evaluate_deal(playbook, row(days_in_stage=limit + 1), None, TODAY)) == ["aging"]
    assert evaluate_deal(playbook, row(days_in_stage=limit), None, TODAY) == []
    assert evaluate_deal(playbook, row(days_in_stage=None), None, TODAY) == []
    commit_limit = playbook.stage_by_key["commit"].aging_limit_days
    assert commit_limit != limit
    fs = evaluate_deal(playbook, row(stage="commit", days_in_stage=commit_limit + 1), None, TODAY)
    assert codes(fs) == ["aging"]
    assert str(commit_limit) in fs[0].message


def test_quiet(playbook):
    n = playbook.thresholds.stale_activity_days
    assert codes(evaluate_deal(playbook, row(days_since_activity=n + 1), None, TODAY)) == ["quiet"]
    fs = evaluate_deal(playbook, row(days_since_activity=None, last_activity=""), None, TODAY)
    assert codes(fs) == ["quiet"]
    assert evaluate_deal(playbook, row(days_since_activity=n), None, TODAY) == []


def test_fast_path_skips_fact_rules(playbook):
    """facts=None runs only the list-row rules, whatever the deal's category."""
    r = row(stage="commit", forecast_category="commit")
    assert evaluate_deal(playbook, r, None, TODAY) == []


# -- activity without progress ------------------------------------------------------------------


def test_no_progress(playbook):
    th = playbook.thresholds
    busy = th.min_activities_for_warning
    stale = row(days_since_progress=th.progress_window_days + 1)
    fs = evaluate_deal(playbook, stale, facts_all(playbook, activities_in_window=busy), TODAY)
    assert codes(fs) == ["no_progress"]
    assert fs[0].severity == "high"
    never = row(days_since_progress=None)
    assert codes(evaluate_deal(playbook, never, facts_all(playbook, activities_in_window=busy + 5),
                               TODAY)) == ["no_progress"]
    # too few activities: no warning
    assert evaluate_deal(playbook, stale, facts_all(playbook, activities_in_window=busy - 1),
                         TODAY) == []
    # recent progress: no warning, however busy
    for recent in (0, 5, th.progress_window_days):
        r = row(days_since_progress=recent)
        assert evaluate_deal(playbook, r, facts_all(playbook, activities_in_window=busy + 10),
                             TODAY) == [], recent


# -- evidence ----------------------------------------------------------------------------------


def _commercial_review_facts(pb, **over) -> DealFacts:
    """Everything before commercial review established except business_problem."""
    confirmed = {k for s in ("qualification", "discovery", "solution_fit")
                 for k in pb.stage_by_key[s].exit_evidence} - {"business_problem"}
    kw = dict(confirmed_evidence=frozenset(confirmed))
    kw.update(over)
    return DealFacts(**kw)


def test_missing_evidence_fires(playbook):
    r = row(stage="commercial_review")
    fs = evaluate_deal(playbook, r, _commercial_review_facts(playbook), TODAY)
    assert codes(fs) == ["missing_evidence"]
    assert playbook.evidence_by_key["business_problem"].label in fs[0].message


@pytest.mark.parametrize("how", ["field", "progress", "answer"])
def test_missing_evidence_satisfied(playbook, how):
    r = row(stage="commercial_review")
    base = _commercial_review_facts(playbook)
    if how == "field":
        facts = _commercial_review_facts(playbook, fields={"business_problem": "Billing errors"})
    elif how == "progress":
        facts = _commercial_review_facts(playbook, progress_types=frozenset({"buyer_confirmed_problem"}))
    else:
        facts = _commercial_review_facts(
            playbook, confirmed_evidence=base.confirmed_evidence | {"business_problem"})
    assert evaluate_deal(playbook, r, facts, TODAY) == []
    state = evidence_status(playbook, facts)["business_problem"]
    assert state.established
    assert state.how.startswith({"field": "field", "progress": "progress", "answer": "answer"}[how])


def test_blank_field_or_unrelated_progress_is_not_evidence(playbook):
    r = row(stage="commercial_review")
    for facts in (
        _commercial_review_facts(playbook, fields={"business_problem": "   "}),
        _commercial_review_facts(playbook, progress_types=frozenset({"agreed_next_action"})),
        _commercial_review_facts(playbook, fields={"buyer_role": "CFO"}),
    ):
        assert codes(evaluate_deal(playbook, r, facts, TODAY)) == ["missing_evidence"]
        assert not evidence_status(playbook, facts)["business_problem"].established


def test_evidence_needs_all_fields_and_sources(playbook):
    half = DealFacts(fields={"billing_entity": "Holding GmbH"})
    both = DealFacts(fields={"billing_entity": "Holding GmbH", "payment_terms": "Net 30"})
    assert not evidence_status(playbook, half)["billing_ready"].established
    assert evidence_status(playbook, both)["billing_ready"].established
    assert not evidence_status(playbook, DealFacts())["risks_documented"].established
    assert evidence_status(playbook, DealFacts(risks_recorded=1))["risks_documented"].established
    assert evidence_status(playbook, DealFacts(promises=2))["promises_logged"].established
    # a date or a number counts as filled
    assert evidence_status(playbook, DealFacts(fields={"contract_signed_on": date(2026, 11, 1)}))[
        "contract_signed"].established


def test_missing_evidence_lists_first_two_and_counts_the_rest(playbook):
    r = row(stage="commit")
    fs = evaluate_deal(playbook, r, DealFacts(), TODAY)
    assert codes(fs) == ["missing_evidence"]
    earlier = [k for s in playbook.open_stages[:4] for k in s.exit_evidence]
    assert playbook.evidence_by_key[earlier[0]].label in fs[0].message
    assert f"(+{len(earlier) - 2})" in fs[0].message


def test_qualification_needs_no_evidence(playbook):
    assert evaluate_deal(playbook, row(stage="qualification"), DealFacts(), TODAY) == []


# -- commit criteria ------------------------------------------------------------------------------


def _good_commit_row(**over) -> DealRow:
    return row(**{"stage": "commit", "forecast_category": "commit", **over})


def _good_commit_facts(pb, **over) -> DealFacts:
    """Earlier stages established by answers; plus what the commit criteria need."""
    earlier = {k for s in pb.open_stages[:4] for k in s.exit_evidence}
    kw = dict(confirmed_evidence=frozenset(earlier), fields={"contract_scope": "250 seats"},
              risks_recorded=1)
    kw.update(over)
    return DealFacts(**kw)


def test_commit_criteria_only_for_commit_category(playbook):
    bad = DealFacts(confirmed_evidence=all_evidence(playbook), open_high_risks=1,
                    fields={"contract_scope": "250 seats"})
    fs = evaluate_deal(playbook, _good_commit_row(), bad, TODAY)
    assert codes(fs) == ["commit_criteria"]
    assert "1 not met" in fs[0].message
    for cat in ("best_case", "pipeline", "omit"):
        r = _good_commit_row(forecast_category=cat)
        assert evaluate_deal(playbook, r, bad, TODAY) == [], cat


def test_commit_check_all_met(playbook):
    cc = commit_check(playbook, _good_commit_row(), _good_commit_facts(playbook), TODAY)
    assert cc.met
    assert [k for k, _l, _ok in cc.items] == [c.key for c in playbook.commit_criteria]
    assert [lbl for _k, lbl, _ok in cc.items] == [c.label for c in playbook.commit_criteria]
    assert cc.missing == ()
    assert evaluate_deal(playbook, _good_commit_row(), _good_commit_facts(playbook), TODAY) == []


BREAKS = {
    "close_date_realistic": [
        lambda pb: (dict(close_date=iso(-1)), {}),
        lambda pb: (dict(close_date=""), {}),
        lambda pb: (dict(close_pushes=pb.thresholds.close_date_push_warn), {}),
        lambda pb: ({}, dict(close_date_verdict="not_credible")),
    ],
    "amount_matches_scope": [
        lambda pb: (dict(amount_minor=0), {}),
        lambda pb: ({}, dict(fields={})),
    ],
    "category_matches_risk": [lambda pb: ({}, dict(open_high_risks=1))],
    "next_step_current": [
        lambda pb: (dict(next_step=""), {}),
        lambda pb: (dict(next_step_date=iso(-(pb.thresholds.stale_next_step_days + 1))), {}),
    ],
    "decision_process_known": [lambda pb: ({}, dict(confirmed_evidence=frozenset(
        k for s in pb.open_stages[:4] for k in s.exit_evidence) - {"decision_process"}))],
    "economic_buyer_identified": [lambda pb: ({}, dict(confirmed_evidence=frozenset(
        k for s in pb.open_stages[:4] for k in s.exit_evidence) - {"economic_buyer"}))],
    "blockers_documented": [lambda pb: ({}, dict(confirmed_evidence=frozenset(
        k for s in pb.open_stages[:4] for k in s.exit_evidence) - {"risks_documented"},
        risks_recorded=0))],
}
BREAK_CASES = [(key, i) for key, fns in BREAKS.items() for i in range(len(fns))]


@pytest.mark.parametrize("key,i", BREAK_CASES, ids=[f"{k}-{i}" for k, i in BREAK_CASES])
def test_commit_check_each_criterion(playbook, key, i):
    row_over, facts_over = BREAKS[key][i](playbook)
    cc = commit_check(playbook, _good_commit_row(**row_over), _good_commit_facts(playbook, **facts_over),
                      TODAY)
    failed = [k for k, _l, ok in cc.items if not ok]
    # the evidence criteria also feed "stage matches evidence" when they are earlier-stage evidence
    allowed = {key, "stage_matches_evidence"}
    assert key in failed
    assert set(failed) <= allowed, failed
    assert not cc.met


def test_commit_check_stage_overstated(playbook):
    facts = _good_commit_facts(playbook, confirmed_evidence=frozenset(
        k for s in playbook.open_stages[:4] for k in s.exit_evidence) - {"approach_agreed"})
    cc = commit_check(playbook, _good_commit_row(), facts, TODAY)
    assert [k for k, _l, ok in cc.items if not ok] == ["stage_matches_evidence"]
    assert cc.missing == (playbook.commit_criteria[2].label,)


# -- deal desk --------------------------------------------------------------------------------


def test_deal_desk_discount(playbook):
    facts = facts_all(playbook, fields={"discount_pct": 30})
    fs = evaluate_deal(playbook, row(), facts, TODAY)
    assert codes(fs) == ["deal_desk"]
    assert "Non-standard discount" in fs[0].message
    assert [t.key for t in deal_desk_hits(playbook, {"discount_pct": 30})] == ["non_standard_discount"]
    for pct in (0, 20, None, ""):
        assert deal_desk_hits(playbook, {"discount_pct": pct}) == [], pct
    approved = facts_all(playbook, fields={"discount_pct": 30},
                         approvals=frozenset({"non_standard_discount"}))
    assert evaluate_deal(playbook, row(), approved, TODAY) == []


def test_deal_desk_other_triggers(playbook):
    hits = deal_desk_hits(playbook, {"custom_terms": True, "payment_terms": "Net 90",
                                     "term_months": 36, "partner_margin_pct": 10})
    assert {t.key for t in hits} == {"custom_terms", "payment_terms", "multi_year"}
    assert deal_desk_hits(playbook, {"custom_terms": False, "payment_terms": "Net 30",
                                     "term_months": 12}) == []
    # one approval suppresses only its own trigger
    facts = facts_all(playbook, fields={"discount_pct": 30, "custom_terms": True},
                      approvals=frozenset({"non_standard_discount"}))
    fs = evaluate_deal(playbook, row(), facts, TODAY)
    assert codes(fs) == ["deal_desk"]
    assert "Custom contract terms" in fs[0].message and "discount" not in fs[0].message


# -- stage check ------------------------------------------------------------------------------


def _confirmed_through(pb, n_stages: int, minus: set[str] = frozenset()) -> DealFacts:
    keys = {k for s in pb.open_stages[:n_stages] for k in s.exit_evidence} - set(minus)
    return DealFacts(confirmed_evidence=frozenset(keys))


def test_stage_check_overstated(playbook):
    facts = _confirmed_through(playbook, 3, {"approach_agreed"})
    sc = stage_check(playbook, "commercial_review", evidence_status(playbook, facts))
    assert sc.verdict == "overstated"
    assert sc.current == "commercial_review"
    assert sc.supported == "discovery"
    assert sc.missing_for_current == ("approach_agreed",)
    assert [e.key for e in sc.exit_items] == list(
        playbook.stage_by_key["commercial_review"].exit_evidence)


def test_stage_check_overstated_nothing_known(playbook):
    sc = stage_check(playbook, "commit", evidence_status(playbook, DealFacts()))
    assert sc.verdict == "overstated"
    assert sc.supported == "qualification"


def test_stage_check_supported(playbook):
    facts = _confirmed_through(playbook, 3)
    sc = stage_check(playbook, "commercial_review", evidence_status(playbook, facts))
    assert sc.verdict == "supported"
    assert sc.supported == "commercial_review"
    assert sc.missing_for_current == ()
    assert sc.exit_items and not all(e.established for e in sc.exit_items)


def test_stage_check_understated(playbook):
    facts = _confirmed_through(playbook, 4)
    sc = stage_check(playbook, "commercial_review", evidence_status(playbook, facts))
    assert sc.verdict == "understated"
    assert sc.supported == "commit"
    assert all(e.established for e in sc.exit_items)


def test_stage_check_last_open_stage_is_never_understated(playbook):
    facts = DealFacts(confirmed_evidence=all_evidence(playbook))
    sc = stage_check(playbook, "commit", evidence_status(playbook, facts))
    assert sc.verdict == "supported" and sc.supported == "commit"


def test_stage_check_closed_stage(playbook):
    sc = stage_check(playbook, "closed_won", evidence_status(playbook, DealFacts()))
    assert sc.verdict == "supported" and sc.supported == "closed_won"


# -- what changed ------------------------------------------------------------------------------

T = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)


def ch(deal_id: int, field: str, old, new, hours: int = 0) -> Change:
    return Change(deal_id, field, old, new, T + timedelta(hours=hours))


def test_summarize_stage_forward_and_back(playbook):
    out = summarize_changes(playbook, [
        ch(1, "stage", "discovery", "solution_fit", 1),
        ch(1, "stage", "solution_fit", "commercial_review", 2),
        ch(2, "stage", "commit", "solution_fit", 1),
        ch(3, "stage", "solution_fit", "commit", 1),
        ch(3, "stage", "commit", "commercial_review", 2),
    ])
    assert out[1].stage_move == 2
    assert out[2].stage_move == -2
    assert out[3].stage_move == 1
    assert all(s.any for s in out.values())


def test_summarize_orders_by_time(playbook):
    """Changes may arrive out of order (CRM history pages); moments decide."""
    out = summarize_changes(playbook, [
        ch(1, "stage", "solution_fit", "commercial_review", 5),
        ch(1, "stage", "discovery", "solution_fit", 1),
    ])
    assert out[1].stage_move == 2
    assert [c.new for c in out[1].changes] == ["solution_fit", "commercial_review"]


def test_summarize_amount_delta(playbook):
    out = summarize_changes(playbook, [
        ch(1, "amount_minor", "1000000", "1500000", 1),
        ch(1, "amount_minor", "1500000", "1200000", 2),
        ch(2, "amount_minor", "900000", "450000", 1),
    ])
    assert out[1].amount_delta == 200000
    assert out[2].amount_delta == -450000


def test_summarize_pushes(playbook):
    out = summarize_changes(playbook, [
        ch(1, "close_date", "2026-12-15", "2026-12-31", 1),
        ch(1, "close_date", "2026-12-31", "2027-01-30", 2),
        ch(2, "close_date", "2027-01-31", "2026-12-20", 1),
        ch(3, "close_date", "2026-12-01", "2026-12-08", 1),
        ch(3, "close_date", "2026-12-08", "2026-12-05", 2),
    ])
    assert (out[1].close_pushed_days, out[1].pushes) == (46, 2)
    assert (out[2].close_pushed_days, out[2].pushes) == (-42, 0)
    assert (out[3].close_pushed_days, out[3].pushes) == (4, 1)


def test_summarize_category(playbook):
    out = summarize_changes(playbook, [
        ch(1, "forecast_category", "pipeline", "best_case", 1),
        ch(1, "forecast_category", "best_case", "commit", 2),
        ch(2, "forecast_category", "commit", "best_case", 1),
        ch(2, "forecast_category", "best_case", "commit", 2),
    ])
    assert (out[1].category_from, out[1].category_to) == ("pipeline", "commit")
    assert (out[2].category_from, out[2].category_to) == (None, None)
    assert not out[2].any


def test_summarize_new_deal(playbook):
    out = summarize_changes(playbook, [
        ch(7, "created", None, "qualification", 0),
        ch(7, "stage", "qualification", "discovery", 3),
        ch(8, "amount_minor", "100", "100", 1),
    ])
    assert out[7].is_new and out[7].stage_move == 1 and out[7].any
    assert not out[8].is_new and not out[8].any
    assert set(out) == {7, 8}
    assert summarize_changes(playbook, []) == {}


# -- the fast path agrees with the detailed one ----------------------------------------------------

import random  # noqa: E402

from inspector.rules.evaluate import established_keys  # noqa: E402

_VALUES = [None, "", "  ", "x", "Zoë [b]", 0, 1, True, False, date(2026, 11, 1)]
_PROGRESS = ["buyer_confirmed_problem", "buyer_introduced_stakeholders", "buyer_agreed_approach",
             "shared_approval_path", "agreed_next_action", "economic_buyer_engaged",
             "mutual_close_plan_signed", "agreed_timeline", "legal_review_started"]


def test_established_keys_matches_evidence_status(playbook):
    """The fast path used over many deals agrees with the detailed evidence status."""
    fields = sorted({f for e in playbook.evidence for f in e.fields})
    rng = random.Random(20261203)
    for _ in range(500):
        facts = DealFacts(
            fields={f: rng.choice(_VALUES) for f in rng.sample(fields, rng.randint(0, len(fields)))},
            progress_types=frozenset(rng.sample(_PROGRESS, rng.randint(0, 3))),
            risks_recorded=rng.randint(0, 1), promises=rng.randint(0, 1),
            confirmed_evidence=frozenset(rng.sample(sorted(playbook.evidence_by_key), rng.randint(0, 3))))
        detailed = {k for k, s in evidence_status(playbook, facts).items() if s.established}
        assert established_keys(playbook, facts) == detailed, facts
