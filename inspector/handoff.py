"""Closed-won readiness, handoff tiers, deal desk, CS acceptance and the handoff packet.

Pure evaluation: a `HandoffRecord` (everything stored about one deal's handoff, read by
`inspector.storage.handoffs`) plus the playbook and `today` give a `Review`: the playbook's
closed-won requirements and finance fields as a checklist (present / missing / doubtful),
the suggested and chosen handoff tier with its steps, the deal-desk approvals, the CS
acceptance checklist, the handoff packet, and the gaps that stand between the deal and
"ready to receive". A gap is covered when an open handoff exception names it.

Doubtful (filled, but not believable): placeholder text ("TBD", "?", "unknown"), a renewal
date in the past or before the contract starts, a contract that ends before it starts, a
signature dated in the future, kickoff before the close, and a value that fires a deal-desk
trigger (e.g. payment terms outside standard) without the approval recorded.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any

from inspector.domain import DealDetail, RiskItem
from inspector.money import format_money, from_minor
from inspector.playbook import Playbook, Requirement, Tier, Trigger
from inspector.rules.evaluate import _trigger_hit

HANDOFF_STATUSES = ("draft", "submitted", "accepted", "returned")
APPROVAL_STATUSES = ("pending", "approved", "rejected")
#: Steps whose state is derived, not ticked: "required fields complete" holds when the
#: closed-won requirements and finance fields are all present; "automated onboarding task
#: created" holds once the handoff is submitted to customer success.
AUTO_STEPS = frozenset({"required_fields", "automated_task"})

_PLACEHOLDERS = frozenset({
    "tbd", "tba", "tbc", "?", "??", "???", "unknown", "n/a", "na", "none", "pending", "todo",
    "to do", "later", "-", "--", "---", "x", "xx", "xxx", "not sure", "unclear", "to be confirmed",
    "to be decided", "to be determined", "not known", "not yet", "?tbd", "same as above",
})
_PLACEHOLDER_WORD = re.compile(r"\b(tbd|tba|tbc|todo|unknown|to be (confirmed|decided|determined))\b", re.I)


# -- what is stored ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PromiseItem:
    id: int
    deal_id: int
    category: str
    text: str
    promised_by: str
    promised_on: date | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExceptionItem:
    id: int
    deal_id: int
    missing_item: str
    owner: str
    due_date: date | None
    risk: str
    status: str  # open | closed
    created_at: datetime
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApprovalItem:
    deal_id: int
    trigger_key: str
    approver: str
    status: str  # pending | approved | rejected
    decided_by: str
    decided_at: datetime | None
    note: str
    version: int = 1


@dataclass(frozen=True, slots=True)
class StepItem:
    step: str
    done: bool
    done_by: str
    done_at: datetime | None


@dataclass(frozen=True, slots=True)
class HandoffState:
    deal_id: int
    tier: str = ""  # the manager's choice; "" = use the suggested tier
    tier_set_by: str = ""
    status: str = "draft"
    cs_owner: str = ""
    returned_items: tuple[str, ...] = ()
    returned_reason: str = ""
    decided_by: str = ""
    decided_at: datetime | None = None
    kickoff_on: date | None = None
    version: int = 0  # 0: no handoff row stored yet


@dataclass(frozen=True, slots=True)
class LostReasonItem:
    deal_id: int
    reason: str
    detail: str
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    id: int
    deal_id: int
    promise_id: int | None
    category: str
    text: str
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class PastInspection:
    """One earlier inspection of the deal (closed-lost learning links back to these)."""

    session_id: int
    week_of: date | None
    manager: str
    status: str
    stage_at: str
    stage_verdict: str
    supported_stage: str
    rep_category: str
    forecast_call: str
    commit_exception: str
    close_date_verdict: str
    notes: str


@dataclass(frozen=True, slots=True)
class RiskRecord:
    """A risk with the moment it was closed (RiskItem does not carry it)."""

    risk: RiskItem
    closed_at: datetime | None


@dataclass(frozen=True)
class HandoffRecord:
    """Everything stored about one deal's way from commit to customer."""

    deal: DealDetail
    external_id: str
    closed_on: date | None
    handoff: HandoffState
    steps: Mapping[str, StepItem] = field(default_factory=dict)
    approvals: Mapping[str, ApprovalItem] = field(default_factory=dict)
    promises: tuple[PromiseItem, ...] = ()
    exceptions: tuple[ExceptionItem, ...] = ()
    lost: LostReasonItem | None = None
    feedback: tuple[FeedbackEntry, ...] = ()
    inspections: tuple[PastInspection, ...] = ()
    risks: tuple[RiskRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenException:
    """An open handoff exception with the deal it belongs to (RevOps review, session summary)."""

    exception: ExceptionItem
    deal_name: str
    external_id: str
    account: str
    team: str
    rep: str
    deal_status: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A deal the handoff screen offers: open in commit or closing, won, or lost."""

    id: int
    external_id: str
    name: str
    account: str
    owner: str
    team: str
    stage: str
    status: str
    amount_minor: int
    currency: str
    close_date: date | None
    closed_on: date | None
    handoff_status: str  # "" when no handoff row exists
    open_exceptions: int
    lost_reason: str


# -- what the review shows ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CheckItem:
    key: str
    label: str
    state: str  # present | missing | doubtful
    value: str  # what is there, for display ("" when missing)
    note: str = ""  # why doubtful, what is missing, or how it is satisfied
    fields: tuple[str, ...] = ()  # what it is made of: deal fields, or "source:promises"

    @property
    def ok(self) -> bool:
        return self.state == "present"


@dataclass(frozen=True, slots=True)
class TierChoice:
    suggested: Tier
    reasons: tuple[str, ...]
    chosen: Tier
    set_by: str  # "" when the suggestion stands

    @property
    def overridden(self) -> bool:
        return bool(self.set_by) and self.chosen.key != self.suggested.key


@dataclass(frozen=True, slots=True)
class StepState:
    key: str
    label: str
    done: bool
    auto: bool
    done_by: str = ""
    done_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeskItem:
    key: str
    label: str
    approver: str
    status: str  # approved | rejected | pending | not recorded
    decided_by: str = ""
    decided_at: datetime | None = None
    note: str = ""

    @property
    def approved(self) -> bool:
        return self.status == "approved"


@dataclass(frozen=True, slots=True)
class Gap:
    key: str  # "req:use_case", "fin:payment_terms", "desk:custom_terms", "acc:kickoff", "pkt:billing_caveats",
    #           "step:risk_review"
    label: str
    note: str
    covered_by: ExceptionItem | None = None
    fields: tuple[str, ...] = ()  # the same fields in two checklists are one gap for exceptions


@dataclass(frozen=True)
class Review:
    record: HandoffRecord
    phase: str  # open | won | lost
    in_scope: bool  # open in commit (stage or category) or won: the closed-won review applies
    requirements: tuple[CheckItem, ...]
    finance: tuple[CheckItem, ...]
    acceptance: tuple[CheckItem, ...]
    packet: tuple[CheckItem, ...]
    tier: TierChoice
    steps: tuple[StepState, ...]
    desk: tuple[DeskItem, ...]
    close_gaps: tuple[Gap, ...]  # requirements, finance, deal desk: before closed-won
    accept_gaps: tuple[Gap, ...]  # acceptance checklist, rest of the packet, tier steps: before CS accepts

    @property
    def deal(self) -> DealDetail:
        return self.record.deal

    @property
    def handoff(self) -> HandoffState:
        return self.record.handoff

    @property
    def open_exceptions(self) -> tuple[ExceptionItem, ...]:
        return tuple(e for e in self.record.exceptions if e.status == "open")

    @property
    def gaps(self) -> tuple[Gap, ...]:
        """Every gap once (the same label in two checklists is one gap)."""
        seen: set[str] = set()
        out = []
        for g in self.close_gaps + self.accept_gaps:
            k = _norm(g.label)
            if k not in seen:
                seen.add(k)
                out.append(g)
        return tuple(out)

    @property
    def uncovered(self) -> tuple[Gap, ...]:
        return tuple(g for g in self.gaps if g.covered_by is None)

    @property
    def close_blockers(self) -> tuple[Gap, ...]:
        return tuple(g for g in self.close_gaps if g.covered_by is None)

    @property
    def accept_blockers(self) -> tuple[Gap, ...]:
        return tuple(g for g in self.accept_gaps if g.covered_by is None)

    @property
    def verdict(self) -> str:
        """ready | ready_with_exceptions | not_ready (ready to receive, all checklists)."""
        if self.uncovered:
            return "not_ready"
        return "ready_with_exceptions" if self.gaps else "ready"

    @property
    def verdict_text(self) -> str:
        if self.verdict == "ready":
            return "Ready to receive"
        if self.verdict == "ready_with_exceptions":
            return f"Ready with {len(self.gaps)} exception(s)"
        return f"Not ready: {len(self.uncovered)} gap(s) without an exception"

    @property
    def can_close_won(self) -> bool:
        return self.phase == "open" and not self.close_blockers

    @property
    def can_submit(self) -> bool:
        """Closed-won (or closing now) and not yet with CS, or returned and fixed."""
        return self.phase in ("open", "won") and self.handoff.status in ("draft", "returned") \
            and not self.close_blockers

    @property
    def can_accept(self) -> bool:
        return self.phase == "won" and self.handoff.status == "submitted" and not self.accept_blockers


# -- value rules -------------------------------------------------------------------------------
def filled(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() != ""
    if isinstance(value, bool):
        return value
    return True


def placeholder(value: Any) -> bool:
    """A text that says "not known yet": TBD, ?, unknown, n/a, "Net 60?"."""
    if not isinstance(value, str):
        return False
    v = " ".join(value.strip().lower().split())
    return v in _PLACEHOLDERS or "?" in v or bool(_PLACEHOLDER_WORD.search(v))


def show_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _norm(text: str) -> str:
    return " ".join(str(text).strip().lower().split())


@dataclass(frozen=True)
class _Ctx:
    fields: Mapping[str, Any]
    today: date
    close_day: date | None
    triggers: tuple[Trigger, ...]
    approvals: Mapping[str, ApprovalItem]
    promises: int
    risks: tuple[RiskItem, ...]

    def approved(self, key: str) -> ApprovalItem | None:
        a = self.approvals.get(key)
        return a if a is not None and a.status == "approved" else None


def field_doubt(name: str, value: Any, ctx: _Ctx) -> str:
    """Why a filled field is not believable ("" when it is fine)."""
    if placeholder(value):
        return f"placeholder text {show_value(value).strip()!r}"
    f = ctx.fields
    day = _as_date(value)
    if name == "renewal_date" and day:
        start = _as_date(f.get("contract_start"))
        if day < ctx.today:
            return "renewal date is in the past"
        if start and day <= start:
            return "renewal date is not after the contract start"
    if name == "contract_end" and day:
        start = _as_date(f.get("contract_start"))
        if start and day < start:
            return "contract ends before it starts"
    if name == "contract_signed_on" and day and day > ctx.today:
        return "signature dated in the future"
    if name == "kickoff_date" and day:
        if ctx.close_day and day < ctx.close_day:
            return f"kickoff before the close ({ctx.close_day.isoformat()})"
    for t in ctx.triggers:  # a value that needs deal-desk approval, without it
        if t.field == name and _trigger_hit(t, value) and not ctx.approved(t.key):
            if t.op == "not_in":
                standard = ", ".join(str(v) for v in t.value if v)
                return f"outside standard ({standard}); needs {t.approver} approval"
            return f"{t.label}: needs {t.approver} approval"
    return ""


def _discount_approval(ctx: _Ctx) -> CheckItem | None:
    """Discount approval is needed only when a discount trigger fires; the deal desk may hold it."""
    hits = [t for t in ctx.triggers if t.field == "discount_pct" and _trigger_hit(t, ctx.fields.get("discount_pct"))]
    if filled(ctx.fields.get("discount_approved_by")):
        return None
    if not hits:
        pct = ctx.fields.get("discount_pct")
        return CheckItem("", "", "present", "not needed",
                         f"discount {show_value(pct) or 0}% is within standard")
    for t in hits:
        a = ctx.approved(t.key)
        if a:
            return CheckItem("", "", "present", a.decided_by or a.approver, "approved in deal desk")
    return None


def check_requirement(req: Requirement, ctx: _Ctx) -> CheckItem:
    item = _check(req, ctx)
    return replace(item, fields=req.fields or (f"source:{req.source}",))


def _check(req: Requirement, ctx: _Ctx) -> CheckItem:
    if req.source == "promises" and not req.fields:
        if ctx.promises:
            return CheckItem(req.key, req.label, "present", f"{ctx.promises} logged")
        return CheckItem(req.key, req.label, "missing", "", "no promises logged")
    if req.source == "risks" and not req.fields:
        if not ctx.risks:
            return CheckItem(req.key, req.label, "missing", "", "no risks recorded")
        open_ = [r for r in ctx.risks if r.status == "open"]
        bare = [r for r in open_ if r.severity == "high" and not (r.mitigation or "").strip()]
        value = f"{len(ctx.risks)} recorded, {len(open_)} open"
        if bare:
            return CheckItem(req.key, req.label, "doubtful", value,
                             f"{len(bare)} open high risk(s) without mitigation")
        return CheckItem(req.key, req.label, "present", value)
    values, missing, doubts, notes = [], [], [], []
    for name in req.fields:
        v = ctx.fields.get(name)
        if name == "discount_approved_by" and not filled(v):
            special = _discount_approval(ctx)
            if special is not None:  # not needed, or held by the deal desk
                values.append(special.value)
                notes.append(special.note)
                continue
        if not filled(v):
            missing.append(name)
            continue
        values.append(show_value(v))
        why = field_doubt(name, v, ctx)
        if why:
            doubts.append(why)
    value = " · ".join(x for x in values if x)
    if missing:
        note = "missing " + ", ".join(m.replace("_", " ") for m in missing) if len(req.fields) > 1 else ""
        return CheckItem(req.key, req.label, "missing", value, note)
    if doubts:
        return CheckItem(req.key, req.label, "doubtful", value, "; ".join(doubts))
    return CheckItem(req.key, req.label, "present", value, "; ".join(n for n in notes if n))


# -- tiers, steps, deal desk -------------------------------------------------------------------
def suggest_tier(pb: Playbook, amount_minor: int, currency: str, complexity: str,
                 open_high_risks: int) -> tuple[Tier, tuple[str, ...]]:
    """The first tier whose rule matches (any condition), with the reasons it matched."""
    amount = from_minor(amount_minor or 0, currency or "USD")
    cx = (complexity or "").strip().lower()
    for t in pb.handoff_tiers:
        reasons = []
        if t.min_amount is not None and amount >= t.min_amount:
            reasons.append(f"amount {format_money(amount_minor, currency or 'USD')} ≥ {t.min_amount:,}")
        if t.complexity and cx in {c.lower() for c in t.complexity}:
            reasons.append(f"implementation complexity {cx}")
        if t.min_open_high_risks is not None and open_high_risks >= t.min_open_high_risks:
            reasons.append(f"{open_high_risks} open high risk(s)")
        unconditional = t.min_amount is None and not t.complexity and t.min_open_high_risks is None
        if reasons:
            return t, tuple(reasons)
        if unconditional:
            return t, ("low risk, simple scope",)
    last = pb.handoff_tiers[-1]
    return last, ("default tier",)


def tier_choice(pb: Playbook, deal: DealDetail, handoff: HandoffState) -> TierChoice:
    open_high = sum(1 for r in deal.risks if r.status == "open" and r.severity == "high")
    suggested, reasons = suggest_tier(pb, deal.row.amount_minor, deal.row.currency,
                                      str(deal.fields.get("implementation_complexity") or ""), open_high)
    by_key = {t.key: t for t in pb.handoff_tiers}
    chosen = by_key.get(handoff.tier, suggested) if handoff.tier else suggested
    return TierChoice(suggested, reasons, chosen, handoff.tier_set_by if handoff.tier in by_key else "")


def desk_items(pb: Playbook, fields: Mapping[str, Any], approvals: Mapping[str, ApprovalItem]) -> tuple[DeskItem, ...]:
    out = []
    for t in pb.deal_desk_triggers:
        if not _trigger_hit(t, fields.get(t.field)):
            continue
        a = approvals.get(t.key)
        if a is None:
            out.append(DeskItem(t.key, t.label, t.approver, "not recorded"))
        else:
            out.append(DeskItem(t.key, t.label, a.approver or t.approver, a.status, a.decided_by,
                                a.decided_at, a.note))
    return tuple(out)


def merged_fields(record: HandoffRecord) -> dict[str, Any]:
    """Deal fields with what the handoff itself holds (CS owner, kickoff) laid over them."""
    f = dict(record.deal.fields)
    if record.handoff.cs_owner.strip():
        f["cs_owner"] = record.handoff.cs_owner
    if record.handoff.kickoff_on:
        f["kickoff_date"] = record.handoff.kickoff_on
    return f


def covering_exception(gap_key: str, label: str, exceptions: Iterable[ExceptionItem],
                       fields: Iterable[str] = ()) -> ExceptionItem | None:
    """The open exception that names this gap (by label, key, or one of its deal fields)."""
    names = {_norm(label), _norm(gap_key), _norm(gap_key.partition(":")[2])}
    names |= {_norm(f) for f in fields} | {_norm(f.replace("_", " ")) for f in fields}
    for e in exceptions:
        if e.status == "open" and _norm(e.missing_item) in names:
            return e
    return None


def in_commit_scope(pb: Playbook, deal: DealDetail) -> bool:
    row = deal.row
    if row.status == "won":
        return True
    if row.status != "open":
        return False
    last_open = pb.open_stages[-1].key if pb.open_stages else ""
    bucket = pb.category_by_key.get(row.forecast_category)
    return row.stage == last_open or (bucket is not None and bucket.bucket == "commit")


def review(pb: Playbook, record: HandoffRecord, today: date) -> Review:
    deal = record.deal
    row = deal.row
    phase = "won" if row.status == "won" else "lost" if row.status == "lost" else "open"
    fields = merged_fields(record)
    close_day = record.closed_on or _as_date(row.close_date)
    ctx = _Ctx(fields, today, close_day, pb.deal_desk_triggers, record.approvals,
               len(record.promises), deal.risks)
    reqs = tuple(check_requirement(r, ctx) for r in pb.closed_won_requirements)
    fin = tuple(check_requirement(r, ctx) for r in pb.finance_fields)
    acc = tuple(check_requirement(r, ctx) for r in pb.acceptance_checklist)
    packet = tuple(check_requirement(r, ctx) for r in pb.handoff_packet)
    tier = tier_choice(pb, deal, record.handoff)
    step_label = {s.key: s.label for s in pb.handoff_steps}
    all_present = all(i.ok for i in reqs + fin)
    submitted = record.handoff.status in ("submitted", "accepted")
    steps = []
    for key in tier.chosen.steps:
        if key == "required_fields":
            steps.append(StepState(key, step_label.get(key, key), all_present, True))
        elif key == "automated_task":
            steps.append(StepState(key, step_label.get(key, key), submitted, True))
        else:
            s = record.steps.get(key)
            steps.append(StepState(key, step_label.get(key, key), bool(s and s.done), False,
                                   s.done_by if s else "", s.done_at if s else None))
    desk = desk_items(pb, fields, record.approvals)
    excs = record.exceptions

    def gap(prefix: str, item: CheckItem) -> Gap:
        key = f"{prefix}:{item.key}"
        note = item.note or ("missing" if item.state == "missing" else item.state)
        return Gap(key, item.label, note, covering_exception(key, item.label, excs, item.fields),
                   item.fields)

    close_gaps = [gap("req", i) for i in reqs if not i.ok]
    seen = {_norm(g.label) for g in close_gaps}
    for i in fin:
        if not i.ok and _norm(i.label) not in seen:
            close_gaps.append(gap("fin", i))
            seen.add(_norm(i.label))
    for d in desk:
        if not d.approved:
            label = f"Deal desk approval: {d.label}"
            key = f"desk:{d.key}"
            close_gaps.append(Gap(key, label, f"{d.approver} approval {d.status}",
                                  covering_exception(key, label, excs), (key,)))
    accept_gaps = [gap("acc", i) for i in acc if not i.ok]
    # the packet CS receives: what it asks beyond the checklists (business problem, timeline
    # commitments, billing caveats, first customer action) is needed before CS accepts too
    known_fields = {g.fields for g in close_gaps + accept_gaps if g.fields}
    known_fields |= {i.fields for i in reqs + fin + acc if i.fields}
    known_labels = {_norm(g.label) for g in close_gaps + accept_gaps}
    for i in packet:
        if not i.ok and i.fields not in known_fields and _norm(i.label) not in known_labels:
            accept_gaps.append(gap("pkt", i))
    for s in steps:
        if not s.auto and not s.done:
            key = f"step:{s.key}"
            accept_gaps.append(Gap(key, s.label, f"{tier.chosen.label} tier step not done",
                                   covering_exception(key, s.label, excs), (key,)))
    # an exception for a field covers it in every checklist ("Key stakeholders" and
    # "Primary stakeholders are listed" are the same missing field)
    by_fields = {g.fields: g.covered_by for g in close_gaps + accept_gaps if g.covered_by and g.fields}
    close_gaps = [g if g.covered_by or g.fields not in by_fields else replace(g, covered_by=by_fields[g.fields])
                  for g in close_gaps]
    accept_gaps = [g if g.covered_by or g.fields not in by_fields else replace(g, covered_by=by_fields[g.fields])
                   for g in accept_gaps]
    return Review(record, phase, in_commit_scope(pb, deal), reqs, fin, acc, packet, tier,
                  tuple(steps), desk, tuple(close_gaps), tuple(accept_gaps))


def risks_at_close(record: HandoffRecord) -> list[tuple[RiskItem, str]]:
    """The deal's risks as they stood when it closed: (risk, "open" | "closed before" | ...)."""
    closed = record.closed_on
    out = []
    for rr in record.risks:
        r = rr.risk
        if closed and r.created_at and r.created_at.date() > closed:
            continue
        if r.status == "open":
            out.append((r, "open at close"))
        elif rr.closed_at is None:
            out.append((r, "closed (date unknown)"))
        elif closed and rr.closed_at.date() >= closed:
            out.append((r, "open at close"))
        else:
            out.append((r, f"closed {rr.closed_at.date().isoformat()}"))
    return out


def lost_reason_problem(pb: Playbook, reason: str | None, detail: str | None) -> str:
    """Why a closed-lost reason is not acceptable ("" when it is)."""
    keys = [r.key for r in pb.closed_lost_reasons]
    if not reason or not reason.strip():
        return "a closed-lost reason is required: one of " + ", ".join(keys)
    match = next((r for r in pb.closed_lost_reasons if r.key == reason.strip()), None)
    if match is None:
        return f"unknown closed-lost reason {reason.strip()!r}: use one of " + ", ".join(keys)
    if match.requires_detail and not (detail or "").strip():
        return f"reason {match.key!r} ({match.label}) needs a detail that says what happened"
    return ""


# -- the packet as Markdown ----------------------------------------------------------------------
def _md_cell(value: Any) -> str:
    s = "" if value is None else str(value)
    s = s.replace("\\", "\\\\").replace("|", "\\|")
    return s.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def _md_line(value: Any) -> str:
    s = "" if value is None else str(value)
    return " ".join(s.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return out + [""]


STATE_MARK = {"present": "✔ present", "missing": "✘ missing", "doubtful": "? doubtful"}


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def packet_markdown(pb: Playbook, rv: Review, *, generated_at: datetime | None = None) -> str:
    """The opportunity-to-customer handoff packet (GitHub Markdown), with the readiness review."""
    rec = rv.record
    row = rec.deal.row
    h = rec.handoff
    cat = {c.key: c.label for c in pb.promise_categories}
    lines = [f"# Handoff packet: {_md_line(row.name)}", ""]
    lines += [f"- Deal: {_md_line(rec.external_id or row.id)} (id {row.id}) · account {_md_line(row.account)}"
              f" · rep {_md_line(row.owner)} · team {_md_line(row.team)}",
              f"- Amount: {format_money(row.amount_minor, row.currency)} · stage {_md_line(pb.stage_label(row.stage))}"
              f" · close date {row.close_date or '-'}"
              + (f" · closed on {rec.closed_on.isoformat()}" if rec.closed_on else ""),
              f"- Readiness: **{rv.verdict_text}**",
              f"- Handoff tier: **{rv.tier.chosen.label}** ("
              + ("suggested" if not rv.tier.overridden else
                 f"set by {_md_line(rv.tier.set_by)}; suggested {rv.tier.suggested.label}")
              + f": {_md_line('; '.join(rv.tier.reasons))}) — {_md_line(rv.tier.chosen.requirement)}",
              f"- Handoff status: **{h.status}**"
              + (f" by {_md_line(h.decided_by)} at {_when(h.decided_at)}" if h.decided_by else "")]
    if generated_at is not None:
        lines.append(f"- Generated: {_when(generated_at)}")
    lines.append("")
    lines += ["## Handoff packet", ""]
    lines += _table(["Item", "Content", "State"],
                    [[i.label, i.value or "", STATE_MARK[i.state] + (f" ({i.note})" if i.note else "")]
                     for i in rv.packet])
    lines += ["## Promises made", ""]
    if rec.promises:
        lines += _table(["Category", "Promise", "Promised by", "On"],
                        [[cat.get(p.category, p.category), p.text, p.promised_by,
                          p.promised_on.isoformat() if p.promised_on else ""] for p in rec.promises])
    else:
        lines += ["No promises logged.", ""]
    lines += ["## Implementation risks", ""]
    if rec.deal.risks:
        lines += _table(["Risk", "Severity", "Owner", "Due", "Mitigation", "Status"],
                        [[pb.risk_label.get(r.type, r.type), r.severity, r.owner,
                          r.due_date.isoformat() if r.due_date else "", r.mitigation, r.status]
                         for r in rec.deal.risks])
    else:
        lines += ["No risks recorded.", ""]
    lines += ["## Closed-won requirements", ""]
    lines += _table(["Requirement", "State", "Value", "Note"],
                    [[i.label, STATE_MARK[i.state], i.value, i.note] for i in rv.requirements])
    lines += ["## Finance and billing", ""]
    lines += _table(["Field", "State", "Value", "Note"],
                    [[i.label, STATE_MARK[i.state], i.value, i.note] for i in rv.finance])
    lines += [f"## Handoff steps ({rv.tier.chosen.label})", ""]
    lines += _table(["Step", "Done", "By"],
                    [[s.label, ("yes" if s.done else "no") + (" (automatic)" if s.auto else ""),
                      s.done_by] for s in rv.steps])
    lines += ["## Deal desk approvals", ""]
    if rv.desk:
        lines += _table(["Trigger", "Approver", "Status", "Decided by", "Note"],
                        [[d.label, d.approver, d.status, d.decided_by, d.note] for d in rv.desk])
    else:
        lines += ["No deal-desk trigger fires on this deal.", ""]
    lines += ["## Exceptions", ""]
    if rec.exceptions:
        lines += _table(["Missing item", "Owner", "Due", "Risk", "Status"],
                        [[e.missing_item, e.owner, e.due_date.isoformat() if e.due_date else "", e.risk,
                          e.status] for e in rec.exceptions])
    else:
        lines += ["No exceptions.", ""]
    uncovered = rv.uncovered
    if uncovered:
        lines += ["Gaps without an exception:", ""]
        lines += [f"- {_md_line(g.label)}: {_md_line(g.note)}" for g in uncovered]
        lines.append("")
    lines += ["## Customer-success acceptance", ""]
    lines += _table(["Checklist item", "State", "Value", "Note"],
                    [[i.label, STATE_MARK[i.state], i.value, i.note] for i in rv.acceptance])
    if h.status == "returned":
        lines += [f"Returned to sales by {_md_line(h.decided_by)} ({_when(h.decided_at)}): "
                  f"{_md_line(h.returned_reason)}", ""]
        lines += [f"- {_md_line(x)}" for x in h.returned_items] + [""]
    if rec.lost is not None or rv.phase == "lost":
        lines += closed_lost_markdown(pb, rec)
    if rec.feedback:
        fb = {c.key: c.label for c in pb.feedback_categories}
        ptext = {p.id: p.text for p in rec.promises}
        lines += ["## Post-sale feedback", ""]
        lines += _table(["Category", "Feedback", "Promise", "By", "At"],
                        [[fb.get(f.category, f.category), f.text, ptext.get(f.promise_id, ""), f.recorded_by,
                          _when(f.recorded_at)] for f in rec.feedback])
    return "\n".join(lines).rstrip("\n") + "\n"


def closed_lost_markdown(pb: Playbook, rec: HandoffRecord) -> list[str]:
    reasons = {r.key: r.label for r in pb.closed_lost_reasons}
    lines = ["## Closed-lost learning", ""]
    if rec.lost is None:
        lines += ["No closed-lost reason recorded.", ""]
    else:
        lines += [f"- Reason: **{_md_line(reasons.get(rec.lost.reason, rec.lost.reason))}**"
                  + (f": {_md_line(rec.lost.detail)}" if rec.lost.detail else ""),
                  f"- Recorded by {_md_line(rec.lost.recorded_by)} at {_when(rec.lost.recorded_at)}", ""]
    lines += ["Earlier inspections:", ""]
    if rec.inspections:
        lines += _table(["Week of", "Manager", "Stage then", "Verdict", "Rep call", "Manager call",
                         "Commit exception", "Close date"],
                        [[i.week_of.isoformat() if i.week_of else "", i.manager, pb.stage_label(i.stage_at),
                          i.stage_verdict + (f" → {pb.stage_label(i.supported_stage)}" if i.supported_stage else ""),
                          pb.category_label(i.rep_category), pb.category_label(i.forecast_call),
                          i.commit_exception, i.close_date_verdict] for i in rec.inspections])
    else:
        lines += ["None.", ""]
    at_close = risks_at_close(rec)
    lines += ["Risks at close:", ""]
    if at_close:
        lines += _table(["Risk", "Severity", "State"],
                        [[pb.risk_label.get(r.type, r.type), r.severity, st] for r, st in at_close])
    else:
        lines += ["None recorded.", ""]
    return lines


# -- RevOps entry points (implemented in the storage layer) --------------------------------------
def open_exceptions(store):  # noqa: ANN001, ANN201 - thin re-export, see storage.handoffs
    """Every open handoff exception across deals (see `inspector.storage.handoffs.open_exceptions`)."""
    from inspector.storage.handoffs import open_exceptions as impl

    return impl(store)


def feedback_patterns(store, since=None):  # noqa: ANN001, ANN201
    """[(category, count, deal_ids)], most frequent first (see `inspector.storage.handoffs`)."""
    from inspector.storage.handoffs import feedback_patterns as impl

    return impl(store, since)
