"""Salesforce REST connector: SOQL on Opportunity (account and owner names) following
`nextRecordsUrl`; OpportunityHistory / OpportunityFieldHistory -> deal history; Task and
Event -> activities; incremental sync by SystemModstamp; writeback through
`composite/sobjects` (≤ 200 records, one SaveResult each). Facts: shared/CRM_APIS.md §2.

A full run is counted first (`SELECT COUNT()`), so a big one writes in the sync's helper
process; `SalesforceMapper` turns a page's rows into records there (`Page.deferred`) or here.

Both full and incremental runs order by `SystemModstamp, Id`, so an expired query locator
(INVALID_QUERY_LOCATOR) restarts from the newest SystemModstamp seen, not from scratch.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, time, timezone
from typing import Any
from urllib.parse import urlsplit

from inspector.playbook import Playbook
from inspector.sources.crm import (Cursor, FieldWrite, NoteWrite, Outcome, Page, iso, map_category, map_stage,
                                   parse_date, parse_dt, parse_minor, plain)
from inspector.sources.http import CrmError, CrmHttp
from inspector.sources.records import ActivityRecord, DealRecord, HistoryItem

API_VERSION = "59.0"
OPP_FIELDS = ("Id", "Name", "Account.Name", "Owner.Name", "StageName", "Amount", "CloseDate", "Probability",
              "ForecastCategoryName", "NextStep", "IsClosed", "IsWon", "CreatedDate", "LastModifiedDate",
              "SystemModstamp", "Type", "LeadSource")
FORECAST_VALUES = {"commit": "Commit", "best_case": "Best Case", "pipeline": "Pipeline", "omit": "Omitted"}


def soql_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def soql_datetime(value: str) -> str:
    moment = parse_dt(value)
    if moment is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class SalesforceSource:
    source = "salesforce"
    label = "Salesforce"
    FIELD_MAP = {"forecast_call": "ForecastCategoryName", "next_step": "NextStep"}

    def __init__(self, http: CrmHttp, playbook: Playbook, *, batch_size: int = 500,
                 version: str = API_VERSION) -> None:
        self.http = http
        self.pb = playbook
        self.batch_size = max(200, min(2000, batch_size))
        self.base = f"/services/data/v{version}"
        self.mapper = SalesforceMapper(self.source)
        #: pages carry Salesforce's rows and the mapper instead of records (`Page.deferred`)
        self.defer_mapping = False

    def close(self) -> None:
        self.http.close()

    # -- queries ----------------------------------------------------------------------------------
    def _query(self, soql: str) -> dict:
        return self.http.get_json(f"{self.base}/query", params={"q": soql},
                                  headers={"Sforce-Query-Options": f"batchSize={self.batch_size}"})

    def _more(self, next_url: str) -> dict:
        path = urlsplit(next_url).path  # a relative /services/data/... path; never leave the instance
        if not path.startswith("/services/data/"):
            raise CrmError("GET nextRecordsUrl", None, "unexpected nextRecordsUrl", kind="client")
        return self.http.get_json(path, headers={"Sforce-Query-Options": f"batchSize={self.batch_size}"})

    def query_all(self, soql: str) -> list[dict]:
        data = self._query(soql)
        rows = list(data.get("records", []))
        while not data.get("done", True) and data.get("nextRecordsUrl"):
            data = self._more(data["nextRecordsUrl"])
            rows.extend(data.get("records", []))
        return rows

    def _opp_soql(self, since: str | None, inclusive: bool = False) -> str:
        where = ""
        if since:
            where = f" WHERE SystemModstamp {'>=' if inclusive else '>'} {soql_datetime(since)}"
        return f"SELECT {', '.join(OPP_FIELDS)} FROM Opportunity{where} ORDER BY SystemModstamp, Id"

    def estimate_total(self, since: str | None) -> int | None:
        """How many opportunities a full run will read (`SELECT COUNT()`: one request, no rows),
        so a big sync writes in a helper process from its first page. None for an incremental
        run (its first page's totalSize tells; no second scan for it) or when it cannot tell."""
        if since:
            return None
        try:
            data = self._query("SELECT COUNT() FROM Opportunity")
        except CrmError as exc:
            if exc.kind in ("auth", "permission", "quota"):
                raise
            return None
        total = data.get("totalSize") if isinstance(data, dict) else None
        return total if isinstance(total, int) else None

    def iter_pages(self, since: str | None, cursor: str | None) -> Iterator[Page]:
        cur = Cursor.load(cursor) or Cursor("query", None, since)
        since = cur.since
        if cur.after:
            try:
                data = self._more(cur.after)
            except CrmError as exc:
                if exc.code != "INVALID_QUERY_LOCATOR":
                    raise
                # the server forgot the query: re-run it from the newest time committed
                data = self._query(self._opp_soql(cur.last or since, inclusive=True))
        elif cur.last:
            data = self._query(self._opp_soql(cur.last, inclusive=True))
        else:
            data = self._query(self._opp_soql(since))
        last = cur.last
        total = data.get("totalSize")
        while True:
            rows = data.get("records", [])
            related = self._related(rows) if rows else ([], [], [], [])
            newest = _newest(rows)
            last = newest or last
            nxt = data.get("nextRecordsUrl") if not data.get("done", True) else None
            next_cursor = Cursor("query", nxt, since, last).dump() if nxt else None
            if self.defer_mapping and rows:  # rows to records where the page is written
                yield Page([], next_cursor, newest, total=total, deferred=(self.mapper, (rows, related)))
            else:
                yield Page(self.mapper.build(self.pb, (rows, related)), next_cursor, newest, total=total)
            if not nxt:
                return
            data = self._more(nxt)

    # -- records ----------------------------------------------------------------------------------
    def _related(self, rows: list[dict]) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
        """The page's OpportunityHistory, OpportunityFieldHistory, Task and Event rows, as
        Salesforce sent them (queried 200 opportunities at a time)."""
        stage_hist: list[dict] = []
        field_hist: list[dict] = []
        tasks: list[dict] = []
        events: list[dict] = []
        for part in _chunks([r["Id"] for r in rows], 200):
            in_list = ", ".join(soql_quote(i) for i in part)
            stage_hist += self.query_all("SELECT OpportunityId, StageName, Amount, CloseDate, Probability, "
                                         f"CreatedDate FROM OpportunityHistory WHERE OpportunityId IN ({in_list}) "
                                         "ORDER BY CreatedDate")
            field_hist += self.query_all("SELECT OpportunityId, Field, OldValue, NewValue, CreatedDate "
                                         f"FROM OpportunityFieldHistory WHERE OpportunityId IN ({in_list}) "
                                         "AND Field IN ('ForecastCategoryName') ORDER BY CreatedDate")
            tasks += self.query_all("SELECT Id, WhatId, Subject, ActivityDate, Status, TaskSubtype, Owner.Name, "
                                    f"CreatedDate FROM Task WHERE WhatId IN ({in_list})")
            events += self.query_all("SELECT Id, WhatId, Subject, StartDateTime, ActivityDateTime, Owner.Name "
                                     f"FROM Event WHERE WhatId IN ({in_list})")
        return stage_hist, field_hist, tasks, events

    # -- writeback --------------------------------------------------------------------------------
    def read_current(self, external_ids: list[str], fields: list[str]) -> dict[str, dict[str, str | None]]:
        out: dict[str, dict[str, str | None]] = {}
        for part in _chunks(external_ids, 200):
            in_list = ", ".join(soql_quote(i) for i in part)
            for r in self.query_all(f"SELECT Id, {', '.join(fields)} FROM Opportunity WHERE Id IN ({in_list})"):
                out[r["Id"]] = {f: (None if r.get(f) in (None, "") else str(r.get(f))) for f in fields}
        return out

    def _composite(self, method: str, records: list[dict], ids: list[str]) -> list[Outcome]:
        try:
            results = self.http._json(self.http.request(method, f"{self.base}/composite/sobjects", json_body={
                "allOrNone": False, "records": records}, idempotent=(method == "PATCH")))
        except CrmError as exc:
            if exc.kind in ("auth", "permission", "quota"):
                raise
            return [Outcome(i, False, str(exc)) for i in ids]
        out = []
        for i, res in zip(ids, results or []):
            if res.get("success"):
                out.append(Outcome(i, True, created_id=str(res.get("id") or "")))
            else:
                errs = res.get("errors") or [{}]
                out.append(Outcome(i, False, f"{errs[0].get('statusCode', 'ERROR')}: {errs[0].get('message', '')}"))
        for i in ids[len(out):]:
            out.append(Outcome(i, False, "no SaveResult returned"))
        return out

    def update_fields(self, writes: list[FieldWrite]) -> list[Outcome]:
        """`PATCH composite/sobjects` in batches of ≤ 200; each SaveResult decides its record."""
        outcomes: list[Outcome] = []
        for part in _chunks(writes, 200):
            records = [{"attributes": {"type": "Opportunity"}, "id": w.external_id,
                        **{k: (v if v != "" else None) for k, v in w.values.items()}} for w in part]
            outcomes += self._composite("PATCH", records, [w.external_id for w in part])
        return outcomes

    def find_notes(self, notes: list[NoteWrite]) -> dict[str, str]:
        found: dict[str, str] = {}
        for n in notes:
            rows = self.query_all(f"SELECT Id FROM Task WHERE WhatId = {soql_quote(n.external_id)} "
                                  f"AND Subject = {soql_quote(n.subject)}")
            if rows:
                found[n.marker] = rows[0]["Id"]
        return found

    def create_notes(self, notes: list[NoteWrite]) -> list[Outcome]:
        """A completed Task on the opportunity per note; `POST composite/sobjects` ≤ 200, not retried blindly."""
        outcomes: list[Outcome] = []
        today = datetime.now(timezone.utc).date().isoformat()
        for part in _chunks(notes, 200):
            records = [{"attributes": {"type": "Task"}, "WhatId": n.external_id, "Subject": n.subject[:255],
                        "Description": n.body[:32000], "Status": "Completed", "Priority": "Normal",
                        "ActivityDate": today} for n in part]
            outcomes += self._composite("POST", records, [n.external_id for n in part])
        return outcomes


def _newest(rows: list[dict]) -> str | None:
    best = None
    for r in rows:
        moment = parse_dt(r.get("SystemModstamp"))
        if moment and (best is None or moment > best):
            best = moment
    return iso(best)


class SalesforceMapper:
    """Salesforce query rows (a page of opportunities and their history, tasks and events) to
    DealRecords. No HTTP and no state but the source name: it pickles, so a sync can map a page
    in the process that writes it (`Page.deferred`)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def build(self, pb: Playbook, payload: tuple) -> list[DealRecord]:
        rows, (stage_rows, field_rows, tasks, events) = payload
        stage_hist: dict[str, list[dict]] = defaultdict(list)
        field_hist: dict[str, list[dict]] = defaultdict(list)
        activities: dict[str, list[ActivityRecord]] = defaultdict(list)
        for h in stage_rows:
            stage_hist[h["OpportunityId"]].append(h)
        for h in field_rows:
            field_hist[h["OpportunityId"]].append(h)
        for t in tasks:
            kind = {"call": "call", "email": "email"}.get(str(t.get("TaskSubtype") or "").lower(), "task")
            day = parse_date(t.get("ActivityDate"))
            when = datetime.combine(day, time(0), tzinfo=timezone.utc) if day else parse_dt(t.get("CreatedDate"))
            if when is not None:
                activities[t["WhatId"]].append(ActivityRecord(f"Task:{t['Id']}", kind, when, plain(t.get("Subject")),
                                                              (t.get("Owner") or {}).get("Name") or ""))
        for e in events:
            when = parse_dt(e.get("StartDateTime") or e.get("ActivityDateTime"))
            if when is not None:
                activities[e["WhatId"]].append(ActivityRecord(f"Event:{e['Id']}", "meeting", when,
                                                              plain(e.get("Subject")),
                                                              (e.get("Owner") or {}).get("Name") or ""))
        known: dict[tuple, str] = {}  # a page names a few stages thousands of times

        def stage(name: str | None, probability: Any = None, closed: Any = None, won: Any = None) -> str:
            key = (name, probability, closed, won)
            hit = known.get(key)
            if hit is None:
                prob = float(probability) / 100.0 if isinstance(probability, (int, float)) else None
                hit = known[key] = map_stage(pb, name or "", name or "", prob,
                                             closed if isinstance(closed, bool) else None,
                                             won if isinstance(won, bool) else None)
            return hit
        return [self._record(pb, stage, r, stage_hist[r["Id"]], field_hist[r["Id"]], activities[r["Id"]])
                for r in rows]

    def _record(self, pb: Playbook, stage: Callable[..., str], r: dict, stage_hist: list[dict],
                field_hist: list[dict], activities: list[ActivityRecord]) -> DealRecord:
        currency = str(r.get("CurrencyIsoCode") or "USD").upper()
        history: list[HistoryItem] = []
        prev: dict[str, str | None] = {"stage": None, "amount_minor": None, "close_date": None}
        for h in stage_hist:
            when = parse_dt(h.get("CreatedDate"))
            if when is None:
                continue
            now = {"stage": stage(h.get("StageName"), h.get("Probability")),
                   "amount_minor": str(parse_minor(h.get("Amount"), currency)) if h.get("Amount") is not None else None,
                   "close_date": d.isoformat() if (d := parse_date(h.get("CloseDate"))) else None}
            for f in ("stage", "amount_minor", "close_date"):
                if now[f] != prev[f] and now[f] is not None:
                    history.append(HistoryItem(f, prev[f], now[f], when))
                    prev[f] = now[f]
        for h in field_hist:
            when = parse_dt(h.get("CreatedDate"))
            if when is None:
                continue
            old = map_category(pb, h.get("OldValue")) if h.get("OldValue") else None
            new = map_category(pb, h.get("NewValue")) if h.get("NewValue") else None
            if old != new:
                history.append(HistoryItem("forecast_category", old, new, when))
        crm = {k: r.get(k) for k in ("StageName", "ForecastCategoryName", "NextStep", "Probability", "Type",
                                     "LeadSource", "IsClosed", "IsWon", "SystemModstamp")}
        return DealRecord(
            source=self.source, external_id=r["Id"], name=r.get("Name") or f"(unnamed opportunity {r['Id']})",
            stage=stage(r.get("StageName"), r.get("Probability"), r.get("IsClosed"), r.get("IsWon")),
            account=(r.get("Account") or {}).get("Name") or "", owner=(r.get("Owner") or {}).get("Name") or "",
            crm_stage=r.get("StageName") or "", amount_minor=parse_minor(r.get("Amount"), currency),
            currency=currency, close_date=parse_date(r.get("CloseDate")),
            forecast_category=map_category(pb, r.get("ForecastCategoryName")),
            next_step=r.get("NextStep") or "", created_on=parse_date(r.get("CreatedDate")),
            crm_updated_at=parse_dt(r.get("LastModifiedDate") or r.get("SystemModstamp")),
            extras={"crm": crm}, history=history, activities=activities)
