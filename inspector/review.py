"""RevOps review of saved inspections: sessions by manager, team and week; every inspection
with its verdicts, calls, exceptions and risks; filters; one deal's verdict history.

Plain queries and dataclasses (no Textual): the Review screen calls these from workers and
`inspector review` prints them.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text

from inspector.playbook import Playbook
from inspector.storage.events import read_ts
from inspector.storage.repo import Store, read_date

VERDICT_FILTERS = ("overstated", "supported", "understated", "not_credible", "at_risk", "realistic")
EXCEPTION_FILTERS = ("any", "commit", "handoff", "category_change")


@dataclass(frozen=True)
class ReviewFilters:
    manager: str | None = None
    team: str | None = None
    rep: str | None = None
    week_from: date | None = None
    week_to: date | None = None  # inclusive
    verdict: str | None = None  # a stage or close-date verdict (VERDICT_FILTERS)
    risk_type: str | None = None
    exception: str | None = None  # EXCEPTION_FILTERS
    session_id: int | None = None
    deal_id: int | None = None

    def describe(self) -> str:
        parts = []
        for label, v in (("manager", self.manager), ("team", self.team), ("rep", self.rep),
                         ("verdict", self.verdict), ("risk", self.risk_type),
                         ("exception", self.exception)):
            if v:
                parts.append(f"{label}: {v}")
        if self.week_from or self.week_to:
            parts.append(f"weeks {self.week_from or '…'} to {self.week_to or '…'}")
        if self.session_id:
            parts.append(f"session {self.session_id}")
        return ", ".join(parts) or "no filters"


@dataclass(frozen=True)
class SessionRow:
    id: int
    manager: str
    team: str
    week_of: date
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    deals: int
    inspected: int
    skipped: int
    overstated: int
    commit_calls: int
    commit_exceptions: int
    not_credible: int
    risks: int


@dataclass(frozen=True)
class FindingRow:
    """One deal's inspection in one session."""

    inspection_id: int
    session_id: int
    week_of: date
    manager: str
    team: str
    deal_id: int
    deal: str
    rep: str
    status: str
    stage_at: str
    amount_minor: int
    currency: str
    close_date_at: date | None
    rep_category: str
    stage_verdict: str
    supported_stage: str
    close_date_verdict: str
    proposed_close_date: date | None
    forecast_call: str
    commit_criteria_met: bool | None
    commit_exception: str
    notes: str
    risks: tuple[str, ...] = ()

    @property
    def call_differs(self) -> bool:
        return bool(self.forecast_call) and self.forecast_call != self.rep_category


_FINDING_SQL = (
    "SELECT i.id, i.session_id, s.week_of, s.manager, s.team, i.deal_id, d.name, d.owner, i.status, "
    "i.stage_at, i.amount_minor_at, d.currency, i.close_date_at, i.rep_category, i.stage_verdict, "
    "i.supported_stage, i.close_date_verdict, i.proposed_close_date, i.forecast_call, "
    "i.commit_criteria_met, i.commit_exception, i.notes "
    "FROM inspection i JOIN inspection_session s ON s.id = i.session_id JOIN deal d ON d.id = i.deal_id")


def _where(store: Store, f: ReviewFilters) -> tuple[str, dict]:
    where, p = ["s.status <> 'abandoned'"], {}
    if f.manager:
        where.append("s.manager = :manager")
        p["manager"] = f.manager
    if f.team:
        where.append("s.team = :team")
        p["team"] = f.team
    if f.rep:
        where.append("d.owner = :rep")
        p["rep"] = f.rep
    if f.week_from:
        where.append("s.week_of >= :wf")
        p["wf"] = store.p_date(f.week_from)
    if f.week_to:
        where.append("s.week_of <= :wt")
        p["wt"] = store.p_date(f.week_to)
    if f.session_id:
        where.append("i.session_id = :sid")
        p["sid"] = f.session_id
    if f.deal_id:
        where.append("i.deal_id = :did")
        p["did"] = f.deal_id
    if f.verdict:
        if f.verdict not in VERDICT_FILTERS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICT_FILTERS)}")
        where.append("(i.stage_verdict = :verdict OR i.close_date_verdict = :verdict)")
        p["verdict"] = f.verdict
    if f.risk_type:
        where.append("EXISTS (SELECT 1 FROM risk r WHERE r.inspection_id = i.id AND r.type = :rtype)")
        p["rtype"] = f.risk_type
    if f.exception:
        commit = ("(i.forecast_call = 'commit' AND (NOT i.commit_criteria_met "
                  "OR COALESCE(TRIM(i.commit_exception), '') <> ''))")
        handoff = "EXISTS (SELECT 1 FROM handoff_exception h WHERE h.deal_id = i.deal_id)"
        change = "(i.forecast_call IS NOT NULL AND i.forecast_call <> i.rep_category)"
        cond = {"commit": commit, "handoff": handoff, "category_change": change,
                "any": f"({commit} OR {handoff} OR {change})"}.get(f.exception)
        if cond is None:
            raise ValueError(f"exception must be one of {', '.join(EXCEPTION_FILTERS)}")
        where.append(cond)
    return " WHERE " + " AND ".join(where), p


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _finding(r: tuple, risks: dict[int, list[str]]) -> FindingRow:
    return FindingRow(r[0], r[1], read_date(r[2]), r[3] or "", r[4] or "", r[5], r[6] or "", r[7] or "",
                      r[8] or "", r[9] or "", int(r[10] or 0), r[11] or "USD", read_date(r[12]), r[13] or "",
                      r[14] or "", r[15] or "", r[16] or "", read_date(r[17]), r[18] or "", _bool(r[19]),
                      r[20] or "", r[21] or "", tuple(risks.get(r[0], ())))


def list_findings(store: Store, filters: ReviewFilters = ReviewFilters(), *,
                  limit: int = 5000) -> list[FindingRow]:
    """Inspections matching the filters, newest week first, then by session and queue order."""
    where, p = _where(store, filters)
    sql = f"{_FINDING_SQL}{where} ORDER BY s.week_of DESC, s.id DESC, i.position LIMIT {int(limit)}"
    with store.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql), p)]
        risks: dict[int, list[str]] = defaultdict(list)
        ids = [r[0] for r in rows]
        for start in range(0, len(ids), 900):
            part = ", ".join(str(int(i)) for i in ids[start:start + 900])
            for iid, rtype in conn.execute(text(
                    f"SELECT inspection_id, type FROM risk WHERE inspection_id IN ({part}) ORDER BY id")):
                risks[iid].append(rtype)
    return [_finding(r, risks) for r in rows]


def list_sessions(store: Store, filters: ReviewFilters = ReviewFilters(), *,
                  limit: int = 2000) -> list[SessionRow]:
    """Sessions by manager, team and week (newest first) with their counts."""
    f = ReviewFilters(manager=filters.manager, team=filters.team, week_from=filters.week_from,
                      week_to=filters.week_to)
    where, p = _where(store, f)
    where = where.replace("d.owner", "NULL")
    sql = ("SELECT s.id, s.manager, s.team, s.week_of, s.status, s.started_at, s.finished_at, "
           "COUNT(i.id), SUM(CASE WHEN i.status = 'inspected' THEN 1 ELSE 0 END), "
           "SUM(CASE WHEN i.status = 'skipped' THEN 1 ELSE 0 END), "
           "SUM(CASE WHEN i.stage_verdict = 'overstated' THEN 1 ELSE 0 END), "
           "SUM(CASE WHEN i.forecast_call = 'commit' THEN 1 ELSE 0 END), "
           "SUM(CASE WHEN i.forecast_call = 'commit' AND (NOT i.commit_criteria_met OR "
           "COALESCE(TRIM(i.commit_exception), '') <> '') THEN 1 ELSE 0 END), "
           "SUM(CASE WHEN i.close_date_verdict = 'not_credible' THEN 1 ELSE 0 END), "
           "(SELECT COUNT(*) FROM risk r JOIN inspection ii ON ii.id = r.inspection_id "
           " WHERE ii.session_id = s.id) "
           "FROM inspection_session s LEFT JOIN inspection i ON i.session_id = s.id"
           f"{where} GROUP BY s.id, s.manager, s.team, s.week_of, s.status, s.started_at, s.finished_at "
           f"ORDER BY s.week_of DESC, s.team, s.id DESC LIMIT {int(limit)}")
    with store.engine.connect() as conn:
        rows = conn.execute(text(sql), p).fetchall()
    return [SessionRow(r[0], r[1] or "", r[2] or "", read_date(r[3]), r[4], read_ts(r[5]), read_ts(r[6]),
                       *(int(x or 0) for x in r[7:15])) for r in rows]


def filter_values(store: Store) -> dict[str, list[str]]:
    """Choices for the filter pickers: managers, teams, reps and risk types seen in inspections."""
    with store.engine.connect() as conn:
        managers = [r[0] for r in conn.execute(text(
            "SELECT DISTINCT manager FROM inspection_session ORDER BY manager"))]
        teams = [r[0] for r in conn.execute(text(
            "SELECT DISTINCT team FROM inspection_session ORDER BY team"))]
        reps = [r[0] for r in conn.execute(text(
            "SELECT DISTINCT owner FROM deal WHERE owner <> '' ORDER BY owner"))]
        risk_types = [r[0] for r in conn.execute(text(
            "SELECT DISTINCT type FROM risk WHERE inspection_id IS NOT NULL ORDER BY type"))]
        weeks = [read_date(r[0]) for r in conn.execute(text(
            "SELECT DISTINCT week_of FROM inspection_session ORDER BY week_of DESC"))]
    return {"managers": managers, "teams": teams, "reps": reps, "risk_types": risk_types,
            "weeks": [w.isoformat() for w in weeks if w]}


# -- one inspection in full ----------------------------------------------------------------------
@dataclass(frozen=True)
class InspectionDetail:
    finding: FindingRow
    answers: tuple[tuple[str, str, str], ...]  # (question text, answer, evidence state)
    risks: tuple[dict, ...]
    next_step: str
    next_step_date: date | None


def inspection_detail(store: Store, pb: Playbook, inspection_id: int) -> InspectionDetail:
    with store.engine.connect() as conn:
        r = conn.execute(text(f"{_FINDING_SQL} WHERE i.id = :i"), {"i": inspection_id}).first()
        if r is None:
            raise KeyError(inspection_id)
        answers = {q: (t, e) for q, t, e in conn.execute(text(
            "SELECT question, text, evidence_state FROM answer WHERE inspection_id = :i"), {"i": inspection_id})}
        risks = [dict(type=x[0], severity=x[1], owner=x[2], due_date=read_date(x[3]), mitigation=x[4],
                      status=x[5]) for x in conn.execute(text(
                          "SELECT type, severity, owner, due_date, mitigation, status FROM risk "
                          "WHERE inspection_id = :i ORDER BY id"), {"i": inspection_id})]
        ns = conn.execute(text("SELECT next_step, next_step_date FROM inspection WHERE id = :i"),
                          {"i": inspection_id}).first()
    finding = _finding(tuple(r), {inspection_id: [x["type"] for x in risks]})
    qtext = {q.key: q.text for q in pb.questions}
    order = [q.key for q in pb.questions] + sorted(k for k in answers if k not in qtext)
    rows = tuple((qtext.get(k, k), answers[k][0], answers[k][1]) for k in order if k in answers)
    return InspectionDetail(finding, rows, tuple(risks), ns[0] or "", read_date(ns[1]))


# -- one deal's verdict history ------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryChange:
    at: datetime
    field: str
    old: str
    new: str
    source: str


@dataclass
class DealHistory:
    deal_id: int
    name: str
    account: str
    owner: str
    team: str
    manager: str
    stage: str
    status: str
    amount_minor: int
    currency: str
    close_date: date | None
    forecast_category: str
    closed_on: date | None
    close_pushes: int
    weeks: list[FindingRow] = field(default_factory=list)  # oldest first
    changes: list[HistoryChange] = field(default_factory=list)  # oldest first
    events: list[dict] = field(default_factory=list)  # the audit log entries about this deal
    patterns: list[str] = field(default_factory=list)


def deal_history(store: Store, pb: Playbook, deal_id: int) -> DealHistory:
    with store.engine.connect() as conn:
        d = conn.execute(text(
            "SELECT id, name, account, owner, team, manager, stage, status, amount_minor, currency, "
            "close_date, forecast_category, closed_on, close_pushes FROM deal WHERE id = :d"),
            {"d": deal_id}).first()
        if d is None:
            raise KeyError(deal_id)
        changes = [HistoryChange(read_ts(c[0]), c[1], c[2] or "", c[3] or "", c[4] or "")
                   for c in conn.execute(text(
                       "SELECT changed_at, field, old, new, source FROM deal_change WHERE deal_id = :d "
                       "ORDER BY changed_at, id"), {"d": deal_id})]
        events = [{"seq": e[0], "at": read_ts(e[1]), "actor": e[2], "kind": e[3], "payload": json.loads(e[4]),
                   "entity": e[5], "entity_id": e[6]}
                  for e in conn.execute(text(
                      "SELECT seq, at, actor, kind, payload, entity, entity_id FROM inspection_event "
                      "WHERE deal_id = :d "
                      "ORDER BY seq"), {"d": deal_id})]
    weeks = list(reversed(list_findings(store, ReviewFilters(deal_id=deal_id))))
    h = DealHistory(d[0], d[1] or "", d[2] or "", d[3] or "", d[4] or "", d[5] or "", d[6] or "", d[7] or "",
                    int(d[8] or 0), d[9] or "USD", read_date(d[10]), d[11] or "", read_date(d[12]),
                    int(d[13] or 0), weeks, changes, events)
    h.patterns = patterns(pb, h)
    return h


def _runs(flags: list[bool]) -> int:
    best = cur = 0
    for f in flags:
        cur = cur + 1 if f else 0
        best = max(best, cur)
    return best


def patterns(pb: Playbook, h: DealHistory) -> list[str]:
    """What a reviewer should notice across the weeks, in plain sentences."""
    out: list[str] = []
    done = [w for w in h.weeks if w.status == "inspected"]
    over = _runs([w.stage_verdict == "overstated" for w in done])
    if over >= 2:
        out.append(f"Stage judged overstated {over} weeks running")
    elif over == 1:
        n = sum(w.stage_verdict == "overstated" for w in done)
        out.append(f"Stage judged overstated {n} time{'s' if n > 1 else ''}")
    exc = [w for w in done if w.forecast_call == "commit" and (w.commit_criteria_met is False
                                                               or w.commit_exception.strip())]
    if exc:
        with_reason = sum(1 for w in exc if w.commit_exception.strip())
        out.append(f"Commit called without the criteria {len(exc)} time{'s' if len(exc) > 1 else ''}"
                   + (f" ({with_reason} with an exception recorded)" if with_reason else
                      " (no exception recorded)"))
    pushes = [c for c in h.changes if c.field == "close_date" and c.new > c.old and c.old]
    for w in done:
        if w.close_date_verdict != "not_credible":
            continue
        inspected_on = w.week_of
        # pushed after the verdict was recorded (its event), not merely later in that week
        judged = [e["at"] for e in h.events if e.get("entity") == "inspection"
                  and e.get("entity_id") == w.inspection_id and isinstance(e["payload"], dict)
                  and (e["payload"].get("close_date_verdict") or {}).get("new") == "not_credible"]
        since = judged[0] if judged else datetime.combine(inspected_on, datetime.min.time(), tzinfo=timezone.utc)
        later = [c for c in pushes if c.at >= since]
        if later:
            c = later[0]
            try:
                days = (date.fromisoformat(c.new[:10]) - date.fromisoformat(c.old[:10])).days
            except ValueError:
                days = 0
            out.append(f"Close date judged not credible in the week of {inspected_on.isoformat()}, "
                       f"then pushed on {c.at.date().isoformat()} (+{days} days)")
            break
    diffs = [w for w in done if w.call_differs]
    if len(diffs) >= 2:
        out.append(f"Manager's call differed from the rep's {len(diffs)} times")
    if h.status in ("won", "lost") and done:
        last = done[-1]
        verdict = last.stage_verdict or "no verdict"
        out.append(f"Closed {h.status} on {h.closed_on.isoformat() if h.closed_on else '?'}; last "
                   f"inspection ({last.week_of.isoformat()}) said {verdict.replace('_', ' ')}, call "
                   f"{pb.category_label(last.forecast_call or last.rep_category)}")
    return out


def week_range(weeks_back: int, today: date) -> tuple[date, date]:
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(weeks=weeks_back), monday


# -- RevOps across deals: open handoff exceptions and post-sale feedback patterns (issue 6) --------
@dataclass(frozen=True)
class HandoffExceptionRow:
    """One open handoff exception as RevOps reviews it: the gap, who closes it, by when."""

    exception_id: int
    deal_id: int
    deal: str
    external_id: str
    account: str
    team: str
    rep: str
    deal_status: str
    missing_item: str
    owner: str
    due_date: date | None
    risk: str
    created_at: datetime | None
    age_days: int  # days open (since it was logged)
    overdue_days: int  # days past the due date; 0 when not overdue or no due date

    @property
    def overdue(self) -> bool:
        return self.overdue_days > 0


def _deal_scope(where: list[str], params: dict[str, Any], team: str | None, manager: str | None) -> None:
    """Add the team / manager conditions on the joined deal `d` (in place)."""
    if team:
        where.append("d.team = :team")
        params["team"] = team
    if manager:
        where.append("d.manager = :manager")
        params["manager"] = manager


def handoff_exceptions(store: Store, today: date, *, team: str | None = None,
                       manager: str | None = None) -> list[HandoffExceptionRow]:
    """Every open handoff exception (of the team's / manager's deals), earliest due first."""
    from inspector.storage.handoffs import open_exceptions

    deal_ids = None
    if team or manager:
        where, p = ["e.status = 'open'"], {}
        _deal_scope(where, p, team, manager)
        with store.engine.connect() as conn:
            deal_ids = [r[0] for r in conn.execute(text(
                "SELECT DISTINCT e.deal_id FROM handoff_exception e JOIN deal d ON d.id = e.deal_id "
                f"WHERE {' AND '.join(where)}"), p)]
    out = []
    for ox in open_exceptions(store, deal_ids):
        e = ox.exception
        created = e.created_at.date() if e.created_at else today
        overdue = (today - e.due_date).days if e.due_date is not None and e.due_date < today else 0
        out.append(HandoffExceptionRow(e.id, e.deal_id, ox.deal_name or "", ox.external_id or "", ox.account or "",
                                       ox.team or "", ox.rep or "", ox.deal_status or "", e.missing_item,
                                       e.owner, e.due_date, e.risk, e.created_at, max(0, (today - created).days),
                                       overdue))
    return out


@dataclass(frozen=True)
class FeedbackDeal:
    deal_id: int
    deal: str
    items: int
    last_at: datetime | None


@dataclass(frozen=True)
class FeedbackPattern:
    """Post-sale feedback of one playbook category: how often, on which deals (most first)."""

    category: str
    label: str
    items: int
    deals: tuple[FeedbackDeal, ...]

    @property
    def repeated(self) -> bool:
        """Recorded more than once: a pattern to take back to the sales process."""
        return self.items > 1


def feedback_pattern_rows(store: Store, pb: Playbook, *, since: datetime | date | None = None,
                          until: datetime | date | None = None, team: str | None = None,
                          manager: str | None = None) -> list[FeedbackPattern]:
    """Post-sale feedback by category, recorded in [since, until): repeated categories first
    (more items, then more deals), each with its deals (most items first)."""
    def moment(v: datetime | date) -> datetime:
        m = v if isinstance(v, datetime) else datetime.combine(v, datetime.min.time())
        return m if m.tzinfo is not None else m.replace(tzinfo=timezone.utc)

    where, raw = [], {}
    if since is not None:
        where.append("f.recorded_at >= :since")
        raw["since"] = moment(since)
    if until is not None:
        where.append("f.recorded_at < :until")
        raw["until"] = moment(until)
    _deal_scope(where, raw, team, manager)
    sql = ("SELECT f.category, f.deal_id, d.name, COUNT(*), MAX(f.recorded_at) FROM feedback_item f "
           "JOIN deal d ON d.id = f.deal_id" + (f" WHERE {' AND '.join(where)}" if where else "")
           + " GROUP BY f.category, f.deal_id, d.name")
    by_cat: dict[str, list[FeedbackDeal]] = defaultdict(list)
    with store.engine.connect() as conn:
        for cat, deal_id, name, n, last in conn.execute(text(sql), store.params(conn, raw)):
            by_cat[cat].append(FeedbackDeal(deal_id, name or "", int(n), read_ts(last)))
    labels = {c.key: c.label for c in pb.feedback_categories}
    out = [FeedbackPattern(cat, labels.get(cat, cat), sum(d.items for d in ds),
                           tuple(sorted(ds, key=lambda d: (-d.items, d.deal_id))))
           for cat, ds in by_cat.items()]
    return sorted(out, key=lambda p: (not p.repeated, -p.items, -len(p.deals), p.label))
