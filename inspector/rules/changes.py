"""What changed on each deal since a moment: stage moves, amount, close date, category."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from inspector.domain import Change, ChangeSummary
from inspector.playbook import Playbook


def summarize_changes(pb: Playbook, changes: Iterable[Change], *, presorted: bool = False
                      ) -> dict[int, ChangeSummary]:
    """Per deal: net stage move, amount delta, close-date push days and count, category change.

    `presorted=True` trusts the input to be oldest first (as the store returns it)."""
    by_deal: dict[int, list[Change]] = defaultdict(list)
    for c in changes:
        by_deal[c.deal_id].append(c)
    idx = pb.stage_index
    out: dict[int, ChangeSummary] = {}
    for deal_id, items in by_deal.items():
        if not presorted:
            items.sort(key=lambda c: c.changed_at)
        stage_move = amount = pushed_days = pushes = 0
        first_cat = last_cat = None
        is_new = False
        first_stage = last_stage = None
        for c in items:
            if c.field == "created":
                is_new = True
            elif c.field == "stage":
                first_stage = first_stage or c.old
                last_stage = c.new
            elif c.field == "amount_minor":
                amount += int(c.new or 0) - int(c.old or 0)
            elif c.field == "close_date" and c.old and c.new:
                delta = (date.fromisoformat(c.new[:10]) - date.fromisoformat(c.old[:10])).days
                pushed_days += delta
                pushes += delta > 0
            elif c.field == "forecast_category":
                first_cat = first_cat if first_cat is not None else c.old
                last_cat = c.new
        if first_stage is not None and last_stage is not None:
            stage_move = idx.get(last_stage, 0) - idx.get(first_stage, 0)
        cat_from, cat_to = (first_cat, last_cat) if first_cat != last_cat else (None, None)
        out[deal_id] = ChangeSummary(deal_id, stage_move, amount, pushed_days, pushes,
                                     cat_from, cat_to, is_new, tuple(items))
    return out
