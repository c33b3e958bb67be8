"""The playbook: stages, evidence, questions, rules and thresholds, loaded from TOML.

`load_playbook(path)` returns a validated, immutable `Playbook` or raises `PlaybookError`
whose `problems` name each key path and what is wrong with it.
"""
from __future__ import annotations

import tomllib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: Deal fields that evidence, requirements and triggers may name (columns of the deal table).
DEAL_FIELDS = frozenset({
    "name", "account", "owner", "amount_minor", "close_date", "next_step", "next_step_date",
    "business_problem", "buyer_role", "agreed_value", "use_case", "success_criteria",
    "decision_process", "economic_buyer", "champion", "executive_sponsor", "stakeholders",
    "mutual_close_plan", "contract_scope", "implementation_notes", "implementation_complexity",
    "products", "contract_signed_on", "contract_start", "contract_end", "renewal_date",
    "billing_entity", "payment_terms", "discount_pct", "discount_approved_by", "custom_terms",
    "legal_exception", "product_commitment", "scope_change", "partner_margin_pct", "term_months",
    "bookings_attribution", "revenue_type", "expansion_signals", "cs_owner", "kickoff_date",
    "timeline_commitments", "billing_caveats", "first_customer_action",
})
SOURCES = frozenset({"risks", "promises"})
CHECKS = frozenset({"close_date_realistic", "next_step_current", "stage_supported",
                    "no_open_high_risk", "amount_scoped"})
OPS = frozenset({">", ">=", "<", "<=", "==", "!=", "is_true", "not_in"})


class PlaybookError(Exception):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Labelled(_M):
    key: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)


class Stage(Labelled):
    kind: Literal["open", "won", "lost"]
    probability: int = Field(ge=0, le=100)
    aging_limit_days: int = Field(ge=0)
    exit_evidence: tuple[str, ...] = ()
    description: str = ""


class Evidence(Labelled):
    fields: tuple[str, ...] = ()
    progress: tuple[str, ...] = ()
    source: Literal["risks", "promises"] | None = None

    @model_validator(mode="after")
    def _something_establishes_it(self) -> "Evidence":
        if not (self.fields or self.progress or self.source):
            raise ValueError("needs at least one of fields, progress or source")
        return self


class Category(Labelled):
    bucket: Literal["commit", "best_case", "pipeline", "omit"]


class Criterion(Labelled):
    check: str


class Question(_M):
    key: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    text: str = Field(min_length=1)
    evidence: tuple[str, ...] = Field(min_length=1)


class Trigger(Labelled):
    field: str
    op: str
    value: Any = None
    approver: str = Field(min_length=1)


class Requirement(Labelled):
    fields: tuple[str, ...] = ()
    source: Literal["risks", "promises"] | None = None

    @model_validator(mode="after")
    def _fields_or_source(self) -> "Requirement":
        if not (self.fields or self.source):
            raise ValueError("needs fields or source")
        return self


class Tier(Labelled):
    best_for: str = ""
    requirement: str = ""
    steps: tuple[str, ...] = ()
    min_amount: int | None = Field(default=None, ge=0)
    complexity: tuple[str, ...] = ()
    min_open_high_risks: int | None = Field(default=None, ge=1)


class LostReason(Labelled):
    requires_detail: bool = False


class Thresholds(_M):
    stale_next_step_days: int = Field(ge=1)
    stale_activity_days: int = Field(ge=1)
    progress_window_days: int = Field(ge=1)
    min_activities_for_warning: int = Field(ge=1)
    large_deal_amount: int = Field(ge=0)
    close_date_push_warn: int = Field(ge=1)
    changes_lookback_days: int = Field(ge=1)


class Playbook(_M):
    name: str
    version: int
    thresholds: Thresholds
    stages: tuple[Stage, ...] = Field(min_length=2)
    evidence: tuple[Evidence, ...]
    progress_types: tuple[Labelled, ...] = Field(min_length=1)
    activity_kinds: tuple[str, ...] = Field(min_length=1)
    forecast_categories: tuple[Category, ...] = Field(min_length=1)
    commit_criteria: tuple[Criterion, ...]
    questions: tuple[Question, ...] = Field(min_length=1)
    risk_severities: tuple[str, ...] = Field(min_length=1)
    risk_types: tuple[Labelled, ...] = Field(min_length=1)
    deal_desk_triggers: tuple[Trigger, ...] = ()
    closed_won_requirements: tuple[Requirement, ...] = ()
    finance_fields: tuple[Requirement, ...] = ()
    handoff_tiers: tuple[Tier, ...] = Field(min_length=1)
    handoff_steps: tuple[Labelled, ...] = ()
    promise_categories: tuple[Labelled, ...] = ()
    acceptance_checklist: tuple[Requirement, ...] = ()
    handoff_packet: tuple[Requirement, ...] = ()
    closed_lost_reasons: tuple[LostReason, ...] = Field(min_length=1)
    feedback_categories: tuple[Labelled, ...] = ()
    crm_stage_map: dict[str, str] = {}
    crm_category_map: dict[str, str] = {}

    # -- lookups -------------------------------------------------------------------------
    @cached_property
    def stage_by_key(self) -> dict[str, Stage]:
        return {s.key: s for s in self.stages}

    @cached_property
    def stage_index(self) -> dict[str, int]:
        return {s.key: i for i, s in enumerate(self.stages)}

    @cached_property
    def open_stages(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.kind == "open")

    @cached_property
    def evidence_by_key(self) -> dict[str, Evidence]:
        return {e.key: e for e in self.evidence}

    @cached_property
    def category_by_key(self) -> dict[str, Category]:
        return {c.key: c for c in self.forecast_categories}

    @cached_property
    def progress_label(self) -> dict[str, str]:
        return {p.key: p.label for p in self.progress_types}

    @cached_property
    def risk_label(self) -> dict[str, str]:
        return {r.key: r.label for r in self.risk_types}

    def stage_label(self, key: str | None) -> str:
        stage = self.stage_by_key.get(key or "")
        return stage.label if stage else (key or "")

    def category_label(self, key: str | None) -> str:
        cat = self.category_by_key.get(key or "")
        return cat.label if cat else (key or "")

    def map_stage(self, crm_value: str) -> str | None:
        """A CRM stage name or id to a playbook stage key (case-insensitive), or None."""
        v = crm_value.strip().lower()
        if v in self.stage_by_key:
            return v
        return self._stage_map_lower.get(v)

    def map_category(self, crm_value: str) -> str | None:
        v = crm_value.strip().lower()
        if v in self.category_by_key:
            return v
        return self._category_map_lower.get(v)

    @cached_property
    def _stage_map_lower(self) -> dict[str, str]:
        out = {s.label.lower(): s.key for s in self.stages}
        out.update({k.lower(): v for k, v in self.crm_stage_map.items()})
        return out

    @cached_property
    def _category_map_lower(self) -> dict[str, str]:
        out = {c.label.lower(): c.key for c in self.forecast_categories}
        out.update({k.lower(): v for k, v in self.crm_category_map.items()})
        return out


def _cross_check(pb: Playbook) -> list[str]:
    """References between tables: each problem as 'key.path: what is wrong'."""
    problems: list[str] = []
    evidence = set(pb.evidence_by_key)
    progress = {p.key for p in pb.progress_types}
    stage_keys = set(pb.stage_by_key)
    cats = set(pb.category_by_key)
    steps = {s.key for s in pb.handoff_steps}

    def dupes(name: str, items: tuple) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.key in seen:
                problems.append(f"{name}[{i}].key: duplicate key {item.key!r}")
            seen.add(item.key)

    for name in ("stages", "evidence", "progress_types", "forecast_categories", "commit_criteria",
                 "questions", "risk_types", "deal_desk_triggers", "closed_won_requirements",
                 "finance_fields", "handoff_tiers", "handoff_steps", "promise_categories",
                 "acceptance_checklist", "handoff_packet", "closed_lost_reasons",
                 "feedback_categories"):
        dupes(name, getattr(pb, name))
    if not any(s.kind == "won" for s in pb.stages):
        problems.append("stages: needs one stage with kind = \"won\"")
    if not any(s.kind == "lost" for s in pb.stages):
        problems.append("stages: needs one stage with kind = \"lost\"")
    for i, s in enumerate(pb.stages):
        for j, ev in enumerate(s.exit_evidence):
            if ev not in evidence:
                problems.append(f"stages[{i}].exit_evidence[{j}]: unknown evidence {ev!r}")
    for i, e in enumerate(pb.evidence):
        for j, f in enumerate(e.fields):
            if f not in DEAL_FIELDS:
                problems.append(f"evidence[{i}].fields[{j}]: unknown deal field {f!r}")
        for j, p in enumerate(e.progress):
            if p not in progress:
                problems.append(f"evidence[{i}].progress[{j}]: unknown progress type {p!r}")
    for i, c in enumerate(pb.commit_criteria):
        if c.check.startswith("evidence:"):
            if c.check.removeprefix("evidence:") not in evidence:
                problems.append(f"commit_criteria[{i}].check: unknown evidence in {c.check!r}")
        elif c.check not in CHECKS:
            problems.append(f"commit_criteria[{i}].check: unknown check {c.check!r} "
                            f"(one of evidence:<key>, {', '.join(sorted(CHECKS))})")
    for i, q in enumerate(pb.questions):
        for j, ev in enumerate(q.evidence):
            if ev not in evidence:
                problems.append(f"questions[{i}].evidence[{j}]: unknown evidence {ev!r}")
    for i, t in enumerate(pb.deal_desk_triggers):
        if t.field not in DEAL_FIELDS:
            problems.append(f"deal_desk_triggers[{i}].field: unknown deal field {t.field!r}")
        if t.op not in OPS:
            problems.append(f"deal_desk_triggers[{i}].op: unknown operator {t.op!r} "
                            f"(one of {', '.join(sorted(OPS))})")
        elif t.op == "not_in" and not isinstance(t.value, list):
            problems.append(f"deal_desk_triggers[{i}].value: 'not_in' needs a list")
        elif t.op not in ("is_true", "not_in") and t.value is None:
            problems.append(f"deal_desk_triggers[{i}].value: operator {t.op!r} needs a value")
    for name in ("closed_won_requirements", "finance_fields", "acceptance_checklist",
                 "handoff_packet"):
        for i, r in enumerate(getattr(pb, name)):
            for j, f in enumerate(r.fields):
                if f not in DEAL_FIELDS:
                    problems.append(f"{name}[{i}].fields[{j}]: unknown deal field {f!r}")
    for i, t in enumerate(pb.handoff_tiers):
        for j, st in enumerate(t.steps):
            if st not in steps:
                problems.append(f"handoff_tiers[{i}].steps[{j}]: unknown handoff step {st!r}")
    last = pb.handoff_tiers[-1]
    if last.min_amount is not None or last.complexity or last.min_open_high_risks is not None:
        problems.append(f"handoff_tiers[{len(pb.handoff_tiers) - 1}]: the last tier must have "
                        "no conditions (it is the default)")
    for k, v in pb.crm_stage_map.items():
        if v not in stage_keys:
            problems.append(f"crm_stage_map.{k!r}: unknown stage {v!r}")
    for k, v in pb.crm_category_map.items():
        if v not in cats:
            problems.append(f"crm_category_map.{k!r}: unknown forecast category {v!r}")
    return problems


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_playbook(text: str, source: str = "playbook") -> Playbook:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlaybookError(source, [f"not valid TOML: {exc}"]) from None
    try:
        pb = Playbook.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "missing":
                msg = "required key is missing"
            problems.append(f"{_loc(err['loc'])}: {msg}")
        raise PlaybookError(source, problems) from None
    problems = _cross_check(pb)
    if problems:
        raise PlaybookError(source, problems)
    return pb


def default_playbook_text() -> str:
    return (resources.files("inspector.data") / "playbook.toml").read_text(encoding="utf-8")


def load_playbook(path: Path | str | None = None) -> Playbook:
    """The playbook at `path`, or the bundled default."""
    if path is None:
        return parse_playbook(default_playbook_text(), "playbook.toml (built in)")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(str(p), [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise PlaybookError(str(p), ["not UTF-8 text"]) from None
    return parse_playbook(text, str(p))


def playbook_to_dict(pb: Playbook) -> dict[str, Any]:
    return pb.model_dump(mode="json", exclude_none=True)
