"""Salesforce REST emulator (shapes from shared/CRM_APIS.md §2).

`/services/data/vXX.X/query` and `/query/` with a small SOQL subset (SELECT fields incl.
one-level relationships, WHERE with AND of =, !=, <, <=, >, >=, IN, ORDER BY, LIMIT),
`nextRecordsUrl` paging with server-side query locators (which can be expired), `+0000`
datetimes, `Sforce-Limit-Info` on every answer, error bodies as JSON arrays with `errorCode`,
`composite/sobjects` PATCH/POST with SaveResults (`statusCode` per record), single-record
PATCH (204), POST (201), GET. Objects: Opportunity, OpportunityHistory,
OpportunityFieldHistory, Task, Event, Account, User.
"""
from __future__ import annotations

import random
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from tests.emulators.base import Emulator, Reply

T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
STAGES = [("Prospecting", 10, "Pipeline"), ("Qualification", 20, "Pipeline"), ("Needs Analysis", 20, "Pipeline"),
          ("Value Proposition", 50, "Pipeline"), ("Proposal/Price Quote", 75, "Best Case"),
          ("Negotiation/Review", 90, "Commit"), ("Closed Won", 100, "Closed"), ("Closed Lost", 0, "Omitted")]
FORECAST = {"Omitted", "Pipeline", "Best Case", "Commit", "Closed", "Most Likely"}
VERSION = "59.0"


def sf_dt(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _sid(prefix: str, n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = digits[r] + out
    return (prefix + "EMU" + out.rjust(9, "0"))[:15] + "AAA"


def _err(status: int, code: str, message: str) -> Reply:
    return Reply(status, [{"message": message, "errorCode": code}])


_COUNT = re.compile(r"\s*SELECT\s+COUNT\(\)\s+FROM\b", re.I)


class SalesforceEmulator(Emulator):
    name = "salesforce"

    def __init__(self, token: str = "00Dxx0000001gPL!AQ4AQEmulatorToken", *, opportunities: int = 0,
                 tasks: int = 3, events: int = 2, seed: int = 1, api_limit: int = 5_000_000, **kw: Any) -> None:
        self.objects: dict[str, dict[str, dict]] = {k: {} for k in (
            "Opportunity", "OpportunityHistory", "OpportunityFieldHistory", "Task", "Event", "Account", "User")}
        self.order: list[str] = []
        self.locators: dict[str, tuple[list[dict], int]] = {}
        self.api_used, self.api_limit = 0, api_limit
        self.fail_update_ids: set[str] = set()
        self.clock = T0 + timedelta(days=40)
        self.tasks_per_opp, self.events_per_opp = tasks, events
        self._seq = 0
        #: (sObject, field) -> (row count when built, {value: [(position, row)]}); see `_candidates`
        self._indexes: dict[tuple[str, str], tuple[int, dict[Any, list[tuple[int, dict]]]]] = {}
        super().__init__(token, **kw)
        for i in range(6):
            uid = _sid("005", i + 1)
            self.objects["User"][uid] = {"Id": uid, "Name": f"Rep {chr(65 + i)}. Seller"}
        for i in range(200):
            aid = _sid("001", i + 1)
            self.objects["Account"][aid] = {"Id": aid, "Name": f"Account {i} Inc"}
        if opportunities:
            self.seed(opportunities, seed)

    def next_id(self, prefix: str) -> str:
        self._seq += 1
        return _sid(prefix, 10_000_000 + self._seq)

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    # -- data -----------------------------------------------------------------------------------
    def seed(self, n: int, seed: int = 1) -> None:
        rnd = random.Random(seed)
        start = len(self.order)
        users, accounts = list(self.objects["User"]), list(self.objects["Account"])
        for k in range(start, start + n):
            oid = _sid("006", k + 1)
            stage, prob, cat = STAGES[k % 6]
            created = T0 - timedelta(days=30 + k % 200)
            modified = T0 + timedelta(seconds=30 * k)
            close = (T0 + timedelta(days=20 + k % 90)).date()
            amount = float(1000 * (1 + k % 97)) + (0.5 if k % 3 == 0 else 0.0)
            opp = {"Id": oid, "Name": f"Opportunity {k}", "AccountId": accounts[k % len(accounts)],
                   "OwnerId": users[k % len(users)], "StageName": stage, "Amount": amount,
                   "CloseDate": close.isoformat(), "Probability": float(prob), "ForecastCategoryName": cat,
                   "NextStep": f"Send proposal {k}" if k % 4 else None, "IsClosed": False, "IsWon": False,
                   "CreatedDate": sf_dt(created), "LastModifiedDate": sf_dt(modified),
                   "SystemModstamp": sf_dt(modified), "Type": "New Customer", "LeadSource": "Web",
                   "IsDeleted": False}
            self.objects["Opportunity"][oid] = opp
            self.order.append(oid)
            prev_stage = STAGES[max(0, k % 6 - 1)]
            for j, (st, when, amt) in enumerate([(prev_stage[0], created, amount / 2),
                                                 (stage, created + timedelta(days=4), amount)]):
                hid = _sid("008", (k + 1) * 4 + j)
                self.objects["OpportunityHistory"][hid] = {
                    "Id": hid, "OpportunityId": oid, "StageName": st, "Amount": amt, "CloseDate": close.isoformat(),
                    "Probability": float(prob), "ForecastCategory": "Pipeline", "PrevAmount": None,
                    "PrevCloseDate": None, "CreatedDate": sf_dt(when), "SystemModstamp": sf_dt(when),
                    "IsDeleted": False, "CreatedById": users[0]}
            fid = _sid("017", k + 1)
            self.objects["OpportunityFieldHistory"][fid] = {
                "Id": fid, "OpportunityId": oid, "Field": "ForecastCategoryName", "OldValue": "Pipeline",
                "NewValue": cat, "DataType": "DynamicEnum", "CreatedDate": sf_dt(created + timedelta(days=4)),
                "CreatedById": users[0], "IsDeleted": False}
            for j in range(self.tasks_per_opp):
                tid = _sid("00T", (k + 1) * 8 + j)
                day = (T0 - timedelta(days=j + k % 20)).date()
                self.objects["Task"][tid] = {
                    "Id": tid, "WhatId": oid, "Subject": ["Call", "Email", "Send contract"][j % 3] + f" {k}",
                    "ActivityDate": day.isoformat(), "Status": "Completed", "Priority": "Normal",
                    "TaskSubtype": ["Call", "Email", "Task"][j % 3], "OwnerId": users[k % len(users)],
                    "Description": "Talked to the buyer", "CreatedDate": sf_dt(T0 - timedelta(days=j + k % 20)),
                    "IsDeleted": False}
            for j in range(self.events_per_opp):
                eid = _sid("00U", (k + 1) * 8 + j)
                start_at = T0 - timedelta(days=j + 1 + k % 15, hours=3)
                self.objects["Event"][eid] = {
                    "Id": eid, "WhatId": oid, "Subject": f"Meeting {k}-{j}", "StartDateTime": sf_dt(start_at),
                    "EndDateTime": sf_dt(start_at + timedelta(minutes=30)), "ActivityDateTime": sf_dt(start_at),
                    "DurationInMinutes": 30, "OwnerId": users[k % len(users)], "IsDeleted": False}
        self.clock = max(self.clock, T0 + timedelta(seconds=30 * (start + n) + 3600))
        self._indexes.clear()

    def _after_seed(self) -> None:
        pass

    def modify(self, opp_id: str, **fields: Any) -> None:
        """A change made in Salesforce: history rows written, SystemModstamp bumped."""
        with self.lock:
            opp = self.objects["Opportunity"][opp_id]
            when = self.tick()
            tracked = {"StageName", "Amount", "CloseDate", "Probability"}
            changed = {k for k, v in fields.items() if opp.get(k) != v}
            for k in changed:
                fid = self.next_id("017")
                self.objects["OpportunityFieldHistory"][fid] = {
                    "Id": fid, "OpportunityId": opp_id, "Field": k, "OldValue": opp.get(k), "NewValue": fields[k],
                    "DataType": "Text", "CreatedDate": sf_dt(when), "CreatedById": "005EMU000000001AAA",
                    "IsDeleted": False}
            opp.update(fields)
            if changed & tracked:
                hid = self.next_id("008")
                self.objects["OpportunityHistory"][hid] = {
                    "Id": hid, "OpportunityId": opp_id, "StageName": opp["StageName"], "Amount": opp["Amount"],
                    "CloseDate": opp["CloseDate"], "Probability": opp["Probability"],
                    "ForecastCategory": "Pipeline", "PrevAmount": None, "PrevCloseDate": None,
                    "CreatedDate": sf_dt(when), "SystemModstamp": sf_dt(when), "IsDeleted": False,
                    "CreatedById": "005EMU000000001AAA"}
            opp["SystemModstamp"] = opp["LastModifiedDate"] = sf_dt(when)
            self._indexes.clear()

    def delete(self, opp_id: str) -> None:
        with self.lock:
            self.objects["Opportunity"][opp_id]["IsDeleted"] = True

    def expire_locators(self) -> None:
        with self.lock:
            self.locators.clear()

    # -- HTTP -------------------------------------------------------------------------------------
    def auth_error(self) -> tuple[int, Any]:
        return 401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]

    def common_headers(self, path: str) -> dict[str, str]:
        self.api_used += 1
        return {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}"}

    def route(self, method: str, path: str, query: dict[str, str], body: Any,
              headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if self.api_used > self.api_limit:
            raise _err(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if path in ("/services/data", "/services/data/"):
            return 200, [{"label": "Winter '24", "url": f"/services/data/v{VERSION}", "version": VERSION}], {}
        m = re.match(r"/services/data/v(\d+\.\d+)(/.*)?$", path)
        if not m:
            raise _err(404, "NOT_FOUND", "The requested resource does not exist")
        version, rest = m.group(1), (m.group(2) or "/").rstrip("/") or "/"
        with self.lock:
            if rest == "/query" and method == "GET":
                if "q" not in query:
                    raise _err(400, "MALFORMED_QUERY", "missing q")
                size = 2000
                opt = re.search(r"batchSize=(\d+)", headers.get("sforce-query-options", ""))
                if opt:
                    size = max(200, min(2000, int(opt.group(1))))
                rows = self.soql(query["q"])
                if _COUNT.match(query["q"]):  # SELECT COUNT(): the number, no rows
                    return 200, {"totalSize": len(rows), "done": True, "records": []}, {}
                return 200, self._page(version, rows, 0, size), {}
            mm = re.fullmatch(r"/query/([\w-]+)", rest)
            if mm and method == "GET":
                loc = mm.group(1)
                base = loc.rsplit("-", 1)[0]
                if base not in self.locators:
                    raise _err(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
                rows, size = self.locators[base]
                return 200, self._page(version, rows, int(loc.rsplit("-", 1)[1]), size, base), {}
            if rest == "/limits":
                return 200, {"DailyApiRequests": {"Max": self.api_limit, "Remaining": self.api_limit - self.api_used}}, {}
            if rest == "/composite/sobjects" and method == "PATCH":
                return 200, self._composite(body or {}, create=False), {}
            if rest == "/composite/sobjects" and method == "POST":
                return 200, self._composite(body or {}, create=True), {}
            mm = re.fullmatch(r"/sobjects/(\w+)/(\w+)", rest)
            if mm and method == "PATCH":
                res = self._save(mm.group(1), {**(body or {}), "Id": mm.group(2)}, create=False)
                if not res["success"]:
                    raise Reply(400, [{"message": e["message"], "errorCode": e["statusCode"], "fields": e.get("fields", [])}
                                      for e in res["errors"]])
                return 204, None, {}
            if mm and method == "GET":
                rec = self.objects.get(mm.group(1), {}).get(mm.group(2))
                if rec is None or rec.get("IsDeleted"):
                    raise _err(404, "NOT_FOUND", "The requested resource does not exist")
                fields = [f for f in query.get("fields", "").split(",") if f] or list(rec)
                return 200, self._shape(mm.group(1), rec, fields, version), {}
            mm = re.fullmatch(r"/sobjects/(\w+)", rest)
            if mm and method == "POST":
                res = self._save(mm.group(1), dict(body or {}), create=True)
                if not res["success"]:
                    raise Reply(400, [{"message": e["message"], "errorCode": e["statusCode"], "fields": e.get("fields", [])}
                                      for e in res["errors"]])
                return 201, res, {}
        raise _err(404, "NOT_FOUND", "The requested resource does not exist")

    # -- query ------------------------------------------------------------------------------------
    def _page(self, version: str, rows: list[dict], offset: int, size: int, locator: str | None = None) -> dict:
        chunk = rows[offset:offset + size]
        out: dict[str, Any] = {"totalSize": len(rows), "done": offset + size >= len(rows), "records": chunk}
        if not out["done"]:
            if locator is None:
                locator = f"01gEMU{len(self.locators) + 1:09d}"
                self.locators[locator] = (rows, size)
            out["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{offset + size}"
        return out

    def soql(self, q: str) -> list[dict]:
        m = re.fullmatch(r"\s*SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?(?:\s+ORDER\s+BY\s+(.+?))?"
                         r"(?:\s+LIMIT\s+(\d+))?\s*", q, re.I | re.S)
        if not m:
            raise _err(400, "MALFORMED_QUERY", "unexpected token")
        fields = [f.strip() for f in m.group(1).split(",")]
        sobject = m.group(2)
        if sobject not in self.objects:
            raise _err(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        conds = _parse_where(m.group(3)) if m.group(3) else []
        rows = [r for r in self._candidates(sobject, conds) if not r.get("IsDeleted") and
                all(_test(r, c) for c in conds)]
        if m.group(4):
            keys = [k.strip().split() for k in m.group(4).split(",")]
            for parts in reversed(keys):
                desc = len(parts) > 1 and parts[1].upper() == "DESC"
                rows.sort(key=lambda r, f=parts[0]: _sort_key(r.get(f)), reverse=desc)
        if m.group(5):
            rows = rows[:int(m.group(5))]
        if fields == ["COUNT()"]:
            return rows  # counted by the caller, never shaped
        return [self._shape(sobject, r, fields, VERSION) for r in rows]

    def _candidates(self, sobject: str, conds: list[tuple[str, str, Any]]) -> list[dict]:
        """The rows that can match, in table order (what a scan would test, same order).

        A sync asks per page for the history and activities of 200 opportunities (`OpportunityId
        IN (...)`, `WhatId IN (...)`); testing every row of the table on each would make a sync
        of n opportunities O(n²) in the emulator. The first `IN` condition reads an index of that
        field instead; every condition is still tested on the candidates. The index is dropped on
        every write here and rebuilt when the table's row count has changed."""
        table = self.objects[sobject]
        cond = next((c for c in conds if c[1] == "IN"), None)
        if cond is None:
            return list(table.values())
        key = (sobject, cond[0])
        built = self._indexes.get(key)
        if built is None or built[0] != len(table):
            by: dict[Any, list[tuple[int, dict]]] = {}
            try:
                for pos, r in enumerate(table.values()):
                    by.setdefault(r.get(cond[0]), []).append((pos, r))
            except TypeError:  # an unhashable value: scan
                return list(table.values())
            built = self._indexes[key] = (len(table), by)
        hits = [hit for v in dict.fromkeys(cond[2]) for hit in built[1].get(v, ())]
        return [r for _pos, r in sorted(hits, key=lambda h: h[0])]

    def _shape(self, sobject: str, rec: dict, fields: list[str], version: str) -> dict:
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{rec['Id']}"}}
        for f in fields:
            if "." in f:
                rel, sub = f.split(".", 1)
                target = {"Account": ("Account", "AccountId"), "Owner": ("User", "OwnerId"),
                          "What": ("Opportunity", "WhatId")}.get(rel)
                if target is None:
                    raise _err(400, "INVALID_FIELD", f"Didn't understand relationship '{rel}'")
                ref = self.objects[target[0]].get(rec.get(target[1]) or "")
                if ref is None:
                    out[rel] = None
                else:
                    node = out.get(rel) or {"attributes": {"type": target[0],
                                                           "url": f"/services/data/v{version}/sobjects/{target[0]}/{ref['Id']}"}}
                    node[sub] = ref.get(sub)
                    out[rel] = node
            else:
                if f not in rec and f not in ("Id",) and sobject == "Opportunity" and f not in _OPP_FIELDS:
                    raise _err(400, "INVALID_FIELD", f"No such column '{f}' on entity '{sobject}'.")
                out[f] = rec.get(f)
        return out

    # -- writes ---------------------------------------------------------------------------------
    def _composite(self, body: dict, create: bool) -> list[dict]:
        records = body.get("records") or []
        if len(records) > 200:
            raise _err(400, "EXCEEDED_ID_LIMIT", "record limit exceeded: 200")
        out = []
        for rec in records:
            sobject = (rec.get("attributes") or {}).get("type")
            values = {k: v for k, v in rec.items() if k != "attributes"}
            if "id" in values:
                values["Id"] = values.pop("id")
            out.append(self._save(sobject, values, create))
        return out

    def _save(self, sobject: str | None, values: dict, create: bool) -> dict:
        if sobject not in self.objects:
            return {"success": False, "errors": [{"statusCode": "INVALID_TYPE", "message": f"bad type {sobject}", "fields": []}]}
        self._indexes.clear()  # a write may change an indexed field (e.g. a Task's WhatId)
        if create:
            new_id = self.next_id({"Task": "00T", "Event": "00U"}.get(sobject, "a00"))
            when = self.tick()
            self.objects[sobject][new_id] = {"Id": new_id, "IsDeleted": False, "CreatedDate": sf_dt(when), **values}
            what = values.get("WhatId")
            if what in self.objects["Opportunity"]:
                self.objects["Opportunity"][what]["SystemModstamp"] = sf_dt(when)
            return {"id": new_id, "success": True, "errors": []}
        oid = values.pop("Id", None)
        rec = self.objects[sobject].get(oid or "")
        if rec is None or rec.get("IsDeleted"):
            return {"id": oid, "success": False, "errors": [{"statusCode": "ENTITY_IS_DELETED",
                                                             "message": "entity is deleted", "fields": []}]}
        if oid in self.fail_update_ids:
            return {"id": oid, "success": False, "errors": [{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                                             "message": "Next step must mention a date",
                                                             "fields": list(values)}]}
        bad = [k for k in values if sobject == "Opportunity" and k not in _OPP_FIELDS]
        if bad:
            return {"id": oid, "success": False, "errors": [{"statusCode": "INVALID_FIELD", "message": f"No such column '{bad[0]}'",
                                                             "fields": bad}]}
        if "ForecastCategoryName" in values and values["ForecastCategoryName"] not in FORECAST:
            return {"id": oid, "success": False, "errors": [{"statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                                             "message": "bad value for restricted picklist field",
                                                             "fields": ["ForecastCategoryName"]}]}
        if sobject == "Opportunity":
            self.modify(oid, **values)
        else:
            rec.update(values)
        return {"id": oid, "success": True, "errors": []}


_OPP_FIELDS = {"Id", "Name", "AccountId", "OwnerId", "StageName", "Amount", "CloseDate", "Probability",
               "ForecastCategoryName", "NextStep", "IsClosed", "IsWon", "CreatedDate", "LastModifiedDate",
               "SystemModstamp", "Type", "LeadSource", "IsDeleted", "Description", "ForecastCategory"}

_TOKEN = re.compile(r"\s*('(?:\\.|[^'\\])*'|\(|\)|,|!=|<=|>=|=|<|>|[\w.:+-]+)", re.S)


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise _err(400, "MALFORMED_QUERY", f"unexpected token at {pos}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _literal(tok: str) -> Any:
    if tok.startswith("'"):
        return re.sub(r"\\(.)", r"\1", tok[1:-1])
    if tok.lower() == "null":
        return None
    if tok.lower() in ("true", "false"):
        return tok.lower() == "true"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})", tok):
        return _dt(tok)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", tok):
        return date.fromisoformat(tok)
    try:
        return float(tok)
    except ValueError:
        raise _err(400, "MALFORMED_QUERY", f"unexpected token: '{tok}'") from None


def _dt(value: str) -> datetime:
    v = value.replace("Z", "+00:00")
    v = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", v)
    return datetime.fromisoformat(v)


def _parse_where(text: str) -> list[tuple[str, str, Any]]:
    toks = _tokens(text)
    conds, i = [], 0
    while i < len(toks):
        field, op = toks[i], toks[i + 1].upper()
        if op == "IN":
            if toks[i + 2] != "(":
                raise _err(400, "MALFORMED_QUERY", "expected (")
            j, values = i + 3, []
            while toks[j] != ")":
                if toks[j] != ",":
                    values.append(_literal(toks[j]))
                j += 1
            conds.append((field, "IN", values))
            i = j + 1
        else:
            conds.append((field, op, _literal(toks[i + 2])))
            i += 3
        if i < len(toks):
            if toks[i].upper() != "AND":
                raise _err(400, "MALFORMED_QUERY", f"only AND is supported by the emulator, got {toks[i]}")
            i += 1
    return conds


def _cmp_value(have: Any, want: Any) -> Any:
    if isinstance(want, datetime) and isinstance(have, str):
        return _dt(have)
    if isinstance(want, date) and not isinstance(want, datetime) and isinstance(have, str):
        return date.fromisoformat(have[:10])
    return have


def _test(rec: dict, cond: tuple[str, str, Any]) -> bool:
    field, op, want = cond
    have = rec.get(field)
    if op == "IN":
        return have in want
    have = _cmp_value(have, want)
    if op == "=":
        return have == want
    if op == "!=":
        return have != want
    if have is None or want is None:
        return False
    return {"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want}[op]


def _sort_key(value: Any) -> tuple:
    return (value is None, str(value) if value is not None else "")
