"""Domain objects: plain frozen dataclasses, the currency between core and screens."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple
from datetime import date, datetime


class DealRow(NamedTuple):
    """One line of the pipeline list: a tuple read straight from SQL, no per-row parsing.

    Dates are ISO strings ("2026-12-03", "" when unknown) so 100k rows load without
    building date objects; day counts are computed by the database against `today`.
    """

    id: int
    name: str
    account: str
    owner: str
    team: str
    manager: str
    stage: str
    amount_minor: int
    currency: str
    close_date: str
    forecast_category: str
    next_step: str
    next_step_date: str
    created_on: str
    days_in_stage: int | None
    close_pushes: int
    last_activity: str  # ISO date of the last activity
    days_since_activity: int | None
    days_since_progress: int | None
    status: str


@dataclass(frozen=True, slots=True)
class Change:
    deal_id: int
    field: str
    old: str | None
    new: str | None
    changed_at: datetime
    source: str = "local"


@dataclass(frozen=True, slots=True)
class ActivityItem:
    id: int
    deal_id: int
    kind: str
    occurred_at: datetime
    summary: str
    who: str
    is_progress: bool
    progress_type: str | None
    version: int = 1


@dataclass(frozen=True, slots=True)
class RiskItem:
    id: int
    deal_id: int
    type: str
    severity: str
    owner: str
    due_date: date | None
    mitigation: str
    status: str
    created_at: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class DealDetail:
    """Everything about one deal that the inspection needs."""

    row: DealRow
    fields: dict[str, object]  # evidence / handoff / finance fields by name
    changes: tuple[Change, ...]
    activities: tuple[ActivityItem, ...]
    risks: tuple[RiskItem, ...]
    promises_count: int = 0
    version: int = 1


@dataclass(frozen=True, slots=True)
class Finding:
    deal_id: int
    code: str  # missing_evidence | past_close | pushed | stale_next_step | no_progress | ...
    severity: str  # info | warn | high
    message: str


@dataclass(frozen=True, slots=True)
class ChangeSummary:
    """What changed on a deal since a moment (the last finished inspection)."""

    deal_id: int
    stage_move: int = 0  # +n forward, -n back
    amount_delta: int = 0
    close_pushed_days: int = 0  # >0 pushed later, <0 pulled in
    pushes: int = 0
    category_from: str | None = None
    category_to: str | None = None
    is_new: bool = False
    changes: tuple[Change, ...] = field(default=())

    @property
    def any(self) -> bool:
        return bool(self.stage_move or self.amount_delta or self.close_pushed_days
                    or self.category_to or self.is_new)
