"""Benchmark the CRM sync (issue 4): full sync, a bare httpx loop over the same calls, incremental.

Run: python tests/bench/bench_sync.py [--crm hubspot|salesforce|both] [--deals 100000] [--repeat 3] [--profile]
(not a pytest test; prints a table, asserts nothing)

The HubSpot emulator (tests/emulators) runs in its own process on 127.0.0.1 (an ephemeral
port), seeded with N deals, each with property history and 5 activities (a call, an email,
a meeting, a note, a task) and a company. Measured, each `--repeat` times (median shown):

* full sync: `sync_source(store, playbook, HubSpotSource(...), full=True)` (what
  `inspector sync hubspot --full` runs) into a fresh SQLite store, in deals/s. At this size
  the sync maps and commits pages in a helper process while the main one reads (see
  `inspector.sync._ProcessWriter`), so the machine's two cores run the emulator, the reading
  and the writing;
* a bare httpx loop making the same calls (deals list pages of 50 with history and inline
  associations, the companies and engagement batch reads, pipelines, owners, the total
  estimate), decoding each JSON body and nothing else; the emulator counts the requests of
  both, so the table shows they are the same; ratio sync / bare (target ≤ 1.5x);
* incremental sync after 1% of the deals change in the emulator (target < 5% of the full
  sync's time).

The same three measures for Salesforce: its emulator, in its own process too, seeded with N
opportunities, each with two OpportunityHistory rows, an OpportunityFieldHistory row, 3 Tasks
and 2 Events (accounts and owners come inline through the SOQL relationships):

* full sync: `sync_source(store, playbook, SalesforceSource(...), full=True)` into a fresh
  SQLite store, in opportunities/s. SalesforceSource counts the run first (`SELECT COUNT()`),
  so from WRITE_ELSEWHERE_FROM opportunities the sync writes in the helper process, as
  HubSpot's does;
* a bare httpx loop making the same calls (the count, the SOQL query on Opportunity with its
  `Sforce-Query-Options: batchSize=500` header and every `nextRecordsUrl` page; per 200
  opportunities of a page, the OpportunityHistory, OpportunityFieldHistory, Task and Event
  queries and their `nextRecordsUrl` pages), decoding each JSON body and nothing else; the
  emulator counts both by sObject, so the table shows they are the same; ratio ≤ 1.5x;
* incremental sync after 1% of the opportunities change in the emulator (Amount up, CloseDate
  pushed 14 days, SystemModstamp bumped; target < 5% of the full sync's time).

Client-side pacing is off (rate=None) so the numbers measure the code, not the 10 req/s
pacing; the note column gives the paced lower bound (requests / 10 per s, searches / 4 per s)
that a real HubSpot portal would impose, and for Salesforce the app's own 20 req/s pacing.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)
ROWS: list[tuple[str, str, str, str]] = []


def row(name: str, value: str, target: str, note: str = "") -> None:
    ROWS.append((name, value, target, note))
    print(f"  {name:<52} {value:>14}   target {target:<8} {note}", flush=True)


# -- the emulator, in its own process ------------------------------------------------------------
def _emulator_main(conn, deals: int) -> None:
    import re

    from tests.emulators.hubspot import HubSpotEmulator

    t = time.perf_counter()
    emu = HubSpotEmulator(deals=deals, activities=5, daily_limit=10_000_000)
    conn.send((emu.url, emu.token, time.perf_counter() - t))
    step = 0
    while True:
        cmd, *args = conn.recv()
        if cmd == "counts":  # requests since the last call, by method and path (ids folded)
            with emu.lock:
                seen, emu.seen = emu.seen, []
            conn.send(dict(Counter(f"{s.method} {re.sub(r'/[0-9]+(?=/|$)', '/{id}', s.path)}" for s in seen)))
        elif cmd == "modify":  # a share of the deals edited by reps: amount up, close date pushed
            share = args[0]
            every = max(1, round(1 / share))
            step += 1
            ids = emu.order[step % every::every]
            for did in ids:
                p = emu.deals[did].props
                emu.modify(did, amount=str(int(float(p["amount"] or 0)) + 500),
                           closedate=(datetime.fromisoformat(p["closedate"].replace("Z", "+00:00"))
                                      + timedelta(days=14)).strftime("%Y-%m-%dT00:00:00Z"))
            conn.send(len(ids))
        elif cmd == "close":
            emu.close()
            conn.send(None)
            return


def _sf_emulator_main(conn, opps: int) -> None:
    """The Salesforce emulator's process: the same commands as `_emulator_main`."""
    import re

    from tests.emulators.salesforce import SalesforceEmulator

    def warm() -> None:  # the emulator indexes the fields of `IN` queries on first use: not in a measure
        with emu.lock:
            for sobject, field in (("OpportunityHistory", "OpportunityId"), ("OpportunityFieldHistory", "OpportunityId"),
                                   ("Task", "WhatId"), ("Event", "WhatId")):
                emu.soql(f"SELECT Id FROM {sobject} WHERE {field} IN ('none')")

    t = time.perf_counter()
    emu = SalesforceEmulator(opportunities=opps, tasks=3, events=2, api_limit=10_000_000)
    warm()
    conn.send((emu.url, emu.token, time.perf_counter() - t))
    step = 0
    while True:
        cmd, *args = conn.recv()
        if cmd == "counts":  # requests since the last call, by query or query-locator page and sObject
            with emu.lock:
                seen, emu.seen = emu.seen, []
                kinds = {loc: rows[0]["attributes"]["type"] if rows else "?" for loc, (rows, _n) in emu.locators.items()}
                # no query is open between measures: the locators (each holds its query's rows)
                # would otherwise pile up over the runs
                emu.locators.clear()
            out: Counter = Counter()
            for s in seen:
                if s.path.endswith("/query"):
                    m = re.search(r"\bFROM\s+(\w+)", s.query.get("q", ""))
                    out[f"{s.method} query {m.group(1) if m else '?'}"] += 1
                elif "/query/" in s.path:
                    out[f"{s.method} query/next {kinds.get(s.path.rsplit('/', 1)[1].rsplit('-', 1)[0], '?')}"] += 1
                else:
                    out[f"{s.method} {s.path}"] += 1
            conn.send(dict(out))
        elif cmd == "modify":  # a share of the opportunities edited by reps: amount up, close date pushed
            share = args[0]
            every = max(1, round(1 / share))
            step += 1
            ids = emu.order[step % every::every]
            for oid in ids:  # modify writes the history rows and bumps SystemModstamp
                o = emu.objects["Opportunity"][oid]
                emu.modify(oid, Amount=float(o["Amount"] or 0) + 500,
                           CloseDate=(date.fromisoformat(o["CloseDate"]) + timedelta(days=14)).isoformat())
            warm()
            conn.send(len(ids))
        elif cmd == "close":
            emu.close()
            conn.send(None)
            return


class Emu:
    def __init__(self, deals: int, target=_emulator_main) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child, deals), daemon=True)
        self.proc.start()
        self.url, self.token, self.seed_s = self.conn.recv()

    def call(self, *cmd):
        self.conn.send(cmd)
        return self.conn.recv()

    def close(self) -> None:
        self.call("close")
        self.proc.join(10)


# -- the two clients -------------------------------------------------------------------------------
def connector(emu: Emu, playbook):
    from inspector.secrets import Secret
    from inspector.sources.http import CrmHttp
    from inspector.sources.hubspot import HubSpotSource

    http = CrmHttp("hubspot", emu.url, Secret(emu.token), rate=None, search_rate=None)
    return HubSpotSource(http, playbook)


def sf_connector(emu: Emu, playbook):
    """SalesforceSource as `inspector sync salesforce` builds it (batch size 500), pacing off."""
    from inspector.secrets import Secret
    from inspector.sources.http import CrmHttp
    from inspector.sources.salesforce import SalesforceSource

    http = CrmHttp("salesforce", emu.url, Secret(emu.token), rate=None, search_rate=None)
    return SalesforceSource(http, playbook)


def bare_hubspot(url: str, token: str, page_size: int = 50) -> int:
    """The same calls as HubSpotSource's full sync with plain httpx: JSON decoded, nothing kept."""
    import httpx

    from inspector.sources.hubspot import ASSOCIATIONS, DEALS, ENGAGEMENTS, HISTORY, PROPERTIES

    deals = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        c.post(f"{DEALS}/search", json={"limit": 1, "after": "0", "properties": list(PROPERTIES), "filterGroups": [],
                                        "sorts": [{"propertyName": "hs_lastmodifieddate",
                                                   "direction": "ASCENDING"}]}).json()
        c.get("/crm/v3/pipelines/deals").json()
        c.get("/crm/v3/owners", params={"limit": 500}).json()
        after = None
        while True:
            params = {"limit": page_size, "properties": ",".join(PROPERTIES), "propertiesWithHistory": ",".join(HISTORY),
                      "associations": ",".join(ASSOCIATIONS), "archived": "false"}
            if after:
                params["after"] = after
            data = c.get(DEALS, params=params).json()
            objs = data.get("results", [])
            deals += len(objs)
            links = {k: [x["id"] for o in objs for x in ((o.get("associations") or {}).get(k) or {}).get("results", [])]
                     for k in ASSOCIATIONS}
            firsts = [((o.get("associations") or {}).get("companies") or {}).get("results", [])[:1] for o in objs]
            companies = list(dict.fromkeys(x["id"] for f in firsts for x in f))
            for i in range(0, len(companies), 100):
                c.post("/crm/v3/objects/companies/batch/read",
                       json={"inputs": [{"id": x} for x in companies[i:i + 100]], "properties": ["name"]}).json()
            for kind, (_k, props, _s) in ENGAGEMENTS.items():
                ids = list(dict.fromkeys(links[kind]))
                for i in range(0, len(ids), 100):
                    c.post(f"/crm/v3/objects/{kind}/batch/read",
                           json={"inputs": [{"id": x} for x in ids[i:i + 100]], "properties": list(props)}).json()
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return deals


def bare_salesforce(url: str, token: str, batch_size: int = 500) -> int:
    """The same calls as SalesforceSource's full sync (`iter_pages`, `_records`) with plain httpx:
    JSON decoded, nothing kept. The SOQL text is SalesforceSource's, so the emulator does the same work."""
    from urllib.parse import urlsplit

    import httpx

    from inspector.sources.salesforce import API_VERSION, OPP_FIELDS, soql_quote

    base = f"/services/data/v{API_VERSION}"
    headers = {"Authorization": f"Bearer {token}", "Sforce-Query-Options": f"batchSize={batch_size}"}
    opps = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
        def more(data: dict) -> dict | None:
            nxt = data.get("nextRecordsUrl") if not data.get("done", True) else None
            return c.get(urlsplit(nxt).path).json() if nxt else None

        c.get(f"{base}/query", params={"q": "SELECT COUNT() FROM Opportunity"}).json()  # the total
        data: dict | None = c.get(f"{base}/query", params={
            "q": f"SELECT {', '.join(OPP_FIELDS)} FROM Opportunity ORDER BY SystemModstamp, Id"}).json()
        while data is not None:
            ids = [r["Id"] for r in data.get("records", [])]
            opps += len(ids)
            for i in range(0, len(ids), 200):
                in_list = ", ".join(soql_quote(x) for x in ids[i:i + 200])
                for soql in ("SELECT OpportunityId, StageName, Amount, CloseDate, Probability, CreatedDate "
                             f"FROM OpportunityHistory WHERE OpportunityId IN ({in_list}) ORDER BY CreatedDate",
                             "SELECT OpportunityId, Field, OldValue, NewValue, CreatedDate "
                             f"FROM OpportunityFieldHistory WHERE OpportunityId IN ({in_list}) "
                             "AND Field IN ('ForecastCategoryName') ORDER BY CreatedDate",
                             "SELECT Id, WhatId, Subject, ActivityDate, Status, TaskSubtype, Owner.Name, "
                             f"CreatedDate FROM Task WHERE WhatId IN ({in_list})",
                             "SELECT Id, WhatId, Subject, StartDateTime, ActivityDateTime, Owner.Name "
                             f"FROM Event WHERE WhatId IN ({in_list})"):
                    sub: dict | None = c.get(f"{base}/query", params={"q": soql}).json()
                    while sub is not None:
                        sub = more(sub)
            data = more(data)
    return opps


# -- the measures -----------------------------------------------------------------------------------
def _fresh(tmp: Path, tag: str):
    from inspector.services import build_services

    db = tmp / f"sync-{tag}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return build_services(db, actor="bench")


def _paced(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    searches = sum(v for k, v in counts.items() if k.endswith("/search"))
    return max(total / 10.0, searches / 4.0)


def _dur(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _fmt_counts(counts: dict[str, int]) -> str:
    short = {}
    for k, v in counts.items():
        name = k.split(" ", 1)[1].replace("/crm/v3/objects/", "").replace("/crm/v4/associations/deals/", "assoc ")
        short[name] = short.get(name, 0) + v
    return ", ".join(f"{k} {v:,}" for k, v in sorted(short.items(), key=lambda kv: -kv[1])[:6])


def _fmt_sf_counts(counts: dict[str, int]) -> str:
    """Requests by sObject, of which how many were `nextRecordsUrl` pages."""
    total: Counter = Counter()
    more: Counter = Counter()
    for k, v in counts.items():
        kind, sobject = k.split(" ")[1:3] if k.count(" ") == 2 else ("", k)
        total[sobject] += v
        if kind == "query/next":
            more[sobject] += v
    return ", ".join(f"{k} {v:,}" + (f" ({more[k]:,} next)" if more[k] else "") for k, v in total.most_common())


@dataclass
class Measured:
    """One CRM's runs: times (s) per repeat, the emulator's request counts of the last repeat."""

    fulls: list[float]
    bares: list[float]
    incs: list[float]
    full_counts: dict[str, int]
    bare_counts: dict[str, int]
    inc_counts: dict[str, int]
    status: Any  # SyncStatus of the last full sync
    inc: Any  # SyncStatus of the last incremental sync
    bare_n: int  # deals the bare loop read
    changed: int  # deals changed before the incremental sync


def _measure(tmp: Path, emu: Emu, pb, tag: str, connect, bare, repeat: int) -> Measured:
    """Per repeat: full sync into a fresh store, the bare loop, 1% changed, incremental sync."""
    from inspector.sync import sync_source

    fulls, bares, incs = [], [], []
    full_counts = bare_counts = inc_counts = {}
    status = inc = None
    changed = bare_n = 0
    svc = None
    for k in range(repeat):
        if svc is not None:
            svc.store.engine.dispose()
        svc = _fresh(tmp, f"{tag}-{k}")
        emu.call("counts")
        src = connect(emu, pb)
        t = time.perf_counter()
        status = sync_source(svc.store, pb, src, full=True, now=NOW + timedelta(hours=k))
        fulls.append(time.perf_counter() - t)
        src.close()
        full_counts = emu.call("counts")

        t = time.perf_counter()
        bare_n = bare(emu.url, emu.token)
        bares.append(time.perf_counter() - t)
        bare_counts = emu.call("counts")

        changed = emu.call("modify", 0.01)
        emu.call("counts")
        src = connect(emu, pb)
        t = time.perf_counter()
        inc = sync_source(svc.store, pb, src, full=False, now=NOW + timedelta(hours=k, minutes=30))
        incs.append(time.perf_counter() - t)
        src.close()
        inc_counts = emu.call("counts")
    if svc is not None:
        svc.store.engine.dispose()
    return Measured(fulls, bares, incs, full_counts, bare_counts, inc_counts, status, inc, bare_n, changed)


def _profile(tmp: Path, emu: Emu, pb, tag: str, connect) -> None:
    """cProfile one more full sync into a fresh store; prints the top functions by own time."""
    import cProfile
    import pstats

    from inspector.sync import sync_source

    svc = _fresh(tmp, f"{tag}-profile")
    src = connect(emu, pb)
    prof = cProfile.Profile()
    prof.enable()
    sync_source(svc.store, pb, src, full=True, now=NOW)
    prof.disable()
    src.close()
    svc.store.engine.dispose()
    pstats.Stats(prof).sort_stats("tottime").print_stats(30)


def _report(crm: str, what: str, unit: str, m: Measured, repeat: int, fmt_counts, paced, pacing: str) -> None:
    """The table rows of one CRM's measures. `paced(counts)`: the seconds those requests take
    at production pacing, described by `pacing`."""
    full, bare, incr = statistics.median(m.fulls), statistics.median(m.bares), statistics.median(m.incs)
    n_full, n_bare = sum(m.full_counts.values()), sum(m.bare_counts.values())
    runs = lambda xs: " / ".join(f"{x:.1f}" for x in xs)  # noqa: E731
    st, inc = m.status, m.inc
    row(f"{crm} full sync, {st.deals:,} {what}", f"{st.deals / full:,.0f} {unit}/s", "-",
        f"{full:.1f} s, median of {repeat} (runs {runs(m.fulls)} s) · {st.pages:,} pages, "
        f"{st.activities:,} activities, {st.changes:,} history rows")
    row("  requests the sync made (emulator count)", f"{n_full:,}", "-", fmt_counts(m.full_counts))
    row("  bare httpx loop, same calls", f"{m.bare_n / bare:,.0f} {unit}/s", "-",
        f"{bare:.1f} s (runs {runs(m.bares)} s) · {n_bare:,} requests"
        + ("" if n_bare == n_full else f" (sync made {n_full:,})")
        + ("" if n_bare != n_full or m.bare_counts == m.full_counts else " (same total, other calls)"))
    row("  sync time / bare loop time", f"{full / bare:.2f}x", "≤ 1.5x",
        "both unpaced against the same emulator process")
    row(f"{crm} incremental sync, {m.changed:,} {what} (1%) changed", f"{incr:.2f} s", "-",
        f"median of {repeat} (runs {' / '.join(f'{x:.2f}' for x in m.incs)} s) · {inc.deals:,} {what} read, "
        f"{inc.updated:,} updated, {inc.changes:,} history rows · {sum(m.inc_counts.values()):,} requests")
    row("  incremental / full sync time", f"{incr / full:.1%}", "< 5%",
        f"paced at {pacing}: full ≥ {_dur(paced(m.full_counts))}, incremental ≥ {_dur(paced(m.inc_counts))} "
        f"({paced(m.inc_counts) / paced(m.full_counts):.1%})")


def run(tmp: Path, deals: int, repeat: int, profile: bool = False) -> None:
    from inspector.playbook import load_playbook

    pb = load_playbook()
    emu = Emu(deals)
    print(f"    HubSpot emulator: {deals:,} deals × (history, 5 activities, a company) at {emu.url}, "
          f"seeded in {emu.seed_s:.1f} s (own process)", flush=True)
    try:
        m = _measure(tmp, emu, pb, "hubspot", connector, bare_hubspot, repeat)
        _report("HubSpot", "deals", "deals", m, repeat, _fmt_counts, _paced,
                "production rates (10 req/s, search 4/s)")
        if profile:
            _profile(tmp, emu, pb, "hubspot", connector)
    finally:
        emu.close()


def run_salesforce(tmp: Path, opps: int, repeat: int, profile: bool = False) -> None:
    from inspector.playbook import load_playbook
    from inspector.sources.connect import RATES

    pb = load_playbook()
    emu = Emu(opps, target=_sf_emulator_main)
    print(f"    Salesforce emulator: {opps:,} opportunities × (2 stage + 1 field history rows, 3 tasks, 2 events) "
          f"at {emu.url}, seeded in {emu.seed_s:.1f} s (own process)", flush=True)
    try:
        m = _measure(tmp, emu, pb, "salesforce", sf_connector, bare_salesforce, repeat)
        rate = RATES["salesforce"][0]  # the app's own pacing: Salesforce has no per-second limit, a daily one
        _report("Salesforce", "opportunities", "opps", m, repeat, _fmt_sf_counts,
                lambda counts: sum(counts.values()) / rate, f"the app's rate ({rate:.0f} req/s)")
        if profile:
            _profile(tmp, emu, pb, "salesforce", sf_connector)
    finally:
        emu.close()


def run_from_run_all(tmp: Path, deals: int) -> None:
    """One call from tests/bench/run_all.py: both CRMs, one after the other (the emulators never share the cores)."""
    run(tmp, deals, 3)
    run_salesforce(tmp, deals, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--crm", choices=("hubspot", "salesforce", "both"), default="both")
    parser.add_argument("--deals", type=int, default=100_000, help="deals (HubSpot) / opportunities (Salesforce)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one more full sync (top functions)")
    parser.add_argument("--keep", type=Path, help="write the stores into this directory")
    args = parser.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="inspector-bench-sync-"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"Inspector sync benchmarks · {os.cpu_count()} cores · load {os.getloadavg()[0]:.2f} · "
          f"Python {sys.version.split()[0]} · {tmp}")
    if args.crm in ("hubspot", "both"):
        run(tmp, args.deals, args.repeat, args.profile)
    if args.crm in ("salesforce", "both"):
        run_salesforce(tmp, args.deals, args.repeat, args.profile)
    print("\n| measure | value | target | note |\n|---|---|---|---|")
    for name, value, target, note in ROWS:
        print(f"| {name.strip()} | {value} | {target} | {note} |")


if __name__ == "__main__":
    main()
