"""SQLModel tables: the schema of record. Alembic migrations are checked against it.

Hot paths (listing 100k deals, bulk seeding) read and write with SQLAlchemy Core and tuple
rows (see repo.py); these classes define the shape and serve the ORM where it is convenient.
Money is integer minor units plus an ISO currency; timestamps are UTC.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


#: Money in minor units: 64-bit (SQLite INTEGER already is; PostgreSQL needs BIGINT).
MONEY = BigInteger().with_variant(Integer(), "sqlite")


def _ts(nullable: bool = True) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable)


class Deal(SQLModel, table=True):
    __tablename__ = "deal"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_deal_source_external"),
        Index("ix_deal_status_team", "status", "team"),
        Index("ix_deal_owner", "owner"),
        Index("ix_deal_status_close", "status", "close_date"),
        Index("ix_deal_status_closed", "status", "closed_on"),
        Index("ix_deal_team_window", "team", "status", "created_on", "closed_on"),  # migration 0005
    )
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(default="local")
    external_id: str
    name: str
    account: str = ""
    owner: str = ""
    team: str = ""
    manager: str = ""
    stage: str
    crm_stage: str = ""
    status: str = Field(default="open")  # open | won | lost | removed
    amount_minor: int = Field(default=0, sa_type=MONEY)
    currency: str = "USD"
    close_date: date | None = None
    forecast_category: str = "pipeline"
    next_step: str = ""
    next_step_date: date | None = None
    created_on: date | None = None
    stage_entered_on: date | None = None
    closed_on: date | None = None
    updated_at: datetime | None = Field(default=None, sa_column=_ts())
    removed_at: datetime | None = Field(default=None, sa_column=_ts())
    crm_updated_at: datetime | None = Field(default=None, sa_column=_ts())
    synced_at: datetime | None = Field(default=None, sa_column=_ts())
    version: int = 1
    # maintained on write so that listing 100k deals needs no aggregate over history
    close_pushes: int = 0
    last_activity_at: datetime | None = Field(default=None, sa_column=_ts())
    last_progress_at: datetime | None = Field(default=None, sa_column=_ts())
    # evidence, handoff and finance fields the playbook names
    business_problem: str = ""
    buyer_role: str = ""
    agreed_value: str = ""
    use_case: str = ""
    success_criteria: str = ""
    decision_process: str = ""
    economic_buyer: str = ""
    champion: str = ""
    executive_sponsor: str = ""
    stakeholders: str = ""
    mutual_close_plan: str = ""
    contract_scope: str = ""
    implementation_notes: str = ""
    implementation_complexity: str = ""
    products: str = ""
    contract_signed_on: date | None = None
    contract_start: date | None = None
    contract_end: date | None = None
    renewal_date: date | None = None
    billing_entity: str = ""
    payment_terms: str = ""
    discount_pct: float | None = None
    discount_approved_by: str = ""
    custom_terms: bool = False
    legal_exception: bool = False
    product_commitment: bool = False
    scope_change: bool = False
    partner_margin_pct: float | None = None
    term_months: int | None = None
    bookings_attribution: str = ""
    revenue_type: str = ""
    expansion_signals: str = ""
    cs_owner: str = ""
    kickoff_date: date | None = None
    timeline_commitments: str = ""
    billing_caveats: str = ""
    first_customer_action: str = ""
    extras: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))


class DealChange(SQLModel, table=True):
    __tablename__ = "deal_change"
    __table_args__ = (Index("ix_deal_change_deal_field", "deal_id", "field", "changed_at", "old", "new"),
                      Index("ix_deal_change_at", "changed_at"),
                      Index("ix_deal_change_field_at", "field", "changed_at", "deal_id", "old", "new"))
    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    field: str  # stage | amount_minor | close_date | forecast_category | created
    old: str | None = None
    new: str | None = None
    changed_at: datetime = Field(sa_column=_ts(False))
    source: str = "local"


class Activity(SQLModel, table=True):
    __tablename__ = "activity"
    __table_args__ = (Index("ix_activity_deal_at", "deal_id", "occurred_at"),
                      UniqueConstraint("deal_id", "external_id", name="uq_activity_external"))
    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    external_id: str | None = None
    kind: str  # call | email | meeting | note | task
    occurred_at: datetime = Field(sa_column=_ts(False))
    summary: str = ""
    who: str = ""
    is_progress: bool = False
    progress_type: str | None = None
    version: int = 1


class InspectionSession(SQLModel, table=True):
    __tablename__ = "inspection_session"
    __table_args__ = (Index("ix_session_manager_status", "manager", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    manager: str
    team: str = ""
    scope: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # JSON
    week_of: date
    started_at: datetime = Field(sa_column=_ts(False))
    finished_at: datetime | None = Field(default=None, sa_column=_ts())
    status: str = "open"  # open | finished | abandoned
    queue: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON deal ids
    current_deal_id: int | None = None
    current_question: str | None = None
    version: int = 1


class Inspection(SQLModel, table=True):
    __tablename__ = "inspection"
    __table_args__ = (UniqueConstraint("session_id", "deal_id", name="uq_inspection_session_deal"),
                      Index("ix_inspection_deal", "deal_id"))
    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="inspection_session.id", ondelete="CASCADE")
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    position: int = 0
    status: str = "pending"  # pending | inspected | skipped
    skip_reason: str = ""
    # snapshot of the deal when the inspection opened
    stage_at: str = ""
    amount_minor_at: int = Field(default=0, sa_type=MONEY)
    close_date_at: date | None = None
    rep_category: str = ""
    # decisions
    stage_verdict: str | None = None  # supported | overstated | understated
    supported_stage: str | None = None
    close_date_verdict: str | None = None  # realistic | at_risk | not_credible
    proposed_close_date: date | None = None
    forecast_call: str | None = None  # commit | best_case | pipeline | omit
    commit_criteria_met: bool | None = None
    commit_exception: str = ""
    next_step: str = ""
    next_step_date: date | None = None
    notes: str = ""
    updated_at: datetime | None = Field(default=None, sa_column=_ts())
    version: int = 1


class Answer(SQLModel, table=True):
    __tablename__ = "answer"
    __table_args__ = (UniqueConstraint("inspection_id", "question", name="uq_answer_question"),)
    id: int | None = Field(default=None, primary_key=True)
    inspection_id: int = Field(foreign_key="inspection.id", ondelete="CASCADE")
    question: str
    text: str = ""
    evidence_state: str = "missing"  # confirmed | claimed | missing
    updated_at: datetime | None = Field(default=None, sa_column=_ts())
    version: int = 1


class Risk(SQLModel, table=True):
    __tablename__ = "risk"
    __table_args__ = (Index("ix_risk_deal_status", "deal_id", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    inspection_id: int | None = Field(default=None, foreign_key="inspection.id")
    type: str
    severity: str = "medium"
    owner: str = ""
    due_date: date | None = None
    mitigation: str = ""
    status: str = "open"  # open | closed
    created_at: datetime = Field(sa_column=_ts(False))
    closed_at: datetime | None = Field(default=None, sa_column=_ts())
    version: int = 1


class Promise(SQLModel, table=True):
    __tablename__ = "promise"
    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE", index=True)
    category: str
    text: str
    promised_by: str = ""
    promised_on: date | None = None
    created_at: datetime = Field(sa_column=_ts(False))


class HandoffException(SQLModel, table=True):
    __tablename__ = "handoff_exception"
    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE", index=True)
    missing_item: str
    owner: str = ""
    due_date: date | None = None
    risk: str = ""
    status: str = "open"
    created_at: datetime = Field(sa_column=_ts(False))
    closed_at: datetime | None = Field(default=None, sa_column=_ts())


class ClosedLostReason(SQLModel, table=True):
    __tablename__ = "closed_lost_reason"
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE", primary_key=True)
    reason: str
    detail: str = ""
    recorded_by: str = ""
    recorded_at: datetime = Field(sa_column=_ts(False))


class FeedbackItem(SQLModel, table=True):
    __tablename__ = "feedback_item"
    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE", index=True)
    promise_id: int | None = Field(default=None, foreign_key="promise.id")
    category: str
    text: str = ""
    recorded_by: str = ""
    recorded_at: datetime = Field(sa_column=_ts(False))


class InspectionEvent(SQLModel, table=True):
    """Append-only, hash-chained audit log. Triggers refuse UPDATE and DELETE."""

    __tablename__ = "inspection_event"
    __table_args__ = (Index("ix_event_entity", "entity", "entity_id"),
                      Index("ix_event_session", "session_id"))
    seq: int = Field(primary_key=True)
    at: datetime = Field(sa_column=_ts(False))
    actor: str
    kind: str
    entity: str
    entity_id: int
    session_id: int | None = None
    deal_id: int | None = None
    payload: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON
    prev_hash: str
    hash: str = Field(unique=True)




# -- CRM sync and writeback (migration 0003) ------------------------------------------------
class SyncState(SQLModel, table=True):
    """One row per source: where an interrupted or incremental sync resumes."""

    __tablename__ = "sync_state"
    source: str = Field(primary_key=True)  # hubspot | salesforce
    cursor: str | None = None  # paging cursor / nextRecordsUrl of the page to fetch next
    watermark: str | None = None  # last-modified time fully synced (ISO, UTC)
    run_started_at: datetime | None = Field(default=None, sa_column=_ts())
    run_finished_at: datetime | None = Field(default=None, sa_column=_ts())
    status: str = "idle"  # idle | running | interrupted | failed
    counts: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    last_error: str = ""


class Outbox(SQLModel, table=True):
    """Writeback queue: previewed, sent in batches, retried; idempotent by key."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    source: str
    external_id: str
    kind: str  # field | note
    field: str = ""
    value: str = ""
    base_value: str | None = None  # the CRM value at the last sync (conflict check)
    status: str = "queued"  # queued | sent | failed | conflict | cancelled
    attempts: int = 0
    last_error: str = ""
    created_at: datetime = Field(sa_column=_ts(False))
    sent_at: datetime | None = Field(default=None, sa_column=_ts())


# -- closed-won readiness, deal desk, handoff (migration 0003) ------------------------------
class Approval(SQLModel, table=True):
    __tablename__ = "approval"
    __table_args__ = (UniqueConstraint("deal_id", "trigger_key", name="uq_approval_trigger"),)
    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    trigger_key: str
    approver: str = ""
    status: str = "pending"  # pending | approved | rejected
    decided_by: str = ""
    decided_at: datetime | None = Field(default=None, sa_column=_ts())
    note: str = ""
    version: int = 1


class Handoff(SQLModel, table=True):
    __tablename__ = "handoff"
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE", primary_key=True)
    tier: str = ""  # set by the manager; empty means "use the suggested tier"
    tier_set_by: str = ""
    status: str = "draft"  # draft | submitted | accepted | returned
    cs_owner: str = ""
    returned_items: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    returned_reason: str = ""
    decided_by: str = ""
    decided_at: datetime | None = Field(default=None, sa_column=_ts())
    kickoff_on: date | None = None
    version: int = 1


class HandoffStep(SQLModel, table=True):
    __tablename__ = "handoff_step"
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE", primary_key=True)
    step: str = Field(primary_key=True)
    done: bool = False
    done_by: str = ""
    done_at: datetime | None = Field(default=None, sa_column=_ts())


metadata = SQLModel.metadata
