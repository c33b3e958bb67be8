"""Evidence, stage verdict suggestion, commit criteria, deal-desk triggers and findings."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from inspector.domain import DealRow, Finding
from inspector.playbook import Playbook, Trigger


@dataclass(frozen=True, slots=True)
class DealFacts:
    """What the rules may look at beyond the list row. Defaults mean "nothing recorded"."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    progress_types: frozenset[str] = frozenset()
    risks_recorded: int = 0
    open_high_risks: int = 0
    promises: int = 0
    activities_in_window: int = 0
    confirmed_evidence: frozenset[str] = frozenset()  # via answers marked "confirmed"
    close_date_verdict: str | None = None
    approvals: frozenset[str] = frozenset()  # deal-desk trigger keys with approval recorded


@dataclass(frozen=True, slots=True)
class EvidenceState:
    key: str
    label: str
    established: bool
    how: str  # "field business_problem", "progress: Buyer confirmed the problem", "answer", ""


@dataclass(frozen=True, slots=True)
class StageCheck:
    current: str
    supported: str  # highest stage the evidence supports
    verdict: str  # supported | overstated | understated
    missing_for_current: tuple[str, ...]  # evidence keys of earlier stages not established
    exit_items: tuple[EvidenceState, ...]  # the current stage's exit checklist


@dataclass(frozen=True, slots=True)
class CommitCheck:
    met: bool
    items: tuple[tuple[str, str, bool], ...]  # (key, label, ok)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(label for _k, label, ok in self.items if not ok)


def _filled(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() != ""
    return bool(value) or value == 0 and not isinstance(value, bool)


def evidence_status(pb: Playbook, facts: DealFacts) -> dict[str, EvidenceState]:
    out: dict[str, EvidenceState] = {}
    for ev in pb.evidence:
        how = ""
        if ev.fields and all(_filled(facts.fields.get(f)) for f in ev.fields):
            how = "field " + ", ".join(ev.fields)
        if not how:
            hit = next((p for p in ev.progress if p in facts.progress_types), None)
            if hit:
                how = "progress: " + pb.progress_label.get(hit, hit)
        if not how and ev.source == "risks" and facts.risks_recorded:
            how = f"{facts.risks_recorded} risk(s) recorded"
        if not how and ev.source == "promises" and facts.promises:
            how = f"{facts.promises} promise(s) logged"
        if not how and ev.key in facts.confirmed_evidence:
            how = "answer confirmed in inspection"
        out[ev.key] = EvidenceState(ev.key, ev.label, bool(how), how)
    return out


def established_keys(pb: Playbook, facts: DealFacts) -> set[str]:
    """Keys of established evidence (the fast path used over many deals)."""
    f, prog = facts.fields, facts.progress_types
    out = set(facts.confirmed_evidence)
    for key, fields, progress, source in _compiled(pb):
        if key in out:
            continue
        if fields and all(_filled(f.get(x)) for x in fields):
            out.add(key)
        elif progress and not prog.isdisjoint(progress):
            out.add(key)
        elif source == "risks" and facts.risks_recorded or source == "promises" and facts.promises:
            out.add(key)
    return out


_COMPILED: dict[int, tuple] = {}


def _compiled(pb: Playbook) -> tuple:
    got = _COMPILED.get(id(pb))
    if got is None or got[0] is not pb:
        got = (pb, tuple((e.key, e.fields, frozenset(e.progress), e.source) for e in pb.evidence))
        _COMPILED[id(pb)] = got
    return got[1]


def missing_for_stage(pb: Playbook, stage: str, established: set[str]) -> list[str]:
    """Exit evidence of the stages before `stage` that is not established."""
    missing: list[str] = []
    for s in pb.open_stages:
        if s.key == stage:
            return missing
        missing.extend(k for k in s.exit_evidence if k not in established)
    return []


def stage_check(pb: Playbook, stage: str, evidence: Mapping[str, EvidenceState]) -> StageCheck:
    open_keys = [s.key for s in pb.open_stages]
    if stage not in open_keys:
        return StageCheck(stage, stage, "supported", (), ())
    idx = open_keys.index(stage)
    supported = open_keys[0]
    missing: list[str] = []
    blocked = False
    for i in range(idx):
        exits = pb.stage_by_key[open_keys[i]].exit_evidence
        gap = [k for k in exits if not evidence[k].established]
        if gap:
            missing.extend(gap)
            blocked = True
        elif not blocked:
            supported = open_keys[i + 1]
    exit_items = tuple(evidence[k] for k in pb.stage_by_key[stage].exit_evidence)
    if missing:
        verdict = "overstated"
    elif exit_items and all(e.established for e in exit_items) and idx + 1 < len(open_keys):
        verdict, supported = "understated", open_keys[idx + 1]
    else:
        verdict = "supported"
    return StageCheck(stage, supported, verdict, tuple(missing), exit_items)


def _next_step_stale(pb: Playbook, row: DealRow, today: date) -> bool:
    if not row.next_step.strip() or not row.next_step_date:
        return True
    limit = today - timedelta(days=pb.thresholds.stale_next_step_days)
    return row.next_step_date < limit.isoformat()


def commit_check(pb: Playbook, row: DealRow, facts: DealFacts, today: date,
                 evidence: Mapping[str, EvidenceState] | None = None,
                 stage: StageCheck | None = None) -> CommitCheck:
    evidence = evidence or evidence_status(pb, facts)
    stage = stage or stage_check(pb, row.stage, evidence)
    items = []
    for c in pb.commit_criteria:
        if c.check.startswith("evidence:"):
            ok = evidence[c.check.removeprefix("evidence:")].established
        elif c.check == "close_date_realistic":
            ok = (bool(row.close_date) and row.close_date >= today.isoformat()
                  and row.close_pushes < pb.thresholds.close_date_push_warn
                  and facts.close_date_verdict != "not_credible")
        elif c.check == "next_step_current":
            ok = not _next_step_stale(pb, row, today)
        elif c.check == "stage_supported":
            ok = stage.verdict != "overstated"
        elif c.check == "no_open_high_risk":
            ok = facts.open_high_risks == 0
        elif c.check == "amount_scoped":
            ok = row.amount_minor > 0 and _filled(facts.fields.get("contract_scope"))
        else:  # validated away by the playbook loader
            ok = False
        items.append((c.key, c.label, ok))
    return CommitCheck(all(ok for *_x, ok in items), tuple(items))


def _trigger_hit(t: Trigger, value: Any) -> bool:
    if t.op == "is_true":
        return bool(value)
    if t.op == "not_in":
        return (value or "") not in t.value
    if value is None or value == "":
        return False
    try:
        v, ref = float(value), float(t.value)
    except (TypeError, ValueError):
        v, ref = str(value), str(t.value)
    return {">": v > ref, ">=": v >= ref, "<": v < ref, "<=": v <= ref,
            "==": v == ref, "!=": v != ref}[t.op]


def deal_desk_hits(pb: Playbook, fields: Mapping[str, Any]) -> list[Trigger]:
    return [t for t in pb.deal_desk_triggers if _trigger_hit(t, fields.get(t.field))]


#: one string per distinct finding message: 100k deals' findings repeat a few hundred messages
_MESSAGES: dict[str, str] = {}


def _finding(deal_id: int, code: str, severity: str, message: str) -> Finding:
    shared = _MESSAGES.get(message)
    if shared is None:
        if len(_MESSAGES) > 50_000:
            _MESSAGES.clear()
        shared = _MESSAGES[message] = message
    return Finding(deal_id, code, severity, shared)


def evaluate_deal(pb: Playbook, row: DealRow, facts: DealFacts | None, today: date) -> list[Finding]:
    """Findings for one open deal. With facts=None only the list-row rules run (fast path)."""
    th = pb.thresholds
    out: list[Finding] = []
    iso_today = today.isoformat()
    if row.close_date and row.close_date < iso_today:
        out.append(_finding(row.id, "past_close", "high", f"Close date {row.close_date} is in the past"))
    if row.close_pushes >= th.close_date_push_warn:
        out.append(_finding(row.id, "pushed", "warn", f"Close date pushed {row.close_pushes} times"))
    if _next_step_stale(pb, row, today):
        out.append(_finding(row.id, "stale_next_step", "warn",
                           "No next step" if not row.next_step.strip() else
                           f"Next step is stale (due {row.next_step_date or 'no date'})"))
    stage = pb.stage_by_key.get(row.stage)
    if stage and stage.aging_limit_days and (row.days_in_stage or 0) > stage.aging_limit_days:
        out.append(_finding(row.id, "aging", "warn",
                           f"{row.days_in_stage} days in {stage.label} (limit {stage.aging_limit_days})"))
    if row.days_since_activity is None or row.days_since_activity > th.stale_activity_days:
        out.append(_finding(row.id, "quiet", "warn", "No activity recorded" if row.days_since_activity is None
                           else f"No activity for {row.days_since_activity} days"))
    if facts is None:
        return out
    no_recent_progress = (row.days_since_progress is None
                          or row.days_since_progress > th.progress_window_days)
    if facts.activities_in_window >= th.min_activities_for_warning and no_recent_progress:
        out.append(_finding(row.id, "no_progress", "high",
                           f"{facts.activities_in_window} activities in {th.progress_window_days} days "
                           "but no buyer progress"))
    established = established_keys(pb, facts)
    missing = missing_for_stage(pb, row.stage, established)
    if missing:
        labels = ", ".join(pb.evidence_by_key[k].label for k in missing[:2])
        more = len(missing) - 2
        out.append(_finding(row.id, "missing_evidence", "high",
                           f"Stage overstated: missing {labels}" + (f" (+{more})" if more > 0 else "")))
    if row.forecast_category == "commit":
        cc = commit_check(pb, row, facts, today)
        if not cc.met:
            out.append(_finding(row.id, "commit_criteria", "high",
                               f"Commit without criteria: {len(cc.missing)} not met"))
    hits = [t for t in deal_desk_hits(pb, facts.fields) if t.key not in facts.approvals]
    if hits:
        out.append(_finding(row.id, "deal_desk", "warn",
                           "Deal desk: " + ", ".join(t.label for t in hits) + " needs approval"))
    return out


FINDING_LABELS = {
    "past_close": "Close date past",
    "pushed": "Close date pushed",
    "stale_next_step": "Stale next step",
    "aging": "Aging in stage",
    "quiet": "Gone quiet",
    "no_progress": "Activity without progress",
    "missing_evidence": "Missing stage evidence",
    "commit_criteria": "Commit criteria not met",
    "deal_desk": "Deal desk trigger",
}


def finding_codes(findings: Iterable[Finding]) -> list[str]:
    return [f.code for f in findings]
