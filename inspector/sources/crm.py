"""What the CRM connectors share: the Page they yield, write outcomes, value parsing and the
mapping of CRM stages/categories onto the playbook."""
from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Protocol

from inspector.money import to_minor
from inspector.playbook import Playbook
from inspector.sources.records import DealRecord


@dataclass
class Page:
    """One page of deals, ready for one `upsert_deals` call.

    `next_cursor` resumes *after* this page (None: the run is complete); `watermark` is the
    newest last-modified time among its deals (ISO UTC) or None."""

    records: list[DealRecord]
    next_cursor: str | None
    watermark: str | None
    total: int | None = None  # the source's estimate of deals in this run, when it tells
    #: (mapper, payload): the records are still the CRM's JSON; `materialize` maps them with
    #: `mapper.build(playbook, payload)` (a sync maps where it writes, in its helper process)
    deferred: Any = None

    def materialize(self, playbook: Playbook) -> "Page":
        if self.deferred is not None:
            mapper, payload = self.deferred
            self.records = mapper.build(playbook, payload)
            self.deferred = None
        return self


@dataclass
class Outcome:
    """The result of writing one record."""

    external_id: str
    ok: bool
    error: str = ""
    created_id: str = ""


@dataclass
class FieldWrite:
    external_id: str
    values: dict[str, str]  # CRM property/field -> value ("" clears)


@dataclass
class NoteWrite:
    external_id: str  # the deal / opportunity
    subject: str  # carries the reconcile marker
    body: str
    marker: str


class SourceClient(Protocol):
    source: str
    label: str

    def iter_pages(self, since: str | None, cursor: str | None) -> Iterator[Page]: ...

    def read_current(self, external_ids: list[str], fields: list[str]) -> dict[str, dict[str, str | None]]: ...

    def update_fields(self, writes: list[FieldWrite]) -> list[Outcome]: ...

    def find_notes(self, notes: list[NoteWrite]) -> dict[str, str]: ...

    def create_notes(self, notes: list[NoteWrite]) -> list[Outcome]: ...

    def close(self) -> None: ...


@dataclass
class Cursor:
    """Paging state stored in sync_state.cursor (JSON text)."""

    mode: str  # list | search | query
    after: str | None = None  # HubSpot list `after` / search offset / Salesforce nextRecordsUrl
    since: str | None = None
    last: str | None = None  # newest modified time seen (re-anchor point)
    extra: dict[str, Any] = field(default_factory=dict)

    def dump(self) -> str:
        return json.dumps({"mode": self.mode, "after": self.after, "since": self.since, "last": self.last,
                           **({"extra": self.extra} if self.extra else {})}, sort_keys=True)

    @classmethod
    def load(cls, text: str | None) -> "Cursor | None":
        if not text:
            return None
        try:
            d = json.loads(text)
            return cls(d["mode"], d.get("after"), d.get("since"), d.get("last"), d.get("extra") or {})
        except (ValueError, KeyError, TypeError):
            return None


# -- values -----------------------------------------------------------------------------------
def parse_dt(value: Any) -> datetime | None:
    """ISO-8601 (Z, +00:00 or Salesforce's +0000), date-only, or epoch milliseconds -> UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return _parse_dt_text(value)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(int(value) / 1000.0, tz=timezone.utc)
    return _parse_dt_text(str(value))


@lru_cache(maxsize=65536)
def _parse_dt_text(value: str) -> datetime | None:
    """parse_dt for text (cached: a CRM page repeats the same timestamps many times)."""
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000.0, tz=timezone.utc)
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return _parse_date_text(value)
    moment = parse_dt(value)
    return moment.date() if moment else None


@lru_cache(maxsize=65536)
def _parse_date_text(value: str) -> date | None:
    """parse_date for text (cached: close and create dates repeat across a CRM page)."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return date.fromisoformat(value.strip())
    moment = _parse_dt_text(value)
    return moment.date() if moment else None


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_minor(value: Any, currency: str = "USD") -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, str):
        return _parse_minor_text(value, currency)
    try:
        return to_minor(Decimal(str(value)), currency)
    except (InvalidOperation, ValueError):
        return 0


@lru_cache(maxsize=65536)
def _parse_minor_text(value: str, currency: str) -> int:
    """parse_minor for text (cached: amounts repeat in property history and across deals)."""
    try:
        return to_minor(Decimal(value), currency)
    except (InvalidOperation, ValueError):
        return 0


def plain(text: Any, limit: int = 200) -> str:
    """Readable one-paragraph summary from CRM text (HTML bodies of notes and emails)."""
    if text is None:
        return ""
    s = str(text)
    if "<" not in s and "&" not in s:  # no markup, no entities: the common call title or subject
        return " ".join(s.split())[:limit]
    s = re.sub(r"<(br|/p|/div|/li)\s*/?>", "\n", s, flags=re.I)
    s = html.unescape(re.sub(r"<[^>]+>", "", s))
    s = " ".join(s.split())
    return s[:limit]


# -- playbook mapping ---------------------------------------------------------------------------
def map_stage(pb: Playbook, crm_id: str, label: str, probability: float | None, closed: bool | None,
              won: bool | None = None) -> str:
    """A CRM stage to a playbook stage key: by id, then label (playbook `crm_stage_map`), then by
    the stage metadata (closed won/lost, or the open stage nearest in probability)."""
    for candidate in (crm_id, label):
        if candidate:
            key = pb.map_stage(candidate)
            if key:
                return key
    kinds = {s.kind: s.key for s in reversed(pb.stages)}
    if closed:
        is_won = won if won is not None else (probability or 0) >= 0.5
        return kinds.get("won" if is_won else "lost", pb.stages[-1].key)
    opens = pb.open_stages or pb.stages
    if probability is None:
        return opens[0].key
    pct = probability * 100 if probability <= 1 else probability
    return min(opens, key=lambda s: (abs(s.probability - pct), s.probability)).key


def map_category(pb: Playbook, value: str | None, default: str = "pipeline") -> str:
    if not value:
        return default
    key = pb.map_category(value) or pb.map_category(value.replace("_", " "))
    return key or default
