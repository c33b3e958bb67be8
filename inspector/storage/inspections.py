"""Inspection sessions and every answer and decision in them.

Each save is one short transaction that checks the value the user last saw (compare and
set), updates the current state and appends a hash-chained event. A save that finds a
different value than expected raises `StaleEdit`, so two managers (or a manager and a
RevOps process) never silently overwrite each other. SQLite "database is locked" and
PostgreSQL serialization failures are retried with jitter.
"""
from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, OperationalError

from inspector.storage.events import append_event, read_ts, verify_chain
from inspector.storage.repo import Store, read_date

T = TypeVar("T")

DECISION_FIELDS = ("stage_verdict", "supported_stage", "close_date_verdict", "proposed_close_date",
                   "forecast_call", "commit_criteria_met", "commit_exception", "next_step",
                   "next_step_date", "notes")
_DATE_DECISIONS = {"proposed_close_date", "next_step_date"}
RISK_FIELDS = ("type", "severity", "owner", "due_date", "mitigation", "status")
EVIDENCE_STATES = ("confirmed", "claimed", "missing")


class StaleEdit(Exception):
    """The value changed since the user loaded it; nothing was written."""

    def __init__(self, what: str, expected: Any, current: Any) -> None:
        self.what, self.expected, self.current = what, expected, current
        super().__init__(f"{what} was changed by someone else (now {current!r}); reload to see it")


class NotFound(Exception):
    pass


class SessionClosed(StaleEdit):
    """The session was finished (here or elsewhere); its record no longer changes."""

    def __init__(self, session_id: int, status: str | None) -> None:
        Exception.__init__(self, f"inspection session {session_id} is {status or 'gone'}; "
                                 "its answers and decisions are final")
        self.what, self.expected, self.current = "session status", "open", status


@dataclass(frozen=True)
class SessionInfo:
    id: int
    manager: str
    team: str
    week_of: date
    started_at: datetime
    finished_at: datetime | None
    status: str
    queue: tuple[int, ...]
    current_deal_id: int | None
    current_question: str | None
    scope: dict = field(default_factory=dict)


@dataclass(frozen=True)
class InspectionState:
    id: int
    session_id: int
    deal_id: int
    position: int
    status: str
    skip_reason: str
    stage_at: str
    amount_minor_at: int
    close_date_at: date | None
    rep_category: str
    decisions: dict[str, Any]
    answers: dict[str, tuple[str, str]]  # question key -> (text, evidence state)
    version: int


def _norm(value: Any) -> Any:
    """Comparable form of a stored value (dates as ISO text, bools as bools, None kept)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
        try:
            return date.fromisoformat(value[:10]).isoformat() if len(value) == 10 else value
        except ValueError:
            return value
    return value


def _retryable(exc: DBAPIError) -> bool:
    msg = str(exc.orig).lower() if exc.orig else str(exc).lower()
    code = getattr(exc.orig, "sqlstate", None)
    return "database is locked" in msg or "database is busy" in msg or code in ("40001", "40P01")


class Inspections:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # -- plumbing -----------------------------------------------------------------------------
    def _write(self, fn: Callable[[Connection], T], attempts: int = 6) -> T:
        """Run `fn` in one write transaction, retrying lock/serialization failures."""
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except (OperationalError, DBAPIError) as exc:
                if not _retryable(exc) or attempt == attempts - 1:
                    raise
                time.sleep(random.uniform(0, 0.05 * 2 ** attempt))
        raise AssertionError("unreachable")

    def _lock(self, conn: Connection, sql: str, params: dict) -> Any:
        """Read a row for update (SQLite: BEGIN IMMEDIATE already holds the write lock)."""
        if self.store.dialect == "postgresql":
            sql += " FOR UPDATE"
        return conn.execute(text(sql), params).first()

    def _require_open(self, conn: Connection, session_id: int) -> None:
        """A finished session is the record of that week: its answers and decisions are final."""
        status = conn.execute(text("SELECT status FROM inspection_session WHERE id = :s"),
                              {"s": session_id}).scalar()
        if status != "open":
            raise SessionClosed(session_id, status)

    def _p(self, conn: Connection, values: dict) -> dict:
        return self.store.params(conn, values)

    # -- sessions -----------------------------------------------------------------------------
    def start_session(self, *, manager: str, team: str, queue: Sequence[int], week_of: date,
                      now: datetime, scope: dict | None = None) -> SessionInfo:
        if len(set(queue)) != len(queue):
            raise ValueError("the queue lists a deal more than once")
        def run(conn: Connection) -> int:
            sid = conn.execute(text(
                "INSERT INTO inspection_session (manager, team, scope, week_of, started_at, status, "
                "queue, current_deal_id, version) VALUES (:m, :t, :scope, :w, :now, 'open', :q, :cur, 1) "
                "RETURNING id"), self._p(conn, {
                    "m": manager, "t": team, "scope": json.dumps(scope or {}, sort_keys=True),
                    "w": week_of, "now": now, "q": json.dumps(list(queue)),
                    "cur": queue[0] if queue else None})).scalar_one()
            snap = {r[0]: r[1:] for r in conn.execute(text(
                "SELECT id, stage, amount_minor, close_date, forecast_category, next_step, next_step_date "
                "FROM deal WHERE id IN (SELECT value FROM json_each(:q))" if self.store.dialect == "sqlite"
                else "SELECT id, stage, amount_minor, close_date, forecast_category, next_step, next_step_date "
                     "FROM deal WHERE id = ANY(:q)"),
                {"q": json.dumps(list(queue)) if self.store.dialect == "sqlite" else list(queue)})}
            missing = [d for d in queue if d not in snap]
            if missing:
                raise NotFound(f"no deal {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
            rows = []
            for pos, deal_id in enumerate(queue):
                st, amt, close, cat, nstep, ndate = snap[deal_id]
                rows.append({"session_id": sid, "deal_id": deal_id, "position": pos, "status": "pending",
                             "stage_at": st, "amount_minor_at": amt, "close_date_at": read_date(close),
                             "rep_category": cat, "next_step": nstep or "",
                             "next_step_date": read_date(ndate), "updated_at": now})
            self.store.bulk_insert("inspection", rows, conn)
            append_event(conn, at=now, actor=manager, kind="session.started", entity="session",
                         entity_id=sid, session_id=sid,
                         payload={"team": team, "week_of": week_of, "deals": len(queue), "scope": scope or {}})
            return sid

        return self.session(self._write(run))

    def session(self, session_id: int) -> SessionInfo:
        with self.engine.connect() as conn:
            r = conn.execute(text(
                "SELECT id, manager, team, week_of, started_at, finished_at, status, queue, "
                "current_deal_id, current_question, scope FROM inspection_session WHERE id = :id"),
                {"id": session_id}).first()
        if r is None:
            raise NotFound(f"no inspection session {session_id}")
        return SessionInfo(r[0], r[1], r[2], read_date(r[3]), read_ts(r[4]), read_ts(r[5]), r[6],
                           tuple(json.loads(r[7])), r[8], r[9], json.loads(r[10] or "{}"))

    def open_session_for(self, manager: str, team: str) -> SessionInfo | None:
        with self.engine.connect() as conn:
            sid = conn.execute(text(
                "SELECT id FROM inspection_session WHERE manager = :m AND team = :t AND status = 'open' "
                "ORDER BY started_at DESC, id DESC LIMIT 1"), {"m": manager, "t": team}).scalar()
        return self.session(sid) if sid else None

    def last_finished_at(self, team: str) -> datetime | None:
        with self.engine.connect() as conn:
            return read_ts(conn.execute(text(
                "SELECT MAX(finished_at) FROM inspection_session WHERE team = :t AND status = 'finished'"),
                {"t": team}).scalar())

    def sessions(self, limit: int = 200) -> list[SessionInfo]:
        with self.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(text(
                "SELECT id FROM inspection_session ORDER BY started_at DESC, id DESC LIMIT :n"), {"n": limit})]
        return [self.session(i) for i in ids]

    def set_position(self, session_id: int, deal_id: int | None, question: str | None) -> None:
        """Where the manager is (for resume). Not a decision, so no event."""
        def run(conn: Connection) -> None:
            conn.execute(text("UPDATE inspection_session SET current_deal_id = :d, current_question = :q "
                              "WHERE id = :id"), {"d": deal_id, "q": question, "id": session_id})
        self._write(run)

    def reorder(self, session_id: int, queue: Sequence[int], *, actor: str, now: datetime) -> None:
        def run(conn: Connection) -> None:
            old = self._lock(conn, "SELECT queue FROM inspection_session WHERE id = :id", {"id": session_id})
            if old is None:
                raise NotFound(f"no inspection session {session_id}")
            if sorted(json.loads(old[0])) != sorted(queue):
                raise ValueError("a reordered queue must hold the same deals")
            conn.execute(text("UPDATE inspection_session SET queue = :q, version = version + 1 WHERE id = :id"),
                         {"q": json.dumps(list(queue)), "id": session_id})
            for pos, deal_id in enumerate(queue):
                conn.execute(text("UPDATE inspection SET position = :p WHERE session_id = :s AND deal_id = :d"),
                             {"p": pos, "s": session_id, "d": deal_id})
            append_event(conn, at=now, actor=actor, kind="session.reordered", entity="session",
                         entity_id=session_id, session_id=session_id, payload={"queue": list(queue)})
        self._write(run)

    def finish(self, session_id: int, *, actor: str, now: datetime) -> None:
        def run(conn: Connection) -> None:
            row = self._lock(conn, "SELECT status FROM inspection_session WHERE id = :id", {"id": session_id})
            if row is None:
                raise NotFound(f"no inspection session {session_id}")
            if row[0] != "open":
                raise StaleEdit("session status", "open", row[0])
            conn.execute(text("UPDATE inspection_session SET status = 'finished', finished_at = :now, "
                              "version = version + 1 WHERE id = :id"), self._p(conn, {"now": now, "id": session_id}))
            counts = dict(conn.execute(text("SELECT status, COUNT(*) FROM inspection WHERE session_id = :s "
                                            "GROUP BY status"), {"s": session_id}).fetchall())
            append_event(conn, at=now, actor=actor, kind="session.finished", entity="session",
                         entity_id=session_id, session_id=session_id, payload={"counts": counts})
        self._write(run)

    # -- one deal's inspection ----------------------------------------------------------------
    def state(self, session_id: int, deal_id: int) -> InspectionState:
        cols = ", ".join(DECISION_FIELDS)
        with self.engine.connect() as conn:
            r = conn.execute(text(
                f"SELECT id, session_id, deal_id, position, status, skip_reason, stage_at, amount_minor_at, "
                f"close_date_at, rep_category, version, {cols} FROM inspection "
                "WHERE session_id = :s AND deal_id = :d"), {"s": session_id, "d": deal_id}).first()
            if r is None:
                raise NotFound(f"deal {deal_id} is not in session {session_id}")
            answers = {q: (t, e) for q, t, e in conn.execute(text(
                "SELECT question, text, evidence_state FROM answer WHERE inspection_id = :i"), {"i": r[0]})}
        decisions = dict(zip(DECISION_FIELDS, r[11:]))
        for k in _DATE_DECISIONS:
            decisions[k] = read_date(decisions[k])
        if decisions["commit_criteria_met"] is not None:
            decisions["commit_criteria_met"] = bool(decisions["commit_criteria_met"])
        return InspectionState(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], read_date(r[8]), r[9],
                               decisions, answers, r[10])

    def states(self, session_id: int) -> list[InspectionState]:
        with self.engine.connect() as conn:
            deals = [r[0] for r in conn.execute(text(
                "SELECT deal_id FROM inspection WHERE session_id = :s ORDER BY position"), {"s": session_id})]
        return [self.state(session_id, d) for d in deals]

    def save_answer(self, inspection_id: int, question: str, answer: str, evidence_state: str, *,
                    expected: tuple[str, str] | None, actor: str, now: datetime) -> None:
        if evidence_state not in EVIDENCE_STATES:
            raise ValueError(f"evidence state must be one of {', '.join(EVIDENCE_STATES)}")

        def run(conn: Connection) -> None:
            ins = self._lock(conn, "SELECT session_id, deal_id FROM inspection WHERE id = :i", {"i": inspection_id})
            if ins is None:
                raise NotFound(f"no inspection {inspection_id}")
            self._require_open(conn, ins[0])
            cur = self._lock(conn, "SELECT text, evidence_state FROM answer WHERE inspection_id = :i "
                             "AND question = :q", {"i": inspection_id, "q": question})
            current = (cur[0], cur[1]) if cur else ("", "missing")
            if expected is not None and tuple(expected) != current:
                raise StaleEdit(f"answer to '{question}'", expected, current)
            if current == (answer, evidence_state):
                return
            if cur:
                conn.execute(text("UPDATE answer SET text = :t, evidence_state = :e, updated_at = :now, "
                                  "version = version + 1 WHERE inspection_id = :i AND question = :q"),
                             self._p(conn, {"t": answer, "e": evidence_state, "now": now, "i": inspection_id,
                                            "q": question}))
            else:
                conn.execute(text("INSERT INTO answer (inspection_id, question, text, evidence_state, "
                                  "updated_at, version) VALUES (:i, :q, :t, :e, :now, 1)"),
                             self._p(conn, {"t": answer, "e": evidence_state, "now": now, "i": inspection_id,
                                            "q": question}))
            conn.execute(text("UPDATE inspection SET updated_at = :now, version = version + 1, "
                              "status = CASE WHEN status = 'pending' THEN 'inspected' ELSE status END "
                              "WHERE id = :i"), self._p(conn, {"now": now, "i": inspection_id}))
            append_event(conn, at=now, actor=actor, kind="answer.saved", entity="inspection",
                         entity_id=inspection_id, session_id=ins[0], deal_id=ins[1],
                         payload={"question": question, "old": list(current), "new": [answer, evidence_state]})
        self._write(run)

    def save_decisions(self, inspection_id: int, changes: dict[str, tuple[Any, Any]], *, actor: str,
                       now: datetime, kind: str = "decision.saved") -> None:
        """Set several decision fields at once. `changes` maps field -> (expected old, new)."""
        unknown = set(changes) - set(DECISION_FIELDS)
        if unknown:
            raise ValueError(f"not decision fields: {', '.join(sorted(unknown))}")
        if not changes:
            raise ValueError("no decision to save")

        def run(conn: Connection) -> None:
            cols = ", ".join(changes)
            row = self._lock(conn, f"SELECT session_id, deal_id, {cols} FROM inspection WHERE id = :i",
                             {"i": inspection_id})
            if row is None:
                raise NotFound(f"no inspection {inspection_id}")
            self._require_open(conn, row[0])
            current = dict(zip(changes, row[2:]))
            for f, (old, _new) in changes.items():
                cur = current[f]
                if f == "commit_criteria_met" and cur is not None:
                    cur = bool(cur)
                if _norm(cur) != _norm(old) and not (cur in (None, "") and old in (None, "")):
                    raise StaleEdit(f.replace("_", " "), old, cur)
            sets = ", ".join(f"{f} = :v_{f}" for f in changes)
            values = {f"v_{f}": new for f, (_old, new) in changes.items()}
            conn.execute(text(f"UPDATE inspection SET {sets}, updated_at = :now, version = version + 1, "
                              "status = CASE WHEN status = 'pending' THEN 'inspected' ELSE status END "
                              "WHERE id = :i"), self._p(conn, {**values, "now": now, "i": inspection_id}))
            if "next_step" in changes or "next_step_date" in changes:
                deal_sets = {k: v for k, v in values.items() if k in ("v_next_step", "v_next_step_date")}
                conn.execute(text("UPDATE deal SET " + ", ".join(f"{k[2:]} = :{k}" for k in deal_sets)
                                  + ", version = version + 1 WHERE id = :d"),
                             self._p(conn, {**deal_sets, "d": row[1]}))
            append_event(conn, at=now, actor=actor, kind=kind, entity="inspection", entity_id=inspection_id,
                         session_id=row[0], deal_id=row[1],
                         payload={f: {"old": _norm(current[f]), "new": _norm(new)}
                                  for f, (_old, new) in changes.items()})
        self._write(run)

    def set_status(self, inspection_id: int, status: str, reason: str = "", *, expected: str | None,
                   actor: str, now: datetime) -> None:
        if status not in ("pending", "inspected", "skipped"):
            raise ValueError("status must be pending, inspected or skipped")

        def run(conn: Connection) -> None:
            row = self._lock(conn, "SELECT session_id, deal_id, status, skip_reason FROM inspection "
                             "WHERE id = :i", {"i": inspection_id})
            if row is None:
                raise NotFound(f"no inspection {inspection_id}")
            if expected is not None and row[2] != expected:
                raise StaleEdit("inspection status", expected, row[2])
            self._require_open(conn, row[0])
            if (row[2], row[3]) == (status, reason):
                return
            conn.execute(text("UPDATE inspection SET status = :s, skip_reason = :r, updated_at = :now, "
                              "version = version + 1 WHERE id = :i"),
                         self._p(conn, {"s": status, "r": reason, "now": now, "i": inspection_id}))
            append_event(conn, at=now, actor=actor, kind=f"inspection.{status}", entity="inspection",
                         entity_id=inspection_id, session_id=row[0], deal_id=row[1],
                         payload={"old": row[2], "new": status, "reason": reason})
        self._write(run)

    # -- activities: progress marking ---------------------------------------------------------
    def mark_progress(self, activity_id: int, progress_type: str | None, *, expected: str | None,
                      actor: str, now: datetime, session_id: int | None = None) -> None:
        """Mark an activity as buyer progress of a type, or un-mark it (None)."""
        def run(conn: Connection) -> None:
            row = self._lock(conn, "SELECT deal_id, is_progress, progress_type FROM activity WHERE id = :a",
                             {"a": activity_id})
            if row is None:
                raise NotFound(f"no activity {activity_id}")
            current = row[2] if row[1] else None
            if current != expected:
                raise StaleEdit("activity progress", expected, current)
            conn.execute(text("UPDATE activity SET is_progress = :p, progress_type = :t, version = version + 1 "
                              "WHERE id = :a"), {"p": progress_type is not None, "t": progress_type, "a": activity_id})
            last = conn.execute(text("SELECT MAX(occurred_at) FROM activity WHERE deal_id = :d AND is_progress"),
                                {"d": row[0]}).scalar()
            conn.execute(text("UPDATE deal SET last_progress_at = :l WHERE id = :d"), {"l": last, "d": row[0]})
            append_event(conn, at=now, actor=actor, kind="activity.progress", entity="activity",
                         entity_id=activity_id, session_id=session_id, deal_id=row[0],
                         payload={"old": current, "new": progress_type})
        self._write(run)

    # -- risks --------------------------------------------------------------------------------
    def add_risk(self, deal_id: int, *, type: str, severity: str, owner: str, due_date: date | None,
                 mitigation: str, actor: str, now: datetime, inspection_id: int | None = None,
                 session_id: int | None = None) -> int:
        def run(conn: Connection) -> int:
            rid = conn.execute(text(
                "INSERT INTO risk (deal_id, inspection_id, type, severity, owner, due_date, mitigation, "
                "status, created_at, version) VALUES (:d, :i, :t, :s, :o, :due, :m, 'open', :now, 1) "
                "RETURNING id"), self._p(conn, {"d": deal_id, "i": inspection_id, "t": type, "s": severity,
                                               "o": owner, "due": due_date, "m": mitigation,
                                               "now": now})).scalar_one()
            append_event(conn, at=now, actor=actor, kind="risk.added", entity="risk", entity_id=rid,
                         session_id=session_id, deal_id=deal_id,
                         payload={"type": type, "severity": severity, "owner": owner, "due_date": due_date,
                                  "mitigation": mitigation})
            return rid
        return self._write(run)

    def update_risk(self, risk_id: int, changes: dict[str, tuple[Any, Any]], *, actor: str, now: datetime,
                    session_id: int | None = None) -> None:
        unknown = set(changes) - set(RISK_FIELDS)
        if unknown:
            raise ValueError(f"not risk fields: {', '.join(sorted(unknown))}")

        def run(conn: Connection) -> None:
            cols = ", ".join(changes)
            row = self._lock(conn, f"SELECT deal_id, {cols} FROM risk WHERE id = :r", {"r": risk_id})
            if row is None:
                raise NotFound(f"no risk {risk_id}")
            current = dict(zip(changes, row[1:]))
            for f, (old, _new) in changes.items():
                if _norm(current[f]) != _norm(old):
                    raise StaleEdit(f"risk {f}", old, current[f])
            values = {f"v_{f}": new for f, (_o, new) in changes.items()}
            extra = ""
            if "status" in changes:
                extra = ", closed_at = :closed"
                values["closed"] = now if changes["status"][1] == "closed" else None
            conn.execute(text("UPDATE risk SET " + ", ".join(f"{f} = :v_{f}" for f in changes) + extra
                              + ", version = version + 1 WHERE id = :r"),
                         self._p(conn, {**values, "r": risk_id}))
            kind = "risk.closed" if changes.get("status", (None, None))[1] == "closed" else "risk.updated"
            append_event(conn, at=now, actor=actor, kind=kind, entity="risk", entity_id=risk_id,
                         session_id=session_id, deal_id=row[0],
                         payload={f: {"old": _norm(current[f]), "new": _norm(new)}
                                  for f, (_o, new) in changes.items()})
        self._write(run)

    # -- the log ------------------------------------------------------------------------------
    def events(self, *, session_id: int | None = None, deal_id: int | None = None) -> list[dict]:
        where, params = [], {}
        if session_id is not None:
            where.append("session_id = :s")
            params["s"] = session_id
        if deal_id is not None:
            where.append("deal_id = :d")
            params["d"] = deal_id
        sql = ("SELECT seq, at, actor, kind, entity, entity_id, session_id, deal_id, payload, hash "
               "FROM inspection_event" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq")
        with self.engine.connect() as conn:
            return [{"seq": r[0], "at": read_ts(r[1]), "actor": r[2], "kind": r[3], "entity": r[4],
                     "entity_id": r[5], "session_id": r[6], "deal_id": r[7], "payload": json.loads(r[8]),
                     "hash": r[9]} for r in conn.execute(text(sql), params)]

    def chain(self):
        with self.engine.connect() as conn:
            return verify_chain(conn)


def order_queue(items: Iterable[tuple[int, bool, bool, bool, bool, int, int]]) -> list[int]:
    """Deals that matter first: (id, commit, large, changed, flagged, high findings, amount).

    Commit and large deals first, then changed, then flagged; ties by amount, largest first.
    """
    def score(x: tuple[int, bool, bool, bool, bool, int, int]) -> tuple:
        deal_id, commit, large, changed, flagged, high, amount = x
        return (-(8 * commit + 4 * large + 2 * changed + flagged), -high, -amount, deal_id)
    return [x[0] for x in sorted(items, key=score)]
