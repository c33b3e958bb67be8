"""What every source (CSV, HubSpot, Salesforce) produces: plain, typed deal records."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class HistoryItem:
    field: str  # stage | amount_minor | close_date | forecast_category
    old: str | None
    new: str | None
    changed_at: datetime  # UTC


@dataclass(frozen=True)
class ActivityRecord:
    external_id: str
    kind: str  # call | email | meeting | note | task
    occurred_at: datetime  # UTC
    summary: str = ""
    who: str = ""


@dataclass
class DealRecord:
    """One deal as a source sees it. Money in minor units, dates as date, times UTC."""

    source: str
    external_id: str
    name: str
    stage: str  # playbook stage key (mapped through the playbook's crm_stage_map)
    account: str = ""
    owner: str = ""
    team: str = ""
    manager: str = ""
    crm_stage: str = ""
    amount_minor: int = 0
    currency: str = "USD"
    close_date: date | None = None
    forecast_category: str = "pipeline"
    next_step: str = ""
    next_step_date: date | None = None
    created_on: date | None = None
    crm_updated_at: datetime | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # evidence fields named in DEAL_FIELDS
    extras: dict[str, Any] = field(default_factory=dict)  # unknown CRM fields, kept, never dropped
    history: list[HistoryItem] = field(default_factory=list)
    activities: list[ActivityRecord] = field(default_factory=list)
