"""HubSpot CRM v3 connector: deals with paging, pipelines/stages, owners, property history,
associated engagements; incremental sync by last-modified time; writeback (batch update,
notes). Facts and limits: shared/CRM_APIS.md §1.

Full sync pages through `GET /crm/v3/objects/deals` (cursor `paging.next.after`) with
`propertiesWithHistory` and inline associations. Incremental sync searches
`hs_lastmodifieddate >= since` ascending (≤ 4 req/s), re-anchoring on the last seen time
before the 10,000-result search cap, then batch-reads history and v4 associations.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from inspector.playbook import Playbook
from inspector.sources.crm import (Cursor, FieldWrite, NoteWrite, Outcome, Page, iso, map_category, map_stage,
                                   parse_date, parse_dt, parse_minor, plain)
from inspector.sources.http import CrmError, CrmHttp
from inspector.sources.records import ActivityRecord, DealRecord, HistoryItem

DEALS = "/crm/v3/objects/deals"
PROPERTIES = ("dealname", "amount", "closedate", "pipeline", "dealstage", "hubspot_owner_id", "createdate",
              "hs_lastmodifieddate", "hs_object_id", "dealtype", "hs_next_step", "hs_manual_forecast_category",
              "hs_forecast_category", "hs_forecast_probability", "deal_currency_code", "hs_is_closed_won",
              "closed_lost_reason", "closed_won_reason", "hs_priority")
HISTORY = ("dealstage", "amount", "closedate", "hs_manual_forecast_category")
ENGAGEMENTS = {  # object type -> (activity kind, properties, summary property)
    "calls": ("call", ("hs_timestamp", "hubspot_owner_id", "hs_call_title", "hs_call_body", "hs_call_direction",
                       "hs_call_status"), "hs_call_title"),
    "emails": ("email", ("hs_timestamp", "hubspot_owner_id", "hs_email_subject", "hs_email_direction"),
               "hs_email_subject"),
    "meetings": ("meeting", ("hs_timestamp", "hubspot_owner_id", "hs_meeting_title", "hs_meeting_outcome"),
                 "hs_meeting_title"),
    "notes": ("note", ("hs_timestamp", "hubspot_owner_id", "hs_note_body"), "hs_note_body"),
    "tasks": ("task", ("hs_timestamp", "hubspot_owner_id", "hs_task_subject", "hs_task_status"), "hs_task_subject"),
}
ASSOCIATIONS = tuple(ENGAGEMENTS) + ("companies",)
SEARCH_CAP = 10_000
NOTE_TO_DEAL = 214  # HUBSPOT_DEFINED association type id note -> deal
#: local decision -> HubSpot property (writeback)
FORECAST_VALUES = {"commit": "COMMIT", "best_case": "BEST_CASE", "pipeline": "PIPELINE", "omit": "OMIT"}


@dataclass(frozen=True)
class StageMeta:
    label: str
    pipeline: str
    probability: float | None
    closed: bool


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class HubSpotSource:
    source = "hubspot"
    label = "HubSpot"
    #: writeback property names for the local decisions
    FIELD_MAP = {"forecast_call": "hs_manual_forecast_category", "next_step": "hs_next_step"}

    def __init__(self, http: CrmHttp, playbook: Playbook, *, page_size: int = 50) -> None:
        self.http = http
        self.pb = playbook
        self.page_size = min(page_size, 50)  # list with propertiesWithHistory: ≤ 50
        self._stages: dict[str, StageMeta] | None = None
        self._owners: dict[str, tuple[str, str]] | None = None
        self._mapper: HubSpotMapper | None = None
        #: full-sync pages carry the raw JSON and a mapper instead of records (`Page.deferred`)
        self.defer_mapping = False

    def close(self) -> None:
        self.http.close()

    # -- metadata ---------------------------------------------------------------------------------
    def stages(self) -> dict[str, StageMeta]:
        if self._stages is None:
            out: dict[str, StageMeta] = {}
            for pipe in self.http.get_json("/crm/v3/pipelines/deals").get("results", []):
                for st in pipe.get("stages", []):
                    meta = st.get("metadata") or {}
                    try:
                        prob = float(meta["probability"]) if meta.get("probability") not in (None, "") else None
                    except (TypeError, ValueError):
                        prob = None
                    out[str(st["id"])] = StageMeta(str(st.get("label") or st["id"]), str(pipe.get("label") or ""),
                                                   prob, str(meta.get("isClosed", "false")).lower() == "true")
            self._stages = out
        return self._stages

    def owners(self) -> dict[str, tuple[str, str]]:
        """owner id -> (name, primary team name)."""
        if self._owners is None:
            out: dict[str, tuple[str, str]] = {}
            after = None
            while True:
                params = {"limit": 500, **({"after": after} if after else {})}
                data = self.http.get_json("/crm/v3/owners", params=params)
                for o in data.get("results", []):
                    name = " ".join(p for p in (o.get("firstName"), o.get("lastName")) if p) or o.get("email") or ""
                    teams = o.get("teams") or []
                    team = next((t.get("name", "") for t in teams if t.get("primary")), teams[0].get("name", "") if teams else "")
                    out[str(o.get("id"))] = (name, team)
                after = ((data.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
            self._owners = out
        return self._owners

    def estimate_total(self, since: str | None) -> int | None:
        try:
            data = self.http.post_json(f"{DEALS}/search", self._search_body(since, 0, 1), idempotent=True, search=True)
        except CrmError as exc:
            if exc.kind in ("auth", "permission", "quota"):
                raise
            return None
        return int(data.get("total", 0))

    # -- reading ----------------------------------------------------------------------------------
    def iter_pages(self, since: str | None, cursor: str | None) -> Iterator[Page]:
        cur = Cursor.load(cursor) or Cursor("search" if since else "list", None, since)
        self.stages()
        self.owners()
        if cur.mode == "list":
            yield from self._list_pages(cur)
        else:
            yield from self._search_pages(cur)

    def _list_pages(self, cur: Cursor) -> Iterator[Page]:
        after = cur.after
        while True:
            params: dict[str, Any] = {"limit": self.page_size, "properties": ",".join(PROPERTIES),
                                      "propertiesWithHistory": ",".join(HISTORY),
                                      "associations": ",".join(ASSOCIATIONS), "archived": "false"}
            if after:
                params["after"] = after
            resp = self.http.request("GET", DEALS, params=params)
            data = self.http._json(resp)
            objs = data.get("results", [])
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            next_cursor = Cursor("list", after).dump() if after else None
            if self.defer_mapping and objs:  # JSON to records where the page is written
                links = self._links(objs, inline_assoc=True)
                yield Page([], next_cursor, _newest(objs),
                           deferred=(self.mapper(), (resp.content, links, self._related_bodies(links, raw=True))))
            else:
                yield Page(self._records(objs, inline_assoc=True), next_cursor, _newest(objs))
            if not after:
                return

    def _search_body(self, since: str | None, after: int, limit: int) -> dict:
        body: dict[str, Any] = {"limit": limit, "after": str(after), "properties": list(PROPERTIES),
                                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}
        moment = parse_dt(since) if since else None
        body["filterGroups"] = [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                                              "value": str(int(moment.timestamp() * 1000))}]}] if moment else []
        return body

    def _search_pages(self, cur: Cursor) -> Iterator[Page]:
        since, offset = cur.since, int(cur.after or 0)
        while True:
            data = self.http.post_json(f"{DEALS}/search", self._search_body(since, offset, self.page_size),
                                       idempotent=True, search=True)
            hits = data.get("results", [])
            ids = [str(h["id"]) for h in hits]
            full = self._batch_read(ids)
            objs = [full[i] for i in ids if i in full]
            records = self._records(objs, inline_assoc=False)
            newest = _newest(hits)
            nxt = ((data.get("paging") or {}).get("next") or {}).get("after")
            if nxt is None:
                next_cursor = None
            elif int(nxt) + self.page_size > SEARCH_CAP:
                # re-anchor: a new query from the newest time seen (duplicates are harmless)
                if newest is None or newest == since:
                    raise CrmError("POST /crm/v3/objects/deals/search", None, "more than 10,000 deals share one "
                                   "last-modified time; cannot page further (HubSpot search cap)", kind="client")
                since, offset = newest, 0
                next_cursor = Cursor("search", "0", since).dump()
            else:
                offset = int(nxt)
                next_cursor = Cursor("search", str(offset), since).dump()
            yield Page(records, next_cursor, newest, total=data.get("total"))
            if next_cursor is None:
                return

    def _batch_read(self, ids: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for part in _chunks(ids, 50):
            data = self.http.request("POST", f"{DEALS}/batch/read", json_body={
                "inputs": [{"id": i} for i in part], "properties": list(PROPERTIES),
                "propertiesWithHistory": list(HISTORY)}, idempotent=True, ok=(207,))
            for obj in (self.http._json(data) or {}).get("results", []):
                out[str(obj["id"])] = obj
        return out

    def _assoc_v4(self, deal_ids: list[str], kind: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for part in _chunks(deal_ids, 1000):
            inputs: list[dict] = [{"id": i} for i in part]
            while inputs:
                resp = self.http.request("POST", f"/crm/v4/associations/deals/{kind}/batch/read",
                                         json_body={"inputs": inputs}, idempotent=True, ok=(207,))
                data = self.http._json(resp) or {}
                inputs = []
                for r in data.get("results", []):
                    src = str((r.get("from") or {}).get("id"))
                    out.setdefault(src, []).extend(str(t.get("toObjectId")) for t in r.get("to", []))
                    after = ((r.get("paging") or {}).get("next") or {}).get("after")
                    if after:
                        inputs.append({"id": src, "after": after})
        return out

    def _links(self, objs: list[dict], *, inline_assoc: bool) -> dict[str, dict[str, list[str]]]:
        """Association kind -> deal id -> associated ids (inline when complete, else API v4)."""
        ids = [str(o["id"]) for o in objs]
        links: dict[str, dict[str, list[str]]] = {k: {} for k in ASSOCIATIONS}
        for kind in ASSOCIATIONS:
            need_v4 = not inline_assoc
            if inline_assoc:
                for o in objs:
                    block = (o.get("associations") or {}).get(kind) or {}
                    links[kind][str(o["id"])] = [str(x.get("id")) for x in block.get("results", [])]
                    if block.get("paging", {}).get("next"):
                        need_v4 = True
            if need_v4:
                links[kind] = self._assoc_v4(ids, kind)
        return links

    def _related_bodies(self, links: dict[str, dict[str, list[str]]], *, raw: bool = False,
                        ) -> list[tuple[str, Any]]:
        """The companies and engagements the deals link to: each batch read's JSON, decoded
        (or `raw`, left for `HubSpotMapper.build` to decode where the page is written)."""
        wanted = [("companies", [c for v in links["companies"].values() for c in v[:1]], ("name",))]
        wanted += [(kind, [e for v in links[kind].values() for e in v], ENGAGEMENTS[kind][1])
                   for kind in ENGAGEMENTS if any(links[kind].values())]
        bodies: list[tuple[str, bytes]] = []
        for kind, ids, props in wanted:
            for part in _chunks(list(dict.fromkeys(ids)), 100):
                resp = self.http.request("POST", f"/crm/v3/objects/{kind}/batch/read",
                                         json_body={"inputs": [{"id": i} for i in part], "properties": list(props)},
                                         idempotent=True, ok=(207,))
                bodies.append((kind, resp.content if raw else self.http._json(resp)))
        return bodies

    def _records(self, objs: list[dict], *, inline_assoc: bool) -> list[DealRecord]:
        if not objs:
            return []
        links = self._links(objs, inline_assoc=inline_assoc)
        return self.mapper().build(self.pb, (objs, links, self._related_bodies(links)))

    def mapper(self) -> "HubSpotMapper":
        if self._mapper is None:
            self._mapper = HubSpotMapper(self.source, self.stages(), self.owners())
        return self._mapper

    # -- writeback --------------------------------------------------------------------------------
    def read_current(self, external_ids: list[str], fields: list[str]) -> dict[str, dict[str, str | None]]:
        out: dict[str, dict[str, str | None]] = {}
        for part in _chunks(external_ids, 100):
            resp = self.http.request("POST", f"{DEALS}/batch/read", json_body={
                "inputs": [{"id": i} for i in part], "properties": list(fields)}, idempotent=True, ok=(207,))
            for obj in (self.http._json(resp) or {}).get("results", []):
                props = obj.get("properties") or {}
                out[str(obj["id"])] = {f: (props.get(f) if props.get(f) != "" else None) for f in fields}
        return out

    def update_fields(self, writes: list[FieldWrite]) -> list[Outcome]:
        """`POST …/batch/update` in batches of ≤ 100; a 207 names the records that failed."""
        outcomes: list[Outcome] = []
        for part in _chunks(writes, 100):
            try:
                resp = self.http.request("POST", f"{DEALS}/batch/update", json_body={
                    "inputs": [{"id": w.external_id, "properties": w.values} for w in part]},
                    idempotent=True, ok=(207,))
            except CrmError as exc:
                if exc.kind in ("auth", "permission", "quota"):
                    raise
                outcomes += [Outcome(w.external_id, False, str(exc)) for w in part]
                continue
            data = self.http._json(resp) or {}
            done = {str(r.get("id")) for r in data.get("results", [])}
            failed: dict[str, str] = {}
            for err in data.get("errors") or []:
                msg = f"{err.get('category', 'error')}: {err.get('message', '')}"
                for i in ((err.get("context") or {}).get("ids") or []):
                    failed[str(i)] = msg
            for w in part:
                if w.external_id in done and w.external_id not in failed:
                    outcomes.append(Outcome(w.external_id, True))
                else:
                    outcomes.append(Outcome(w.external_id, False, failed.get(w.external_id, "not confirmed by HubSpot")))
        return outcomes

    def find_notes(self, notes: list[NoteWrite]) -> dict[str, str]:
        """marker -> note id for notes already created (reconcile after an unknown outcome)."""
        found: dict[str, str] = {}
        for n in notes:
            data = self.http.post_json("/crm/v3/objects/notes/search", {
                "filterGroups": [{"filters": [{"propertyName": "hs_note_body", "operator": "CONTAINS_TOKEN",
                                               "value": n.marker}]}], "properties": ["hs_note_body"], "limit": 1},
                idempotent=True, search=True)
            if data.get("results"):
                found[n.marker] = str(data["results"][0]["id"])
        return found

    def create_notes(self, notes: list[NoteWrite]) -> list[Outcome]:
        """Notes associated to their deals, `…/notes/batch/create` in batches of ≤ 100 (never retried blindly)."""
        outcomes: list[Outcome] = []
        for part in _chunks(notes, 100):
            inputs = [{"properties": {"hs_note_body": f"<p><strong>{_html(n.subject)}</strong></p>"
                                                      + "".join(f"<p>{_html(line)}</p>" for line in n.body.splitlines()),
                                      "hs_timestamp": iso(None) or _now_iso()},
                       "associations": [{"to": {"id": n.external_id},
                                         "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                    "associationTypeId": NOTE_TO_DEAL}]}]} for n in part]
            try:
                data = self.http.post_json("/crm/v3/objects/notes/batch/create", {"inputs": inputs}, idempotent=False)
            except CrmError as exc:
                if exc.kind in ("auth", "permission", "quota"):
                    raise
                outcomes += [Outcome(n.external_id, False, str(exc)) for n in part]
                continue
            results = (data or {}).get("results", [])
            by_marker = {}
            for r in results:
                body = str((r.get("properties") or {}).get("hs_note_body") or "")
                for n in part:
                    if n.marker in body:
                        by_marker[n.marker] = str(r.get("id"))
            for n in part:
                nid = by_marker.get(n.marker)
                outcomes.append(Outcome(n.external_id, bool(nid), "" if nid else "not confirmed by HubSpot", nid or ""))
        return outcomes


class HubSpotMapper:
    """HubSpot JSON (deals, their associations, the related objects' batch reads) to
    DealRecords. No HTTP: it pickles (without the playbook and its caches), so a sync can
    map pages in the process that writes them."""

    def __init__(self, source: str, stages: dict[str, StageMeta], owners: dict[str, tuple[str, str]]) -> None:
        self.source = source
        self.stages = stages
        self.owners = owners
        self.key = (source, repr(sorted(stages.items())), repr(sorted(owners.items())))
        self.pb: Playbook | None = None
        self._reset()

    def _reset(self) -> None:
        self._deal_stages: dict[str, tuple[str, StageMeta | None]] = {}
        self._categories: dict[str | None, str] = {}
        self._stage_keys: dict[str, str] = {}
        self._history_values: dict[tuple, str | None] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "stages": self.stages, "owners": self.owners, "key": self.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.pb = None
        self._reset()

    def build(self, playbook: Playbook, payload: tuple) -> list[DealRecord]:
        """`payload`: (deal objects or the list response's raw JSON, links, related bodies)."""
        if self.pb is not playbook:
            self.pb = playbook
            self._reset()
        objs, links, bodies = payload
        if isinstance(objs, bytes):
            objs = _decoded("GET", DEALS, objs).get("results", [])
        related: dict[str, dict[str, dict]] = {}
        for kind, body in bodies:
            found = related.setdefault(kind, {})
            if isinstance(body, bytes):
                body = _decoded("POST", f"/crm/v3/objects/{kind}/batch/read", body)
            for obj in (body or {}).get("results", []):
                found[str(obj["id"])] = obj.get("properties") or {}
        companies = related.get("companies", {})
        engagements = {k: v for k, v in related.items() if k != "companies"}
        return [self._record(o, links, companies, engagements, self.owners) for o in objs]

    def _deal_stage(self, stage_id: str) -> tuple[str, StageMeta | None]:
        """A deal's current stage id -> (playbook key, stage metadata); cached per stage id."""
        cache = self._deal_stages
        hit = cache.get(stage_id)
        if hit is None:
            meta = self.stages.get(stage_id)
            won = None
            if meta and meta.closed:
                won = (meta.probability or 0) >= 0.5
            hit = cache[stage_id] = (map_stage(self.pb, stage_id, meta.label if meta else "",
                                               meta.probability if meta else None,
                                               meta.closed if meta else None, won), meta)
        return hit

    def _category(self, value: str | None) -> str:
        cache = self._categories
        hit = cache.get(value)
        if hit is None:
            hit = cache[value] = map_category(self.pb, value)
        return hit

    def _record(self, obj: dict, links: dict, companies: dict, engagements: dict,
                owners: dict[str, tuple[str, str]]) -> DealRecord:
        p: dict[str, Any] = obj.get("properties") or {}
        did = str(obj["id"])
        stage_id = str(p.get("dealstage") or "")
        stage, meta = self._deal_stage(stage_id)
        currency = (p.get("deal_currency_code") or "USD").upper()
        owner_name, team = owners.get(str(p.get("hubspot_owner_id") or ""), ("", ""))
        company_ids = links["companies"].get(did) or []
        account = (companies.get(company_ids[0]) or {}).get("name") or "" if company_ids else ""
        category = self._category(p.get("hs_manual_forecast_category") or p.get("hs_forecast_category"))
        history = self._history(obj.get("propertiesWithHistory") or {}, currency)
        activities = []
        nobody = ("", "")
        for kind, (act_kind, _props, summary_prop) in ENGAGEMENTS.items():
            eids = links[kind].get(did)
            if not eids:
                continue
            found = engagements.get(kind) or {}
            for eid in eids:
                e = found.get(eid)
                if e is None:
                    continue
                when = parse_dt(e.get("hs_timestamp")) or parse_dt(e.get("hs_createdate"))
                if when is None:
                    continue
                who = owners.get(str(e.get("hubspot_owner_id") or ""), nobody)[0]
                activities.append(ActivityRecord(f"{kind}:{eid}", act_kind, when, plain(e.get(summary_prop)), who))
        extras = {"crm": dict(sorted(p.items())), "pipeline": meta.pipeline if meta else p.get("pipeline"),
                  "stage_label": meta.label if meta else stage_id}
        return DealRecord(
            source=self.source, external_id=did, name=p.get("dealname") or f"(unnamed deal {did})",
            stage=stage, account=account, owner=owner_name, team=team,
            crm_stage=meta.label if meta else stage_id, amount_minor=parse_minor(p.get("amount"), currency),
            currency=currency, close_date=parse_date(p.get("closedate")), forecast_category=category,
            next_step=p.get("hs_next_step") or "", created_on=parse_date(p.get("createdate")),
            crm_updated_at=parse_dt(p.get("hs_lastmodifieddate") or obj.get("updatedAt")),
            extras=extras, history=history, activities=activities)

    def _history_stage(self, v: str | None) -> str | None:
        """A stage id in the history to a playbook key (cached: a portal has a few dozen stages)."""
        if not v:
            return None
        cache = self._stage_keys
        if v not in cache:
            stages = self.stages
            cache[v] = map_stage(self.pb, v, stages[v].label if v in stages else "",
                                 stages[v].probability if v in stages else None,
                                 stages[v].closed if v in stages else None)
        return cache[v]

    def _history_value(self, prop: str, value: Any, currency: str) -> str | None:
        """A history version's value in the stored form (cached per property, value and currency)."""
        cache = self._history_values
        key = (prop, value, currency)
        try:
            return cache[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value: convert without caching
            return _HISTORY_CONVERT[prop][1](self, value, currency)
        if len(cache) > 100_000:
            cache.clear()
        new = cache[key] = _HISTORY_CONVERT[prop][1](self, value, currency)
        return new

    def _history(self, with_history: dict[str, list[dict]], currency: str) -> list[HistoryItem]:
        out: list[HistoryItem] = []
        value_of = self._history_value
        for prop, (field, _conv) in _HISTORY_CONVERT.items():
            versions = with_history.get(prop)
            if not versions:
                continue
            if len(versions) > 1:
                versions = sorted(versions, key=_timestamp)
            prev = None
            for v in versions:
                when = parse_dt(v.get("timestamp"))
                new = value_of(prop, v.get("value"), currency)
                if when is None or new == prev:
                    continue
                out.append(HistoryItem(field, prev, new, when))
                prev = new
        return out


def _decoded(method: str, path: str, body: bytes) -> Any:
    """A raw JSON body kept for later (`Page.deferred`), decoded with CrmHttp's error."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise CrmError(f"{method} {path}", 200, "HubSpot sent a body that is not JSON", kind="server") from None


def _timestamp(version: dict) -> str:
    return version.get("timestamp") or ""


def _history_date(v: Any) -> str | None:
    d = parse_date(v)
    return d.isoformat() if d else None


#: history property -> (deal_change field, conversion of a version's value to the stored form)
_HISTORY_CONVERT: dict[str, tuple[str, Any]] = {
    "dealstage": ("stage", lambda src, v, cur: src._history_stage(v)),
    "amount": ("amount_minor", lambda src, v, cur: str(parse_minor(v, cur)) if v not in (None, "") else None),
    "closedate": ("close_date", lambda src, v, cur: _history_date(v)),
    "hs_manual_forecast_category": ("forecast_category",
                                    lambda src, v, cur: map_category(src.pb, v) if v else None),
}


def _html(text: str) -> str:
    import html as _h

    return _h.escape(text, quote=False)


def _now_iso() -> str:
    from datetime import datetime, timezone

    return iso(datetime.now(timezone.utc)) or ""


def _newest(objs: list[dict]) -> str | None:
    best = None
    for o in objs:
        moment = parse_dt((o.get("properties") or {}).get("hs_lastmodifieddate") or o.get("updatedAt"))
        if moment and (best is None or moment > best):
            best = moment
    return iso(best)
