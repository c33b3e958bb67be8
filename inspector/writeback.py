"""Writeback: the manager's decisions go back to the CRM through the outbox.

1. `build_outbox` turns the latest decisions of finished (or chosen) inspection sessions into
   outbox rows: the forecast category, the next step, a note summarising the inspection
   (HubSpot note on the deal / Salesforce Task on the opportunity), plus any field the
   playbook maps. Each row carries `base_value`, the CRM value at the last sync. The
   idempotency key is source+external_id+field+hash(value) (notes: +session), so queueing
   the same decision again adds nothing; a newer value cancels an older queued one.
2. `preview` lists the rows field by field (old CRM value -> new value).
3. `push` re-reads the records from the CRM, reports a field changed there since the sync as
   a conflict (never overwritten), skips values the CRM already has, and sends the rest in
   batches (HubSpot ≤ 100, Salesforce ≤ 200), one transaction per batch. A record the CRM
   refuses stays queued (attempts + 1, last error) and is retried by the next push, until
   `max_attempts` marks it failed. Every sent or conflicting row is logged in the
   hash-chained event log ("writeback.sent" / "writeback.conflict").
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from inspector.playbook import Playbook
from inspector.sources.crm import FieldWrite, NoteWrite, Outcome
from inspector.storage.events import append_event, read_ts
from inspector.storage.repo import Store, read_date

SOURCES = ("hubspot", "salesforce")
LABELS = {"hubspot": "HubSpot", "salesforce": "Salesforce"}
#: local decision field -> CRM field, per source (the playbook may add `crm_writeback_map`)
FIELD_MAPS = {
    "hubspot": {"forecast_call": "hs_manual_forecast_category", "next_step": "hs_next_step"},
    "salesforce": {"forecast_call": "ForecastCategoryName", "next_step": "NextStep"},
}
FORECAST_VALUES = {
    "hubspot": {"commit": "COMMIT", "best_case": "BEST_CASE", "pipeline": "PIPELINE", "omit": "OMIT"},
    "salesforce": {"commit": "Commit", "best_case": "Best Case", "pipeline": "Pipeline", "omit": "Omitted"},
}
FIELD_LABELS = {"hs_manual_forecast_category": "Forecast category", "ForecastCategoryName": "Forecast category",
                "hs_next_step": "Next step", "NextStep": "Next step"}
BATCH = {"hubspot": 100, "salesforce": 200}
TEXT_LIMIT = {"NextStep": 255}


@dataclass
class PreviewLine:
    outbox_id: int | None
    deal_id: int
    deal_name: str
    source: str
    external_id: str
    kind: str  # field | note
    field: str
    label: str
    old: str | None
    new: str
    status: str
    attempts: int = 0
    last_error: str = ""

    def text(self) -> str:
        where = f"{LABELS.get(self.source, self.source)} {self.external_id}"
        if self.kind == "note":
            first = self.new.splitlines()[0] if self.new else ""
            change = f"add note: {first}"
        else:
            change = f"{self.label}: {_show(self.old)} → {_show(self.new)}"
        extra = f" [{self.status}{': ' + self.last_error if self.last_error else ''}]" if self.status != "queued" \
            or self.last_error else ""
        return f"{self.deal_name} ({where}) · {change}{extra}"


@dataclass
class BuildResult:
    queued: int = 0
    already_in_crm: int = 0
    already_queued: int = 0
    superseded: int = 0
    lines: list[PreviewLine] = field(default_factory=list)


@dataclass
class PushResult:
    source: str
    sent: int = 0
    already: int = 0  # the CRM already had the value
    failed: int = 0  # stays queued (or failed after max attempts)
    conflicts: int = 0
    batches: list[int] = field(default_factory=list)  # records per write call
    lines: list[PreviewLine] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{LABELS.get(self.source, self.source)}: {self.sent} sent, {self.already} already there, "
                f"{self.conflicts} conflicts, {self.failed} failed (kept queued)")


def _show(value: str | None) -> str:
    if value is None or value == "":
        return "(empty)"
    value = " ".join(str(value).split())
    return value if len(value) <= 60 else value[:57] + "…"


def _norm(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def idempotency_key(source: str, external_id: str, crm_field: str, value: str) -> str:
    return _hash(f"{source}|{external_id}|{crm_field}|{_hash(value)}")


def note_key(source: str, external_id: str, session_id: int) -> str:
    return _hash(f"{source}|{external_id}|note|session:{session_id}")


def marker_for(key: str) -> str:
    """A token that lets a later push find a note it may already have created."""
    return "insp" + key[:12]


def field_map(playbook: Playbook, source: str) -> dict[str, str]:
    extra = getattr(playbook, "crm_writeback_map", None) or {}
    return {**FIELD_MAPS[source], **(extra.get(source, {}) if isinstance(extra, dict) else {})}


def crm_value(source: str, local_field: str, value: Any) -> str:
    if local_field == "forecast_call":
        return FORECAST_VALUES[source].get(str(value), str(value))
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- reading decisions ----------------------------------------------------------------------------
@dataclass
class _Latest:
    deal_id: int
    session_id: int
    inspection_id: int
    week_of: date | None
    manager: str
    decisions: dict[str, Any]
    rep_category: str


_DECISIONS = ("stage_verdict", "supported_stage", "close_date_verdict", "proposed_close_date", "forecast_call",
              "commit_criteria_met", "commit_exception", "next_step", "next_step_date", "notes")


def latest_decisions(conn: Connection, session_ids: list[int] | None = None,
                     deal_id: int | None = None) -> dict[int, _Latest]:
    """Per deal: the decisions of its latest finished (or chosen) session, later values winning."""
    where = "s.status = 'finished'" if not session_ids else \
        "s.id IN (" + ", ".join(str(int(s)) for s in session_ids) + ")"
    params: dict[str, Any] = {}
    if deal_id is not None:
        where += " AND i.deal_id = :d"
        params["d"] = deal_id
    rows = conn.execute(text(
        f"SELECT i.deal_id, i.session_id, i.id, s.week_of, s.manager, i.rep_category, "
        f"{', '.join('i.' + c for c in _DECISIONS)} FROM inspection i "
        f"JOIN inspection_session s ON s.id = i.session_id WHERE {where} AND i.status = 'inspected' "
        "ORDER BY COALESCE(s.finished_at, s.started_at), s.id"), params).fetchall()
    out: dict[int, _Latest] = {}
    for r in rows:
        decisions = dict(zip(_DECISIONS, r[6:]))
        decisions["proposed_close_date"] = read_date(decisions["proposed_close_date"])
        decisions["next_step_date"] = read_date(decisions["next_step_date"])
        prev = out.get(r[0])
        merged = dict(prev.decisions) if prev else {}
        merged.update({k: v for k, v in decisions.items() if v not in (None, "")})
        out[r[0]] = _Latest(r[0], r[1], r[2], read_date(r[3]), r[4], merged, r[5] or "")
    return out


def note_text(pb: Playbook, latest: _Latest, risks: list[tuple[str, str, str]], marker: str) -> str:
    d = latest.decisions
    week = latest.week_of.isoformat() if latest.week_of else ""
    lines = [f"Pipeline inspection, week of {week} ({latest.manager}) [{marker}]"]
    if d.get("stage_verdict"):
        sv = d["stage_verdict"]
        extra = f" (evidence supports {pb.stage_label(d.get('supported_stage'))})" if d.get("supported_stage") else ""
        lines.append(f"Stage: {sv}{extra}")
    if d.get("close_date_verdict"):
        extra = f" (proposed {d['proposed_close_date'].isoformat()})" if d.get("proposed_close_date") else ""
        lines.append(f"Close date: {d['close_date_verdict'].replace('_', ' ')}{extra}")
    if d.get("forecast_call"):
        crit = ""
        if d.get("commit_criteria_met") is not None:
            crit = "; commit criteria " + ("met" if d["commit_criteria_met"] else "not met")
        exc = f" (exception: {d['commit_exception']})" if d.get("commit_exception") else ""
        lines.append(f"Forecast: manager {pb.category_label(d['forecast_call'])}, rep "
                     f"{pb.category_label(latest.rep_category)}{crit}{exc}")
    if d.get("next_step"):
        by = f" (by {d['next_step_date'].isoformat()})" if d.get("next_step_date") else ""
        lines.append(f"Next step: {d['next_step']}{by}")
    if risks:
        lines.append("Open risks: " + "; ".join(f"{pb.risk_label.get(t, t)} ({sev})" + (f": {m}" if m else "")
                                                 for t, sev, m in risks))
    if d.get("notes"):
        lines.append(f"Notes: {d['notes']}")
    return "\n".join(lines)


# -- the outbox -----------------------------------------------------------------------------------
def _insert(store: Store, conn: Connection, row: dict[str, Any]) -> bool:
    n = conn.execute(text(
        "INSERT INTO outbox (idempotency_key, deal_id, source, external_id, kind, field, value, base_value, "
        "status, attempts, last_error, created_at) VALUES (:k, :d, :s, :e, :kind, :f, :v, :b, 'queued', 0, '', :now) "
        "ON CONFLICT (idempotency_key) DO NOTHING"), store.params(conn, row)).rowcount
    return bool(n)


def build_outbox(store: Store, playbook: Playbook, *, now: datetime, source: str | None = None,
                 session_ids: list[int] | None = None, deal_id: int | None = None,
                 dry_run: bool = False) -> BuildResult:
    """Queue what the latest decisions change in the CRM (nothing if it is already there or queued)."""
    result = BuildResult()
    sources = [source] if source else list(SOURCES)
    with (store.engine.connect() if dry_run else store.engine.begin()) as conn:
        latest = latest_decisions(conn, session_ids, deal_id)
        if not latest:
            return result
        ids = list(latest)
        deals: dict[int, tuple] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            for r in conn.execute(text(
                    f"SELECT id, source, external_id, name, extras, status FROM deal WHERE id IN "
                    f"({', '.join(str(int(i)) for i in part)})")):
                deals[r[0]] = tuple(r[1:])
        risks: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
        for d, t, sev, m in conn.execute(text("SELECT deal_id, type, severity, mitigation FROM risk "
                                              "WHERE status = 'open' ORDER BY id")):
            if d in latest:
                risks[d].append((t, sev, m or ""))
        for did, item in latest.items():
            if did not in deals:
                continue
            src, ext, name, extras_json, status = deals[did]
            if src not in sources or status == "removed":
                continue
            try:
                crm = (json.loads(extras_json or "{}") or {}).get("crm") or {}
            except ValueError:
                crm = {}
            wanted: list[tuple[str, str, str, str | None]] = []  # kind, crm field, value, base
            for local, prop in field_map(playbook, src).items():
                value = item.decisions.get(local)
                if value in (None, ""):
                    continue
                new = crm_value(src, local, value)[:TEXT_LIMIT.get(prop, 65536)]
                base = crm.get(prop)
                base = None if base in (None, "") else str(base)
                if _norm(base) == _norm(new):
                    result.already_in_crm += 1
                    continue
                wanted.append(("field", prop, new, base))
            key_note = note_key(src, ext, item.session_id)
            wanted.append(("note", "", note_text(playbook, item, risks.get(did, []), marker_for(key_note)), None))
            for kind, prop, value, base in wanted:
                key = key_note if kind == "note" else idempotency_key(src, ext, prop, value)
                exists = conn.execute(text("SELECT status FROM outbox WHERE idempotency_key = :k"), {"k": key}).first()
                line = PreviewLine(None, did, name, src, ext, kind, prop, FIELD_LABELS.get(prop, prop or "Note"),
                                   base, value, exists[0] if exists else "queued")
                if exists:
                    result.already_queued += 1
                    continue
                result.lines.append(line)
                result.queued += 1
                if dry_run:
                    continue
                _insert(store, conn, {"k": key, "d": did, "s": src, "e": ext, "kind": kind, "f": prop, "v": value,
                                      "b": base, "now": now})
                if kind == "field":  # a newer decision replaces an older one not sent yet
                    result.superseded += conn.execute(text(
                        "UPDATE outbox SET status = 'cancelled', last_error = 'superseded by a newer decision' "
                        "WHERE source = :s AND external_id = :e AND kind = 'field' AND field = :f "
                        "AND status IN ('queued', 'failed') AND idempotency_key != :k"),
                        {"s": src, "e": ext, "f": prop, "k": key}).rowcount
    return result


def preview(store: Store, *, source: str | None = None, deal_id: int | None = None,
            statuses: tuple[str, ...] = ("queued", "failed", "conflict")) -> list[PreviewLine]:
    where = [f"o.status IN ({', '.join(repr(s) for s in statuses)})"]
    params: dict[str, Any] = {}
    if source:
        where.append("o.source = :s")
        params["s"] = source
    if deal_id is not None:
        where.append("o.deal_id = :d")
        params["d"] = deal_id
    with store.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT o.id, o.deal_id, d.name, o.source, o.external_id, o.kind, o.field, o.base_value, o.value, "
            "o.status, o.attempts, o.last_error FROM outbox o JOIN deal d ON d.id = o.deal_id "
            f"WHERE {' AND '.join(where)} ORDER BY o.source, d.name, o.deal_id, o.kind, o.field, o.id"), params)
        return [PreviewLine(r[0], r[1], r[2], r[3], r[4], r[5], r[6], FIELD_LABELS.get(r[6], r[6] or "Note"),
                            r[7], r[8], r[9], r[10], r[11] or "") for r in rows]


@dataclass
class _Row:
    id: int
    deal_id: int
    external_id: str
    kind: str
    field: str
    value: str
    base: str | None
    attempts: int


def _queued(conn: Connection, source: str, deal_id: int | None) -> list[_Row]:
    sql = ("SELECT id, deal_id, external_id, kind, field, value, base_value, attempts FROM outbox "
           "WHERE source = :s AND status = 'queued'")
    params: dict[str, Any] = {"s": source}
    if deal_id is not None:
        sql += " AND deal_id = :d"
        params["d"] = deal_id
    return [_Row(*r) for r in conn.execute(text(sql + " ORDER BY id"), params)]


def push(store: Store, client: Any, *, now: datetime, actor: str, deal_id: int | None = None,
         max_attempts: int = 5, progress: Callable[[PushResult], None] = lambda r: None) -> PushResult:
    """Send the queued rows of `client.source` (see the module doc for the rules)."""
    source = client.source
    result = PushResult(source)
    with store.engine.connect() as conn:
        rows = _queued(conn, source, deal_id)
    if not rows:
        return result
    fields = [r for r in rows if r.kind == "field"]
    notes = [r for r in rows if r.kind == "note"]
    size = BATCH.get(source, 100)

    if fields:
        props = sorted({r.field for r in fields})
        current = client.read_current(sorted({r.external_id for r in fields}), props)
        to_send: list[_Row] = []
        with store.engine.begin() as conn:
            for r in fields:
                now_value = current.get(r.external_id, {}).get(r.field) if r.external_id in current else None
                if r.external_id not in current:
                    _fail(store, conn, r, "not found in the CRM (deleted?)", max_attempts, result)
                elif _norm(now_value) == _norm(r.value):
                    _sent(store, conn, r, now, actor, source, result, already=True)
                elif _norm(now_value) != _norm(r.base):
                    _conflict(store, conn, r, now_value, now, actor, source, result)
                else:
                    to_send.append(r)
        by_deal: dict[str, list[_Row]] = defaultdict(list)
        for r in to_send:
            by_deal[r.external_id].append(r)
        externals = list(by_deal)
        for start in range(0, len(externals), size):
            chunk = externals[start:start + size]
            writes = [FieldWrite(e, {r.field: r.value for r in by_deal[e]}) for e in chunk]
            result.batches.append(len(writes))
            outcomes = {o.external_id: o for o in client.update_fields(writes)}
            with store.engine.begin() as conn:
                for e in chunk:
                    o = outcomes.get(e) or Outcome(e, False, "no answer for this record")
                    for r in by_deal[e]:
                        if o.ok:
                            _sent(store, conn, r, now, actor, source, result)
                        else:
                            _fail(store, conn, r, o.error, max_attempts, result)
            progress(result)

    if notes:
        writes = {r.id: NoteWrite(r.external_id, (r.value.splitlines() or [""])[0][:255], r.value,
                                  _marker_of(r.value)) for r in notes}
        retried = [r for r in notes if r.attempts > 0]
        found = client.find_notes([writes[r.id] for r in retried]) if retried else {}
        fresh: list[_Row] = []
        with store.engine.begin() as conn:
            for r in notes:
                if writes[r.id].marker in found:  # created by an earlier push whose answer was lost
                    _sent(store, conn, r, now, actor, source, result, already=True)
                else:
                    fresh.append(r)
        for start in range(0, len(fresh), size):
            chunk = fresh[start:start + size]
            result.batches.append(len(chunk))
            outcomes = client.create_notes([writes[r.id] for r in chunk])
            with store.engine.begin() as conn:
                for r, o in zip(chunk, outcomes):
                    if o.ok:
                        _sent(store, conn, r, now, actor, source, result)
                    else:
                        _fail(store, conn, r, o.error, max_attempts, result)
            progress(result)
    return result


def _marker_of(value: str) -> str:
    import re

    m = re.search(r"\[(insp[0-9a-f]{12})\]", value)
    return m.group(1) if m else ""


def _event(conn: Connection, kind: str, r: _Row, now: datetime, actor: str, source: str, **payload: Any) -> None:
    append_event(conn, at=now, actor=actor, kind=kind, entity="deal", entity_id=r.deal_id, deal_id=r.deal_id,
                 payload={"source": source, "external_id": r.external_id, "outbox_id": r.id, "kind": r.kind,
                          "field": r.field, "value_sha256": _hash(r.value), **payload})


def _sent(store: Store, conn: Connection, r: _Row, now: datetime, actor: str, source: str, result: PushResult,
          already: bool = False) -> None:
    conn.execute(text("UPDATE outbox SET status = 'sent', sent_at = :now, attempts = attempts + :a, last_error = '' "
                      "WHERE id = :id"), store.params(conn, {"now": now, "id": r.id, "a": 0 if already else 1}))
    if r.kind == "field":  # the CRM now holds our value: it is the base for the next change
        extras = conn.execute(text("SELECT extras FROM deal WHERE id = :d"), {"d": r.deal_id}).scalar()
        try:
            data = json.loads(extras or "{}")
        except ValueError:
            data = {}
        data.setdefault("crm", {})[r.field] = r.value
        conn.execute(text("UPDATE deal SET extras = :x WHERE id = :d"),
                     {"x": json.dumps(data, sort_keys=True, default=str), "d": r.deal_id})
    _event(conn, "writeback.sent", r, now, actor, source, already_in_crm=already)
    if already:
        result.already += 1
    else:
        result.sent += 1


def _conflict(store: Store, conn: Connection, r: _Row, crm_now: str | None, now: datetime, actor: str, source: str,
              result: PushResult) -> None:
    msg = f"changed in {LABELS.get(source, source)} since the last sync (now {_show(crm_now)})"
    conn.execute(text("UPDATE outbox SET status = 'conflict', last_error = :e WHERE id = :id"), {"e": msg, "id": r.id})
    _event(conn, "writeback.conflict", r, now, actor, source, base_value=r.base, crm_value=crm_now)
    result.conflicts += 1
    result.errors.append(f"{r.external_id} {r.field}: {msg}")


def _fail(store: Store, conn: Connection, r: _Row, error: str, max_attempts: int, result: PushResult) -> None:
    status = "failed" if r.attempts + 1 >= max_attempts else "queued"
    conn.execute(text("UPDATE outbox SET attempts = attempts + 1, last_error = :e, status = :st WHERE id = :id"),
                 {"e": (error or "failed")[:300], "st": status, "id": r.id})
    result.failed += 1
    result.errors.append(f"{r.external_id} {r.field or 'note'}: {error}")


def retry_failed(store: Store, source: str | None = None) -> int:
    """Put rows that ran out of attempts back in the queue."""
    with store.engine.begin() as conn:
        sql = "UPDATE outbox SET status = 'queued', attempts = 0 WHERE status = 'failed'"
        return conn.execute(text(sql + (" AND source = :s" if source else "")), {"s": source} if source else {}).rowcount


def outbox_counts(store: Store) -> dict[str, dict[str, int]]:
    with store.engine.connect() as conn:
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for src, st, n in conn.execute(text("SELECT source, status, COUNT(*) FROM outbox GROUP BY source, status")):
            out[src][st] = n
        return dict(out)


def _ts(v: Any) -> datetime | None:
    return read_ts(v)
