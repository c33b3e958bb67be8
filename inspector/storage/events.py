"""The append-only inspection event log, hash-chained.

Each event's hash covers its sequence number, time, actor, kind, entity, payload and the
previous event's hash, as canonical JSON (sorted keys, UTC `Z` timestamps, no spaces), so
the chain is stable across platforms and any rewrite breaks it from that event on.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

GENESIS = "0" * 64


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_default)


def utc_z(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(seq: int, at: datetime, actor: str, kind: str, entity: str, entity_id: int,
               session_id: int | None, deal_id: int | None, payload: str, prev_hash: str) -> str:
    body = canonical_json({"seq": seq, "at": utc_z(at), "actor": actor, "kind": kind,
                           "entity": entity, "entity_id": entity_id, "session_id": session_id,
                           "deal_id": deal_id, "payload": payload, "prev": prev_hash})
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at: datetime
    actor: str
    kind: str
    entity: str
    entity_id: int
    session_id: int | None
    deal_id: int | None
    payload: dict
    prev_hash: str
    hash: str


def append_event(conn: Connection, *, at: datetime, actor: str, kind: str, entity: str,
                 entity_id: int, payload: dict, session_id: int | None = None,
                 deal_id: int | None = None) -> str:
    """Append one event inside the caller's transaction; returns its hash.

    The caller's transaction holds the write lock (SQLite BEGIN IMMEDIATE); on PostgreSQL an
    advisory transaction lock serialises appenders so the chain never forks.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(74110001)"))
    last = conn.execute(text(
        "SELECT seq, hash FROM inspection_event ORDER BY seq DESC LIMIT 1")).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    body = canonical_json(payload)
    digest = event_hash(seq, at, actor, kind, entity, entity_id, session_id, deal_id, body, prev)
    conn.execute(text(
        "INSERT INTO inspection_event (seq, at, actor, kind, entity, entity_id, session_id, "
        "deal_id, payload, prev_hash, hash) VALUES (:seq, :at, :actor, :kind, :entity, "
        ":entity_id, :session_id, :deal_id, :payload, :prev, :hash)"),
        {"seq": seq, "at": db_ts(conn, at), "actor": actor, "kind": kind, "entity": entity,
         "entity_id": entity_id, "session_id": session_id, "deal_id": deal_id,
         "payload": body, "prev": prev, "hash": digest})
    return digest


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    count: int
    head: str
    broken_seq: int | None = None
    problem: str = ""


def verify_chain(conn: Connection) -> ChainReport:
    prev, count = GENESIS, 0
    rows = conn.execute(text(
        "SELECT seq, at, actor, kind, entity, entity_id, session_id, deal_id, payload, "
        "prev_hash, hash FROM inspection_event ORDER BY seq"))
    expected_seq = 1
    for seq, at, actor, kind, entity, entity_id, session_id, deal_id, payload, prev_hash, h in rows:
        if seq != expected_seq:
            return ChainReport(False, count, prev, seq, f"sequence gap: expected {expected_seq}")
        if prev_hash != prev:
            return ChainReport(False, count, prev, seq, "previous hash does not match")
        if event_hash(seq, read_ts(at), actor, kind, entity, entity_id, session_id, deal_id,
                      payload, prev_hash) != h:
            return ChainReport(False, count, prev, seq, "content does not match its hash")
        prev, count, expected_seq = h, count + 1, expected_seq + 1
    return ChainReport(True, count, prev)


# -- timestamp conversion shared by the storage layer -----------------------------------
def db_ts(conn: Connection, moment: datetime | None) -> Any:
    """A UTC datetime as the backend stores it (SQLite: naive ISO text, as SQLAlchemy does)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if conn.dialect.name == "sqlite":
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


def read_ts(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
