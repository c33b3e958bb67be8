"""The weekly inspection walk, as plain functions the screens call from workers.

Everything a screen shows about a deal under inspection is assembled here, so the screen
only renders: facts, what changed since the last inspection, the activity-vs-progress
timeline, evidence and the stage's exit checklist, commit criteria and deal-desk triggers.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from inspector.domain import ActivityItem, Change, ChangeSummary, DealDetail, Finding
from inspector.money import to_minor
from inspector.playbook import Playbook, Trigger
from inspector.rules import (CommitCheck, DealFacts, EvidenceState, StageCheck, commit_check,
                             deal_desk_hits, evaluate_deal, evidence_status, stage_check,
                             summarize_changes)
from inspector.storage.inspections import Inspections, InspectionState, SessionInfo, order_queue
from inspector.storage.repo import Store


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def changes_since_moment(store: Store, insp: Inspections, pb: Playbook, team: str, today: date) -> datetime:
    """The last finished inspection of this team, or the playbook's look-back window."""
    last = insp.last_finished_at(team)
    return last or midnight(today - timedelta(days=pb.thresholds.changes_lookback_days))


def build_queue(store: Store, insp: Inspections, pb: Playbook, today: date, team: str | None,
                reps: list[str] | None = None) -> list[int]:
    from inspector.pipeline import full_findings

    rows = store.list_deals(today, team=team, owners=reps)
    since = changes_since_moment(store, insp, pb, team or "", today)
    changes = summarize_changes(pb, store.changes_since(since))
    findings = full_findings(store, pb, rows, today)
    large = to_minor(pb.thresholds.large_deal_amount)
    return order_queue(
        (r.id, r.forecast_category == "commit", r.amount_minor >= large,
         bool(changes.get(r.id) and changes[r.id].any), bool(findings.get(r.id)),
         sum(f.severity == "high" for f in findings.get(r.id, ())), r.amount_minor)
        for r in rows)


@dataclass(frozen=True)
class Timeline:
    items: tuple[ActivityItem, ...]
    activities_14: int
    activities_30: int
    progress_14: int
    progress_30: int
    days_since_activity: int | None
    days_since_progress: int | None
    warning: str  # "" when healthy


def timeline(pb: Playbook, activities: tuple[ActivityItem, ...], today: date) -> Timeline:
    now = midnight(today + timedelta(days=1))
    def count(days: int, progress: bool) -> int:
        since = now - timedelta(days=days + 1)
        return sum(1 for a in activities if a.occurred_at >= since and (a.is_progress or not progress))
    prog = [a for a in activities if a.is_progress]
    last_act = max((a.occurred_at for a in activities), default=None)
    last_prog = max((a.occurred_at for a in prog), default=None)
    d_act = (today - last_act.date()).days if last_act else None
    d_prog = (today - last_prog.date()).days if last_prog else None
    window = pb.thresholds.progress_window_days
    a30, p30 = count(window, False), count(window, True)
    warning = ""
    if a30 >= pb.thresholds.min_activities_for_warning and p30 == 0:
        warning = (f"Activity without progress: {a30} activities in {window} days, no buyer progress"
                   + (f" (last progress {d_prog} days ago)" if d_prog is not None else " (none ever recorded)"))
    elif not activities:
        warning = "No activity recorded on this deal"
    elif d_act is not None and d_act > pb.thresholds.stale_activity_days:
        warning = f"Gone quiet: no activity for {d_act} days"
    return Timeline(activities, count(14, False), a30, count(14, True), p30, d_act, d_prog, warning)


@dataclass(frozen=True)
class DealInspection:
    """Everything the Inspect screen shows for one deal in one session."""

    session: SessionInfo
    deal: DealDetail
    state: InspectionState
    evidence: dict[str, EvidenceState]
    stage: StageCheck
    commit: CommitCheck
    desk: tuple[Trigger, ...]
    timeline: Timeline
    changes: ChangeSummary | None
    changes_since: datetime
    findings: tuple[Finding, ...]
    position: int
    total: int
    approvals: frozenset[str] = frozenset()  # deal-desk trigger keys with approval recorded

    @property
    def queue_index(self) -> int:
        return self.position


def confirmed_evidence(pb: Playbook, state: InspectionState) -> frozenset[str]:
    q_ev = {q.key: q.evidence for q in pb.questions}
    return frozenset(ev for q, (_t, st) in state.answers.items() if st == "confirmed"
                     for ev in q_ev.get(q, ()))


def load_deal_inspection(store: Store, insp: Inspections, pb: Playbook, session_id: int,
                         deal_id: int, today: date) -> DealInspection:
    session = insp.session(session_id)
    deal = store.get_deal(deal_id, today)
    state = insp.state(session_id, deal_id)
    risk_high = sum(1 for r in deal.risks if r.status == "open" and r.severity == "high")
    approvals = store.approved_triggers(deal_id).get(deal_id, frozenset())
    facts = DealFacts(
        fields=deal.fields, progress_types=frozenset(a.progress_type for a in deal.activities
                                                     if a.is_progress and a.progress_type),
        risks_recorded=len(deal.risks), open_high_risks=risk_high, promises=deal.promises_count,
        activities_in_window=sum(1 for a in deal.activities if a.occurred_at >= midnight(
            today - timedelta(days=pb.thresholds.progress_window_days))),
        confirmed_evidence=confirmed_evidence(pb, state),
        close_date_verdict=state.decisions.get("close_date_verdict"), approvals=approvals)
    evidence = evidence_status(pb, facts)
    sc = stage_check(pb, deal.row.stage, evidence)
    cc = commit_check(pb, deal.row, facts, today, evidence, sc)
    since = changes_since_moment(store, insp, pb, session.team, today)
    summary = summarize_changes(pb, [c for c in deal.changes if c.changed_at > since]).get(deal_id)
    queue = list(session.queue)
    return DealInspection(
        session=session, deal=deal, state=state, evidence=evidence, stage=sc, commit=cc,
        desk=tuple(deal_desk_hits(pb, deal.fields)), timeline=timeline(pb, deal.activities, today),
        changes=summary, changes_since=since, findings=tuple(evaluate_deal(pb, deal.row, facts, today)),
        position=queue.index(deal_id) if deal_id in queue else 0, total=len(queue), approvals=approvals)


# -- the session summary ---------------------------------------------------------------------
@dataclass
class SessionSummary:
    session: SessionInfo
    inspected: int = 0
    skipped: int = 0
    pending: int = 0
    verdicts: Counter = field(default_factory=Counter)
    overstated_steps: int = 0  # stages overstated in total
    manager_commit: int = 0
    rep_commit: int = 0
    manager_best_case: int = 0
    rep_best_case: int = 0
    category_changes: list[tuple[int, str, str, str]] = field(default_factory=list)  # id, name, rep, mgr
    commit_exceptions: list[tuple[int, str, str]] = field(default_factory=list)  # id, name, reason
    new_risks: Counter = field(default_factory=Counter)
    open_risks: Counter = field(default_factory=Counter)
    not_credible: list[tuple[int, str, date | None]] = field(default_factory=list)
    missing_evidence: list[tuple[int, str]] = field(default_factory=list)
    no_progress: list[tuple[int, str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    chain_head: str = ""
    event_count: int = 0
    # open handoff exceptions on the session's deals: id, name, missing item, owner, due, risk
    open_exceptions: list[tuple[int, str, str, str, date | None, str]] = field(default_factory=list)


def session_summary(store: Store, insp: Inspections, pb: Playbook, session_id: int,
                    today: date) -> SessionSummary:
    from inspector.pipeline import full_findings

    session = insp.session(session_id)
    out = SessionSummary(session)
    states = insp.states(session_id)
    idx = pb.stage_index
    rows = {r.id: r for r in store.list_deals(today, statuses=("open", "won", "lost", "removed"))}
    session_rows = [rows[s.deal_id] for s in states if s.deal_id in rows]
    # what the manager established in this session counts as evidence, as on the Inspect screen
    facts = {s.deal_id: {"confirmed_evidence": confirmed_evidence(pb, s),
                         "close_date_verdict": s.decisions.get("close_date_verdict")} for s in states}
    findings = full_findings(store, pb, session_rows, today, facts)
    risks = _risks_for(store, [s.deal_id for s in states])
    bucket = {c.key: c.bucket for c in pb.forecast_categories}
    for s in states:
        row = rows.get(s.deal_id)
        name = row.name if row else f"deal {s.deal_id}"
        d = s.decisions
        if s.status == "skipped":
            out.skipped += 1
        elif s.status == "inspected":
            out.inspected += 1
        else:
            out.pending += 1
        if d["stage_verdict"]:
            out.verdicts[d["stage_verdict"]] += 1
            if d["stage_verdict"] == "overstated" and d["supported_stage"] in idx and s.stage_at in idx:
                out.overstated_steps += max(0, idx[s.stage_at] - idx[d["supported_stage"]])
        amount = s.amount_minor_at
        call = d["forecast_call"] or s.rep_category
        if bucket.get(s.rep_category) == "commit":
            out.rep_commit += amount
        if bucket.get(s.rep_category) == "best_case":
            out.rep_best_case += amount
        if bucket.get(call) == "commit":
            out.manager_commit += amount
        if bucket.get(call) == "best_case":
            out.manager_best_case += amount
        if d["forecast_call"] and d["forecast_call"] != s.rep_category:
            out.category_changes.append((s.deal_id, name, s.rep_category, d["forecast_call"]))
        if d["forecast_call"] == "commit" and d["commit_exception"]:
            out.commit_exceptions.append((s.deal_id, name, d["commit_exception"]))
        if d["close_date_verdict"] == "not_credible":
            out.not_credible.append((s.deal_id, name, d["proposed_close_date"]))
        codes = {f.code for f in findings.get(s.deal_id, ())}
        if "missing_evidence" in codes and d["stage_verdict"] != "supported":
            out.missing_evidence.append((s.deal_id, name))
        if "no_progress" in codes:
            out.no_progress.append((s.deal_id, name))
        for r in risks.get(s.deal_id, ()):
            if r["status"] == "open":
                out.open_risks[r["type"]] += 1
            if r["created_at"] and r["created_at"] >= session.started_at:
                out.new_risks[r["type"]] += 1
        out.rows.append({
            "deal_id": s.deal_id, "external_id": "", "deal": name, "account": row.account if row else "",
            "rep": row.owner if row else "", "status": s.status, "skip_reason": s.skip_reason,
            "stage": s.stage_at, "stage_verdict": d["stage_verdict"] or "",
            "supported_stage": d["supported_stage"] or "", "amount_minor": amount,
            "currency": row.currency if row else "", "close_date": s.close_date_at,
            "close_date_verdict": d["close_date_verdict"] or "",
            "proposed_close_date": d["proposed_close_date"], "rep_category": s.rep_category,
            "forecast_call": d["forecast_call"] or "",
            "commit_criteria_met": "" if d["commit_criteria_met"] is None else d["commit_criteria_met"],
            "commit_exception": d["commit_exception"] or "", "next_step": d["next_step"] or "",
            "next_step_date": d["next_step_date"], "notes": d["notes"] or "",
            "answers": {q: {"text": t, "evidence": e} for q, (t, e) in s.answers.items()},
            "open_risks": sum(1 for r in risks.get(s.deal_id, ()) if r["status"] == "open"),
            "findings": sorted(codes),
        })
    from inspector.storage.handoffs import open_exceptions

    for ox in open_exceptions(store, [s.deal_id for s in states]):
        e = ox.exception
        out.open_exceptions.append((e.deal_id, ox.deal_name, e.missing_item, e.owner, e.due_date, e.risk))
    chain = insp.chain()
    out.chain_head, out.event_count = chain.head, chain.count
    return out


def _risks_for(store: Store, deal_ids: list[int]) -> dict[int, list[dict]]:
    from sqlalchemy import text

    from inspector.storage.events import read_ts

    out: dict[int, list[dict]] = {}
    if not deal_ids:
        return out
    wanted = set(deal_ids)
    with store.engine.connect() as conn:
        for r in conn.execute(text("SELECT deal_id, type, severity, status, created_at FROM risk")):
            if r[0] in wanted:
                out.setdefault(r[0], []).append({"type": r[1], "severity": r[2], "status": r[3],
                                                 "created_at": read_ts(r[4])})
    return out


def changed_fields(changes: tuple[Change, ...]) -> list[str]:
    return sorted({c.field for c in changes})
