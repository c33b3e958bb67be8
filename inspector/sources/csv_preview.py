"""A dry run's changes as rows a person reads: the import preview (TUI table, tests).

Textual-free: screens wrap every cell as plain text (the values are outside data).
"""
from __future__ import annotations

from inspector.money import format_money
from inspector.playbook import Playbook
from inspector.sources.csv_file import field_label
from inspector.sources.ingest import UpsertResult

COLUMNS = ("Change", "Id", "Deal", "Field", "Before", "After")
_LABELS = {"amount_minor": "Amount", "forecast_category": "Category"}


def _shown(playbook: Playbook, fld: str, value: str | None, currency: str) -> str:
    if value is None:
        return ""
    if fld == "amount_minor":
        try:
            return format_money(int(value), currency or "USD", cents=True)
        except ValueError:
            return value
    if fld == "stage":
        return playbook.stage_label(value)
    if fld == "forecast_category":
        return playbook.category_label(value)
    return value


def preview_rows(result: UpsertResult, playbook: Playbook, *, limit: int | None = None) -> list[tuple[str, ...]]:
    """(change, id, deal, field, before, after), one row per field that would move; the change,
    id and deal name are on a deal's first row only. A new deal lists its stage, amount and
    close date; an update lists each tracked field (stage, amount, close date, category) and
    each detail (name, account, owner, next step) that differs from the store."""
    rows: list[tuple[str, ...]] = []
    changes = result.changes_preview if limit is None else result.changes_preview[:limit]
    for ch in changes:
        kind = "create" if ch.kind == "new" else "update"
        fields = ch.fields or (("details", None, None),)
        for i, (fld, old, new) in enumerate(fields):
            head = (kind, ch.external_id, ch.name) if i == 0 else ("", "", "")
            label = _LABELS.get(fld) or field_label(fld)
            rows.append((*head, label, _shown(playbook, fld, old, ch.currency),
                         _shown(playbook, fld, new, ch.currency)))
    return rows
