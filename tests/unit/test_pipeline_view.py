"""PipelineView: filter syntax, sort by every column both ways, totals. Textual-free."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from inspector.domain import Change, ChangeSummary, DealRow, Finding
from inspector.pipeline import COLUMN_KEYS, PipelineView

TODAY = date(2026, 12, 3)


def row(id_: int, **over) -> DealRow:
    base = dict(
        id=id_, name=f"Deal {id_}", account="Acme", owner="Hiroshi Tanaka", team="APAC Growth",
        manager="Mei-Ling Zhāng", stage="discovery", amount_minor=1_000_000, currency="USD",
        close_date="2026-12-31", forecast_category="pipeline", next_step="Call",
        next_step_date="2026-12-05", created_on="2026-10-01", days_in_stage=5, close_pushes=0,
        last_activity="2026-12-01", days_since_activity=2, days_since_progress=3, status="open",
    )
    base.update(over)
    return DealRow(**base)


ROWS = [
    row(1, name="Müller & Söhne — Platform", account="Müller & Söhne GmbH", owner="Zoë Brontë",
        team="EMEA Enterprise", stage="commit", forecast_category="commit", amount_minor=12_000_000,
        currency="EUR", close_date="2026-12-20", days_in_stage=3, close_pushes=2,
        last_activity="2026-12-02"),
    row(2, name="alpha Analytics add-on", account="O'Brien Logistics", owner="José Álvarez",
        team="EMEA Enterprise", stage="commercial_review", forecast_category="best_case",
        amount_minor=900_000, close_date="2027-01-15", days_in_stage=40, last_activity="2026-11-01"),
    row(3, name="[b]Bravo[/b] Corp — pilot", account="[@click=app.quit]Click Me Inc[/]",
        owner="Zoë Brontë", team="EMEA Enterprise", stage="qualification",
        forecast_category="pipeline", amount_minor=100_000_00, close_date="",
        days_in_stage=None, last_activity=""),
    row(4, name="charlie Security pack", account="Tōkyō Components", owner="Hiroshi Tanaka",
        stage="solution_fit", forecast_category="omit", amount_minor=9_000, close_date="2026-12-04",
        days_in_stage=12, close_pushes=1, last_activity="2026-11-20"),
    row(5, name="Delta renewal", account="Acme [EMEA] Ltd.", owner="Aarav Mehta",
        stage="commit", forecast_category="commit", amount_minor=45_000_00, currency="JPY",
        close_date="2026-11-30", days_in_stage=20, close_pushes=4, last_activity="2026-12-03"),
    row(6, name="Echo cross-sell", account="Nordlys AS", owner="Aarav Mehta", stage="discovery",
        forecast_category="best_case", amount_minor=2_500_000, close_date="2027-03-01",
        days_in_stage=1, last_activity="2026-11-25"),
]

F = lambda i, code: Finding(i, code, "warn", code)  # noqa: E731
FINDINGS = {
    1: [F(1, "pushed")],
    2: [F(2, "aging"), F(2, "stale_next_step"), F(2, "missing_evidence")],
    4: [F(4, "deal_desk")],
    5: [F(5, "past_close"), F(5, "pushed"), F(5, "commit_criteria"), F(5, "no_progress")],
}
AT = datetime(2026, 12, 1, tzinfo=timezone.utc)
CHANGES = {
    1: ChangeSummary(1, stage_move=1, changes=(Change(1, "stage", "commercial_review", "commit", AT),)),
    3: ChangeSummary(3, is_new=True),
    4: ChangeSummary(4, close_pushed_days=14, pushes=1),
    6: ChangeSummary(6),  # a summary with nothing in it is not "changed"
}


@pytest.fixture
def view(playbook) -> PipelineView:
    v = PipelineView(playbook, TODAY)
    v.load(ROWS, FINDINGS, CHANGES)
    return v


def ids(items) -> list[int]:
    return [it.row.id for it in items]


# -- filter -----------------------------------------------------------------------------------


@pytest.mark.parametrize("query,expected", [
    ("", [1, 2, 3, 4, 5, 6]),
    ("   ", [1, 2, 3, 4, 5, 6]),
    ("müller", [1]),
    ("MÜLLER", [1]),
    ("logistics", [2]),  # account
    ("aarav", [5, 6]),  # rep
    ("commercial", [2]),  # stage label
    ("best", [2, 6]),  # category label
    ("zoë platform", [1]),  # all words must match
    ("zoë nothing-like-this", []),
    ("[b]bravo", [3]),  # brackets are text, not markup or a pattern
    ("[@click=app.quit]", [3]),
    ("[emea]", [5]),
])
def test_filter_words(view, query, expected):
    assert ids(view.filter(query)) == expected


@pytest.mark.parametrize("query,expected", [
    ("rep:zoë", [1, 3]),
    ("rep:ZO", [1, 3]),
    ("rep:álvarez", [2]),
    ("rep:nobody", []),
    ("team:emea", [1, 2, 3]),
    ("team:apac", [4, 5, 6]),
    ("stage:commit", [1, 5]),
    ("stage:comm", [1, 2, 5]),  # key or label prefix
    ("stage:commercial", [2]),
    ("stage:qual", [3]),
    ("stage:Solution", [4]),
    ("stage:nope", []),
    ("cat:commit", [1, 5]),
    ("cat:best", [2, 6]),
    ("cat:best_case", [2, 6]),
    ("category:omit", [4]),
    ("cat:pipe", [3]),
    ("has:stale", [2]),
    ("has:past", [5]),
    ("has:pushed", [1, 5]),
    ("has:push", [1, 5]),
    ("has:evidence", [2]),
    ("has:commit", [5]),
    ("has:desk", [4]),
    ("has:progress", [5]),
    ("has:aging", [2]),
    ("has:quiet", []),
    ("is:changed", [1, 3, 4]),
    ("is:flagged", [1, 2, 4, 5]),
    ("is:new", [3]),
])
def test_filter_keys(view, query, expected):
    assert ids(view.filter(query)) == expected


@pytest.mark.parametrize("query,expected", [
    ("rep:zoë is:changed", [1, 3]),
    ("rep:zoë is:flagged", [1]),
    ("team:emea cat:commit has:pushed", [1]),
    ("is:flagged is:changed", [1, 4]),
    ("stage:commit aarav", [5]),
    ("cat:best -", [2, 6]),  # punctuation is a plain word ("add-on", "cross-sell")
    ("cat:best (", []),
])
def test_filter_combined(view, query, expected):
    assert ids(view.filter(query)) == expected


def test_filter_result_is_independent_of_items(view):
    got = view.filter("")
    got.clear()
    assert len(view.filter("")) == 6


def test_unknown_key_is_a_word(playbook):
    v = PipelineView(playbook, TODAY)
    v.load([row(1, name="Ratio 3:1 deal"), row(2, name="Other")])
    assert ids(v.filter("3:1")) == [1]
    assert ids(v.filter("foo:bar")) == []


def test_cells_are_single_line_and_safe(playbook):
    v = PipelineView(playbook, TODAY)
    v.load([row(1, name="Line one\nline two\tTab", account="A\x1b]52;c;UFdORUQ=\x07B",
                owner="ACME\u202eVOD")])
    cells = v.items[0].cells
    assert cells[1] == "Line one line two Tab"
    assert cells[2] == "A\ufffd]52;c;UFdORUQ=\ufffdB"
    assert cells[3] == "ACME\ufffdVOD"
    assert ids(v.filter("two tab")) == [1]


def test_cells_format(view):
    cells = dict(zip(COLUMN_KEYS, view.by_id[1].cells))
    assert cells["name"] == "Müller & Söhne — Platform"
    assert cells["amount"] == "€120,000"
    assert cells["stage"] == "Commit"
    assert cells["category"] == "Commit"
    assert cells["close"] == "2026-12-20"
    assert cells["pushes"] == "2"
    assert cells["changes"] == "↑"
    assert "pushed" in cells["findings"]
    cells3 = dict(zip(COLUMN_KEYS, view.by_id[3].cells))
    assert cells3["changes"] == "★" and cells3["days"] == "" and cells3["pushes"] == ""
    assert cells3["findings"] == ""


# -- sort -------------------------------------------------------------------------------------


def _sorted(view, col, desc=False) -> list[int]:
    return ids(view.sort(view.filter(""), col, desc))


@pytest.mark.parametrize("col,expected", [
    ("name", [3, 2, 4, 5, 6, 1]),  # literal, case-insensitive: "[b]bravo" < alpha < charlie < Delta
    ("account", [3, 5, 1, 6, 2, 4]),
    ("owner", [5, 6, 4, 2, 1, 3]),
    ("stage", [3, 6, 4, 2, 1, 5]),  # funnel order, not alphabetical
    ("amount", [4, 2, 6, 5, 3, 1]),  # numeric, not text
    ("days", [3, 6, 1, 4, 5, 2]),  # None counts as 0
    ("pushes", [2, 3, 6, 4, 1, 5]),
    ("findings", [3, 6, 1, 4, 2, 5]),
])
def test_sort_each_column(view, col, expected):
    assert _sorted(view, col) == expected


# What each column means, independently of the view: ascending must not decrease.
MEANING = {
    "name": lambda r: r.name.lower(),
    "account": lambda r: r.account.lower(),
    "owner": lambda r: r.owner.lower(),
    "stage": lambda r: ["qualification", "discovery", "solution_fit", "commercial_review",
                        "commit"].index(r.stage),
    "amount": lambda r: r.amount_minor,
    "days": lambda r: r.days_in_stage or 0,
    "pushes": lambda r: r.close_pushes,
    "findings": lambda r: len(FINDINGS.get(r.id, ())),
}


@pytest.mark.parametrize("col", sorted(MEANING))
def test_sort_both_directions_monotonic(view, col):
    by_id = {r.id: r for r in ROWS}
    asc = [MEANING[col](by_id[i]) for i in _sorted(view, col)]
    desc = [MEANING[col](by_id[i]) for i in _sorted(view, col, True)]
    assert asc == sorted(asc)
    assert desc == sorted(desc, reverse=True)
    assert asc != desc


def test_sort_descending_is_reverse_for_distinct_keys(view):
    for col in ("name", "account", "stage", "amount", "close", "activity"):
        asc = _sorted(view, col)
        desc = _sorted(view, col, True)
        if col == "stage":  # two commit deals tie
            assert desc[:2] == [1, 5] and desc[2:] == [2, 4, 6, 3]
            continue
        assert desc == asc[::-1], col


def test_sort_close_dates_chronological_blank_last(view):
    assert _sorted(view, "close") == [5, 4, 1, 2, 6, 3]
    assert _sorted(view, "close", True)[1:] == [6, 2, 1, 4, 5]


def test_sort_last_activity(view):
    # no activity at all is the oldest
    assert _sorted(view, "activity") == [3, 2, 4, 6, 1, 5]


def test_sort_changes_puts_changed_first_descending(view):
    desc = _sorted(view, "changes", True)
    changed = {1, 3, 4}
    assert set(desc[:3]) == changed
    asc = _sorted(view, "changes")
    assert set(asc[3:]) == changed


def test_sort_category_groups(view, playbook):
    for desc in (False, True):
        order = [view.by_id[i].row.forecast_category for i in _sorted(view, "category", desc)]
        groups = [c for j, c in enumerate(order) if j == 0 or order[j - 1] != c]
        assert len(groups) == len(set(groups)) == 4  # each category in one block
    asc = [view.by_id[i].row.forecast_category for i in _sorted(view, "category")]
    desc = [view.by_id[i].row.forecast_category for i in _sorted(view, "category", True)]
    assert list(dict.fromkeys(desc)) == list(dict.fromkeys(asc))[::-1]


def test_sort_none_keeps_order_and_every_column_sorts(view):
    assert _sorted(view, None) == [1, 2, 3, 4, 5, 6]
    for col in COLUMN_KEYS:
        assert sorted(_sorted(view, col)) == [1, 2, 3, 4, 5, 6], col
        assert sorted(_sorted(view, col, True)) == [1, 2, 3, 4, 5, 6], col


def test_view_combines_filter_and_sort(view):
    cells, keys = view.view("team:emea", "amount", True)
    assert keys == [1, 3, 2]
    assert [c[1] for c in cells] == [view.by_id[k].cells[1] for k in keys]


# -- totals -----------------------------------------------------------------------------------


def test_totals_all(view):
    t = view.totals([1, 2, 3, 4, 5, 6])
    assert t["count"] == 6
    assert t["total"] == sum(r.amount_minor for r in ROWS)
    assert t["commit"] == 12_000_000 + 45_000_00
    assert t["best_case"] == 900_000 + 2_500_000
    assert t["pipeline"] == 100_000_00
    assert t["flagged"] == 4
    assert t["changed"] == 3


def test_totals_subset_and_empty(view):
    t = view.totals(ids(view.filter("team:emea")))
    assert (t["count"], t["commit"], t["best_case"], t["pipeline"]) == (3, 12_000_000, 900_000, 100_000_00)
    assert t["flagged"] == 2 and t["changed"] == 2
    empty = view.totals([])
    assert empty == {"count": 0, "total": 0, "commit": 0, "best_case": 0, "pipeline": 0,
                     "flagged": 0, "changed": 0}


def test_totals_unknown_category_counts_in_total_only(playbook):
    v = PipelineView(playbook, TODAY)
    v.load([row(1, forecast_category="upside", amount_minor=700), row(2, amount_minor=300)])
    t = v.totals([1, 2])
    assert t["total"] == 1000 and t["pipeline"] == 300 and t["commit"] == 0 and t["best_case"] == 0
    assert v.items[0].cells[7] == "upside"


def test_a_later_loading_phase_reuses_the_search_text_and_filters_the_same(playbook):
    """Each loading phase builds a new view over the same rows; the search text of a row is
    built once (memory at 100k rows), and a row that changed gets its own again."""
    first = PipelineView(playbook, TODAY)
    first.load(ROWS)
    findings = {2: [Finding(2, "aging", "warn", "40 days in Commercial review (limit 21)")]}
    second = PipelineView(playbook, TODAY)
    second.load(ROWS, findings, previous=first)
    assert all(second.by_id[r.id].hay is first.by_id[r.id].hay for r in ROWS)
    assert [it.row.id for it in second.filter("zoë")] == [it.row.id for it in first.filter("zoë")]
    assert [it.row.id for it in second.filter("has:aging")] == [2]
    renamed = [row(1, name="Renamed deal")] + ROWS[1:]
    third = PipelineView(playbook, TODAY)
    third.load(renamed, previous=second)
    assert [it.row.id for it in third.filter("renamed")] == [1]
    assert third.by_id[2].hay is second.by_id[2].hay


def test_findings_of_many_deals_share_their_message_text(playbook):
    from inspector.rules import evaluate_deal

    late = [row(i, close_date="2026-11-01", close_pushes=3) for i in range(10, 20)]
    found = [evaluate_deal(playbook, r, None, TODAY) for r in late]
    past = [f for fs in found for f in fs if f.code == "past_close"]
    assert len(past) == 10 and past[0].message == "Close date 2026-11-01 is in the past"
    assert all(f.message is past[0].message for f in past)  # one string, ten findings
    assert {f.deal_id for f in past} == set(range(10, 20))
