"""Closed-won handoff writes and reads: promises, deal-desk approvals, tier and steps,
exceptions, CS acceptance or return, closed-won / closed-lost, post-sale feedback.

Every write follows `inspections.py`: one short transaction (retried on lock or
serialization failures), the row read for update, a compare-and-set against what the user
saw (`StaleEdit` when someone else changed it), and a hash-chained event appended in the
same transaction.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Connection, text

from inspector.handoff import (APPROVAL_STATUSES, AUTO_STEPS, ApprovalItem, Candidate, ExceptionItem,
                               FeedbackEntry, Gap, HandoffRecord, HandoffState, LostReasonItem, OpenException,
                               PastInspection, PromiseItem, Review, RiskRecord, StepItem, lost_reason_problem,
                               review)
from inspector.playbook import Playbook
from inspector.storage.events import append_event, read_ts
from inspector.storage.inspections import Inspections, NotFound, StaleEdit
from inspector.storage.repo import Store, read_date

_HANDOFF_COLS = ("tier, tier_set_by, status, cs_owner, returned_items, returned_reason, decided_by, "
                 "decided_at, kickoff_on, version")
ANY = object()  # "no compare-and-set" marker for optional expectations


class DealClosed(ValueError):
    """The deal's status does not allow this (e.g. closing a won deal as lost)."""


class NotReady(ValueError):
    """Gaps without an exception stand between the deal and closed-won / CS acceptance."""

    def __init__(self, what: str, gaps: Sequence[Gap]) -> None:
        self.gaps = tuple(gaps)
        names = ", ".join(g.label for g in self.gaps[:6]) + (" …" if len(self.gaps) > 6 else "")
        super().__init__(f"not ready to {what}: {len(self.gaps)} gap(s) without an exception: {names}")


def _handoff_state(deal_id: int, r: Sequence[Any] | None) -> HandoffState:
    if r is None:
        return HandoffState(deal_id)
    try:
        items = tuple(str(x) for x in json.loads(r[4] or "[]"))
    except (TypeError, ValueError):
        items = ()
    return HandoffState(deal_id, r[0] or "", r[1] or "", r[2] or "draft", r[3] or "", items, r[5] or "",
                        r[6] or "", read_ts(r[7]), read_date(r[8]), int(r[9] or 1))


def _exception(r: Sequence[Any]) -> ExceptionItem:
    return ExceptionItem(r[0], r[1], r[2], r[3] or "", read_date(r[4]), r[5] or "", r[6], read_ts(r[7]),
                         read_ts(r[8]))


_EXC_COLS = "id, deal_id, missing_item, owner, due_date, risk, status, created_at, closed_at"


class Handoffs:
    def __init__(self, store: Store, playbook: Playbook | None = None) -> None:
        self.store = store
        self.engine = store.engine
        self.playbook = playbook
        self._insp = Inspections(store)

    # -- plumbing -----------------------------------------------------------------------------
    def _write(self, fn):  # noqa: ANN001, ANN202 - same contract as Inspections._write
        return self._insp._write(fn)

    def _lock(self, conn: Connection, sql: str, params: dict) -> Any:
        return self._insp._lock(conn, sql, params)

    def _p(self, conn: Connection, values: dict) -> dict:
        return self.store.params(conn, values)

    def _pb(self) -> Playbook:
        if self.playbook is None:
            raise RuntimeError("this operation needs the playbook: Handoffs(store, playbook)")
        return self.playbook

    def _deal(self, conn: Connection, deal_id: int) -> tuple[str, str, str]:
        row = self._lock(conn, "SELECT status, stage, name FROM deal WHERE id = :d", {"d": deal_id})
        if row is None:
            raise NotFound(f"no deal {deal_id}")
        return row[0], row[1], row[2]

    def _handoff(self, conn: Connection, deal_id: int) -> HandoffState:
        """The deal's handoff row, created (draft) on first use, locked for this transaction."""
        conn.execute(text(
            "INSERT INTO handoff (deal_id, tier, tier_set_by, status, cs_owner, returned_items, "
            "returned_reason, decided_by, version) VALUES (:d, '', '', 'draft', '', '[]', '', '', 1) "
            "ON CONFLICT (deal_id) DO NOTHING"), {"d": deal_id})
        r = self._lock(conn, f"SELECT {_HANDOFF_COLS} FROM handoff WHERE deal_id = :d", {"d": deal_id})
        return _handoff_state(deal_id, r)

    def _event(self, conn: Connection, *, now: datetime, actor: str, kind: str, entity: str, entity_id: int,
               deal_id: int, payload: dict) -> None:
        append_event(conn, at=now, actor=actor, kind=kind, entity=entity, entity_id=entity_id,
                     deal_id=deal_id, payload=payload)

    def _stage_change(self, conn: Connection, deal_id: int, old: str, new: str, now: datetime) -> None:
        conn.execute(text("INSERT INTO deal_change (deal_id, field, old, new, changed_at, source) "
                          "VALUES (:d, 'stage', :o, :n, :at, 'local')"),
                     self._p(conn, {"d": deal_id, "o": old, "n": new, "at": now}))

    def _close_deal(self, conn: Connection, deal_id: int, kind: str, old_stage: str, *, today: date,
                    now: datetime) -> str:
        stage = next(s.key for s in self._pb().stages if s.kind == kind)
        conn.execute(text("UPDATE deal SET status = :st, stage = :stage, closed_on = :today, "
                          "stage_entered_on = :today, updated_at = :now, version = version + 1 WHERE id = :d"),
                     self._p(conn, {"st": kind, "stage": stage, "today": today, "now": now, "d": deal_id}))
        self._stage_change(conn, deal_id, old_stage, stage, now)
        return stage

    # -- promises -----------------------------------------------------------------------------
    def add_promise(self, deal_id: int, *, category: str, text_: str, promised_by: str,
                    promised_on: date | None, actor: str, now: datetime) -> int:
        cats = [c.key for c in self._pb().promise_categories]
        if category not in cats:
            raise ValueError(f"unknown promise category {category!r}: use one of {', '.join(cats)}")
        if not text_.strip():
            raise ValueError("a promise needs its text: what was promised")

        def run(conn: Connection) -> int:
            self._deal(conn, deal_id)
            pid = conn.execute(text(
                "INSERT INTO promise (deal_id, category, text, promised_by, promised_on, created_at) "
                "VALUES (:d, :c, :t, :b, :on, :now) RETURNING id"),
                self._p(conn, {"d": deal_id, "c": category, "t": text_.strip(), "b": promised_by.strip(),
                               "on": promised_on, "now": now})).scalar_one()
            self._event(conn, now=now, actor=actor, kind="promise.added", entity="promise", entity_id=pid,
                        deal_id=deal_id, payload={"category": category, "text": text_.strip(),
                                                  "promised_by": promised_by.strip(), "promised_on": promised_on})
            return pid
        return self._write(run)

    # -- tier and steps -----------------------------------------------------------------------
    def set_tier(self, deal_id: int, tier: str, *, expected: str, actor: str, now: datetime) -> None:
        """The manager's tier ("" goes back to the suggested tier)."""
        keys = [t.key for t in self._pb().handoff_tiers]
        if tier and tier not in keys:
            raise ValueError(f"unknown handoff tier {tier!r}: use one of {', '.join(keys)}")

        def run(conn: Connection) -> None:
            self._deal(conn, deal_id)
            h = self._handoff(conn, deal_id)
            if h.tier != expected:
                raise StaleEdit("handoff tier", expected, h.tier)
            if h.tier == tier:
                return
            conn.execute(text("UPDATE handoff SET tier = :t, tier_set_by = :by, version = version + 1 "
                              "WHERE deal_id = :d"), {"t": tier, "by": actor if tier else "", "d": deal_id})
            self._event(conn, now=now, actor=actor, kind="handoff.tier", entity="handoff", entity_id=deal_id,
                        deal_id=deal_id, payload={"old": h.tier, "new": tier})
        self._write(run)

    def set_step(self, deal_id: int, step: str, done: bool, *, expected: bool, actor: str,
                 now: datetime) -> None:
        keys = [s.key for s in self._pb().handoff_steps]
        if step not in keys:
            raise ValueError(f"unknown handoff step {step!r}")
        if step in AUTO_STEPS:
            raise ValueError(f"step {step!r} is derived from the deal, not ticked")

        def run(conn: Connection) -> None:
            self._deal(conn, deal_id)
            self._handoff(conn, deal_id)
            conn.execute(text("INSERT INTO handoff_step (deal_id, step, done, done_by) VALUES (:d, :s, :f, '') "
                              "ON CONFLICT (deal_id, step) DO NOTHING"), {"d": deal_id, "s": step, "f": False})
            cur = bool(self._lock(conn, "SELECT done FROM handoff_step WHERE deal_id = :d AND step = :s",
                                  {"d": deal_id, "s": step})[0])
            if cur != expected:
                raise StaleEdit(f"handoff step {step}", expected, cur)
            if cur == done:
                return
            conn.execute(text("UPDATE handoff_step SET done = :f, done_by = :by, done_at = :at "
                              "WHERE deal_id = :d AND step = :s"),
                         self._p(conn, {"f": done, "by": actor if done else "", "at": now if done else None,
                                        "d": deal_id, "s": step}))
            conn.execute(text("UPDATE handoff SET version = version + 1 WHERE deal_id = :d"), {"d": deal_id})
            self._event(conn, now=now, actor=actor, kind="handoff.step", entity="handoff", entity_id=deal_id,
                        deal_id=deal_id, payload={"step": step, "old": cur, "new": done})
        self._write(run)

    def set_cs(self, deal_id: int, cs_owner: str, kickoff_on: date | None, *,
               expected: tuple[str, date | None], actor: str, now: datetime) -> None:
        """The CS owner who receives the customer, and when kickoff happens."""
        def run(conn: Connection) -> None:
            self._deal(conn, deal_id)
            h = self._handoff(conn, deal_id)
            current = (h.cs_owner, h.kickoff_on)
            if current != tuple(expected):
                raise StaleEdit("CS owner and kickoff", expected, current)
            new = (cs_owner.strip(), kickoff_on)
            if new == current:
                return
            conn.execute(text("UPDATE handoff SET cs_owner = :o, kickoff_on = :k, version = version + 1 "
                              "WHERE deal_id = :d"), self._p(conn, {"o": new[0], "k": kickoff_on, "d": deal_id}))
            self._event(conn, now=now, actor=actor, kind="handoff.cs", entity="handoff", entity_id=deal_id,
                        deal_id=deal_id, payload={"old": {"cs_owner": current[0], "kickoff_on": current[1]},
                                                  "new": {"cs_owner": new[0], "kickoff_on": kickoff_on}})
        self._write(run)

    # -- deal desk ----------------------------------------------------------------------------
    def record_approval(self, deal_id: int, trigger_key: str, status: str, note: str = "", *,
                        expected: str | None, actor: str, now: datetime) -> None:
        """Approval of one deal-desk trigger; `expected` is the status seen (None: none recorded)."""
        trigger = next((t for t in self._pb().deal_desk_triggers if t.key == trigger_key), None)
        if trigger is None:
            raise ValueError(f"unknown deal-desk trigger {trigger_key!r}")
        if status not in APPROVAL_STATUSES:
            raise ValueError(f"approval status must be one of {', '.join(APPROVAL_STATUSES)}")

        def run(conn: Connection) -> None:
            self._deal(conn, deal_id)
            cur = self._lock(conn, "SELECT id, status, note FROM approval WHERE deal_id = :d AND trigger_key = :k",
                             {"d": deal_id, "k": trigger_key})
            current = cur[1] if cur else None
            if current != expected:
                raise StaleEdit(f"approval of {trigger.label}", expected, current)
            if cur and (cur[1], cur[2]) == (status, note):
                return
            decided = {"by": actor if status != "pending" else "", "at": now if status != "pending" else None}
            values = {"d": deal_id, "k": trigger_key, "a": trigger.approver, "s": status, "n": note,
                      "by": decided["by"], "at": decided["at"]}
            if cur is None:
                aid = conn.execute(text(
                    "INSERT INTO approval (deal_id, trigger_key, approver, status, decided_by, decided_at, note, "
                    "version) VALUES (:d, :k, :a, :s, :by, :at, :n, 1) RETURNING id"),
                    self._p(conn, values)).scalar_one()
            else:
                aid = cur[0]
                conn.execute(text("UPDATE approval SET approver = :a, status = :s, decided_by = :by, "
                                  "decided_at = :at, note = :n, version = version + 1 "
                                  "WHERE deal_id = :d AND trigger_key = :k"), self._p(conn, values))
            self._event(conn, now=now, actor=actor, kind="approval.recorded", entity="approval", entity_id=aid,
                        deal_id=deal_id, payload={"trigger": trigger_key, "approver": trigger.approver,
                                                  "old": current, "new": status, "note": note})
        self._write(run)

    # -- exceptions ---------------------------------------------------------------------------
    def add_exceptions(self, deal_id: int, items: Iterable[str], *, owner: str, due_date: date | None,
                       risk: str, actor: str, now: datetime) -> list[int]:
        """One exception per missing item (the deal may close with these gaps, visibly)."""
        names = [i.strip() for i in items if i and i.strip()]
        if not names:
            raise ValueError("an exception names the missing item")
        if not owner.strip():
            raise ValueError("an exception needs an owner: who closes the gap")
        if due_date is None:
            raise ValueError("an exception needs a due date")
        if not risk.strip():
            raise ValueError("an exception needs the risk: what happens if the item stays missing")

        def run(conn: Connection) -> list[int]:
            self._deal(conn, deal_id)
            ids = []
            for name in names:
                eid = conn.execute(text(
                    "INSERT INTO handoff_exception (deal_id, missing_item, owner, due_date, risk, status, "
                    "created_at) VALUES (:d, :m, :o, :due, :r, 'open', :now) RETURNING id"),
                    self._p(conn, {"d": deal_id, "m": name, "o": owner.strip(), "due": due_date,
                                   "r": risk.strip(), "now": now})).scalar_one()
                self._event(conn, now=now, actor=actor, kind="exception.added", entity="handoff_exception",
                            entity_id=eid, deal_id=deal_id,
                            payload={"missing_item": name, "owner": owner.strip(), "due_date": due_date,
                                     "risk": risk.strip()})
                ids.append(eid)
            return ids
        return self._write(run)

    def add_exception(self, deal_id: int, missing_item: str, *, owner: str, due_date: date | None,
                      risk: str, actor: str, now: datetime) -> int:
        return self.add_exceptions(deal_id, [missing_item], owner=owner, due_date=due_date, risk=risk,
                                   actor=actor, now=now)[0]

    def close_exception(self, exception_id: int, *, actor: str, now: datetime, note: str = "") -> None:
        def run(conn: Connection) -> None:
            row = self._lock(conn, "SELECT deal_id, status, missing_item FROM handoff_exception WHERE id = :e",
                             {"e": exception_id})
            if row is None:
                raise NotFound(f"no handoff exception {exception_id}")
            if row[1] != "open":
                raise StaleEdit("exception status", "open", row[1])
            conn.execute(text("UPDATE handoff_exception SET status = 'closed', closed_at = :now WHERE id = :e"),
                         self._p(conn, {"now": now, "e": exception_id}))
            self._event(conn, now=now, actor=actor, kind="exception.closed", entity="handoff_exception",
                        entity_id=exception_id, deal_id=row[0],
                        payload={"missing_item": row[2], "note": note})
        self._write(run)

    # -- closed-won, CS acceptance --------------------------------------------------------------
    def submit(self, deal_id: int, *, expected_status: str, actor: str, now: datetime, today: date,
               close_won: bool = False) -> None:
        """Hand the deal to customer success; with close_won an open deal is marked closed-won first.

        Refused (`NotReady`, naming the gaps) while a closed-won requirement, finance field or
        deal-desk approval is neither present nor covered by an open exception. The check reads
        the deal just before the write transaction, like the screen the user looked at.
        """
        rv = self.review(deal_id, today)
        if rv.phase != "lost" and rv.handoff.status in ("draft", "returned") and rv.close_blockers:
            raise NotReady("close won and hand off" if rv.phase == "open" else "hand off", rv.close_blockers)

        def run(conn: Connection) -> None:
            status, stage, _name = self._deal(conn, deal_id)
            if status == "open" and close_won:
                new_stage = self._close_deal(conn, deal_id, "won", stage, today=today, now=now)
                self._event(conn, now=now, actor=actor, kind="deal.closed_won", entity="deal", entity_id=deal_id,
                            deal_id=deal_id, payload={"old_stage": stage, "new_stage": new_stage,
                                                      "closed_on": today})
            elif status != "won":
                raise DealClosed(f"deal {deal_id} is {status}: only closed-won deals are handed to customer success")
            h = self._handoff(conn, deal_id)
            if h.status != expected_status:
                raise StaleEdit("handoff status", expected_status, h.status)
            if h.status not in ("draft", "returned"):
                raise ValueError(f"the handoff is already {h.status}")
            conn.execute(text("UPDATE handoff SET status = 'submitted', version = version + 1 WHERE deal_id = :d"),
                         {"d": deal_id})
            self._event(conn, now=now, actor=actor, kind="handoff.submitted", entity="handoff", entity_id=deal_id,
                        deal_id=deal_id, payload={"old": h.status, "new": "submitted"})
        self._write(run)

    def accept(self, deal_id: int, *, expected_status: str = "submitted", actor: str, now: datetime,
               note: str = "", today: date | None = None) -> None:
        """Customer success accepts the customer record.

        Refused (`NotReady`, naming the gaps) while an item of the acceptance checklist or a tier
        step is neither done nor covered by an open exception: CS returns it to sales instead.
        """
        rv = self.review(deal_id, today or now.date())
        if rv.phase == "won" and rv.handoff.status == "submitted" and rv.accept_blockers:
            raise NotReady("accept", rv.accept_blockers)

        def run(conn: Connection) -> None:
            status, _stage, _name = self._deal(conn, deal_id)
            if status != "won":
                raise DealClosed(f"deal {deal_id} is {status}: CS accepts closed-won deals only")
            h = self._handoff(conn, deal_id)
            if h.status != expected_status:
                raise StaleEdit("handoff status", expected_status, h.status)
            if h.status != "submitted":
                raise ValueError(f"the handoff is {h.status}; CS accepts a submitted handoff")
            conn.execute(text("UPDATE handoff SET status = 'accepted', decided_by = :by, decided_at = :now, "
                              "version = version + 1 WHERE deal_id = :d"),
                         self._p(conn, {"by": actor, "now": now, "d": deal_id}))
            self._event(conn, now=now, actor=actor, kind="handoff.accepted", entity="handoff", entity_id=deal_id,
                        deal_id=deal_id, payload={"cs_owner": h.cs_owner, "kickoff_on": h.kickoff_on,
                                                  "note": note})
        self._write(run)

    def return_to_sales(self, deal_id: int, items: Sequence[str], reason: str, *, expected_status: str,
                        actor: str, now: datetime) -> None:
        """CS flags what is missing and sends the handoff back to sales."""
        names = [i.strip() for i in items if i and i.strip()]
        if not names:
            raise ValueError("returning a handoff to sales names what is missing (at least one item)")

        def run(conn: Connection) -> None:
            self._deal(conn, deal_id)
            h = self._handoff(conn, deal_id)
            if h.status != expected_status:
                raise StaleEdit("handoff status", expected_status, h.status)
            if h.status not in ("submitted", "accepted"):
                raise ValueError(f"the handoff is {h.status}; only a submitted handoff goes back to sales")
            conn.execute(text("UPDATE handoff SET status = 'returned', returned_items = :i, returned_reason = :r, "
                              "decided_by = :by, decided_at = :now, version = version + 1 WHERE deal_id = :d"),
                         self._p(conn, {"i": json.dumps(names, ensure_ascii=False), "r": reason.strip(),
                                        "by": actor, "now": now, "d": deal_id}))
            self._event(conn, now=now, actor=actor, kind="handoff.returned", entity="handoff", entity_id=deal_id,
                        deal_id=deal_id, payload={"items": names, "reason": reason.strip(), "old": h.status})
        self._write(run)

    # -- closed-lost ----------------------------------------------------------------------------
    def close_lost(self, deal_id: int, reason: str | None, detail: str | None = "", *, actor: str,
                   now: datetime, today: date, expected_reason: Any = ANY) -> None:
        """Close an open deal as lost with one specific reason (or record the reason of a lost deal)."""
        problem = lost_reason_problem(self._pb(), reason, detail)
        if problem:
            raise ValueError(problem)
        reason = (reason or "").strip()
        detail = (detail or "").strip()

        def run(conn: Connection) -> None:
            status, stage, _name = self._deal(conn, deal_id)
            if status == "won":
                raise DealClosed(f"deal {deal_id} is closed won; it cannot be closed as lost")
            if status == "removed":
                raise DealClosed(f"deal {deal_id} was removed from the CRM")
            cur = self._lock(conn, "SELECT reason, detail FROM closed_lost_reason WHERE deal_id = :d", {"d": deal_id})
            current = cur[0] if cur else None
            if expected_reason is not ANY and current != expected_reason:
                raise StaleEdit("closed-lost reason", expected_reason, current)
            if status == "open":
                new_stage = self._close_deal(conn, deal_id, "lost", stage, today=today, now=now)
                open_risks = [r[0] for r in conn.execute(text(
                    "SELECT type FROM risk WHERE deal_id = :d AND status = 'open' ORDER BY id"), {"d": deal_id})]
                self._event(conn, now=now, actor=actor, kind="deal.closed_lost", entity="deal", entity_id=deal_id,
                            deal_id=deal_id, payload={"old_stage": stage, "new_stage": new_stage,
                                                      "closed_on": today, "open_risks": open_risks})
            if cur is None:
                conn.execute(text("INSERT INTO closed_lost_reason (deal_id, reason, detail, recorded_by, recorded_at) "
                                  "VALUES (:d, :r, :x, :by, :now)"),
                             self._p(conn, {"d": deal_id, "r": reason, "x": detail, "by": actor, "now": now}))
            elif (cur[0], cur[1]) == (reason, detail):
                return
            else:
                conn.execute(text("UPDATE closed_lost_reason SET reason = :r, detail = :x, recorded_by = :by, "
                                  "recorded_at = :now WHERE deal_id = :d"),
                             self._p(conn, {"d": deal_id, "r": reason, "x": detail, "by": actor, "now": now}))
            self._event(conn, now=now, actor=actor, kind="closed_lost.reason", entity="deal", entity_id=deal_id,
                        deal_id=deal_id, payload={"old": current, "new": reason, "detail": detail})
        self._write(run)

    # -- post-sale feedback -------------------------------------------------------------------
    def add_feedback(self, deal_id: int, category: str, text_: str = "", promise_id: int | None = None, *,
                     actor: str, now: datetime) -> int:
        cats = [c.key for c in self._pb().feedback_categories]
        if category not in cats:
            raise ValueError(f"unknown feedback category {category!r}: use one of {', '.join(cats)}")

        def run(conn: Connection) -> int:
            status, _stage, _name = self._deal(conn, deal_id)
            if status != "won":
                raise DealClosed(f"deal {deal_id} is {status}: post-sale feedback is for closed-won deals")
            if promise_id is not None:
                owner = conn.execute(text("SELECT deal_id FROM promise WHERE id = :p"), {"p": promise_id}).scalar()
                if owner != deal_id:
                    raise ValueError(f"promise {promise_id} is not a promise of deal {deal_id}")
            fid = conn.execute(text(
                "INSERT INTO feedback_item (deal_id, promise_id, category, text, recorded_by, recorded_at) "
                "VALUES (:d, :p, :c, :t, :by, :now) RETURNING id"),
                self._p(conn, {"d": deal_id, "p": promise_id, "c": category, "t": text_.strip(), "by": actor,
                               "now": now})).scalar_one()
            self._event(conn, now=now, actor=actor, kind="feedback.added", entity="feedback_item", entity_id=fid,
                        deal_id=deal_id, payload={"category": category, "text": text_.strip(),
                                                  "promise_id": promise_id})
            return fid
        return self._write(run)

    # -- reads ----------------------------------------------------------------------------------
    def resolve(self, ref: str | int) -> int:
        """A deal id from an id or an external id (NotFound / ValueError with a clear message)."""
        value = str(ref).strip()
        with self.engine.connect() as conn:
            if value.isdigit():
                if conn.execute(text("SELECT 1 FROM deal WHERE id = :d"), {"d": int(value)}).first():
                    return int(value)
            rows = conn.execute(text("SELECT id, source FROM deal WHERE external_id = :x ORDER BY id"),
                                {"x": value}).fetchall()
        if not rows:
            raise NotFound(f"no deal with id or external id {value!r}")
        if len(rows) > 1:
            raise ValueError(f"external id {value!r} exists in several sources "
                             f"({', '.join(r[1] for r in rows)}); use the deal id ({', '.join(str(r[0]) for r in rows)})")
        return rows[0][0]

    def review(self, deal_id: int, today: date) -> Review:
        """The closed-won readiness review of the deal as stored now."""
        return review(self._pb(), self.record(deal_id, today), today)

    def handoff_state(self, deal_id: int) -> HandoffState:
        with self.engine.connect() as conn:
            r = conn.execute(text(f"SELECT {_HANDOFF_COLS} FROM handoff WHERE deal_id = :d"), {"d": deal_id}).first()
        return _handoff_state(deal_id, r)

    def record(self, deal_id: int, today: date) -> HandoffRecord:
        try:
            deal = self.store.get_deal(deal_id, today)
        except KeyError:
            raise NotFound(f"no deal {deal_id}") from None
        p = {"d": deal_id}
        with self.engine.connect() as conn:
            ext, closed_on = conn.execute(text("SELECT external_id, closed_on FROM deal WHERE id = :d"), p).one()
            h = conn.execute(text(f"SELECT {_HANDOFF_COLS} FROM handoff WHERE deal_id = :d"), p).first()
            steps = {r[0]: StepItem(r[0], bool(r[1]), r[2] or "", read_ts(r[3])) for r in conn.execute(text(
                "SELECT step, done, done_by, done_at FROM handoff_step WHERE deal_id = :d"), p)}
            approvals = {r[0]: ApprovalItem(deal_id, r[0], r[1], r[2], r[3], read_ts(r[4]), r[5], r[6])
                         for r in conn.execute(text(
                             "SELECT trigger_key, approver, status, decided_by, decided_at, note, version "
                             "FROM approval WHERE deal_id = :d"), p)}
            promises = tuple(PromiseItem(r[0], deal_id, r[1], r[2], r[3] or "", read_date(r[4]), read_ts(r[5]))
                             for r in conn.execute(text(
                                 "SELECT id, category, text, promised_by, promised_on, created_at FROM promise "
                                 "WHERE deal_id = :d ORDER BY id"), p))
            excs = tuple(_exception(r) for r in conn.execute(text(
                f"SELECT {_EXC_COLS} FROM handoff_exception WHERE deal_id = :d ORDER BY id"), p))
            lost_row = conn.execute(text("SELECT reason, detail, recorded_by, recorded_at FROM closed_lost_reason "
                                         "WHERE deal_id = :d"), p).first()
            feedback = tuple(FeedbackEntry(r[0], deal_id, r[1], r[2], r[3] or "", r[4] or "", read_ts(r[5]))
                             for r in conn.execute(text(
                                 "SELECT id, promise_id, category, text, recorded_by, recorded_at FROM feedback_item "
                                 "WHERE deal_id = :d ORDER BY id"), p))
            inspections = tuple(PastInspection(
                r[0], read_date(r[1]), r[2], r[3], r[4] or "", r[5] or "", r[6] or "", r[7] or "", r[8] or "",
                r[9] or "", r[10] or "", r[11] or "") for r in conn.execute(text(
                    "SELECT s.id, s.week_of, s.manager, i.status, i.stage_at, i.stage_verdict, i.supported_stage, "
                    "i.rep_category, i.forecast_call, i.commit_exception, i.close_date_verdict, i.notes "
                    "FROM inspection i JOIN inspection_session s ON s.id = i.session_id "
                    "WHERE i.deal_id = :d ORDER BY s.week_of, s.id"), p))
            closed_at = {r[0]: read_ts(r[1]) for r in conn.execute(text(
                "SELECT id, closed_at FROM risk WHERE deal_id = :d"), p)}
        lost = LostReasonItem(deal_id, lost_row[0], lost_row[1] or "", lost_row[2] or "",
                              read_ts(lost_row[3])) if lost_row else None
        risks = tuple(RiskRecord(r, closed_at.get(r.id)) for r in deal.risks)
        return HandoffRecord(deal, ext, read_date(closed_on), _handoff_state(deal_id, h), steps, approvals,
                             promises, excs, lost, feedback, inspections, risks)

    def candidates(self, *, limit: int = 2000) -> list[Candidate]:
        """Deals the handoff screen offers, those needing attention first: won and not yet
        accepted, then open deals in commit (stage or category), then accepted, then lost."""
        pb = self._pb()
        last_open = pb.open_stages[-1].key if pb.open_stages else ""
        commit_cats = [c.key for c in pb.forecast_categories if c.bucket == "commit"] or ["commit"]
        cat_params = {f"c{i}": c for i, c in enumerate(commit_cats)}
        cats = ", ".join(f":{k}" for k in cat_params)
        sql = (
            "SELECT d.id, d.external_id, d.name, d.account, d.owner, d.team, d.stage, d.status, d.amount_minor, "
            "d.currency, d.close_date, d.closed_on, COALESCE(h.status, ''), "
            "(SELECT COUNT(*) FROM handoff_exception e WHERE e.deal_id = d.id AND e.status = 'open'), "
            "COALESCE(l.reason, '') "
            "FROM deal d LEFT JOIN handoff h ON h.deal_id = d.id "
            "LEFT JOIN closed_lost_reason l ON l.deal_id = d.id "
            f"WHERE (d.status = 'open' AND (d.stage = :last OR d.forecast_category IN ({cats}))) "
            "OR d.status IN ('won', 'lost') "
            "ORDER BY CASE WHEN d.status = 'won' AND COALESCE(h.status, '') <> 'accepted' THEN 0 "
            "WHEN d.status = 'open' THEN 1 WHEN d.status = 'won' THEN 2 ELSE 3 END, "
            "CASE WHEN d.status = 'open' THEN d.close_date END, d.closed_on DESC, d.id LIMIT :n")
        with self.engine.connect() as conn:
            rows = conn.execute(text(sql), {"last": last_open, "n": limit, **cat_params}).fetchall()
        return [Candidate(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], read_date(r[10]),
                          read_date(r[11]), r[12], int(r[13] or 0), r[14]) for r in rows]


# -- RevOps: across deals -------------------------------------------------------------------------
def open_exceptions(store: Store, deal_ids: Iterable[int] | None = None) -> list[OpenException]:
    """Every open handoff exception (optionally of some deals), earliest due first."""
    wanted = set(deal_ids) if deal_ids is not None else None
    sql = (f"SELECT e.{_EXC_COLS.replace(', ', ', e.')}, d.name, d.external_id, d.account, d.team, d.owner, "
           "d.status FROM handoff_exception e JOIN deal d ON d.id = e.deal_id WHERE e.status = 'open' "
           "ORDER BY CASE WHEN e.due_date IS NULL THEN 1 ELSE 0 END, e.due_date, e.id")
    with store.engine.connect() as conn:
        rows = conn.execute(text(sql)).fetchall()
    return [OpenException(_exception(r[:9]), r[9], r[10], r[11], r[12], r[13], r[14]) for r in rows
            if wanted is None or r[1] in wanted]


def feedback_patterns(store: Store, since: datetime | date | None = None) -> list[tuple[str, int, list[int]]]:
    """Post-sale feedback by category: (category, items, deal ids), most frequent first.

    A category with items on several deals is a pattern to take back to sales leadership.
    """
    sql = "SELECT category, deal_id, recorded_at FROM feedback_item"
    params: dict[str, Any] = {}
    if since is not None:
        moment = since if isinstance(since, datetime) else datetime.combine(since, datetime.min.time())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        sql += " WHERE recorded_at >= :since"
        with store.engine.connect() as conn:
            params["since"] = store.p(conn, moment)
    counts: dict[str, int] = defaultdict(int)
    deals: dict[str, set[int]] = defaultdict(set)
    with store.engine.connect() as conn:
        for category, deal_id, _at in conn.execute(text(sql), params):
            counts[category] += 1
            deals[category].add(deal_id)
    return sorted(((c, n, sorted(deals[c])) for c, n in counts.items()), key=lambda x: (-x[1], x[0]))
