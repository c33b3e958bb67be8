"""HubSpot CRM v3 emulator (shapes from shared/CRM_APIS.md §1).

Paths: deals list/get/search/batch read/batch update/PATCH (both `/objects/deals` and
`/objects/0-3`), pipelines, owners, companies and engagement batch reads (calls, emails,
meetings, notes, tasks), v4 association batch reads, note create/batch create/search.
Every property value is a string; `propertiesWithHistory` lists versions newest first;
rate-limit headers on every non-search answer; 401/403/429 bodies as HubSpot sends them.
"""
from __future__ import annotations

import base64
import bisect
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.emulators.base import Emulator, Reply, iso_z

T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
ENGAGEMENTS = ("calls", "emails", "meetings", "notes", "tasks")
HISTORY_PROPS = ("dealstage", "amount", "closedate", "hs_manual_forecast_category", "hs_next_step")
DEFAULT_PROPS = ("dealname", "amount", "closedate", "pipeline", "dealstage", "createdate",
                 "hs_lastmodifieddate", "hs_object_id")
ALWAYS = ("createdate", "hs_lastmodifieddate", "hs_object_id")
STAGES = [  # (id, label, probability, closed)
    ("appointmentscheduled", "Appointment Scheduled", "0.2", "false"),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", "false"),
    ("presentationscheduled", "Presentation Scheduled", "0.6", "false"),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", "false"),
    ("contractsent", "Contract Sent", "0.9", "false"),
    ("closedwon", "Closed Won", "1.0", "true"),
    ("closedlost", "Closed Lost", "0.0", "true"),
]
CUSTOM_STAGES = [("1996673735", "Renewal review", "0.5", "false"), ("1996673736", "Renewed", "1.0", "true")]
CATEGORIES = ("PIPELINE", "BEST_CASE", "COMMIT", "OMIT")
TYPE_IDS = {"calls": 206, "emails": 210, "meetings": 212, "notes": 214, "tasks": 216, "companies": 342}


def _b64(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _unb64(value: str) -> str:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()


def _err(status: int, category: str, message: str, **extra: Any) -> Reply:
    return Reply(status, {"status": "error", "message": message, "correlationId": "8d3f4a52-0c1b-4b0e-9a1e-emulator",
                          "category": category, **extra})


@dataclass
class HsObject:
    id: str
    props: dict[str, str | None]
    history: dict[str, list[tuple[str | None, datetime]]] = field(default_factory=dict)  # oldest first
    assoc: dict[str, list[str]] = field(default_factory=dict)
    created: datetime = T0
    updated: datetime = T0
    archived: bool = False


class HubSpotEmulator(Emulator):
    name = "hubspot"

    def __init__(self, token: str = "test-token", *, deals: int = 0, activities: int = 5, seed: int = 1,
                 daily_limit: int = 500_000, **kw: Any) -> None:
        self.deals: dict[str, HsObject] = {}
        self.order: list[str] = []  # deal ids by numeric id
        self.notes: dict[str, HsObject] = {}
        self.owners: list[dict] = []
        self.companies: dict[str, str] = {}
        self.scopes = {"crm.objects.deals.read", "crm.objects.deals.write", "crm.objects.owners.read"}
        self.fail_update_ids: set[str] = set()  # batch update answers these with a per-record error
        self.daily_limit, self.calls = daily_limit, 0
        self.max_list_limit = 100
        self.clock = T0 + timedelta(days=40)
        # deals search index: live deal ids sorted by (last-modified time, numeric id), with
        # their keys alongside, so a last-modified range is found by bisection like the real,
        # indexed service (a scan of every deal per search made the benchmark measure the emulator)
        self._search_index: list[str] | None = None
        self._search_keys: list[tuple[float, int]] = []
        self._search_key_of: dict[str, tuple[float, int]] = {}
        self._next_note = 90_000_000
        self.activities_per_deal = activities
        super().__init__(token, **kw)
        self._seed_static()
        if deals:
            self.seed(deals, seed=seed)

    # -- data ----------------------------------------------------------------------------------
    def _seed_static(self) -> None:
        first = ["Ana", "Bo", "Chen", "Dee", "Eli", "Fay"]
        teams = [{"id": "11", "name": "East", "primary": True}, {"id": "12", "name": "West", "primary": True}]
        for i, name in enumerate(first):
            self.owners.append({"id": str(100 + i), "email": f"{name.lower()}@example.com", "type": "PERSON",
                                "firstName": name, "lastName": "Rep" if i % 2 else "Seller", "userId": 9000 + i,
                                "userIdIncludingInactive": 9000 + i,
                                "createdAt": iso_z(T0), "updatedAt": iso_z(T0), "archived": False,
                                "teams": [teams[i % 2]]})
        for i in range(200):
            self.companies[str(5_000_000 + i)] = f"Company {i} Ltd"

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def seed(self, n: int, seed: int = 1) -> None:
        rnd = random.Random(seed)
        start = len(self.order)
        for k in range(start, start + n):
            self.add_deal(k, rnd)
        self.clock = max(self.clock, T0 + timedelta(seconds=30 * (start + n) + 3600))
        self._search_index = None

    def add_deal(self, k: int, rnd: random.Random | None = None, **props: str | None) -> HsObject:
        rnd = rnd or random.Random(k)
        did = str(10_000_000 + k)
        created = T0 - timedelta(days=30 + k % 200)
        modified = T0 + timedelta(seconds=30 * k)
        if k % 10 == 9:
            pipeline, stage = "renewals", CUSTOM_STAGES[0][0]
        else:
            pipeline, stage = "default", STAGES[k % 5][0]
        amount = str(1000 * (1 + k % 97)) + (".50" if k % 3 == 0 else "")
        close = (T0 + timedelta(days=20 + k % 90)).strftime("%Y-%m-%dT00:00:00Z")
        p: dict[str, str | None] = {
            "dealname": f"Deal {k}", "amount": amount, "closedate": close, "pipeline": pipeline,
            "dealstage": stage, "createdate": iso_z(created), "hs_lastmodifieddate": iso_z(modified),
            "hs_object_id": did, "hubspot_owner_id": self.owners[k % len(self.owners)]["id"],
            "hs_next_step": f"Call {k}" if k % 4 else None, "dealtype": "newbusiness",
            "hs_manual_forecast_category": CATEGORIES[k % 4], "deal_currency_code": "USD",
        }
        p.update(props)
        hist: dict[str, list] = {}
        prior_stage = STAGES[max(0, (k % 5) - 1)][0] if pipeline == "default" else stage
        hist["dealstage"] = [(prior_stage, created), (stage, created + timedelta(days=5))] \
            if prior_stage != stage else [(stage, created)]
        hist["amount"] = [(str(int(float(amount)) // 2), created), (amount, created + timedelta(days=3))]
        hist["closedate"] = [(close, created)]
        hist["hs_manual_forecast_category"] = [(p["hs_manual_forecast_category"], created)]
        hist["hs_next_step"] = [(p["hs_next_step"], created)]
        deal = HsObject(did, p, hist, created=created, updated=modified)
        deal.assoc["companies"] = [str(5_000_000 + k % 200)]
        n = self.activities_per_deal
        for j in range(n):
            kind = ENGAGEMENTS[j % 5]
            deal.assoc.setdefault(kind, []).append(str(100_000_000 + k * 10 + j))
        for kind in ENGAGEMENTS:
            deal.assoc.setdefault(kind, [])
        self.deals[did] = deal
        self.order.append(did)
        self._search_index = None
        return deal

    def engagement(self, kind: str, eid: str) -> dict[str, str | None] | None:
        if kind == "notes" and eid in self.notes:
            return self.notes[eid].props
        try:
            n = int(eid) - 100_000_000
        except ValueError:
            return None
        if n < 0:
            return None
        k, j = divmod(n, 10)
        ts = iso_z(T0 - timedelta(days=j + k % 20, hours=j))
        owner = self.owners[k % len(self.owners)]["id"]
        base = {"hs_timestamp": ts, "hubspot_owner_id": owner, "hs_object_id": eid, "hs_createdate": ts,
                "hs_lastmodifieddate": ts}
        if kind == "calls":
            base.update(hs_call_title=f"Call about deal {k}", hs_call_body="Discussed next steps",
                        hs_call_direction="OUTBOUND", hs_call_duration="600000", hs_call_status="COMPLETED")
        elif kind == "emails":
            base.update(hs_email_subject=f"Proposal for deal {k}", hs_email_text="Please find attached",
                        hs_email_direction="EMAIL", hs_email_status="SENT")
        elif kind == "meetings":
            base.update(hs_meeting_title=f"Demo {k}", hs_meeting_body="<p>Demo with the team</p>",
                        hs_meeting_start_time=ts, hs_meeting_end_time=ts, hs_meeting_outcome="COMPLETED")
        elif kind == "notes":
            base.update(hs_note_body=f"<p>Note on deal {k}</p>")
        else:
            base.update(hs_task_subject=f"Follow up {k}", hs_task_body="Send the contract",
                        hs_task_status="NOT_STARTED", hs_task_priority="HIGH", hs_task_type="TODO")
        return base

    def modify(self, deal_id: str, **props: str | None) -> None:
        """A change made in HubSpot (by a rep): history recorded, last-modified bumped."""
        with self.lock:
            deal = self.deals[deal_id]
            when = self.tick()
            for k, v in props.items():
                if deal.props.get(k) != v:
                    deal.history.setdefault(k, []).append((v, when))
                deal.props[k] = v
            deal.props["hs_lastmodifieddate"] = iso_z(when)
            deal.updated = when
            self._reindex(deal)

    def archive(self, deal_id: str) -> None:
        with self.lock:
            self.deals[deal_id].archived = True
            self._reindex(self.deals[deal_id])

    # -- HTTP -------------------------------------------------------------------------------------
    def auth_error(self) -> tuple[int, Any]:
        return 401, {"status": "error", "message": "Authentication credentials not found. This API supports "
                     "OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                     "correlationId": "5c4f3d2e-emulator", "category": "INVALID_AUTHENTICATION"}

    def common_headers(self, path: str) -> dict[str, str]:
        if path.endswith("/search"):
            return {}
        self.calls += 1
        return {"X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self.calls)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "189"}

    def _need(self, scope: str) -> None:
        if scope not in self.scopes:
            raise _err(403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call. "
                       "Read more about required scopes here: https://developers.hubspot.com/scopes.",
                       errors=[{"message": "One or more of the following scopes are required.",
                                "context": {"requiredGranularScopes": [scope]}}])

    def route(self, method: str, path: str, query: dict[str, str], body: Any,
              headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        path = re.sub(r"/crm/v3/objects/0-3(?=/|$)", "/crm/v3/objects/deals", path)
        with self.lock:
            if path == "/crm/v3/objects/deals" and method == "GET":
                self._need("crm.objects.deals.read")
                return 200, self._list(query), {}
            if path == "/crm/v3/objects/deals/search" and method == "POST":
                self._need("crm.objects.deals.read")
                return 200, self._search(body or {}), {}
            if path == "/crm/v3/objects/deals/batch/read" and method == "POST":
                self._need("crm.objects.deals.read")
                return self._batch_read_deals(body or {})
            if path == "/crm/v3/objects/deals/batch/update" and method == "POST":
                self._need("crm.objects.deals.write")
                return self._batch_update(body or {})
            m = re.fullmatch(r"/crm/v3/objects/deals/([^/]+)", path)
            if m and method == "GET":
                self._need("crm.objects.deals.read")
                deal = self.deals.get(m.group(1))
                if deal is None or deal.archived:
                    raise _err(404, "OBJECT_NOT_FOUND", "resource not found")
                return 200, self._deal_json(deal, _csv(query.get("properties")),
                                            _csv(query.get("propertiesWithHistory")), _csv(query.get("associations"))), {}
            if m and method == "PATCH":
                self._need("crm.objects.deals.write")
                deal = self.deals.get(m.group(1))
                if deal is None:
                    raise _err(404, "OBJECT_NOT_FOUND", "resource not found")
                self.modify(deal.id, **{k: (v if v != "" else None) for k, v in (body or {}).get("properties", {}).items()})
                return 200, self._deal_json(deal, list((body or {}).get("properties", {})), [], []), {}
            if path == "/crm/v3/pipelines/deals" and method == "GET":
                return 200, {"results": self._pipelines()}, {}
            if path == "/crm/v3/owners" or path == "/crm/v3/owners/":
                return 200, self._owners(query), {}
            m = re.fullmatch(r"/crm/v3/objects/(calls|emails|meetings|notes|tasks|companies)/batch/read", path)
            if m and method == "POST":
                return 200, self._batch_read_other(m.group(1), body or {}), {}
            m = re.fullmatch(r"/crm/v4/associations/deals/(calls|emails|meetings|notes|tasks|companies)/batch/read", path)
            if m and method == "POST":
                return 200, self._assoc(m.group(1), body or {}), {}
            if path == "/crm/v3/objects/notes" and method == "POST":
                return 201, self._create_note(body or {}), {}
            if path == "/crm/v3/objects/notes/batch/create" and method == "POST":
                inputs = (body or {}).get("inputs", [])
                if len(inputs) > 100:
                    raise _err(400, "VALIDATION_ERROR", "Batch input limit is 100")
                results = [self._create_note(i) for i in inputs]
                now = iso_z(self.clock)
                return 201, {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}, {}
            if path == "/crm/v3/objects/notes/search" and method == "POST":
                return 200, self._search_notes(body or {}), {}
        raise _err(404, "OBJECT_NOT_FOUND", f"No route for {method} {path}")

    # -- reads ----------------------------------------------------------------------------------
    def _props(self, obj: HsObject, wanted: list[str] | None) -> dict[str, str | None]:
        names = list(wanted) if wanted else list(DEFAULT_PROPS)
        names += [a for a in ALWAYS if a not in names]
        return {n: obj.props.get(n) for n in names}

    def _deal_json(self, deal: HsObject, props: list[str], with_history: list[str], assoc: list[str]) -> dict:
        out: dict[str, Any] = {"id": deal.id, "properties": self._props(deal, props),
                               "createdAt": iso_z(deal.created), "updatedAt": iso_z(deal.updated),
                               "archived": deal.archived}
        if with_history:
            out["propertiesWithHistory"] = {
                p: [{"value": v if v is not None else "", "timestamp": iso_z(ts), "sourceType": "CRM_UI",
                     "sourceId": "userId:9000", "sourceLabel": None, "updatedByUserId": 9000}
                    for v, ts in reversed(deal.history.get(p, []))]
                for p in with_history}
        if assoc:
            out["associations"] = {}
            for kind in assoc:
                ids = deal.assoc.get(kind.rstrip("/"), [])
                if ids:
                    single = kind[:-1] if kind.endswith("s") else kind
                    out["associations"][kind] = {"results": [{"id": i, "type": f"deal_to_{single}"} for i in ids]}
        return out

    def _live(self) -> list[str]:
        return [d for d in self.order if not self.deals[d].archived]

    def _list(self, q: dict[str, str]) -> dict:
        limit = int(q.get("limit", "10"))
        with_history = _csv(q.get("propertiesWithHistory"))
        cap = 50 if with_history else self.max_list_limit
        if limit < 1 or limit > cap:
            raise _err(400, "VALIDATION_ERROR", f"limit must be between 1 and {cap}")
        after = q.get("after")
        start = 0
        if after:
            try:
                last = int(_unb64(after))
            except (ValueError, UnicodeDecodeError):
                raise _err(400, "VALIDATION_ERROR", "Invalid after value") from None
            import bisect
            start = bisect.bisect_right([int(x) for x in self.order], last) if len(self.order) < 5000 else \
                self._index_after(last)
        chosen: list[str] = []
        i = start
        while i < len(self.order) and len(chosen) < limit:
            d = self.order[i]
            if not self.deals[d].archived:
                chosen.append(d)
            i += 1
        props, assoc = _csv(q.get("properties")), _csv(q.get("associations"))
        out: dict[str, Any] = {"results": [self._deal_json(self.deals[d], props, with_history, assoc) for d in chosen]}
        if i < len(self.order) and chosen:
            token = _b64(chosen[-1])
            out["paging"] = {"next": {"after": token, "link": f"?after={token}"}}
        return out

    def _index_after(self, last: int) -> int:
        # ids are 10_000_000 + k, inserted in order
        return max(0, last - 10_000_000 + 1)

    @staticmethod
    def _search_key(deal: HsObject) -> tuple[float, int]:
        return _ts_value(deal.props["hs_lastmodifieddate"] or ""), int(deal.id)

    def _search_sorted(self) -> list[str]:
        if self._search_index is None:
            keyed = sorted((self._search_key(self.deals[d]), d) for d in self._live())
            self._search_index = [d for _, d in keyed]
            self._search_keys = [k for k, _ in keyed]
            self._search_key_of = {d: k for k, d in keyed}
        return self._search_index

    def _reindex(self, deal: HsObject) -> None:
        """Move one deal to its new last-modified place in the search index (if built)."""
        ids, keys = self._search_index, self._search_keys
        if ids is None:
            return
        old = self._search_key_of.pop(deal.id, None)
        if old is not None:
            i = bisect.bisect_left(keys, old)
            if i >= len(ids) or ids[i] != deal.id:
                self._search_index = None  # out of step: rebuild on the next search
                return
            del ids[i], keys[i]
        if deal.archived:
            return
        new = self._search_key(deal)
        j = bisect.bisect_left(keys, new)
        ids.insert(j, deal.id)
        keys.insert(j, new)
        self._search_key_of[deal.id] = new

    def _search_range(self, groups: list[dict]) -> tuple[int, int] | None:
        """[lo, hi) of the search index that a last-modified range filter selects, by bisection;
        None when the filters are anything else (then the search scans)."""
        n = len(self._search_sorted())
        if not groups:
            return 0, n
        if len(groups) != 1:
            return None
        keys = self._search_keys
        lo, hi = 0, n
        for f in groups[0].get("filters", []):
            op = f.get("operator")
            if f.get("propertyName") != "hs_lastmodifieddate" or op not in ("GT", "GTE", "LT", "LTE"):
                return None
            try:
                b = _ts_value(str(f.get("value")))
            except (ValueError, OverflowError):
                return None
            if op == "GTE":
                lo = max(lo, bisect.bisect_left(keys, (b, -1)))
            elif op == "GT":
                lo = max(lo, bisect.bisect_left(keys, (b, float("inf"))))
            elif op == "LT":
                hi = min(hi, bisect.bisect_left(keys, (b, -1)))
            else:
                hi = min(hi, bisect.bisect_left(keys, (b, float("inf"))))
        return lo, max(lo, hi)

    def _search(self, body: dict) -> dict:
        limit = int(body.get("limit", 10))
        if limit > 200:
            raise _err(400, "VALIDATION_ERROR", "limit must be at most 200")
        after = int(body.get("after") or 0)
        if after >= 10_000:
            raise _err(400, "VALIDATION_ERROR", "Paging beyond 10,000 results is not supported")
        groups = body.get("filterGroups") or []
        ids = self._search_sorted()
        found = self._search_range(groups)
        if found is not None:
            matched = ids[found[0]:found[1]]
        else:
            matched = [d for d in ids
                       if any(all(_match(self.deals[d].props, f) for f in g.get("filters", [])) for g in groups)]
        sorts = body.get("sorts") or []
        if sorts and sorts[0].get("direction") == "DESCENDING":
            matched.reverse()
        page = matched[after:after + limit]
        props = body.get("properties") or None
        out: dict[str, Any] = {"total": len(matched), "results": [
            {"id": d, "properties": self._props(self.deals[d], props), "createdAt": iso_z(self.deals[d].created),
             "updatedAt": iso_z(self.deals[d].updated), "archived": False} for d in page]}
        if after + limit < len(matched):
            out["paging"] = {"next": {"after": str(after + limit), "link": f"?after={after + limit}"}}
        return out

    def _batch_read_deals(self, body: dict) -> tuple[int, Any, dict]:
        inputs = body.get("inputs", [])
        if len(inputs) > 100:
            raise _err(400, "VALIDATION_ERROR", "Batch input limit is 100")
        found, missing = [], []
        for item in inputs:
            d = self.deals.get(str(item.get("id")))
            (found if d and not d.archived else missing).append(d or str(item.get("id")))
        now = iso_z(self.clock)
        out: dict[str, Any] = {"status": "COMPLETE", "startedAt": now, "completedAt": now,
                               "results": [self._deal_json(d, body.get("properties") or [],
                                                           body.get("propertiesWithHistory") or [], []) for d in found]}
        if missing:
            out["numErrors"] = 1
            out["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                              "message": "Could not get some DEAL objects, they may be deleted or not exist. Check that ids are valid.",
                              "context": {"ids": missing}}]
            return 207, out, {}
        return 200, out, {}

    def _batch_read_other(self, kind: str, body: dict) -> dict:
        inputs = body.get("inputs", [])
        if len(inputs) > 100:
            raise _err(400, "VALIDATION_ERROR", "Batch input limit is 100")
        props = body.get("properties") or []
        results = []
        for item in inputs:
            oid = str(item.get("id"))
            if kind == "companies":
                if oid not in self.companies:
                    continue
                values = {"name": self.companies[oid], "hs_object_id": oid, "createdate": iso_z(T0),
                          "hs_lastmodifieddate": iso_z(T0)}
            else:
                values = self.engagement(kind, oid)
                if values is None:
                    continue
            chosen = {p: values.get(p) for p in props} if props else dict(values)
            for a in ("hs_object_id", "hs_createdate", "hs_lastmodifieddate"):
                if a in values:
                    chosen.setdefault(a, values[a])
            results.append({"id": oid, "properties": chosen, "createdAt": iso_z(T0), "updatedAt": iso_z(T0),
                            "archived": False})
        now = iso_z(self.clock)
        return {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}

    def _assoc(self, kind: str, body: dict) -> dict:
        inputs = body.get("inputs", [])
        if len(inputs) > 1000:
            raise _err(400, "VALIDATION_ERROR", "Batch input limit is 1000")
        results = []
        for item in inputs:
            d = self.deals.get(str(item.get("id")))
            if d is None:
                continue
            ids = d.assoc.get(kind, [])
            if not ids:
                continue
            results.append({"from": {"id": d.id}, "to": [
                {"toObjectId": i, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": TYPE_IDS[kind],
                                                        "label": None}]} for i in ids]})
        now = iso_z(self.clock)
        return {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}

    def _pipelines(self) -> list[dict]:
        def stages(rows: list[tuple]) -> list[dict]:
            return [{"id": sid, "label": label, "displayOrder": i, "archived": False,
                     "metadata": {"isClosed": closed, "probability": prob},
                     "createdAt": iso_z(T0), "updatedAt": iso_z(T0), "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
                    for i, (sid, label, prob, closed) in enumerate(rows)]
        return [{"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": False,
                 "createdAt": iso_z(T0), "updatedAt": iso_z(T0), "stages": stages(STAGES)},
                {"id": "renewals", "label": "Renewals", "displayOrder": 1, "archived": False,
                 "createdAt": iso_z(T0), "updatedAt": iso_z(T0), "stages": stages(CUSTOM_STAGES)}]

    def _owners(self, q: dict[str, str]) -> dict:
        limit = min(int(q.get("limit", "100")), 500)
        start = int(_unb64(q["after"])) if q.get("after") else 0
        page = self.owners[start:start + limit]
        out: dict[str, Any] = {"results": page}
        if start + limit < len(self.owners):
            token = _b64(str(start + limit))
            out["paging"] = {"next": {"after": token, "link": f"?after={token}"}}
        return out

    # -- writes ---------------------------------------------------------------------------------
    def _batch_update(self, body: dict) -> tuple[int, Any, dict]:
        inputs = body.get("inputs", [])
        if len(inputs) > 100:
            raise _err(400, "VALIDATION_ERROR", "Batch input limit is 100")
        results, errors = [], []
        started = iso_z(self.clock)
        for item in inputs:
            did = str(item.get("id"))
            deal = self.deals.get(did)
            if deal is None or deal.archived:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "message": f"Object with id {did} not found", "context": {"ids": [did]}})
                continue
            if did in self.fail_update_ids:
                errors.append({"status": "error", "category": "VALIDATION_ERROR",
                               "message": "Property values were not valid: hs_next_step is read-only here",
                               "context": {"ids": [did]}})
                continue
            self.modify(did, **{k: (v if v != "" else None) for k, v in (item.get("properties") or {}).items()})
            results.append(self._deal_json(deal, list((item.get("properties") or {})), [], []))
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                               "completedAt": iso_z(self.clock)}
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = errors
            return 207, out, {}
        return 200, out, {}

    def _create_note(self, item: dict) -> dict:
        self._next_note += 1
        nid = str(self._next_note)
        props = {k: v for k, v in (item.get("properties") or {}).items()}
        when = self.tick()
        props.setdefault("hs_timestamp", iso_z(when))
        props.update(hs_object_id=nid, hs_createdate=iso_z(when), hs_lastmodifieddate=iso_z(when))
        note = HsObject(nid, props, created=when, updated=when)
        self.notes[nid] = note
        for a in item.get("associations") or []:
            did = str((a.get("to") or {}).get("id"))
            if did in self.deals:
                self.deals[did].assoc.setdefault("notes", []).append(nid)
                self.deals[did].props["hs_lastmodifieddate"] = iso_z(when)
                self.deals[did].updated = when
                self._reindex(self.deals[did])
        return {"id": nid, "properties": props, "createdAt": iso_z(when), "updatedAt": iso_z(when), "archived": False}

    def _search_notes(self, body: dict) -> dict:
        groups = body.get("filterGroups") or []
        matched = [n for n in self.notes.values()
                   if any(all(_match(n.props, f) for f in g.get("filters", [])) for g in groups)]
        return {"total": len(matched), "results": [
            {"id": n.id, "properties": {"hs_note_body": n.props.get("hs_note_body"), "hs_object_id": n.id},
             "createdAt": iso_z(n.created), "updatedAt": iso_z(n.updated), "archived": False} for n in matched]}


def _csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def _ts_value(value: str) -> float:
    if value.isdigit():
        return int(value) / 1000.0
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _match(props: dict[str, str | None], f: dict) -> bool:
    name, op, value = f.get("propertyName"), f.get("operator"), f.get("value")
    have = props.get(name)
    if op == "CONTAINS_TOKEN":
        return have is not None and str(value).lower() in re.split(r"[^a-z0-9]+", have.lower())
    if op == "HAS_PROPERTY":
        return have is not None
    if op == "EQ":
        return have == value
    if op in ("GT", "GTE", "LT", "LTE"):
        if have is None:
            return False
        if name in ("hs_lastmodifieddate", "createdate", "closedate"):
            a, b = _ts_value(have), _ts_value(str(value))
        else:
            a, b = float(have), float(value)
        return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]
    raise Reply(400, {"status": "error", "message": f"operator {op} not supported by the emulator",
                      "category": "VALIDATION_ERROR", "correlationId": "emu"})
