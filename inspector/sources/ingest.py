"""Write source records into the store: insert new deals, update changed ones in place and
record what changed as deal history. One call is one transaction (a CSV file, a CRM page).

Local inspection data (sessions, answers, verdicts, risks, progress marks) is never touched.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text

from inspector.playbook import DEAL_FIELDS, Playbook
from inspector.sources.records import DealRecord, RecordBatch
from inspector.storage.repo import Store, read_date, sqlite_column
from inspector.storage.events import read_ts

TRACKED = ("stage", "amount_minor", "close_date", "forecast_category")
_BASE = ("name", "account", "owner", "team", "manager", "stage", "crm_stage", "status", "amount_minor",
         "currency", "close_date", "forecast_category", "next_step", "next_step_date", "created_on",
         "crm_updated_at", "extras")
_EVIDENCE = tuple(sorted(DEAL_FIELDS - set(_BASE) - {"amount_minor"}))


@dataclass(frozen=True)
class PreviewChange:
    """One deal a dry run would create or update, with the fields that would move.

    `fields` holds (field, stored value, new value) in the stored form (`_cmp`); for a new deal
    the old values are None and the fields are its stage, amount and close date."""

    kind: str  # "new" | "update"
    external_id: str
    name: str
    currency: str
    fields: tuple[tuple[str, str | None, str | None], ...] = ()


_DETAILS = ("name", "account", "owner", "next_step", "next_step_date")


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changes: int = 0  # deal_change rows written
    activities: int = 0
    changed_fields: dict[str, int] = field(default_factory=dict)  # e.g. {"stage": 3}
    preview: list[str] = field(default_factory=list)  # human lines (dry runs)
    changes_preview: list[PreviewChange] = field(default_factory=list)  # the same, field by field

    def add(self, other: "UpsertResult") -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.changes += other.changes
        self.activities += other.activities
        for k, v in other.changed_fields.items():
            self.changed_fields[k] = self.changed_fields.get(k, 0) + v
        self.preview.extend(other.preview)
        self.changes_preview.extend(other.changes_preview)


#: `json.dumps(..., sort_keys=True, default=str)` without building an encoder per record
_dumps = json.JSONEncoder(sort_keys=True, default=str).encode


def _status(pb: Playbook, stage: str) -> str:
    kind = pb.stage_by_key[stage].kind if stage in pb.stage_by_key else "open"
    return {"won": "won", "lost": "lost"}.get(kind, "open")


def _cmp(value: Any) -> str | None:
    """Stored form used in deal_change old/new (and for comparing)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _stored_day(value: Any) -> str | None:
    """`_cmp(read_date(value))` for a stored date: SQLite's ISO text is its own compared form."""
    if value.__class__ is str and len(value) >= 10 and value[4] == "-":
        return value[:10]
    return _cmp(read_date(value))


def upsert_deals(store: Store, pb: Playbook, records: Sequence[DealRecord], *, now: datetime,
                 conn: Connection | None = None, dry_run: bool = False) -> UpsertResult:
    """Insert or update `records` (all from one source) in one transaction.

    History the source provides (CRM field history) is stored as given; on top, any tracked
    field whose value differs from the store's is recorded as a change at `now`, so
    re-importing an updated export records what moved. Running the same input twice writes
    nothing the second time.
    """
    if conn is None:
        if dry_run:
            with store.engine.connect() as c:
                return upsert_deals(store, pb, records, now=now, conn=c, dry_run=True)
        with store.engine.begin() as c:
            return upsert_deals(store, pb, records, now=now, conn=c)
    result = UpsertResult()
    if not records:
        return result
    if isinstance(records, RecordBatch):
        if not (records.materialized or
                _rows_by_external_id(conn, records.source, records.column("external_id"), "id")):
            if dry_run:
                _preview_batch(records, result)
            else:
                _insert_batch(store, pb, records, now, conn, result)
            return result
        records = records.records()  # updates: record by record
    source = records[0].source
    ids = [r.external_id for r in records]
    existing: dict[str, tuple] = {}
    cols = ", ".join(("id",) + TRACKED + ("version", "stage_entered_on", "close_pushes", "crm_updated_at",
                                          "name", "account", "owner", "next_step", "next_step_date"))
    for row in _rows_by_external_id(conn, source, ids, cols):
        existing[row[0]] = row[1:]
    # new deals are built as tuples in _NEW_COLUMNS order (+ evidence fields): no dict per row
    new_rows: list[tuple[tuple, dict[str, Any] | None]] = []
    history_rows: list[tuple] = []  # (external_id, field, old, new, changed_at)
    dumps = _extras_encoder()
    statuses: dict[str, str] = {}
    today = now.date()
    for rec in records:
        status = statuses.get(rec.stage)
        if status is None:
            status = statuses[rec.stage] = _status(pb, rec.stage)
        old = existing.get(rec.external_id)
        if old is None and not dry_run:
            result.created += 1
            history = rec.history
            if history:
                stage_moves = [h.changed_at for h in history if h.field == "stage"]
                entered = max(stage_moves).date() if stage_moves else rec.created_on or today
                pushes = sum(1 for h in history if h.field == "close_date" and h.old and h.new and h.new > h.old)
                for h in history:
                    history_rows.append((rec.external_id, h.field, h.old, h.new, h.changed_at))
            else:
                entered, pushes = rec.created_on or today, 0
                history_rows.append((rec.external_id, "created", None, rec.stage, rec.crm_updated_at or now))
            evidence = {k: v for k, v in rec.fields.items() if k in _EVIDENCE} if rec.fields else None
            new_rows.append(((rec.source, rec.external_id, rec.name, rec.account, rec.owner, rec.team, rec.manager,
                              rec.stage, rec.crm_stage or rec.stage, status, rec.amount_minor, rec.currency,
                              rec.close_date, rec.forecast_category, rec.next_step, rec.next_step_date,
                              rec.created_on, rec.crm_updated_at, now, dumps(rec.extras), entered, pushes,
                              entered if status != "open" else None,
                              max(a.occurred_at for a in rec.activities) if rec.activities else None), evidence))
            continue
        if old is None:  # a dry run: nothing is written
            result.created += 1
            result.preview.append(f"new  {rec.external_id}  {rec.name}")
            result.changes_preview.append(PreviewChange(
                "new", rec.external_id, rec.name, rec.currency,
                (("stage", None, _cmp(rec.stage)), ("amount_minor", None, _cmp(rec.amount_minor)),
                 ("close_date", None, _cmp(rec.close_date)))))
            continue
        (deal_id, o_stage, o_amount, o_close, o_cat, version, entered, pushes, _o_upd,
         o_name, o_account, o_owner, o_next, o_next_date) = old
        close_day, o_close_day = _cmp(rec.close_date), _stored_day(o_close)
        before = {"stage": o_stage, "amount_minor": o_amount, "close_date": o_close_day, "forecast_category": o_cat}
        after = {"stage": rec.stage, "amount_minor": rec.amount_minor, "close_date": close_day,
                 "forecast_category": rec.forecast_category}
        if (o_stage, o_amount, o_cat, o_close_day) == (rec.stage, rec.amount_minor, rec.forecast_category, close_day):
            moved = []  # equal as stored, so equal as compared (most rows of a weekly re-import)
        else:
            moved = [f for f in TRACKED if _cmp(before[f]) != _cmp(after[f])]
        other_changed = (o_name, o_account, o_owner, o_next, _stored_day(o_next_date)) != \
            (rec.name, rec.account, rec.owner, rec.next_step, _cmp(rec.next_step_date))
        if not moved and not other_changed and not rec.fields and not rec.activities:
            result.unchanged += 1
            continue
        if not moved and not other_changed:
            result.unchanged += 1
        else:
            result.updated += 1
        for f in moved:
            result.changed_fields[f] = result.changed_fields.get(f, 0) + 1
        if dry_run:
            if moved or other_changed:
                result.preview.append(f"update {rec.external_id}  {rec.name}: " + ", ".join(
                    f"{f} {_cmp(before[f])} → {_cmp(after[f])}" for f in moved) if moved else
                    f"update {rec.external_id}  {rec.name}: details")
                details = dict(zip(_DETAILS, (o_name, o_account, o_owner, o_next, _cmp(read_date(o_next_date)))))
                new_details = {"name": rec.name, "account": rec.account, "owner": rec.owner,
                               "next_step": rec.next_step, "next_step_date": _cmp(rec.next_step_date)}
                result.changes_preview.append(PreviewChange(
                    "update", rec.external_id, rec.name, rec.currency,
                    tuple((f, _cmp(before[f]), _cmp(after[f])) for f in moved)
                    + tuple((f, _cmp(details[f]), _cmp(new_details[f])) for f in _DETAILS
                            if _cmp(details[f]) != _cmp(new_details[f]))))
            continue
        sets = {"name": rec.name, "account": rec.account, "owner": rec.owner, "team": rec.team,
                "manager": rec.manager, "stage": rec.stage, "crm_stage": rec.crm_stage or rec.stage,
                "status": status, "amount_minor": rec.amount_minor, "currency": rec.currency,
                "close_date": rec.close_date, "forecast_category": rec.forecast_category,
                "next_step": rec.next_step, "next_step_date": rec.next_step_date, "created_on": rec.created_on,
                "crm_updated_at": rec.crm_updated_at, "synced_at": now, "extras": dumps(rec.extras)}
        for k, v in rec.fields.items():
            if k in _EVIDENCE:
                sets[k] = v
        if "stage" in moved:
            sets["stage_entered_on"] = now.date()
            sets["closed_on"] = now.date() if status != "open" else None
        if "close_date" in moved and before["close_date"] and after["close_date"] and \
                after["close_date"] > before["close_date"]:
            sets["close_pushes"] = (pushes or 0) + 1
        sets["version"] = version + 1
        assign = ", ".join(f"{k} = :{k}" for k in sets)
        conn.execute(text(f"UPDATE deal SET {assign} WHERE id = :deal_id"),
                     store.params(conn, {**sets, "deal_id": deal_id}))
        for f in moved:
            when = next((h.changed_at for h in rec.history if h.field == f and _cmp(h.new) == _cmp(after[f])),
                        now)
            history_rows.append((rec.external_id, f, _cmp(before[f]), _cmp(after[f]), when))
    if dry_run:
        return result
    # a first big load into an empty store builds the indexes once, after the rows are in
    deferred = store.indexes_deferred(conn, ("deal", "deal_change", "activity")) \
        if len(new_rows) >= BULK_LOAD else contextlib.nullcontext()
    with deferred:
        _write_new(store, conn, source, records, new_rows, history_rows, result)
    return result


BULK_LOAD = 5000  # new deals in one upsert from which an empty store's indexes are built after


def _write_new(store: Store, conn: Connection, source: str, records: Sequence[DealRecord],
               new_rows: list[tuple[tuple, dict[str, Any] | None]], history_rows: list[tuple],
               result: UpsertResult) -> None:
    new_ids: dict[str, int] = {}
    if new_rows:
        extra: dict[str, None] = {}  # evidence columns any new deal carries, first seen first
        for _row, evidence in new_rows:
            if evidence:
                extra.update(dict.fromkeys(evidence))
        if extra:
            defaults = [(k, "" if k not in _NON_TEXT else None) for k in extra]
            blank = tuple(d for _k, d in defaults)
            rows = [row + tuple(evidence.get(k, d) for k, d in defaults) if evidence else row + blank
                    for row, evidence in new_rows]
        else:
            rows = [row for row, _evidence in new_rows]
        top = "SELECT COALESCE(MAX(id), 0) FROM deal"
        first = conn.execute(text(top)).scalar_one() + 1 if store.dialect == "sqlite" else None
        store.insert_rows("deal", _NEW_COLUMNS + tuple(extra), rows, conn)
        # SQLite numbers rows inserted without an id max(id) + 1, one after another (and this
        # transaction holds the write lock); the count check confirms it before relying on it
        if first is not None and conn.execute(text(top)).scalar_one() - first + 1 == len(rows):
            new_ids = {row[1]: first + k for k, row in enumerate(rows)}
    wanted = {h[0] for h in history_rows} | {r.external_id for r in records if r.activities}
    id_of = {e: new_ids[e] for e in wanted if e in new_ids}
    if len(id_of) < len(wanted):
        id_of.update(_ids(conn, source, wanted - id_of.keys()))
    store.insert_rows("deal_change", ("deal_id", "field", "old", "new", "changed_at", "source"),
                      [(id_of[e], f, o, n, at, source) for e, f, o, n, at in history_rows], conn)
    result.changes = len(history_rows)
    result.activities = _activities(store, conn, records, id_of)


def _preview_batch(batch: RecordBatch, result: UpsertResult) -> None:
    """A dry run of a batch of new deals: what the record-by-record dry run lists for them."""
    col = batch.column
    rows = list(zip(col("external_id"), col("name"), col("currency"), col("stage"), col("amount_minor"),
                    col("close_date")))
    result.created = len(rows)
    result.preview = [f"new  {ext}  {name}" for ext, name, *_rest in rows]
    result.changes_preview = [
        PreviewChange("new", ext, name, currency, (("stage", None, _cmp(stage)),
                                                   ("amount_minor", None, _cmp(amount)),
                                                   ("close_date", None, _cmp(close))))
        for ext, name, currency, stage, amount, close in rows]


def _insert_batch(store: Store, pb: Playbook, batch: RecordBatch, now: datetime, conn: Connection,
                  result: UpsertResult) -> None:
    """New deals straight from a batch's columns (none of them is in the store yet).

    Stores what the record-by-record path stores for the same records (a test compares
    both), without building a DealRecord and a row tuple per deal: a 100k-row file's first
    import spent a third of its time there."""
    n = len(batch)
    col = batch.column
    stages = col("stage")
    status_of = {s: _status(pb, s) for s in set(stages)}
    statuses = list(map(status_of.__getitem__, stages))
    today = now.date()
    entered = [c or today for c in col("created_on")]
    closed_on = [e if st != "open" else None for e, st in zip(entered, statuses)]
    crm_stages = [c or s for c, s in zip(col("crm_stage"), stages)]
    if batch.extras:
        dumps = _extras_encoder()
        heads = [h for h, _values in batch.extras]
        as_json = {key: dumps({h: v for h, v in zip(heads, key) if v != ""})
                   for key in set(zip(*(values for _h, values in batch.extras)))}
        extras = [as_json[key] for key in zip(*(values for _h, values in batch.extras))]
    else:
        extras = ["{}"] * n
    evidence = [(k, v) for k, v in batch.fields.items() if k in _EVIDENCE]
    dated = {*(_NEW_COLUMNS.index(c) for c in _DATE_COLUMNS),
              *(len(_NEW_COLUMNS) + i for i, (k, _v) in enumerate(evidence) if k in _NON_TEXT)}
    updated = col("crm_updated_at")
    values = [[batch.source] * n, col("external_id"), col("name"), col("account"), col("owner"), col("team"),
              col("manager"), stages, crm_stages, statuses, col("amount_minor"), col("currency"),
              col("close_date"), col("forecast_category"), col("next_step"), col("next_step_date"),
              col("created_on"), updated, [now] * n, extras, entered, [0] * n, closed_on, [None] * n,
              *(v for _k, v in evidence)]
    if store.dialect == "sqlite":  # dates as SQLite keeps them, a distinct value at a time
        values = [sqlite_column(v) if i in dated else v for i, v in enumerate(values)]
    deferred = store.indexes_deferred(conn, ("deal", "deal_change", "activity")) \
        if n >= BULK_LOAD else contextlib.nullcontext()
    with deferred:
        top = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM deal")).scalar_one()
        store.insert_rows("deal", _NEW_COLUMNS + tuple(k for k, _v in evidence), list(zip(*values)), conn)
        if store.dialect == "sqlite":
            # each new deal's "created" row from the rows just inserted: SQLite numbers them
            # above the old max id, and this transaction holds the only write lock
            conn.execute(_CREATED, store.params(conn, {"source": batch.source, "top": top, "now": now}))
        else:  # a team store takes other writers' deals meanwhile: by the ids of these deals
            ids = col("external_id")
            id_of = _ids(conn, batch.source, ids)
            store.insert_rows("deal_change", ("deal_id", "field", "old", "new", "changed_at", "source"),
                              [(id_of[e], "created", None, s, u or now, batch.source)
                               for e, s, u in zip(ids, stages, updated)], conn)
    result.created = result.changes = n


_CREATED = text("INSERT INTO deal_change (deal_id, field, old, new, changed_at, source) "
                "SELECT id, 'created', NULL, stage, COALESCE(crm_updated_at, :now), source FROM deal "
                "WHERE id > :top AND source = :source ORDER BY id")
#: the columns of a new deal row, in the order upsert_deals builds them
_NEW_COLUMNS = ("source", "external_id", "name", "account", "owner", "team", "manager", "stage", "crm_stage",
                "status", "amount_minor", "currency", "close_date", "forecast_category", "next_step",
                "next_step_date", "created_on", "crm_updated_at", "synced_at", "extras", "stage_entered_on",
                "close_pushes", "closed_on", "last_activity_at")
_DATE_COLUMNS = ("close_date", "next_step_date", "created_on", "crm_updated_at", "synced_at", "stage_entered_on",
                 "closed_on")


def _extras_encoder():
    """`_dumps` remembered per extras content for one upsert (a CSV's extra columns repeat a few
    values over 100k rows). Only text values are remembered (1, 1.0 and True are equal keys
    but not the same JSON); a CRM's nested record is encoded each time."""
    cache: dict[tuple, str] = {}

    def encode(extras: dict[str, Any]) -> str:
        if not extras:
            return "{}"
        if all(v.__class__ is str for v in extras.values()):
            key = tuple(extras.items())
            hit = cache.get(key)
            if hit is None:
                if len(cache) >= 100_000:
                    cache.clear()
                hit = cache[key] = _dumps(extras)
            return hit
        return _dumps(extras)
    return encode


_NON_TEXT = frozenset({"contract_signed_on", "contract_start", "contract_end", "renewal_date", "kickoff_date",
                       "discount_pct", "partner_margin_pct", "term_months", "custom_terms", "legal_exception",
                       "product_commitment", "scope_change"})


#: above this many ids, one scan of the source's deals beats chunks of `IN (...)` lookups
_SCAN_ABOVE = 2000


def _rows_by_external_id(conn: Connection, source: str, external_ids: Sequence[str], cols: str) -> list[tuple]:
    """`SELECT external_id, <cols>` for these deals of `source` (a file of 100k rows: one scan)."""
    if not external_ids:
        return []
    if len(external_ids) > _SCAN_ABOVE:
        wanted = set(external_ids)
        return [r for r in conn.execute(text(f"SELECT external_id, {cols} FROM deal WHERE source = :s"),
                                        {"s": source}).fetchall() if r[0] in wanted]
    stmt = _BY_EXTERNAL_ID.get(cols)
    if stmt is None:  # one statement per column list, compiled once (expanding id list)
        stmt = _BY_EXTERNAL_ID[cols] = text(f"SELECT external_id, {cols} FROM deal WHERE source = :s "
                                            "AND external_id IN :ids").bindparams(bindparam("ids", expanding=True))
    out: list[tuple] = []
    for start in range(0, len(external_ids), 500):
        out.extend(conn.execute(stmt, {"s": source, "ids": list(external_ids[start:start + 500])}).fetchall())
    return out


_BY_EXTERNAL_ID: dict[str, Any] = {}
_KNOWN_ACTIVITIES = text("SELECT deal_id, external_id FROM activity WHERE deal_id IN :ids "
                         "AND external_id IS NOT NULL").bindparams(bindparam("ids", expanding=True))
#: rewrites only the deals whose newest activity moved (a new deal has its own from the INSERT)
_LAST_ACTIVITY = text("UPDATE deal SET last_activity_at = (SELECT MAX(a.occurred_at) FROM activity a "
                      "WHERE a.deal_id = deal.id) WHERE id IN :ids AND (last_activity_at IS NULL OR "
                      "last_activity_at < (SELECT MAX(a.occurred_at) FROM activity a WHERE a.deal_id = deal.id))"
                      ).bindparams(bindparam("ids", expanding=True))
_ACTIVITY_COLUMNS = ("deal_id", "external_id", "kind", "occurred_at", "summary", "who", "is_progress",
                     "progress_type")


def _ids(conn: Connection, source: str, external_ids: Iterable[str]) -> dict[str, int]:
    return {ext: deal_id for ext, deal_id in _rows_by_external_id(conn, source, list(external_ids), "id")}


def _activities(store: Store, conn: Connection, records: Sequence[DealRecord], id_of: dict[str, int]) -> int:
    """Insert activities not seen before (by external id); keep progress marks made locally.

    One query per 500 deals for the activities already stored and one UPDATE per 500 deals
    for `last_activity_at` (a CRM page of 50 deals was 100 statements)."""
    wanted = [(rec, id_of[rec.external_id]) for rec in records if rec.activities]
    if not wanted:
        return 0
    deal_ids = list(dict.fromkeys(int(d) for _r, d in wanted))
    known: dict[int, set[str]] = {d: set() for d in deal_ids}
    for start in range(0, len(deal_ids), 500):
        for deal_id, ext in conn.execute(_KNOWN_ACTIVITIES, {"ids": deal_ids[start:start + 500]}).fetchall():
            known[deal_id].add(ext)
    rows = []
    touched: dict[int, None] = {}
    for rec, deal_id in wanted:
        seen = known[int(deal_id)]
        for a in rec.activities:
            if a.external_id in seen:
                continue
            seen.add(a.external_id)
            rows.append((deal_id, a.external_id, a.kind, a.occurred_at, a.summary, a.who, False, None))
            touched[int(deal_id)] = None
    store.insert_rows("activity", _ACTIVITY_COLUMNS, rows, conn)
    ids = list(touched)
    for start in range(0, len(ids), 500):
        conn.execute(_LAST_ACTIVITY, {"ids": ids[start:start + 500]})
    return len(rows)


def mark_removed(store: Store, source: str, external_ids: Iterable[str], *, now: datetime,
                 conn: Connection | None = None) -> int:
    """Deals deleted in the CRM are marked removed (kept with their inspections), not deleted."""
    if conn is None:
        with store.engine.begin() as c:
            return mark_removed(store, source, external_ids, now=now, conn=c)
    n = 0
    for ext in external_ids:
        n += conn.execute(text("UPDATE deal SET status = 'removed', removed_at = :now, version = version + 1 "
                               "WHERE source = :s AND external_id = :e AND status != 'removed'"),
                          store.params(conn, {"now": now, "s": source, "e": ext})).rowcount
    return n


def deal_snapshot(conn: Connection, source: str, external_id: str) -> dict[str, Any] | None:
    row = conn.execute(text("SELECT stage, amount_minor, close_date, forecast_category, crm_updated_at "
                            "FROM deal WHERE source = :s AND external_id = :e"),
                       {"s": source, "e": external_id}).first()
    if row is None:
        return None
    return {"stage": row[0], "amount_minor": row[1], "close_date": read_date(row[2]),
            "forecast_category": row[3], "crm_updated_at": read_ts(row[4])}
