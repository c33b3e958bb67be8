"""The pipeline list as a view model: formatted cells, filter-as-you-type, sort. Textual-free.

Cells and search text are built once per load; a keystroke only filters and sorts tuples
already in memory, so 100k deals filter without touching the database.

Filter syntax (all terms must match, case-insensitive):
  words        match deal, account, rep, stage or category text
  rep:NAME     rep name contains NAME          stage:KEY   stage key or label starts with KEY
  cat:KEY      rep's forecast category          team:NAME   team contains NAME
  has:CODE     has a finding (past, pushed, stale, aging, quiet, progress, evidence, commit, desk)
  is:changed   changed since the last inspection; is:flagged has findings; is:new new deal
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from inspector.domain import ChangeSummary, DealRow, Finding
from inspector.money import format_money
from inspector.playbook import Playbook
from inspector.text import one_line


@dataclass(frozen=True)
class ColumnSpec:
    key: str
    label: str
    width: int
    align: str = "left"


COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("changes", "Δ", 4),
    ColumnSpec("name", "Deal", 30),
    ColumnSpec("account", "Account", 16),
    ColumnSpec("owner", "Rep", 15),
    ColumnSpec("stage", "Stage", 12),
    ColumnSpec("amount", "Amount", 10, "right"),
    ColumnSpec("close", "Close", 10),
    ColumnSpec("category", "Category", 9),
    ColumnSpec("days", "Days", 4, "right"),
    ColumnSpec("pushes", "Push", 4, "right"),
    ColumnSpec("activity", "Last act.", 10),
    ColumnSpec("findings", "Findings", 22),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)

FINDING_ALIASES = {
    "past": "past_close", "pushed": "pushed", "push": "pushed", "stale": "stale_next_step",
    "aging": "aging", "quiet": "quiet", "progress": "no_progress", "evidence": "missing_evidence",
    "commit": "commit_criteria", "desk": "deal_desk",
}
FINDING_SHORT = {
    "past_close": "past close", "pushed": "pushed", "stale_next_step": "stale step",
    "aging": "aging", "quiet": "quiet", "no_progress": "no progress",
    "missing_evidence": "evidence", "commit_criteria": "commit?", "deal_desk": "deal desk",
}


def change_badges(ch: ChangeSummary | None) -> str:
    """Compact change markers: ★ new, ↑/↓ stage, $+/$- amount, » pushed/« pulled in, ◆ category."""
    if ch is None:
        return ""
    out = []
    if ch.is_new:
        out.append("★")
    if ch.stage_move > 0:
        out.append("↑")
    elif ch.stage_move < 0:
        out.append("↓")
    if ch.amount_delta > 0:
        out.append("$+")
    elif ch.amount_delta < 0:
        out.append("$-")
    if ch.close_pushed_days > 0:
        out.append("»")
    elif ch.close_pushed_days < 0:
        out.append("«")
    if ch.category_to:
        out.append("◆")
    return "".join(out)


class Item:
    """One pipeline line. It is also the grid's row: cells are formatted on first access, so
    loading 100k deals builds no strings until a row scrolls into view."""

    __slots__ = ("row", "findings", "change", "hay", "tally", "_cells", "_view")

    def __init__(self, row: DealRow, findings: tuple[Finding, ...], change: ChangeSummary | None,
                 hay: str, view: "PipelineView", bucket: str | None = None) -> None:
        self.row, self.findings, self.change, self.hay = row, findings, change, hay
        #: what the summary line adds up: (amount, category bucket, flagged, changed)
        self.tally = (row.amount_minor, bucket, bool(findings), bool(change is not None and change.any))
        self._cells: tuple[str, ...] | None = None
        self._view = view

    @property
    def cells(self) -> tuple[str, ...]:
        if self._cells is None:
            self._cells = self._view.format_cells(self)
        return self._cells

    def __len__(self) -> int:
        return len(COLUMNS)

    def __getitem__(self, index: int) -> str:
        return self.cells[index]

    def __iter__(self):
        return iter(self.cells)


class PipelineView:
    def __init__(self, playbook: Playbook, today: date) -> None:
        self.playbook = playbook
        self.today = today
        self.items: list[Item] = []
        self.by_id: dict[int, Item] = {}
        self._sorted: dict[tuple[str | None, bool], list[Item]] = {}
        self._sorted_keys: dict[tuple[str | None, bool], list[int]] = {}
        self._all_totals: dict[str, int] | None = None
        self._stage_label = {s.key: s.label for s in playbook.stages}
        self._cat_label = {c.key: c.label for c in playbook.forecast_categories}

    def load(self, rows: Sequence[DealRow],
             findings: Mapping[int, Sequence[Finding]] | None = None,
             changes: Mapping[int, ChangeSummary] | None = None, *,
             previous: "PipelineView | None" = None) -> None:
        """`previous`: a view of the same rows (an earlier loading phase) whose search text
        is reused rather than built again (100k rows: ~12 MiB per view)."""
        stage_label, cat_label = self._stage_label, self._cat_label
        bucket_of = {c.key: c.bucket for c in self.playbook.forecast_categories}
        findings = findings or {}
        changes = changes or {}
        before = previous.by_id if previous is not None else {}
        no_findings: tuple[Finding, ...] = ()
        items = []
        for r in rows:
            old = before.get(r.id)
            if old is not None and old.row is r:
                hay = old.hay
            else:
                hay = "\x00".join((r.name, r.account, r.owner, stage_label.get(r.stage, r.stage),
                                   cat_label.get(r.forecast_category, r.forecast_category))).lower()
            fs = findings.get(r.id)
            items.append(Item(r, tuple(fs) if fs else no_findings, changes.get(r.id), hay, self,
                              bucket_of.get(r.forecast_category)))
        self.items = items
        self.by_id = {it.row.id: it for it in items}
        self._sorted = {}
        self._sorted_keys = {}
        self._all_totals = None

    def format_cells(self, it: Item) -> tuple[str, ...]:
        r = it.row
        return (
            change_badges(it.change), one_line(r.name), one_line(r.account), one_line(r.owner),
            self._stage_label.get(r.stage, r.stage), format_money(r.amount_minor, r.currency),
            r.close_date, self._cat_label.get(r.forecast_category, r.forecast_category),
            "" if r.days_in_stage is None else str(r.days_in_stage),
            str(r.close_pushes) if r.close_pushes else "", r.last_activity,
            ", ".join(FINDING_SHORT.get(f.code, f.code) for f in it.findings),
        )

    # -- filter ------------------------------------------------------------------------------
    def filter(self, query: str, items: list[Item] | None = None) -> list[Item]:
        source = self.items if items is None else items
        terms = query.lower().split()
        if not terms:
            return list(source)
        preds = []
        words = []
        pb = self.playbook
        for t in terms:
            key, sep, val = t.partition(":")
            if not sep or not val:
                words.append(t)
            elif key == "rep":
                preds.append(lambda it, v=val: v in it.row.owner.lower())
            elif key == "team":
                preds.append(lambda it, v=val: v in it.row.team.lower())
            elif key == "stage":
                keys = {s.key for s in pb.stages if s.key.startswith(val) or s.label.lower().startswith(val)}
                preds.append(lambda it, ks=keys: it.row.stage in ks)
            elif key in ("cat", "category"):
                keys = {c.key for c in pb.forecast_categories
                        if c.key.startswith(val) or c.label.lower().startswith(val)}
                preds.append(lambda it, ks=keys: it.row.forecast_category in ks)
            elif key == "has":
                code = FINDING_ALIASES.get(val, val)
                preds.append(lambda it, c=code: any(f.code.startswith(c) for f in it.findings))
            elif key == "is" and val == "changed":
                preds.append(lambda it: it.change is not None and it.change.any)
            elif key == "is" and val == "flagged":
                preds.append(lambda it: bool(it.findings))
            elif key == "is" and val == "new":
                preds.append(lambda it: it.change is not None and it.change.is_new)
            else:
                words.append(t)
        out = source
        for w in words:
            out = [it for it in out if w in it.hay]
        for pred in preds:
            out = [it for it in out if pred(it)]
        return out

    # -- sort --------------------------------------------------------------------------------
    def sorted_items(self, column: str | None, descending: bool = False) -> list[Item]:
        """All items in this order (cached: a keystroke filters an already sorted list)."""
        key = (column, descending)
        if key not in self._sorted:
            self._sorted[key] = self.sort(self.items, column, descending)
        return self._sorted[key]

    def sort(self, items: list[Item], column: str | None, descending: bool = False) -> list[Item]:
        if not column:
            return list(items)
        stage_idx = self.playbook.stage_index
        keyfunc = {
            "changes": lambda it: change_badges(it.change),
            "name": lambda it: it.row.name.lower(),
            "account": lambda it: it.row.account.lower(),
            "owner": lambda it: it.row.owner.lower(),
            "stage": lambda it: stage_idx.get(it.row.stage, 99),
            "amount": lambda it: it.row.amount_minor,
            "close": lambda it: it.row.close_date or "9999",
            "category": lambda it: it.row.forecast_category,
            "days": lambda it: it.row.days_in_stage or 0,
            "pushes": lambda it: it.row.close_pushes,
            "activity": lambda it: it.row.last_activity or "",
            "findings": lambda it: len(it.findings),
        }[column]
        return sorted(items, key=keyfunc, reverse=descending)

    def view(self, query: str, column: str | None, descending: bool) -> tuple[list[Item], list[int]]:
        """Rows (Item is row-like) and their keys, filtered by `query`, in the given order."""
        ordered = self.sorted_items(column, descending)
        if not query.split():  # no filter: the cached order and its keys, no copies
            keys = self._sorted_keys.get((column, descending))
            if keys is None:
                keys = self._sorted_keys[(column, descending)] = [it.row.id for it in ordered]
            return ordered, keys
        items = self.filter(query, ordered)
        return items, [it.row.id for it in items]

    def totals(self, ids: Iterable[int]) -> dict[str, int]:
        """Sum of amounts by rep category bucket (minor units, mixed currencies summed as-is).

        Each item carries its tally from load time; the unfiltered view's totals are kept, so
        clearing the filter on 100k deals adds nothing up again."""
        by_id = self.by_id
        return self.totals_of([by_id[i] for i in ids])

    def totals_of(self, items: Sequence[Item]) -> dict[str, int]:
        """`totals` of items of this view (what `view` returned), without looking ids up."""
        every = len(items) == len(self.items)  # a subset of the same count is all of them
        if every and self._all_totals is not None:
            return dict(self._all_totals)
        sums = {"commit": 0, "best_case": 0, "pipeline": 0}
        total = flagged = changed = 0
        for it in items:
            amount, bucket, flag, change = it.tally
            total += amount
            if bucket in sums:
                sums[bucket] += amount
            flagged += flag
            changed += change
        out = {"count": len(items), "total": total, **sums, "flagged": flagged, "changed": changed}
        if every:
            self._all_totals = dict(out)
        return out


# -- gathering (runs in a worker) -------------------------------------------------------------
def quick_findings(playbook: Playbook, rows: Sequence[DealRow], today: date) -> dict[int, list[Finding]]:
    from inspector.rules import evaluate_deal

    return {r.id: fs for r in rows if (fs := evaluate_deal(playbook, r, None, today))}


def full_findings(store, playbook: Playbook, rows: Sequence[DealRow], today: date,
                  inspection_facts: Mapping[int, dict] | None = None) -> dict[int, list[Finding]]:
    """All findings, including evidence, commit criteria, progress and deal desk."""
    from datetime import datetime, time, timedelta, timezone

    from inspector.rules import DealFacts, evaluate_deal

    by_id = {r.id: r for r in rows}
    progress = store.progress_types()
    risks = store.open_risk_counts()
    risk_any = store.risk_deal_ids()
    promises = store.promise_counts()
    approved = store.approved_triggers()  # approved deal-desk triggers do not fire
    since = datetime.combine(today - timedelta(days=playbook.thresholds.progress_window_days),
                             time(0), tzinfo=timezone.utc)
    acts = store.activity_counts_since(since)
    extra = inspection_facts or {}
    no_types: frozenset[str] = frozenset()
    found: dict[int, list[Finding]] = {}

    def check(r: DealRow, fields: dict[str, Any]) -> None:
        facts = DealFacts(
            fields=fields, progress_types=progress.get(r.id, no_types),
            risks_recorded=int(r.id in risk_any), open_high_risks=risks.get(r.id, (0, 0))[1],
            promises=promises.get(r.id, 0), activities_in_window=acts.get(r.id, 0),
            **{"approvals": approved.get(r.id, frozenset()), **extra.get(r.id, {})})
        fs = evaluate_deal(playbook, r, facts, today)
        if fs:
            found[r.id] = fs

    # open deals' evidence fields are streamed and checked as they come, so 100k deals' fields
    # are never held at once; deals no longer open (a session's won or lost deals) have none
    seen: set[int] = set()
    for deal_id, fields in store.iter_evidence_presence({t.field for t in playbook.deal_desk_triggers}):
        r = by_id.get(deal_id)
        if r is not None:
            seen.add(deal_id)
            check(r, fields)
    for r in rows:
        if r.id not in seen:
            check(r, {})
    return {r.id: found[r.id] for r in rows if r.id in found}
