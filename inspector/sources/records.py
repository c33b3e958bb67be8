"""What every source (CSV, HubSpot, Salesforce) produces: plain, typed deal records."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import MISSING, dataclass, field, fields
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


#: DealRecord's per-row scalar fields, as RecordBatch columns (in DealRecord's order)
SCALARS = tuple(f.name for f in fields(DealRecord) if f.name != "source" and f.default_factory is MISSING)
_DEFAULTS = {f.name: f.default for f in fields(DealRecord) if f.default is not MISSING}


class RecordBatch(Sequence[DealRecord]):
    """DealRecords held column by column: what a CSV file parses into.

    A file is converted a column at a time, and a first import of it into a store inserts
    straight from these columns (`ingest.upsert_deals`) without building 100k objects. As a
    sequence it is the DealRecords themselves, built once on first use (and then the same
    objects every time, so changes made to them stay).

    `columns` maps names in SCALARS to one value per row (absent: DealRecord's default),
    `fields` evidence fields to one value per row, and `extras` (header, values) pairs whose
    non-empty values go into each record's extras.
    """

    def __init__(self, source: str, columns: dict[str, Sequence[Any]], *,
                 fields: dict[str, Sequence[Any]] | None = None,
                 extras: Sequence[tuple[str, Sequence[str]]] = ()) -> None:
        unknown = set(columns) - set(SCALARS)
        if unknown:
            raise ValueError(f"not DealRecord columns: {sorted(unknown)}")
        for need in ("external_id", "name", "stage"):
            if need not in columns:
                raise ValueError(f"a RecordBatch needs the {need} column")
        self.source = source
        self.size = len(columns["external_id"])
        for name, values in (*columns.items(), *(fields or {}).items(), *extras):
            if len(values) != self.size:
                raise ValueError(f"column {name!r} has {len(values)} values for {self.size} rows")
        self.columns = dict(columns)
        self.fields = dict(fields or {})
        self.extras = list(extras)
        self._records: list[DealRecord] | None = None

    def column(self, name: str) -> Sequence[Any]:
        """One value per row for a name in SCALARS (the default where the batch has none)."""
        values = self.columns.get(name)
        return values if values is not None else [_DEFAULTS[name]] * self.size

    @property
    def materialized(self) -> bool:
        return self._records is not None

    def records(self) -> list[DealRecord]:
        if self._records is None:
            source = self.source
            out = [DealRecord(source, *row) for row in zip(*map(self.column, SCALARS))]
            if self.fields:
                names = tuple(self.fields)
                for rec, row in zip(out, zip(*self.fields.values())):
                    rec.fields = dict(zip(names, row))
            if self.extras:
                heads = [h for h, _values in self.extras]
                for rec, row in zip(out, zip(*(values for _h, values in self.extras))):
                    rec.extras = {h: v for h, v in zip(heads, row) if v != ""}
            self._records = out
        return self._records

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i):  # type: ignore[override]
        return self.records()[i]

    def __iter__(self) -> Iterator[DealRecord]:
        return iter(self.records())
