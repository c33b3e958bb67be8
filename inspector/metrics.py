"""RevOps governance metrics, computed in SQL on the store (SQLite and PostgreSQL alike).

Each metric is defined once, by a *base* query that yields one row per deal (or per deal
and bucket) in the scope, and an aggregate over it that runs in the database. The same base
query gives the drill-down: the deals behind a table row or a chart bar are the base rows of
that bucket. Every metric carries a one-line definition, shown in the UI and in reports.

Date arithmetic differs per dialect; it lives in `SqlDates` and nowhere else.

Amounts add minor units at face value (mixed currencies are not converted); reports say so.
"""
from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, text

from inspector.money import format_compact
from inspector.playbook import Playbook
from inspector.storage.repo import Store, read_date

__all__ = ["Scope", "MetricResult", "DrillDeal", "DEFINITIONS", "METRIC_KEYS", "DASHBOARD_KEYS",
           "REPORT_KEYS", "SqlDates", "parse_period", "compute", "compute_all", "drill",
           "drill_top", "compute_with_top", "filter_options"]


# -- dialect helpers ---------------------------------------------------------------------------
class SqlDates:
    """The few date expressions whose SQL differs between SQLite and PostgreSQL.

    Arguments are SQL expressions (trusted: column names and bind parameters only).
    Dates compare and sort the same on both backends (SQLite keeps ISO text).
    """

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def day(self, expr: str) -> str:
        """A DATE column, ISO date text or date parameter as a date."""
        return f"CAST({expr} AS DATE)" if self.pg else f"date({expr})"

    def ts_day(self, expr: str) -> str:
        """The UTC calendar day of a timestamp column (independent of the session time zone)."""
        return f"CAST(({expr} AT TIME ZONE 'UTC') AS DATE)" if self.pg else f"date({expr})"

    def days(self, later: str, earlier: str) -> str:
        """Whole days from `earlier` to `later` (both date expressions from `day`/`ts_day`)."""
        if self.pg:
            return f"({later} - {earlier})"
        return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"

    def week(self, day_expr: str) -> str:
        """The Monday of the ISO week holding the date expression."""
        if self.pg:
            return f"({day_expr} - CAST(EXTRACT(ISODOW FROM {day_expr}) AS INTEGER) + 1)"
        return f"date({day_expr}, 'weekday 0', '-6 days')"

    def add_days(self, day_expr: str, n: int) -> str:
        n = int(n)
        return f"({day_expr} + {n})" if self.pg else f"date({day_expr}, '{n:+d} days')"


# -- scope and periods -------------------------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """What a metric looks at: the period [start, end), optional team/manager, and today."""

    start: date
    end: date  # exclusive
    today: date
    team: str | None = None
    manager: str | None = None
    label: str = ""

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def describe(self) -> str:
        who = " · ".join(x for x in (self.team, self.manager) if x) or "all teams"
        return f"{self.label or self.start.isoformat() + '..' + self.last_day.isoformat()} · {who}"


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-?[Qq]([1-4])$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


def parse_period(value: str, today: date | None = None) -> tuple[date, date, str]:
    """`2026-11`, `2026-Q4`, `2026`, `2026-10-01..2026-10-31` (inclusive), or `last-N-weeks`.

    Returns (start, end exclusive, label); raises ValueError with a readable message.
    """
    v = value.strip()
    if m := _MONTH.match(v):
        y, mo = int(m[1]), int(m[2])
        if not 1 <= mo <= 12:
            raise ValueError(f"{value!r}: month must be 01..12")
        start = date(y, mo, 1)
        end = date(y + (mo == 12), mo % 12 + 1, 1)
        return start, end, f"{calendar.month_name[mo]} {y}"
    if m := _QUARTER.match(v):
        y, q = int(m[1]), int(m[2])
        start = date(y, 3 * q - 2, 1)
        end = date(y + (q == 4), (3 * q) % 12 + 1, 1)
        return start, end, f"Q{q} {y}"
    if m := _YEAR.match(v):
        y = int(m[1])
        return date(y, 1, 1), date(y + 1, 1, 1), str(y)
    if m := _RANGE.match(v):
        try:
            start, last = date.fromisoformat(m[1]), date.fromisoformat(m[2])
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        if last < start:
            raise ValueError(f"{value!r}: the range ends before it starts")
        return start, last + timedelta(days=1), f"{start.isoformat()} to {last.isoformat()}"
    if (m := re.match(r"^last-(\d{1,3})-weeks$", v)) and today is not None:
        n = int(m[1])
        monday = today - timedelta(days=today.weekday())
        return monday - timedelta(weeks=n - 1), monday + timedelta(days=7), f"last {n} weeks"
    raise ValueError(f"{value!r}: expected a period like 2026-11, 2026-Q4, 2026, "
                     "2026-10-01..2026-10-31 or last-8-weeks")


# -- results -----------------------------------------------------------------------------------
@dataclass
class MetricResult:
    key: str
    title: str
    definition: str
    headline: str
    columns: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)
    row_keys: list[str] = field(default_factory=list)  # drill key of each row (base "rows")
    values: dict[str, Any] = field(default_factory=dict)  # named numbers (tests, JSON)
    series: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # chart data
    chart: str = ""  # "bars" (rows) | "weekly" (series) | "" (table only)
    bar_column: int = 1  # which row column the bars draw

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "definition": self.definition,
                "headline": self.headline, "columns": list(self.columns),
                "rows": [list(r) for r in self.rows], "row_keys": list(self.row_keys),
                "values": self.values,
                "series": {k: [[lbl, v] for lbl, v in s] for k, s in self.series.items()}}


@dataclass(frozen=True)
class DrillDeal:
    deal_id: int
    name: str
    owner: str
    team: str
    stage: str
    status: str
    amount_minor: int
    currency: str
    detail: str


# (title, one-line definition) of every metric, in report order.
DEFINITIONS: dict[str, tuple[str, str]] = {
    "slippage": ("Close-date slippage",
                 "Close dates pushed later during the period: pushes, days pushed, deals pushed, and "
                 "deals pushed more than once."),
    "stage_aging": ("Stage aging",
                    "Open deals by stage as of today: days since they entered the stage (average, "
                    "longest) and how many are past the stage's aging limit."),
    "forecast_accuracy": ("Forecast accuracy by category",
                          "Deals whose last inspected call in the period put the close in the period, "
                          "by the manager's category: the share (count and amount) that closed won in "
                          "the period."),
    "commit_conversion": ("Commit conversion",
                          "Deals the manager called Commit at any inspection in the period: how many "
                          "have closed won, closed lost, or are still open."),
    "call_differences": ("Manager vs rep calls",
                         "Inspections in the period where the manager's forecast call differs from "
                         "the rep's category, by manager: upgrades and downgrades."),
    "coverage": ("Inspection coverage",
                 "Share of each team's open pipeline (deals open during that week) that its manager "
                 "inspected, per week of the period."),
    "verdict_accuracy": ("Verdict accuracy",
                         "Deals by their last verdict in the period: the share that later slipped "
                         "(close date pushed after the inspection) or were lost."),
    "no_progress": ("Activity without progress",
                    "Open deals with seller activity in the progress window but no buyer progress "
                    "in it (as of today)."),
    "commit_exceptions": ("Commit exceptions",
                          "Commit calls in the period made without the commit criteria: with a "
                          "recorded exception, and without one."),
    "deal_desk": ("Discount and approval exceptions",
                  "Deals open now or won in the period that hit a deal-desk trigger, by trigger: "
                  "approved, pending or rejected, and with no approval at all."),
    "handoff": ("Closed-won handoff completeness",
                "Deals won in the period: the share with every closed-won requirement present, "
                "what is missing most, CS acceptance and open handoff exceptions."),
    "finance": ("Finance field completeness",
                "Deals won in the period: the share with every finance field filled, and which "
                "fields are missing."),
    "kickoff": ("Time from closed-won to kickoff",
                "Deals won in the period with a known kickoff date: days from close to kickoff "
                "(average, longest, over 14 days)."),
    "lost_reasons": ("Closed-lost reasons",
                     "Deals lost in the period: the share with a specific reason recorded (and "
                     "detail where the reason needs it), and the reasons."),
    "promise_risk": ("Post-sale risks from promises",
                     "Promises logged on deals won in the period by category, and post-sale "
                     "feedback recorded in the period, with the share traced to a logged promise."),
    "implementation_risk": ("Deals with implementation risk",
                            "Open risks on deals open now or won in the period, by risk type."),
    "pipeline_by_stage": ("Pipeline by stage",
                          "Open pipeline now by stage (deals, amount); weekly, the pipeline the "
                          "managers inspected by stage."),
}
METRIC_KEYS = tuple(DEFINITIONS)
#: The governance meeting's agenda order (the seed article's "Governance cadence").
REPORT_KEYS = ("slippage", "stage_aging", "commit_conversion", "forecast_accuracy", "handoff",
               "finance", "kickoff", "lost_reasons", "promise_risk", "call_differences",
               "commit_exceptions", "verdict_accuracy", "coverage", "no_progress", "deal_desk",
               "implementation_risk", "pipeline_by_stage")
#: The dashboard (the seed article's "Dashboard design", plus the weekly trends).
DASHBOARD_KEYS = ("pipeline_by_stage", "stage_aging", "slippage", "commit_conversion",
                  "forecast_accuracy", "handoff", "finance", "implementation_risk", "kickoff",
                  "promise_risk", "coverage", "verdict_accuracy", "call_differences",
                  "no_progress", "deal_desk", "commit_exceptions", "lost_reasons")

_BOOL_FIELDS = frozenset({"custom_terms", "legal_exception", "product_commitment", "scope_change"})
_NUMBER_FIELDS = frozenset({"discount_pct", "partner_margin_pct", "term_months", "amount_minor"})
_DATE_FIELDS = frozenset({"contract_signed_on", "contract_start", "contract_end", "renewal_date",
                          "kickoff_date", "close_date", "next_step_date"})
KICKOFF_SLOW_DAYS = 14


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def pct_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _int(v: Any) -> int:
    return int(v or 0)


def _iso(v: Any) -> str:
    d = read_date(v)
    return d.isoformat() if d else ""


# -- the query context -------------------------------------------------------------------------
class _Ctx:
    def __init__(self, store: Store, pb: Playbook, scope: Scope, conn: Connection) -> None:
        self.store, self.pb, self.scope, self.conn = store, pb, scope, conn
        self.d = SqlDates(store.dialect)
        midnight = lambda day: datetime.combine(day, time(0), tzinfo=timezone.utc)  # noqa: E731
        window = pb.thresholds.progress_window_days
        raw = {"start": scope.start, "end": scope.end, "today": scope.today,
               "t0": midnight(scope.start), "t1": midnight(scope.end),
               "win_since": midnight(scope.today - timedelta(days=window)),
               "win_day": scope.today - timedelta(days=window),
               "min_acts": pb.thresholds.min_activities_for_warning,
               "team": scope.team, "manager": scope.manager}
        self.params = store.params(conn, raw)

    def deal_scope(self, alias: str = "d") -> str:
        out = ""
        if self.scope.team:
            out += f" AND {alias}.team = :team"
        if self.scope.manager:
            out += f" AND {alias}.manager = :manager"
        return out

    def session_scope(self, alias: str = "s") -> str:
        out = (f" AND {alias}.week_of >= :start AND {alias}.week_of < :end"
               f" AND {alias}.status <> 'abandoned'")
        if self.scope.team:
            out += f" AND {alias}.team = :team"
        if self.scope.manager:
            out += f" AND {alias}.manager = :manager"
        return out

    def rows(self, sql: str, extra: dict | None = None) -> list[tuple]:
        params = dict(self.params)
        if extra:
            params.update(self.store.params(self.conn, extra))
        return [tuple(r) for r in self.conn.execute(text(sql), params)]

    def won_in_period(self, alias: str = "d") -> str:
        return (f"{alias}.status = 'won' AND {alias}.closed_on >= :start AND {alias}.closed_on < :end"
                + self.deal_scope(alias))

    def lost_in_period(self, alias: str = "d") -> str:
        return (f"{alias}.status = 'lost' AND {alias}.closed_on >= :start AND {alias}.closed_on < :end"
                + self.deal_scope(alias))

    def filled(self, col: str, alias: str = "d") -> str:
        if col in _DATE_FIELDS or col in _NUMBER_FIELDS:
            return f"{alias}.{col} IS NOT NULL"
        if col in _BOOL_FIELDS:
            return f"COALESCE({alias}.{col}, FALSE)"
        return f"COALESCE(TRIM({alias}.{col}), '') <> ''"

    def source_present(self, source: str, alias: str = "d") -> str:
        table = {"promises": "promise", "risks": "risk"}[source]
        return f"EXISTS (SELECT 1 FROM {table} x WHERE x.deal_id = {alias}.id)"

    def last_inspection_cte(self, cols: str, where: str = "") -> str:
        """One row per deal: its last inspected inspection of the period (latest week)."""
        return (f"SELECT i.deal_id AS deal_id, {cols}, s.started_at AS started_at, "
                "ROW_NUMBER() OVER (PARTITION BY i.deal_id ORDER BY s.week_of DESC, i.id DESC) AS rn "
                "FROM inspection i JOIN inspection_session s ON s.id = i.session_id "
                f"WHERE i.status = 'inspected'{self.session_scope()}{where}")


# -- metric definitions: each returns (result, {base name: base SQL}) -----------------------------
# A base SQL yields columns (deal_id, bucket, detail) at least; drill() reads it.
Base = dict[str, str]
_REGISTRY: dict[str, Callable[[_Ctx], tuple[MetricResult, Base]]] = {}


def _metric(key: str):
    def deco(fn):
        _REGISTRY[key] = fn
        return fn
    return deco


def _result(key: str, headline: str, columns: Iterable[str], **kw: Any) -> MetricResult:
    title, definition = DEFINITIONS[key]
    return MetricResult(key, title, definition, headline, tuple(columns), **kw)


@_metric("stage_aging")
def _stage_aging(c: _Ctx) -> tuple[MetricResult, Base]:
    d = c.d
    open_stages = c.pb.open_stages
    limits = " ".join(f"WHEN :sk{i} THEN {int(s.aging_limit_days)}" for i, s in enumerate(open_stages))
    extra = {f"sk{i}": s.key for i, s in enumerate(open_stages)}
    age = d.days(d.day(":today"), d.day("COALESCE(d.stage_entered_on, d.created_on)"))
    base = (f"SELECT d.id AS deal_id, d.stage AS bucket, {age} AS age, "
            f"CASE d.stage {limits} ELSE 0 END AS lim, d.amount_minor AS amount "
            f"FROM deal d WHERE d.status = 'open'{c.deal_scope()}")
    agg = c.rows(f"SELECT bucket, COUNT(*), AVG(age), MAX(age), "
                 f"SUM(CASE WHEN lim > 0 AND age > lim THEN 1 ELSE 0 END), SUM(amount) "
                 f"FROM ({base}) x GROUP BY bucket", extra)
    by = {r[0]: r for r in agg}
    rows, keys = [], []
    total = over = 0
    for s in c.pb.stages:
        if s.key not in by:
            continue
        _k, n, avg, mx, ov, _amt = by[s.key]
        rows.append((s.label, round(float(avg or 0), 1), _int(mx), _int(n), _int(ov), s.aging_limit_days))
        keys.append(s.key)
        total += _int(n)
        over += _int(ov)
    for k, r in by.items():  # stages the playbook does not know
        if k not in keys:
            rows.append((k, round(float(r[2] or 0), 1), _int(r[3]), _int(r[1]), _int(r[4]), 0))
            keys.append(k)
            total += _int(r[1])
            over += _int(r[4])
    res = _result("stage_aging", f"{over} of {total} open deals past their stage's aging limit",
                  ("Stage", "Avg days", "Longest", "Deals", "Past limit", "Limit"),
                  rows=rows, row_keys=keys, values={"open": total, "past_limit": over},
                  chart="bars", bar_column=1)
    drill_sql = (f"SELECT d.id AS deal_id, d.stage AS bucket, {age} AS sort_value, "
                 f"'in stage ' || CAST({age} AS TEXT) || ' days' AS detail "
                 f"FROM deal d WHERE d.status = 'open'{c.deal_scope()}")
    return res, {"rows": drill_sql}


@_metric("slippage")
def _slippage(c: _Ctx) -> tuple[MetricResult, Base]:
    d = c.d
    step = d.days(d.day("c.new"), d.day("c.old"))
    pushes = (f"SELECT c.deal_id AS deal_id, c.changed_at AS changed_at, {step} AS days "
              "FROM deal_change c JOIN deal d ON d.id = c.deal_id "
              "WHERE c.field = 'close_date' AND c.changed_at >= :t0 AND c.changed_at < :t1 "
              f"AND c.old IS NOT NULL AND c.new IS NOT NULL AND c.new > c.old{c.deal_scope()}")
    per_deal = (f"SELECT deal_id, COUNT(*) AS pushes, SUM(days) AS days FROM ({pushes}) p "
                "GROUP BY deal_id")
    wk = d.week(d.ts_day("changed_at"))
    # one pass over the pushes, grouped by deal and week; the totals, the distribution and the
    # weekly series are sums of these rows
    per_deal_week = c.rows(f"SELECT deal_id, {wk} AS w, COUNT(*), SUM(days) FROM ({pushes}) p "
                           f"GROUP BY deal_id, {wk}")
    by_deal: dict[Any, list[int]] = {}
    by_week: dict[str, list] = {}
    for deal_id, w, n, days_ in per_deal_week:
        acc = by_deal.setdefault(deal_id, [0, 0])
        acc[0] += _int(n)
        acc[1] += _int(days_)
        wacc = by_week.setdefault(_iso(w), [w, 0, None])
        wacc[1] += _int(n)
        if days_ is not None:
            wacc[2] = (wacc[2] or 0) + int(days_)
    deals = len(by_deal)
    n_push = sum(v[0] for v in by_deal.values())
    n_days = sum(v[1] for v in by_deal.values())
    multi = sum(1 for v in by_deal.values() if v[0] > 1)
    dist: dict[str, tuple[int, int]] = {}
    for pushes_, days_ in by_deal.values():
        b = "3+" if pushes_ >= 3 else str(pushes_)
        n0, d0 = dist.get(b, (0, 0))
        dist[b] = (n0 + 1, d0 + days_)
    bucket = "CASE WHEN pushes >= 3 THEN '3+' ELSE CAST(pushes AS TEXT) END"
    rows, keys = [], []
    for b, label in (("1", "Pushed once"), ("2", "Pushed twice"), ("3+", "Pushed 3+ times")):
        n, days_ = dist.get(b, (0, 0))
        rows.append((label, _int(n), _int(days_)))
        keys.append(b)
    weekly = [tuple(v) for _k, v in sorted(by_week.items())]
    series = {"pushes": [(_iso(w), float(n)) for w, n, _s in weekly],
              "days pushed": [(_iso(w), float(s or 0)) for w, _n, s in weekly]}
    avg = f"{n_days / n_push:.0f}" if n_push else "0"
    res = _result("slippage", f"{n_push} pushes on {deals} deals ({multi} pushed more than once); "
                  f"{n_days} days pushed, {avg} per push",
                  ("Pushes in period", "Deals", "Days pushed"), rows=rows, row_keys=keys,
                  values={"pushes": n_push, "deals_pushed": deals, "days_pushed": n_days,
                          "pushed_more_than_once": multi,
                          "pushes_per_pushed_deal": round(n_push / deals, 2) if deals else 0.0},
                  series=series, chart="weekly")
    drill_rows = (f"SELECT deal_id, {bucket} AS bucket, days AS sort_value, "
                  "CAST(pushes AS TEXT) || ' pushes, ' || CAST(days AS TEXT) || ' days' AS detail "
                  f"FROM ({per_deal}) x")
    drill_week = (f"SELECT deal_id, {wk} AS bucket, SUM(days) AS sort_value, "
                  "CAST(COUNT(*) AS TEXT) || ' pushes, ' || CAST(SUM(days) AS TEXT) || ' days' AS detail "
                  f"FROM ({pushes}) p GROUP BY deal_id, {wk}")
    return res, {"rows": drill_rows, "week": drill_week}


def _category_rank(c: _Ctx, col: str) -> tuple[str, dict]:
    cats = c.pb.forecast_categories
    sql = "CASE " + " ".join(f"WHEN {col} = :fc{i} THEN {i}" for i in range(len(cats))) + " ELSE 99 END"
    return sql, {f"fc{i}": cat.key for i, cat in enumerate(cats)}


@_metric("forecast_accuracy")
def _forecast_accuracy(c: _Ctx) -> tuple[MetricResult, Base]:
    cte = c.last_inspection_cte("COALESCE(i.forecast_call, i.rep_category) AS cat, "
                                "i.amount_minor_at AS amt, i.close_date_at AS cd")
    won = "d.status = 'won' AND d.closed_on >= :start AND d.closed_on < :end"
    lost = "d.status = 'lost' AND d.closed_on >= :start AND d.closed_on < :end"
    base = (f"SELECT l.deal_id AS deal_id, l.cat AS bucket, l.amt AS amt, "
            f"CASE WHEN {won} THEN 1 ELSE 0 END AS won, CASE WHEN {lost} THEN 1 ELSE 0 END AS lost, "
            f"CASE WHEN {won} THEN d.amount_minor ELSE 0 END AS won_amt "
            f"FROM ({cte}) l JOIN deal d ON d.id = l.deal_id "
            "WHERE l.rn = 1 AND l.cd >= :start AND l.cd < :end")
    agg = {r[0]: r[1:] for r in c.rows(
        f"SELECT bucket, COUNT(*), SUM(amt), SUM(won), SUM(won_amt), SUM(lost) FROM ({base}) x "
        "GROUP BY bucket")}
    rows, keys, values = [], [], {}
    for cat in c.pb.forecast_categories:
        n, amt, w, wamt, lo = (_int(v) for v in agg.get(cat.key, (0, 0, 0, 0, 0)))
        rows.append((cat.label, _pct(w, n), n, w, lo, n - w - lo, amt, wamt))
        keys.append(cat.key)
        values[cat.key] = {"called": n, "called_amount": amt, "won": w, "won_amount": wamt,
                           "lost": lo, "accuracy_pct": _pct(w, n)}
    commit = values.get("commit", {})
    res = _result("forecast_accuracy",
                  f"Commit: {commit.get('won', 0)} of {commit.get('called', 0)} closed won in the period "
                  f"({pct_text(commit.get('accuracy_pct'))})",
                  ("Category", "Won %", "Called", "Won", "Lost", "Not closed", "Called amount",
                   "Won amount"),
                  rows=rows, row_keys=keys, values=values, chart="bars", bar_column=1)
    drill_sql = (f"SELECT deal_id, bucket, amt AS sort_value, "
                 "CASE WHEN won = 1 THEN 'won' WHEN lost = 1 THEN 'lost' ELSE 'not closed in period' END "
                 f"AS detail FROM ({base}) x")
    return res, {"rows": drill_sql}


@_metric("commit_conversion")
def _commit_conversion(c: _Ctx) -> tuple[MetricResult, Base]:
    called = ("SELECT i.deal_id AS deal_id, MAX(i.amount_minor_at) AS amt FROM inspection i "
              "JOIN inspection_session s ON s.id = i.session_id "
              "WHERE i.status = 'inspected' AND COALESCE(i.forecast_call, i.rep_category) = 'commit'"
              f"{c.session_scope()} GROUP BY i.deal_id")
    outcome = "CASE d.status WHEN 'won' THEN 'won' WHEN 'lost' THEN 'lost' ELSE 'open' END"
    base = (f"SELECT k.deal_id AS deal_id, {outcome} AS bucket, k.amt AS amt, "
            "CASE WHEN d.status = 'won' THEN d.amount_minor ELSE 0 END AS won_amt "
            "FROM (" + called + ") k JOIN deal d ON d.id = k.deal_id")
    agg = {r[0]: r[1:] for r in c.rows(
        f"SELECT bucket, COUNT(*), SUM(amt), SUM(won_amt) FROM ({base}) x GROUP BY bucket")}
    n = sum(_int(v[0]) for v in agg.values())
    amt = sum(_int(v[1]) for v in agg.values())
    rows, keys = [], []
    for b, label in (("won", "Closed won"), ("lost", "Closed lost"), ("open", "Still open")):
        k, a, _w = agg.get(b, (0, 0, 0))
        rows.append((label, _int(k), _pct(_int(k), n), _int(a)))
        keys.append(b)
    won_n = _int(agg.get("won", (0,))[0])
    won_amt = _int(agg.get("won", (0, 0, 0))[2])
    # weekly: Commit called (amount inspected as Commit that week) vs won (closed that week)
    wk_s = "s.week_of"
    called_w = c.rows(
        f"SELECT {wk_s}, SUM(i.amount_minor_at), COUNT(*) FROM inspection i "
        "JOIN inspection_session s ON s.id = i.session_id WHERE i.status = 'inspected' "
        f"AND COALESCE(i.forecast_call, i.rep_category) = 'commit'{c.session_scope()} "
        f"GROUP BY {wk_s} ORDER BY 1")
    wk_d = c.d.week(c.d.day("d.closed_on"))
    won_w = c.rows(f"SELECT {wk_d}, SUM(d.amount_minor), COUNT(*) FROM deal d "
                   f"WHERE {c.won_in_period()} GROUP BY {wk_d} ORDER BY 1")
    weeks = sorted({_iso(r[0]) for r in called_w} | {_iso(r[0]) for r in won_w})
    cw = {_iso(r[0]): float(r[1] or 0) / 100 for r in called_w}
    ww = {_iso(r[0]): float(r[1] or 0) / 100 for r in won_w}
    series = {"commit called": [(w, cw.get(w, 0.0)) for w in weeks],
              "won": [(w, ww.get(w, 0.0)) for w in weeks]}
    res = _result("commit_conversion",
                  f"{won_n} of {n} deals called Commit have closed won ({pct_text(_pct(won_n, n))}); "
                  f"{pct_text(_pct(won_amt, amt))} of the amount",
                  ("Outcome", "Deals", "Share", "Amount called"), rows=rows, row_keys=keys,
                  values={"called": n, "called_amount": amt, "won": won_n, "won_amount": won_amt,
                          "lost": _int(agg.get("lost", (0,))[0]), "open": _int(agg.get("open", (0,))[0]),
                          "conversion_pct": _pct(won_n, n)},
                  series=series, chart="weekly", bar_column=1)
    drill_sql = (f"SELECT deal_id, bucket, amt AS sort_value, 'called Commit' AS detail FROM ({base}) x")
    drill_week = ("SELECT i.deal_id AS deal_id, s.week_of AS bucket, i.amount_minor_at AS sort_value, "
                  "'called Commit' AS detail FROM inspection i JOIN inspection_session s ON s.id = i.session_id "
                  "WHERE i.status = 'inspected' AND COALESCE(i.forecast_call, i.rep_category) = 'commit'"
                  f"{c.session_scope()} UNION ALL SELECT d.id, {wk_d}, d.amount_minor, 'closed won' "
                  f"FROM deal d WHERE {c.won_in_period()}")
    return res, {"rows": drill_sql, "week": drill_week}


@_metric("call_differences")
def _call_differences(c: _Ctx) -> tuple[MetricResult, Base]:
    mgr_rank, p1 = _category_rank(c, "i.forecast_call")
    rep_rank, _ = _category_rank(c, "i.rep_category")
    base = ("SELECT i.deal_id AS deal_id, s.manager AS bucket, i.rep_category AS rep_cat, "
            f"i.forecast_call AS mgr_call, {mgr_rank} AS mr, {rep_rank} AS rr, s.week_of AS week "
            "FROM inspection i JOIN inspection_session s ON s.id = i.session_id "
            f"WHERE i.status = 'inspected' AND i.forecast_call IS NOT NULL{c.session_scope()}")
    agg = c.rows("SELECT bucket, COUNT(*), SUM(CASE WHEN mgr_call <> rep_cat THEN 1 ELSE 0 END), "
                 "SUM(CASE WHEN mr > rr THEN 1 ELSE 0 END), SUM(CASE WHEN mr < rr THEN 1 ELSE 0 END) "
                 f"FROM ({base}) x GROUP BY bucket ORDER BY bucket", p1)
    rows, keys = [], []
    n = diff = down = up = 0
    for m, k, df, dn, u in agg:
        rows.append((m, _pct(_int(df), _int(k)), _int(k), _int(df), _int(dn), _int(u)))
        keys.append(m)
        n, diff, down, up = n + _int(k), diff + _int(df), down + _int(dn), up + _int(u)
    res = _result("call_differences",
                  f"{diff} of {n} calls differ from the rep ({pct_text(_pct(diff, n))}): "
                  f"{down} downgraded, {up} upgraded",
                  ("Manager", "Differ %", "Calls", "Differ", "Downgraded", "Upgraded"),
                  rows=rows, row_keys=keys,
                  values={"calls": n, "differ": diff, "downgraded": down, "upgraded": up},
                  chart="bars", bar_column=1)
    drill_sql = ("SELECT deal_id, bucket, 0 AS sort_value, "
                 "'week ' || CAST(week AS TEXT) || ': rep ' || rep_cat || ', manager ' || mgr_call AS detail "
                 f"FROM ({base}) x WHERE mgr_call <> rep_cat")
    return res, {"rows": drill_sql, "_params": p1}  # type: ignore[dict-item]


@_metric("coverage")
def _coverage(c: _Ctx) -> tuple[MetricResult, Base]:
    d = c.d
    weeks = ("SELECT s.team AS team, s.manager AS manager, s.week_of AS week_of FROM inspection_session s "
             f"WHERE 1 = 1{c.session_scope()} GROUP BY s.team, s.manager, s.week_of")
    week_end = d.add_days(d.day("w.week_of"), 6)
    open_then = (f"SELECT w.team, w.manager, w.week_of, COUNT(d.id) AS n FROM ({weeks}) w "
                 "JOIN deal d ON d.team = w.team AND d.status <> 'removed' "
                 f"AND (d.created_on IS NULL OR d.created_on <= {week_end}) "
                 "AND (d.closed_on IS NULL OR d.closed_on >= w.week_of) "
                 "GROUP BY w.team, w.manager, w.week_of")
    inspected = ("SELECT s.team, s.manager, s.week_of, COUNT(DISTINCT i.deal_id) AS n FROM inspection i "
                 "JOIN inspection_session s ON s.id = i.session_id "
                 f"WHERE i.status = 'inspected'{c.session_scope()} GROUP BY s.team, s.manager, s.week_of")
    opened = {(r[0], r[1], _iso(r[2])): _int(r[3]) for r in c.rows(open_then)}
    done = {(r[0], r[1], _iso(r[2])): _int(r[3]) for r in c.rows(inspected)}
    rows, keys = [], []
    per_week: dict[str, list[int]] = {}
    for (team, mgr, wk) in sorted(set(opened) | set(done), key=lambda k: (k[2], k[0], k[1])):
        n_open, n_done = opened.get((team, mgr, wk), 0), done.get((team, mgr, wk), 0)
        rows.append((wk, team, mgr, _pct(n_done, n_open), n_done, n_open))
        keys.append(f"{wk}|{team}|{mgr}")
        agg = per_week.setdefault(wk, [0, 0])
        agg[0] += n_done
        agg[1] += n_open
    total_done = sum(v[0] for v in per_week.values())
    total_open = sum(v[1] for v in per_week.values())
    series = {"coverage %": [(w, _pct(v[0], v[1]) or 0.0) for w, v in sorted(per_week.items())]}
    res = _result("coverage", f"{pct_text(_pct(total_done, total_open))} of the open pipeline inspected "
                  f"on average over {len(per_week)} weeks",
                  ("Week", "Team", "Manager", "Coverage", "Inspected", "Open"), rows=rows, row_keys=keys,
                  values={"weeks": len(per_week), "inspected": total_done, "open": total_open,
                          "coverage_pct": _pct(total_done, total_open)},
                  series=series, chart="weekly")
    drill_sql = ("SELECT i.deal_id AS deal_id, "
                 "CAST(s.week_of AS TEXT) || '|' || s.team || '|' || s.manager AS bucket, "
                 "0 AS sort_value, 'inspected' AS detail FROM inspection i "
                 "JOIN inspection_session s ON s.id = i.session_id "
                 f"WHERE i.status = 'inspected'{c.session_scope()}")
    return res, {"rows": drill_sql}


@_metric("verdict_accuracy")
def _verdict_accuracy(c: _Ctx) -> tuple[MetricResult, Base]:
    out_rows, keys, values = [], [], {}
    bases = []
    for col, verdicts in (("stage_verdict", ("overstated", "supported", "understated")),
                          ("close_date_verdict", ("not_credible", "at_risk", "realistic"))):
        cte = c.last_inspection_cte(f"i.{col} AS verdict", f" AND i.{col} IS NOT NULL")
        slipped = ("EXISTS (SELECT 1 FROM deal_change ch WHERE ch.deal_id = l.deal_id "
                   "AND ch.field = 'close_date' AND ch.changed_at > l.started_at AND ch.new > ch.old)")
        base = (f"SELECT l.deal_id AS deal_id, '{col}:' || l.verdict AS bucket, "
                f"CASE WHEN {slipped} THEN 1 ELSE 0 END AS slipped, "
                "CASE WHEN d.status = 'lost' THEN 1 ELSE 0 END AS lost, "
                "CASE WHEN d.status = 'won' THEN 1 ELSE 0 END AS won "
                f"FROM ({cte}) l JOIN deal d ON d.id = l.deal_id WHERE l.rn = 1")
        bases.append(base)
        agg = {r[0]: r[1:] for r in c.rows(
            "SELECT bucket, COUNT(*), SUM(slipped), SUM(lost), "
            "SUM(CASE WHEN slipped = 1 OR lost = 1 THEN 1 ELSE 0 END), SUM(won) "
            f"FROM ({base}) x GROUP BY bucket")}
        for v in verdicts:
            key = f"{col}:{v}"
            n, sl, lo, bad, wo = (_int(x) for x in agg.get(key, (0, 0, 0, 0, 0)))
            label = ("Stage " if col == "stage_verdict" else "Close date ") + v.replace("_", " ")
            out_rows.append((label, _pct(bad, n), n, sl, lo, wo))
            keys.append(key)
            values[key] = {"deals": n, "slipped": sl, "lost": lo, "slipped_or_lost": bad, "won": wo,
                           "bad_pct": _pct(bad, n)}
    over = values["stage_verdict:overstated"]
    sup = values["stage_verdict:supported"]
    res = _result("verdict_accuracy",
                  f"Overstated deals later slipped or were lost {pct_text(over['bad_pct'])} of the time, "
                  f"supported ones {pct_text(sup['bad_pct'])}",
                  ("Verdict", "Slipped or lost", "Deals", "Slipped", "Lost", "Won"),
                  rows=out_rows, row_keys=keys, values=values, chart="bars", bar_column=1)
    drill_sql = ("SELECT deal_id, bucket, slipped + lost AS sort_value, "
                 "CASE WHEN slipped = 1 AND lost = 1 THEN 'slipped, then lost' WHEN slipped = 1 THEN "
                 "'slipped later' WHEN lost = 1 THEN 'lost' WHEN won = 1 THEN 'won' ELSE 'open' END AS detail "
                 f"FROM ({bases[0]} UNION ALL {bases[1]}) x")
    return res, {"rows": drill_sql}


@_metric("no_progress")
def _no_progress(c: _Ctx) -> tuple[MetricResult, Base]:
    d = c.d
    base = ("SELECT d.id AS deal_id, d.owner AS bucket, COUNT(a.id) AS acts, d.amount_minor AS amount "
            "FROM deal d JOIN activity a ON a.deal_id = d.id AND a.occurred_at >= :win_since "
            f"WHERE d.status = 'open'{c.deal_scope()} AND (d.last_progress_at IS NULL OR "
            f"{d.ts_day('d.last_progress_at')} < {d.day(':win_day')}) "
            "GROUP BY d.id, d.owner, d.amount_minor HAVING COUNT(a.id) >= :min_acts")
    agg = c.rows(f"SELECT bucket, COUNT(*), SUM(acts), SUM(amount) FROM ({base}) x "
                 "GROUP BY bucket ORDER BY COUNT(*) DESC, bucket")
    rows = [(r[0], _int(r[1]), _int(r[2]), _int(r[3])) for r in agg]
    n = sum(r[1] for r in rows)
    amount = sum(r[3] for r in rows)
    window = c.pb.thresholds.progress_window_days
    res = _result("no_progress", f"{n} open deals with activity but no buyer progress in {window} days",
                  ("Rep", "Deals", "Activities", "Amount"), rows=rows, row_keys=[r[0] for r in rows],
                  values={"deals": n, "amount": amount}, chart="bars", bar_column=1)
    drill_sql = (f"SELECT deal_id, bucket, acts AS sort_value, CAST(acts AS TEXT) || "
                 f"' activities, no progress' AS detail FROM ({base}) x")
    return res, {"rows": drill_sql}


@_metric("commit_exceptions")
def _commit_exceptions(c: _Ctx) -> tuple[MetricResult, Base]:
    base = ("SELECT i.deal_id AS deal_id, s.manager AS bucket, "
            "CASE WHEN COALESCE(TRIM(i.commit_exception), '') <> '' THEN 1 ELSE 0 END AS with_reason, "
            "i.commit_exception AS reason, s.week_of AS week "
            "FROM inspection i JOIN inspection_session s ON s.id = i.session_id "
            "WHERE i.status = 'inspected' AND i.forecast_call = 'commit' "
            f"AND (NOT i.commit_criteria_met OR COALESCE(TRIM(i.commit_exception), '') <> ''){c.session_scope()}")
    agg = c.rows(f"SELECT bucket, COUNT(*), SUM(with_reason), COUNT(DISTINCT deal_id) FROM ({base}) x "
                 "GROUP BY bucket ORDER BY COUNT(*) DESC, bucket")
    rows = [(r[0], _int(r[1]), _int(r[2]), _int(r[1]) - _int(r[2]), _int(r[3])) for r in agg]
    n = sum(r[1] for r in rows)
    without = sum(r[3] for r in rows)
    res = _result("commit_exceptions", f"{n} Commit calls without the criteria; {without} without a "
                  "recorded exception", ("Manager", "Calls", "With exception", "Without", "Deals"),
                  rows=rows, row_keys=[r[0] for r in rows],
                  values={"calls": n, "with_exception": n - without, "without_exception": without},
                  chart="bars", bar_column=1)
    drill_sql = ("SELECT deal_id, bucket, with_reason AS sort_value, 'week ' || CAST(week AS TEXT) || ': ' || "
                 f"COALESCE(NULLIF(TRIM(reason), ''), 'no exception recorded') AS detail FROM ({base}) x")
    return res, {"rows": drill_sql}


def _trigger_sql(c: _Ctx, i: int, t) -> tuple[str, dict]:
    col = f"d.{t.field}"  # validated against DEAL_FIELDS when the playbook loaded
    if t.op == "is_true":
        return (f"COALESCE({col}, FALSE)" if t.field in _BOOL_FIELDS else c.filled(t.field)), {}
    if t.op == "not_in":
        names = {f"tv{i}_{j}": str(v) for j, v in enumerate(t.value)}
        inner = ", ".join(":" + k for k in names)
        return f"COALESCE({col}, '') NOT IN ({inner})", names
    op = {"==": "=", "!=": "<>"}.get(t.op, t.op)
    if t.field in _NUMBER_FIELDS:
        return f"{col} IS NOT NULL AND {col} {op} :tv{i}", {f"tv{i}": float(t.value)}
    return f"COALESCE({col}, '') <> '' AND {col} {op} :tv{i}", {f"tv{i}": str(t.value)}


@_metric("deal_desk")
def _deal_desk(c: _Ctx) -> tuple[MetricResult, Base]:
    parts, params, flags = [], {}, []
    scope = (f"(d.status = 'open'{c.deal_scope()}) OR ({c.won_in_period()})")
    for i, t in enumerate(c.pb.deal_desk_triggers):
        cond, p = _trigger_sql(c, i, t)
        params.update(p)
        params[f"tk{i}"] = t.key
        flags.append((f"CASE WHEN {cond} THEN 1 ELSE 0 END AS h{i}", cond))
        parts.append(f"SELECT h.deal_id AS deal_id, :tk{i} AS bucket, "
                     f"COALESCE(a.status, 'none') AS approval FROM hits h "
                     f"LEFT JOIN approval a ON a.deal_id = h.deal_id AND a.trigger_key = :tk{i} "
                     f"WHERE h.h{i} = 1")
    if not parts:
        return _result("deal_desk", "No deal-desk triggers in the playbook", ("Trigger",)), {}
    # one scan of the deals in scope evaluates every trigger (was one scan per trigger); the hits
    # (usually a small share of the deals) are then unpivoted to (deal, trigger, approval)
    hits = (f"SELECT d.id AS deal_id, {', '.join(f for f, _c in flags)} FROM deal d "
            f"WHERE ({scope}) AND ({' OR '.join(f'({cond})' for _f, cond in flags)})")
    base = f"WITH hits AS ({hits}) " + " UNION ALL ".join(parts)
    # one pass over the hits (deal, trigger, approval); counted here rather than in two queries
    agg: dict[str, list[int]] = {}
    open_deals: set = set()
    for deal_id, b, approval in c.rows(f"SELECT deal_id, bucket, approval FROM ({base}) x", params):
        a = agg.setdefault(b, [0, 0, 0, 0])
        a[0] += 1
        a[1] += approval == "approved"
        a[2] += approval in ("pending", "rejected")
        a[3] += approval == "none"
        if approval != "approved":
            open_deals.add(deal_id)
    rows, keys = [], []
    hits = none = 0
    for t in c.pb.deal_desk_triggers:
        n, ok, pend, no = agg.get(t.key, (0, 0, 0, 0))
        rows.append((t.label, n, ok, pend, no, t.approver))
        keys.append(t.key)
        hits, none = hits + n, none + no
    deals = len(open_deals)
    res = _result("deal_desk", f"{hits} trigger hits; {none} with no approval requested "
                  f"({deals} deals with an exception open)",
                  ("Trigger", "Deals", "Approved", "Pending/rejected", "No approval", "Approver"),
                  rows=rows, row_keys=keys,
                  values={"hits": hits, "no_approval": none, "deals_with_exceptions": deals},
                  chart="bars", bar_column=4)
    drill_sql = (f"SELECT deal_id, bucket, CASE approval WHEN 'none' THEN 2 WHEN 'approved' THEN 0 ELSE 1 END "
                 f"AS sort_value, 'approval: ' || approval AS detail FROM ({base}) x")
    return res, {"rows": drill_sql, "_params": params}  # type: ignore[dict-item]


def _requirements_metric(c: _Ctx, key: str, reqs) -> tuple[MetricResult, Base, str]:
    parts, params, flags = [], {}, []
    for i, r in enumerate(reqs):
        conds = [c.filled(f) for f in r.fields]
        if r.source:
            conds.append(c.source_present(r.source))
        params[f"rq{i}"] = r.key
        parts.append(f"SELECT d.id AS deal_id, :rq{i} AS bucket FROM deal d "
                     f"WHERE {c.won_in_period()} AND NOT ({' AND '.join(conds)})")
        flags.append(f"CASE WHEN {' AND '.join(conds)} THEN 0 ELSE 1 END")
    missing = " UNION ALL ".join(parts) if parts else "SELECT 0 AS deal_id, '' AS bucket WHERE 1 = 0"
    # the counts in one scan of the deals won in the period (was two scans per requirement)
    sums = "".join(f", SUM(m{i})" for i in range(len(flags)))
    any_missing = " + ".join(f"m{i}" for i in range(len(flags))) or "0"
    inner = "".join(f", {f} AS m{i}" for i, f in enumerate(flags))
    counts = c.rows(f"SELECT COUNT(*), SUM(CASE WHEN {any_missing} > 0 THEN 1 ELSE 0 END){sums} "
                    f"FROM (SELECT d.id AS deal_id{inner} FROM deal d WHERE {c.won_in_period()}) x")[0]
    won, incomplete = _int(counts[0]), _int(counts[1])
    agg = {r.key: _int(n) for r, n in zip(reqs, counts[2:])}
    complete = won - incomplete
    rows = [(r.label, agg.get(r.key, 0), _pct(agg.get(r.key, 0), won)) for r in reqs]
    keys = [r.key for r in reqs]
    res = _result(key, "", ("Requirement" if key == "handoff" else "Finance field", "Missing", "Missing %"),
                  rows=rows, row_keys=keys,
                  values={"won": won, "complete": complete, "complete_pct": _pct(complete, won),
                          "missing": {r.key: agg.get(r.key, 0) for r in reqs}},
                  chart="bars", bar_column=1)
    drill_sql = f"SELECT deal_id, bucket, 0 AS sort_value, 'missing' AS detail FROM ({missing}) x"
    return res, {"rows": drill_sql, "_params": params}, missing  # type: ignore[dict-item]


@_metric("handoff")
def _handoff(c: _Ctx) -> tuple[MetricResult, Base]:
    res, base, _missing = _requirements_metric(c, "handoff", c.pb.closed_won_requirements)
    acc = dict((r[0], _int(r[1])) for r in c.rows(
        "SELECT COALESCE(h.status, 'none'), COUNT(*) FROM deal d LEFT JOIN handoff h ON h.deal_id = d.id "
        f"WHERE {c.won_in_period()} GROUP BY COALESCE(h.status, 'none')"))
    exc = _int(c.rows("SELECT COUNT(*) FROM handoff_exception x JOIN deal d ON d.id = x.deal_id "
                      f"WHERE x.status = 'open'{c.deal_scope()}")[0][0])
    won = res.values["won"]
    res.values.update({"accepted": acc.get("accepted", 0), "returned": acc.get("returned", 0),
                       "acceptance_pct": _pct(acc.get("accepted", 0), won), "open_exceptions": exc,
                       "handoff_status": acc})
    res.headline = (f"{res.values['complete']} of {won} won deals complete "
                    f"({pct_text(res.values['complete_pct'])}); {acc.get('accepted', 0)} accepted by CS, "
                    f"{acc.get('returned', 0)} returned; {exc} open handoff exceptions")
    return res, base


@_metric("finance")
def _finance(c: _Ctx) -> tuple[MetricResult, Base]:
    res, base, _missing = _requirements_metric(c, "finance", c.pb.finance_fields)
    res.headline = (f"{res.values['complete']} of {res.values['won']} won deals have every finance field "
                    f"({pct_text(res.values['complete_pct'])})")
    return res, base


@_metric("kickoff")
def _kickoff(c: _Ctx) -> tuple[MetricResult, Base]:
    d = c.d
    kick = "COALESCE(h.kickoff_on, d.kickoff_date)"
    lag = d.days(d.day(kick), d.day("d.closed_on"))
    bucket = (f"CASE WHEN {kick} IS NULL THEN 'unknown' WHEN {lag} <= 7 THEN '0-7' "
              f"WHEN {lag} <= {KICKOFF_SLOW_DAYS} THEN '8-14' WHEN {lag} <= 30 THEN '15-30' ELSE '31+' END")
    base = (f"SELECT d.id AS deal_id, {bucket} AS bucket, CASE WHEN {kick} IS NULL THEN NULL ELSE {lag} END "
            "AS lag FROM deal d LEFT JOIN handoff h ON h.deal_id = d.id "
            f"WHERE {c.won_in_period()}")
    agg = {r[0]: _int(r[1]) for r in c.rows(f"SELECT bucket, COUNT(*) FROM ({base}) x GROUP BY bucket")}
    st = c.rows(f"SELECT COUNT(lag), AVG(lag), MAX(lag), SUM(CASE WHEN lag > {KICKOFF_SLOW_DAYS} THEN 1 "
                f"ELSE 0 END) FROM ({base}) x")[0]
    known, avg, mx, slow = _int(st[0]), float(st[1] or 0), _int(st[2]), _int(st[3])
    labels = (("0-7", "0-7 days"), ("8-14", "8-14 days"), ("15-30", "15-30 days"), ("31+", "over 30 days"),
              ("unknown", "kickoff unknown"))
    rows = [(lbl, agg.get(k, 0)) for k, lbl in labels]
    res = _result("kickoff", f"{known} kickoffs known: {avg:.1f} days on average, longest {mx}; "
                  f"{slow} over {KICKOFF_SLOW_DAYS} days; {agg.get('unknown', 0)} unknown",
                  ("Close to kickoff", "Deals"), rows=rows, row_keys=[k for k, _l in labels],
                  values={"known": known, "avg_days": round(avg, 1), "max_days": mx, "slow": slow,
                          "unknown": agg.get("unknown", 0)}, chart="bars", bar_column=1)
    drill_sql = ("SELECT deal_id, bucket, COALESCE(lag, -1) AS sort_value, CASE WHEN lag IS NULL THEN "
                 f"'no kickoff date' ELSE CAST(lag AS TEXT) || ' days to kickoff' END AS detail FROM ({base}) x")
    return res, {"rows": drill_sql}


@_metric("lost_reasons")
def _lost_reasons(c: _Ctx) -> tuple[MetricResult, Base]:
    needs_detail = [r.key for r in c.pb.closed_lost_reasons if r.requires_detail]
    nd = {f"nd{i}": k for i, k in enumerate(needs_detail)}
    nd_in = ", ".join(":" + k for k in nd) or "''"
    bucket = (f"CASE WHEN r.reason IS NULL THEN 'missing' WHEN r.reason IN ({nd_in}) AND "
              "COALESCE(TRIM(r.detail), '') = '' THEN 'vague' ELSE r.reason END")
    base = (f"SELECT d.id AS deal_id, {bucket} AS bucket, r.reason AS reason FROM deal d "
            f"LEFT JOIN closed_lost_reason r ON r.deal_id = d.id WHERE {c.lost_in_period()}")
    agg = {r[0]: _int(r[1]) for r in c.rows(f"SELECT bucket, COUNT(*) FROM ({base}) x GROUP BY bucket", nd)}
    lost = sum(agg.values())
    complete = lost - agg.get("missing", 0) - agg.get("vague", 0)
    labels = {r.key: r.label for r in c.pb.closed_lost_reasons}
    specific = sorted((k for k in agg if k not in ("missing", "vague")), key=lambda k: (-agg[k], k))
    rows = [(labels.get(k, k), agg[k], _pct(agg[k], lost)) for k in specific]
    keys = list(specific)
    if agg.get("vague"):
        rows.append(("Needs detail (missing)", agg["vague"], _pct(agg["vague"], lost)))
        keys.append("vague")
    if agg.get("missing"):
        rows.append(("No reason recorded", agg["missing"], _pct(agg["missing"], lost)))
        keys.append("missing")
    res = _result("lost_reasons", f"{complete} of {lost} lost deals have a specific reason "
                  f"({pct_text(_pct(complete, lost))})", ("Reason", "Deals", "Share"),
                  rows=rows, row_keys=keys,
                  values={"lost": lost, "complete": complete, "complete_pct": _pct(complete, lost),
                          "by_reason": {k: v for k, v in agg.items()}}, chart="bars", bar_column=1)
    drill_sql = f"SELECT deal_id, bucket, 0 AS sort_value, COALESCE(reason, 'no reason') AS detail FROM ({base}) x"
    return res, {"rows": drill_sql, "_params": nd}  # type: ignore[dict-item]


@_metric("promise_risk")
def _promise_risk(c: _Ctx) -> tuple[MetricResult, Base]:
    promises = ("SELECT p.deal_id AS deal_id, 'promise:' || p.category AS bucket, p.text AS detail "
                f"FROM promise p JOIN deal d ON d.id = p.deal_id WHERE {c.won_in_period()}")
    feedback = ("SELECT f.deal_id AS deal_id, 'feedback:' || f.category AS bucket, f.text AS detail, "
                "CASE WHEN f.promise_id IS NULL THEN 0 ELSE 1 END AS traced "
                "FROM feedback_item f JOIN deal d ON d.id = f.deal_id "
                f"WHERE f.recorded_at >= :t0 AND f.recorded_at < :t1{c.deal_scope()}")
    pagg = {r[0]: _int(r[1]) for r in c.rows(f"SELECT bucket, COUNT(*) FROM ({promises}) x GROUP BY bucket")}
    fagg = {r[0]: (_int(r[1]), _int(r[2])) for r in c.rows(
        f"SELECT bucket, COUNT(*), SUM(traced) FROM ({feedback}) x GROUP BY bucket")}
    p_deals = _int(c.rows(f"SELECT COUNT(DISTINCT deal_id) FROM ({promises}) x")[0][0])
    pl = {p.key: p.label for p in c.pb.promise_categories}
    fl = {f.key: f.label for f in c.pb.feedback_categories}
    rows, keys = [], []
    for k, n in sorted(pagg.items(), key=lambda kv: -kv[1]):
        cat = k.split(":", 1)[1]
        rows.append(("Promise: " + pl.get(cat, cat), n, ""))
        keys.append(k)
    for k, (n, traced) in sorted(fagg.items(), key=lambda kv: -kv[1][0]):
        cat = k.split(":", 1)[1]
        rows.append(("Feedback: " + fl.get(cat, cat), n, f"{traced} traced to a promise"))
        keys.append(k)
    n_prom = sum(pagg.values())
    n_fb = sum(v[0] for v in fagg.values())
    n_tr = sum(v[1] for v in fagg.values())
    res = _result("promise_risk", f"{n_prom} promises on {p_deals} won deals; {n_fb} post-sale feedback "
                  f"items, {n_tr} traced to a promise", ("Item", "Count", "Note"), rows=rows, row_keys=keys,
                  values={"promises": n_prom, "deals_with_promises": p_deals, "feedback": n_fb,
                          "feedback_traced": n_tr}, chart="bars", bar_column=1)
    drill_sql = (f"SELECT deal_id, bucket, 0 AS sort_value, detail FROM ({promises}) x UNION ALL "
                 f"SELECT deal_id, bucket, traced AS sort_value, detail FROM ({feedback}) y")
    return res, {"rows": drill_sql}


@_metric("implementation_risk")
def _implementation_risk(c: _Ctx) -> tuple[MetricResult, Base]:
    scope = f"(d.status = 'open'{c.deal_scope()}) OR ({c.won_in_period()})"
    base = ("SELECT r.deal_id AS deal_id, r.type AS bucket, r.severity AS severity FROM risk r "
            f"JOIN deal d ON d.id = r.deal_id WHERE r.status = 'open' AND ({scope})")
    agg = {r[0]: r[1:] for r in c.rows(
        "SELECT bucket, COUNT(DISTINCT deal_id), SUM(CASE WHEN severity = 'high' THEN 1 ELSE 0 END) "
        f"FROM ({base}) x GROUP BY bucket")}
    deals = _int(c.rows(f"SELECT COUNT(DISTINCT deal_id) FROM ({base}) x")[0][0])
    label = c.pb.risk_label
    order = sorted(agg, key=lambda k: (-_int(agg[k][0]), k))
    rows = [(label.get(k, k), _int(agg[k][0]), _int(agg[k][1])) for k in order]
    res = _result("implementation_risk", f"{deals} deals carry open risks",
                  ("Risk type", "Deals", "High severity"), rows=rows, row_keys=order,
                  values={"deals": deals, "by_type": {k: _int(agg[k][0]) for k in order}},
                  chart="bars", bar_column=1)
    drill_sql = ("SELECT deal_id, bucket, CASE severity WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END "
                 f"AS sort_value, severity || ' severity' AS detail FROM ({base}) x")
    return res, {"rows": drill_sql}


@_metric("pipeline_by_stage")
def _pipeline_by_stage(c: _Ctx) -> tuple[MetricResult, Base]:
    agg = {r[0]: (_int(r[1]), _int(r[2])) for r in c.rows(
        f"SELECT d.stage, COUNT(*), SUM(d.amount_minor) FROM deal d WHERE d.status = 'open'{c.deal_scope()} "
        "GROUP BY d.stage")}
    rows, keys = [], []
    for s in c.pb.open_stages:
        n, amt = agg.get(s.key, (0, 0))
        rows.append((s.label, amt, n))
        keys.append(s.key)
    weekly = c.rows("SELECT s.week_of, i.stage_at, SUM(i.amount_minor_at) FROM inspection i "
                    "JOIN inspection_session s ON s.id = i.session_id "
                    f"WHERE i.status = 'inspected'{c.session_scope()} GROUP BY s.week_of, i.stage_at ORDER BY 1")
    weeks = sorted({_iso(r[0]) for r in weekly})
    series = {}
    for s in c.pb.open_stages:
        vals = {_iso(r[0]): float(r[2] or 0) / 100 for r in weekly if r[1] == s.key}
        if vals:
            series[s.label] = [(w, vals.get(w, 0.0)) for w in weeks]
    total = sum(r[1] for r in rows)
    res = _result("pipeline_by_stage", f"{sum(r[2] for r in rows)} open deals, "
                  f"{format_compact(total, '')} at face value", ("Stage", "Amount", "Deals"), rows=rows, row_keys=keys,
                  values={"open_deals": sum(r[2] for r in rows), "open_amount": total},
                  series=series, chart="bars", bar_column=1)
    drill_sql = ("SELECT d.id AS deal_id, d.stage AS bucket, d.amount_minor AS sort_value, "
                 f"'open' AS detail FROM deal d WHERE d.status = 'open'{c.deal_scope()}")
    drill_week = ("SELECT i.deal_id AS deal_id, s.week_of AS bucket, i.amount_minor_at AS sort_value, "
                  "'inspected at ' || i.stage_at AS detail FROM inspection i "
                  f"JOIN inspection_session s ON s.id = i.session_id WHERE i.status = 'inspected'{c.session_scope()}")
    return res, {"rows": drill_sql, "week": drill_week}


# -- public entry points -----------------------------------------------------------------------
def _run(store: Store, pb: Playbook, scope: Scope, key: str, conn: Connection) -> tuple[MetricResult, Base]:
    if key not in _REGISTRY:
        raise KeyError(f"unknown metric {key!r}")
    return _REGISTRY[key](_Ctx(store, pb, scope, conn))


def compute(store: Store, pb: Playbook, scope: Scope, key: str) -> MetricResult:
    with store.engine.connect() as conn:
        return _run(store, pb, scope, key, conn)[0]


def compute_all(store: Store, pb: Playbook, scope: Scope,
                keys: Iterable[str] = METRIC_KEYS) -> dict[str, MetricResult]:
    """Several metrics in one read transaction (a consistent snapshot)."""
    out: dict[str, MetricResult] = {}
    with store.engine.connect() as conn:
        with conn.begin():
            for k in keys:
                out[k] = _run(store, pb, scope, k, conn)[0]
    return out


def drill(store: Store, pb: Playbook, scope: Scope, key: str, bucket: str, *, base: str = "rows",
          limit: int = 500) -> list[DrillDeal]:
    """The deals behind one row (base "rows") or one week (base "week") of a metric."""
    with store.engine.connect() as conn:
        ctx = _Ctx(store, pb, scope, conn)
        _res, bases = _REGISTRY[key](ctx)
        sql = bases.get(base)
        if not sql or not isinstance(sql, str):
            return []
        extra = dict(bases.get("_params") or {})  # type: ignore[arg-type]
        if base == "week" and store.dialect == "postgresql":
            extra["bucket"] = date.fromisoformat(bucket)
        else:
            extra["bucket"] = bucket
        cmp = "x.bucket = :bucket"
        rows = ctx.rows(
            "SELECT d.id, d.name, d.owner, d.team, d.stage, d.status, d.amount_minor, d.currency, x.detail "
            f"FROM ({sql}) x JOIN deal d ON d.id = x.deal_id WHERE {cmp} "
            f"ORDER BY x.sort_value DESC, d.amount_minor DESC, d.id LIMIT {int(limit)}", extra)
    seen: set[int] = set()
    out = []
    for r in rows:
        if r[0] in seen:
            continue
        seen.add(r[0])
        out.append(DrillDeal(r[0], r[1], r[2] or "", r[3] or "", r[4] or "", r[5] or "", _int(r[6]),
                             r[7] or "USD", r[8] or ""))
    return out


def drill_top(store: Store, pb: Playbook, scope: Scope, key: str, buckets: Iterable[str], *,
              limit: int = 10) -> list[DrillDeal]:
    """The deals behind several rows of one metric: each row's deals as `drill` orders them, rows
    in the given order, at most `limit` in all. One metric run and one query, where calling
    `drill` per row would run the metric once per row."""
    with store.engine.connect() as conn:
        ctx = _Ctx(store, pb, scope, conn)
        _res, bases = _REGISTRY[key](ctx)
        return _top(ctx, bases, list(buckets), limit)


def compute_with_top(store: Store, pb: Playbook, scope: Scope, keys: Iterable[str],
                     tops: Iterable[tuple[str, str | None]], *, limit: int = 10
                     ) -> tuple[dict[str, MetricResult], list[list[DrillDeal]]]:
    """`compute_all` plus top-deal lists in the same read transaction, each metric run once.

    `tops` holds (metric, row key), or (metric, None) for all of that metric's rows in order;
    each list is what `drill_top` gives for it."""
    out: dict[str, MetricResult] = {}
    bases: dict[str, Base] = {}
    lists: list[list[DrillDeal]] = []
    with store.engine.connect() as conn:
        with conn.begin():
            for k in keys:
                out[k], bases[k] = _run(store, pb, scope, k, conn)
            for k, bucket in tops:
                if k not in bases:
                    res, bases[k] = _run(store, pb, scope, k, conn)
                    out.setdefault(k, res)
                buckets = [bucket] if bucket else out[k].row_keys
                lists.append(_top(_Ctx(store, pb, scope, conn), bases[k], buckets, limit))
    return out, lists


def _top(ctx: _Ctx, bases: Base, buckets: list[str], limit: int) -> list[DrillDeal]:
    sql = bases.get("rows")
    if not buckets or not sql or not isinstance(sql, str):
        return []
    extra = dict(bases.get("_params") or {})  # type: ignore[arg-type]
    extra.update({f"db{i}": b for i, b in enumerate(buckets)})
    marks = ", ".join(f":db{i}" for i in range(len(buckets)))
    pos = "CASE " + " ".join(f"WHEN x.bucket = :db{i} THEN {i}" for i in range(len(buckets))) + " END"
    rows = ctx.rows(
        "SELECT id, name, owner, team, stage, status, amount_minor, currency, detail, bpos FROM ("
        "SELECT d.id, d.name, d.owner, d.team, d.stage, d.status, d.amount_minor, d.currency, x.detail, "
        f"{pos} AS bpos, ROW_NUMBER() OVER (PARTITION BY x.bucket ORDER BY x.sort_value DESC, "
        "d.amount_minor DESC, d.id) AS rn "
        f"FROM ({sql}) x JOIN deal d ON d.id = x.deal_id WHERE x.bucket IN ({marks})) y "
        f"WHERE rn <= {int(limit)} ORDER BY bpos, rn", extra)
    seen: set[tuple[int, int]] = set()
    out = []
    for r in rows:
        if (r[9], r[0]) in seen:
            continue
        seen.add((r[9], r[0]))
        out.append(DrillDeal(r[0], r[1], r[2] or "", r[3] or "", r[4] or "", r[5] or "", _int(r[6]),
                             r[7] or "USD", r[8] or ""))
    return out[:limit]


def filter_options(store: Store) -> tuple[list[str], list[tuple[str, str]]]:
    """(teams, [(manager, team)]) known to the store, for the filter pickers."""
    with store.engine.connect() as conn:
        pairs = [(r[0] or "", r[1] or "") for r in conn.execute(text(
            "SELECT DISTINCT manager, team FROM deal WHERE team <> '' ORDER BY team, manager"))]
    return sorted({t for _m, t in pairs}), pairs
