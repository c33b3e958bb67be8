"""Store: the one gateway to the database. Domain objects in, domain objects out.

Lists are tuple reads (no ORM objects for 100k rows); bulk writes are Core executemany;
every write is one short transaction. SQL here is portable between SQLite and PostgreSQL.
"""
from __future__ import annotations

import operator
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timezone
from typing import Any

import sqlite3

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from inspector.domain import ActivityItem, Change, DealDetail, DealRow, RiskItem
from inspector.playbook import DEAL_FIELDS
from inspector.storage.events import db_ts, read_ts

def deal_list_columns(dialect: str) -> str:
    """SELECT list for DealRow: dates as ISO text, day counts against :today in SQL."""
    if dialect == "sqlite":
        def days(col: str) -> str:
            return f"CAST(julianday(:today) - julianday(date({col})) AS INTEGER)"

        def iso(col: str) -> str:
            return f"COALESCE({col}, '')"
    else:
        def days(col: str) -> str:
            return f"(CAST(:today AS DATE) - CAST({col} AS DATE))"

        def iso(col: str) -> str:
            return f"COALESCE(CAST({col} AS TEXT), '')"
    return (
        f"id, name, account, owner, team, manager, stage, amount_minor, currency, "
        f"{iso('close_date')}, forecast_category, next_step, {iso('next_step_date')}, "
        f"{iso('created_on')}, {days('stage_entered_on')}, close_pushes, "
        f"COALESCE(substr(CAST(last_activity_at AS TEXT), 1, 10), ''), "
        f"{days('last_activity_at')}, {days('last_progress_at')}, status"
    )


EVIDENCE_COLUMNS = tuple(sorted(DEAL_FIELDS - {"name", "account", "owner", "amount_minor",
                                                "close_date", "next_step", "next_step_date"}))


#: DealRow fields with few distinct values (reps, teams, stages, dates...): one str object each
_REPEATED = tuple(i for i, f in enumerate(DealRow._fields)
                  if f not in ("id", "name", "amount_minor", "next_step", "days_in_stage", "close_pushes",
                               "days_since_activity", "days_since_progress"))


def _shared_rows(rows: Iterable[Sequence[Any]]) -> list[DealRow]:
    """DealRows with each repeated value (team, rep, stage, a date...) held once for all rows:
    100k rows from the driver carry ~12 fresh copies each of a few hundred distinct strings."""
    pool: dict[Any, Any] = {}
    share = pool.setdefault
    rep = _REPEATED
    out = []
    make = DealRow._make
    for r in rows:
        r = list(r)
        for i in rep:
            r[i] = share(r[i], r[i])
        out.append(make(r))
    return out


def _text_columns() -> frozenset[str]:
    """The deal table's text columns (whose `filled?` is a TRIM in SQL)."""
    from sqlalchemy import String, Text

    from inspector.storage.tables import Deal

    return frozenset(c.name for c in Deal.__table__.columns  # AutoString decorates String
                     if isinstance(getattr(c.type, "impl", c.type), (String, Text)))


def read_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value[:10])


def _sqlite_converter(rows: Sequence[Any], col: Any):
    """A converter for the SQLite fast path, chosen from the column's first non-null value
    (`col`: a key of dict rows or an index of tuple rows)."""
    for r in rows[:200]:
        v = r[col]
        if isinstance(v, datetime):
            return db_ts_sqlite
        if isinstance(v, date):
            return date.isoformat
        if v is not None:
            return None
    return None


def _memo(f):
    """`f` remembered per value: a load stamps 100k rows with one `synced_at`, a few hundred dates."""
    cache: dict[Any, Any] = {}

    def convert(v: Any) -> Any:
        r = cache.get(v)
        if r is None:
            if len(cache) > 100_000:
                cache.clear()
            r = cache[v] = f(v)
        return r
    return convert


def _convert(row: tuple, conv: list) -> tuple:
    out = list(row)
    for i, f in conv:
        if out[i] is not None:
            out[i] = f(out[i])
    return tuple(out)


def sqlite_values(rows: Sequence[tuple]) -> list[tuple] | Sequence[tuple]:
    """Tuple rows with dates and datetimes in the text form SQLite stores (as `insert_rows`
    would convert them; a row source in another process can convert before sending)."""
    if not rows:
        return rows
    conv = [(i, _memo(f)) for i in range(len(rows[0])) if (f := _sqlite_converter(rows, i))]
    return [_convert(t, conv) for t in rows] if conv else rows


def sqlite_column(values: Sequence[Any]) -> list[Any]:
    """One column of a load in the text form SQLite stores dates and datetimes in (each
    distinct value converted once); other values as they are."""
    conv = {v: db_ts_sqlite(v) if isinstance(v, datetime) else v.isoformat() if isinstance(v, date) else v
            for v in set(values)}
    return list(map(conv.__getitem__, values))


def db_ts_sqlite(moment: datetime) -> str:
    """SQLAlchemy's SQLite text form of a UTC timestamp: 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    # -- parameters ------------------------------------------------------------------------
    def p(self, conn: Connection, value: Any) -> Any:
        """Bind value for this backend (datetimes as SQLAlchemy stores them on SQLite)."""
        if isinstance(value, datetime):
            return db_ts(conn, value)
        if isinstance(value, date) and self.dialect == "sqlite":
            return value.isoformat()
        return value

    def params(self, conn: Connection, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self.p(conn, v) for k, v in values.items()}

    # -- bulk writes -----------------------------------------------------------------------
    def insert_rows(self, table: str, cols: Sequence[str], rows: Sequence[tuple], conn: Connection,
                    chunk: int = 20000) -> None:
        """Insert tuple rows (values in `cols` order) with the driver's executemany on SQLite,
        Core executemany elsewhere: no dict per row for callers that build tuples anyway."""
        if not rows:
            return
        if self.dialect != "sqlite":
            self.bulk_insert(table, [dict(zip(cols, r)) for r in rows], conn, chunk)
            return
        raw = conn.connection.driver_connection.cursor()
        raw.execute("PRAGMA cache_size=-131072")  # 128 MiB page cache for big loads
        qmarks = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        try:
            for start in range(0, len(rows), chunk):
                raw.executemany(qmarks, sqlite_values(rows[start:start + chunk]))
        except sqlite3.IntegrityError as exc:  # one exception type whatever the backend
            raise IntegrityError(qmarks, None, exc) from exc
        except sqlite3.Error as exc:
            raise DBAPIError.instance(qmarks, None, exc, sqlite3.Error) from exc
        finally:
            raw.close()

    @contextmanager
    def indexes_deferred(self, conn: Connection, tables: Sequence[str]) -> Iterator[None]:
        """Load empty `tables` without their secondary indexes, then build the indexes once.

        Building an index from loaded rows is one sort; keeping it up to date row by row is a
        B-tree insert per row (a 100k-deal seed spends a third of its write time there). Only
        on SQLite and only when every table is empty; otherwise nothing changes. It all runs
        in the caller's transaction, so a failed load leaves the indexes as they were.
        """
        if self.dialect != "sqlite" or any(
                conn.execute(text(f"SELECT 1 FROM {t} LIMIT 1")).first() for t in tables):
            yield
            return
        marks = ", ".join(f":t{i}" for i in range(len(tables)))
        found = conn.execute(text(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({marks}) ORDER BY name"), {f"t{i}": t for i, t in enumerate(tables)}).all()
        for name, _sql in found:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        yield
        for _name, sql in found:  # as SQLite keeps it (driver SQL: no bind-parameter parsing)
            conn.exec_driver_sql(sql)

    def bulk_insert(self, table: str, rows: Sequence[dict[str, Any]], conn: Connection | None = None,
                    chunk: int = 20000) -> None:
        """Insert many rows with executemany (all rows share the first row's keys)."""
        if not rows:
            return
        cols = list(rows[0])
        sql = text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                   f"({', '.join(':' + c for c in cols)})")
        if conn is None:
            with self.engine.begin() as c:
                self.bulk_insert(table, rows, c, chunk)
            return
        if self.dialect == "sqlite":  # fast path: the driver's executemany on tuples
            get = operator.itemgetter(*cols)
            for start in range(0, len(rows), chunk):
                part = rows[start:start + chunk]
                self.insert_rows(table, cols, list(map(get, part)) if len(cols) > 1 else
                                 [(get(r),) for r in part], conn, chunk)
            return
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            conn.execute(sql, [self.params(conn, r) for r in part])

    # -- reads -----------------------------------------------------------------------------
    def p_date(self, day: date) -> Any:
        return day.isoformat() if self.dialect == "sqlite" else day

    def list_deals(self, today: date, *, statuses: Iterable[str] = ("open",), team: str | None = None,
                   owners: Iterable[str] | None = None, first: int | None = None) -> list[DealRow]:
        """Deals as tuple rows; `first=N` gives the N with the earliest close dates (quick first page)."""
        sts = list(statuses)
        where = [f"status IN ({', '.join(f':s{i}' for i in range(len(sts)))})"]
        params: dict[str, Any] = {f"s{i}": s for i, s in enumerate(sts)}
        if team:
            where.append("team = :team")
            params["team"] = team
        own = list(owners or ())
        if own:
            where.append(f"owner IN ({', '.join(f':o{i}' for i in range(len(own)))})")
            params.update({f"o{i}": o for i, o in enumerate(own)})
        params["today"] = self.p_date(today)
        order = f"ORDER BY close_date, id LIMIT {int(first)}" if first else "ORDER BY id"
        sql = (f"SELECT {deal_list_columns(self.dialect)} FROM deal "
               f"WHERE {' AND '.join(where)} {order}")
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":  # tuples straight from the driver
                raw = conn.connection.driver_connection.execute(sql, params)
            else:
                raw = conn.execute(text(sql), params)
            return _shared_rows(raw)

    def teams(self) -> list[tuple[str, str, int]]:
        """(team, manager, open deals) for every team with open deals."""
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT team, manager, COUNT(*) FROM deal WHERE status = 'open' "
                "GROUP BY team, manager ORDER BY team"))]

    def reps(self, team: str | None = None) -> list[str]:
        sql = "SELECT DISTINCT owner FROM deal WHERE status = 'open'"
        params = {}
        if team:
            sql += " AND team = :team"
            params["team"] = team
        with self.engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(text(sql + " ORDER BY owner"), params))

    def deal_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM deal")).scalar_one()

    def changes_since(self, since: datetime, deal_ids: Iterable[int] | None = None, *,
                      parse_times: bool = True) -> list[Change]:
        """Changes after `since`, oldest first. With parse_times=False `changed_at` stays as the
        driver returns it (ISO text on SQLite), which is enough for summaries over many deals."""
        sql = ("SELECT deal_id, field, old, new, changed_at, source FROM deal_change "
               "WHERE changed_at > :since ORDER BY changed_at, id")
        wanted = set(deal_ids) if deal_ids is not None else None
        conv = read_ts if parse_times else (lambda v: v)
        # rows are read as they come (no second list of 100k tuples), and the values that
        # repeat (field, source, a day's timestamps, stage keys) are held once
        pool: dict[Any, Any] = {}
        share = pool.setdefault
        out: list[Change] = []
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                rows = conn.connection.driver_connection.execute(sql, {"since": self.p(conn, since)})
            else:
                rows = conn.execute(text(sql), {"since": since})
            for r in rows:
                if wanted is None or r[0] in wanted:
                    out.append(Change(r[0], share(r[1], r[1]), share(r[2], r[2]), share(r[3], r[3]),
                                      conv(share(r[4], r[4])), share(r[5], r[5])))
        return out

    def progress_types(self, deal_ids: Iterable[int] | None = None) -> dict[int, frozenset[str]]:
        """Progress types recorded on each deal (for evidence checks over many deals).

        Streamed, with each type string and each distinct set kept once: deals share a few
        dozen combinations, so 100k deals hold references, not 100k sets of fresh strings."""
        wanted = set(deal_ids) if deal_ids is not None else None
        acc: dict[int, set[str]] = defaultdict(set)
        with self.engine.connect() as conn:
            for deal_id, ptype in conn.execute(text(
                    "SELECT DISTINCT deal_id, progress_type FROM activity "
                    "WHERE is_progress AND progress_type IS NOT NULL")):
                if wanted is None or deal_id in wanted:
                    acc[deal_id].add(sys.intern(ptype))
        shared: dict[frozenset[str], frozenset[str]] = {}
        return {d: shared.setdefault(frozenset(types), frozenset(types)) for d, types in acc.items()}

    def iter_evidence_presence(self, keep_values: Iterable[str]) -> Iterable[tuple[int, dict[str, Any]]]:
        """(deal id, {filled field: True, or its value for `keep_values`}) for each open deal,
        by id, streamed: a caller that checks deals one by one holds one deal's fields at a time."""
        keep = set(keep_values)
        texts = _text_columns()
        exprs = [f"CASE WHEN COALESCE(TRIM({c}), '') <> '' THEN 1 END" if c in texts and c not in keep else c
                 for c in EVIDENCE_COLUMNS]
        flags = tuple(c in texts and c not in keep for c in EVIDENCE_COLUMNS)
        names = tuple(sys.intern(c) for c in EVIDENCE_COLUMNS)
        with self.engine.connect() as conn:
            for r in conn.execute(text(f"SELECT id, {', '.join(exprs)} FROM deal WHERE status = 'open' "
                                       "ORDER BY id")):
                yield r[0], {n: (True if flag else v) for n, flag, v in zip(names, flags, r[1:])
                             if v is not None}

    def open_risk_counts(self) -> dict[int, tuple[int, int]]:
        """deal id -> (open risks, open high risks), plus deals with any risk recorded."""
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT deal_id, SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN status = 'open' AND severity = 'high' THEN 1 ELSE 0 END) "
                "FROM risk GROUP BY deal_id")).fetchall()
        return {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in rows}

    def risk_deal_ids(self) -> set[int]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT DISTINCT deal_id FROM risk"))}

    def activity_counts_since(self, since: datetime) -> dict[int, int]:
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(text(
                "SELECT deal_id, COUNT(*) FROM activity WHERE occurred_at >= :since "
                "GROUP BY deal_id"), {"since": self.p(conn, since)})}

    def promise_counts(self) -> dict[int, int]:
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(text(
                "SELECT deal_id, COUNT(*) FROM promise GROUP BY deal_id"))}

    def approved_triggers(self, deal_id: int | None = None) -> dict[int, frozenset[str]]:
        """deal id -> deal-desk trigger keys with approval recorded (the approval table is small)."""
        sql = "SELECT deal_id, trigger_key FROM approval WHERE status = 'approved'"
        params: dict[str, Any] = {}
        if deal_id is not None:
            sql += " AND deal_id = :d"
            params["d"] = deal_id
        out: dict[int, set[str]] = defaultdict(set)
        with self.engine.connect() as conn:
            for d, key in conn.execute(text(sql), params):
                out[d].add(key)
        return {d: frozenset(keys) for d, keys in out.items()}

    def get_deal(self, deal_id: int, today: date) -> DealDetail:
        cols = ", ".join(EVIDENCE_COLUMNS)
        with self.engine.connect() as conn:
            r = conn.execute(text(f"SELECT {deal_list_columns(self.dialect)}, version, {cols} "
                                  "FROM deal WHERE id = :id"),
                             {"id": deal_id, "today": self.p_date(today)}).first()
            if r is None:
                raise KeyError(deal_id)
            row = DealRow._make(r[:20])
            version = r[20]
            fields = dict(zip(EVIDENCE_COLUMNS, r[21:]))
            for k, v in fields.items():
                if isinstance(v, str) and k in _DATE_FIELDS:
                    fields[k] = read_date(v)
                elif k in _BOOL_FIELDS and v is not None:
                    fields[k] = bool(v)
            changes = tuple(Change(c[0], c[1], c[2], c[3], read_ts(c[4]), c[5]) for c in conn.execute(
                text("SELECT deal_id, field, old, new, changed_at, source FROM deal_change "
                     "WHERE deal_id = :id ORDER BY changed_at, id"), {"id": deal_id}))
            acts = tuple(ActivityItem(a[0], a[1], a[2], read_ts(a[3]), a[4], a[5], bool(a[6]), a[7], a[8])
                         for a in conn.execute(text(
                             "SELECT id, deal_id, kind, occurred_at, summary, who, is_progress, "
                             "progress_type, version FROM activity WHERE deal_id = :id "
                             "ORDER BY occurred_at DESC, id DESC"), {"id": deal_id}))
            risks = tuple(self._risk(x) for x in conn.execute(text(
                "SELECT id, deal_id, type, severity, owner, due_date, mitigation, status, "
                "created_at, version FROM risk WHERE deal_id = :id ORDER BY id"), {"id": deal_id}))
            promises = conn.execute(text("SELECT COUNT(*) FROM promise WHERE deal_id = :id"),
                                    {"id": deal_id}).scalar_one()
        return DealDetail(row, fields, changes, acts, risks, promises, version)

    @staticmethod
    def _risk(x: Sequence[Any]) -> RiskItem:
        return RiskItem(x[0], x[1], x[2], x[3], x[4], read_date(x[5]), x[6], x[7], read_ts(x[8]), x[9])


_BOOL_FIELDS = frozenset({"custom_terms", "legal_exception", "product_commitment", "scope_change"})
_DATE_FIELDS = frozenset({"contract_signed_on", "contract_start", "contract_end", "renewal_date",
                          "kickoff_date"})
