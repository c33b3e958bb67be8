"""The CRM HTTP client under faults, against the loopback emulators (RELIABILITY.md §7.5 and the
secrets tests of §7.2 that need a server): 429 and Retry-After, HubSpot daily limits, 5xx
back-off, a dripping body cut at the deadline, connection refused then up, client-side pacing
seen from the server, the Salesforce quota guard, redirects, and a canary token that must not
appear in logs, error text, crash tracebacks, the database file or exports.

Retry, back-off and deadline settings are small here (the policy shape is the production one);
a `sleep` spy stands in where the production wait would be long (10 s, 3600 s)."""
from __future__ import annotations

import io
import logging
import socket
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from inspector.secrets import Secret
from inspector.sources.http import CrmError, CrmHttp, RateLimiter, RetryPolicy, parse_retry_after, redact_url
from inspector.storage.inspections import Inspections
from inspector.sync import read_state, sync_source
from tests.emulators.base import Fault
from tests.emulators.fixtures import FAST, hubspot_source, http_for, salesforce_source
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator

NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)
CANARY = "pat-na1-CANARY-0000"
DEALS = "/crm/v3/objects/deals"
BURST = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
         "errorType": "RATE_LIMIT", "correlationId": "c", "policyName": "TEN_SECONDLY_ROLLING"}
DAILY = {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
         "correlationId": "c", "policyName": "DAILY", "requestId": "r"}


@pytest.fixture
def hs():
    emu = HubSpotEmulator(deals=120, activities=1)
    yield emu
    emu.close()


@pytest.fixture
def sf():
    emu = SalesforceEmulator(opportunities=450, tasks=1, events=0)
    yield emu
    emu.close()


class SleepSpy:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def _sync(svc, source, playbook, **kw):
    try:
        return sync_source(svc.store, playbook, source, now=NOW, **kw)
    finally:
        source.close()


# -- 429 and Retry-After (HTTP-01, HTTP-02) ------------------------------------------------------
def test_429_retry_after_is_honoured_and_shown(sqlite_services, hs, playbook):
    """HTTP-01: page 2 answers 429 Retry-After: 1; the retry comes ≥ 1 s later and succeeds."""
    list_calls = []
    hs.add_fault(Fault(status=429, body=BURST, headers={"Retry-After": "1"}, path=DEALS, method="GET", count=0))
    fault = hs.faults[-1]

    def arm(seen):  # the hook runs before faults are taken: page 2's request (read ahead or not) gets the 429
        if seen.path == DEALS and seen.method == "GET":
            list_calls.append(seen)
            if len(list_calls) == 2:
                fault.count = 1

    hs.hook = arm
    progress = []
    status = _sync(sqlite_services, hubspot_source(hs, playbook), playbook, full=True,
                   progress=lambda st: progress.append((st.pages, st.message)))
    assert status.state == "done" and status.deals == 120 and status.rate_waits == 1
    # what the UI shows while it waits (page 2 is read while page 1 is written: 0 or 1 committed)
    assert [p for p, m in progress if m == "rate limited, retrying in 1s"] in ([0], [1])
    assert len(list_calls) == 4  # 3 pages + 1 retry
    refused, retried = list_calls[1], list_calls[2]
    assert refused.query == retried.query  # the same page asked again
    assert retried.at - refused.at >= 1.0  # Retry-After honoured


def test_retry_after_http_date_is_parsed():
    now = datetime(2026, 12, 3, 9, 0, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert header.endswith("GMT")
    assert parse_retry_after(header, now=now.timestamp()) == pytest.approx(7.0)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now.timestamp()) == 0.0
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_retry_after_beyond_the_cap_stops_with_resume_later_without_waiting(hs):
    """HTTP-02: Retry-After 3600 is not slept through: one request, 'limit reached, resume later'."""
    spy = SleepSpy()
    http = http_for(hs, "hubspot", sleep=spy)
    hs.add_fault(Fault(status=429, body=BURST, headers={"Retry-After": "3600"}, path=DEALS))
    with pytest.raises(CrmError) as info:
        http.get_json(DEALS, params={"limit": 5})
    err = info.value
    assert err.kind == "rate_limited" and err.retry_after == 3600 and err.exit_code == 1
    assert "HubSpot limit reached, resume later (asked to wait 3600s)" in str(err)
    assert spy.calls == [] and len(hs.requests_to(DEALS)) == 1
    # an HTTP-date far in the future is capped the same way
    hs.add_fault(Fault(status=429, body=BURST, path=DEALS, headers={
        "Retry-After": format_datetime(datetime.now(timezone.utc) + timedelta(hours=2), usegmt=True)}))
    with pytest.raises(CrmError, match="resume later"):
        http.get_json(DEALS, params={"limit": 5})
    assert spy.calls == []
    http.close()


def test_ten_secondly_429_without_retry_after_waits_the_interval(hs):
    spy, waits = SleepSpy(), []
    http = http_for(hs, "hubspot", sleep=spy, on_wait=waits.append)
    hs.add_fault(Fault(status=429, body=BURST, path=DEALS))  # the emulator's interval header says 10000 ms
    data = http.get_json(DEALS, params={"limit": 5})
    assert len(data["results"]) == 5 and len(hs.requests_to(DEALS)) == 2
    assert spy.calls == [10.0] and [w.reason for w in waits] == ["rate_limited"]
    http.close()


def test_hubspot_daily_limit_stops_the_run_and_every_later_call(sqlite_services, hs, playbook):
    """policyName DAILY: no retry, the run stops with a clear message, the client sends nothing more."""
    src = hubspot_source(hs, playbook)
    hs.add_fault(Fault(status=429, body=DAILY, path=DEALS, method="GET"))
    with pytest.raises(CrmError) as info:
        sync_source(sqlite_services.store, playbook, src, full=True, now=NOW)
    assert info.value.kind == "quota" and "HubSpot daily limit reached; resume later" in str(info.value)
    before = len(hs.seen)
    with pytest.raises(CrmError, match="daily limit"):
        src.http.get_json("/crm/v3/owners")  # the same client refuses without asking
    assert len(hs.seen) == before
    src.close()
    state = read_state(sqlite_services.store, "hubspot")
    assert state.status == "failed" and "daily limit" in state.last_error


# -- 5xx, deadline, connection (HTTP-03, HTTP-04, HTTP-05) ---------------------------------------
def test_503_three_times_then_200_succeeds_after_jittered_backoff(hs):
    spy, waits = SleepSpy(), []
    http = http_for(hs, "hubspot", sleep=spy, on_wait=waits.append)
    hs.add_fault(Fault(status=503, body={"status": "error", "message": "Service Unavailable"}, path=DEALS, count=3))
    data = http.get_json(DEALS, params={"limit": 3})
    assert len(data["results"]) == 3 and len(hs.requests_to(DEALS)) == 4
    assert [w.reason for w in waits] == ["backoff"] * 3
    caps = [min(FAST.backoff_max, FAST.backoff_base * 2 ** i) for i in range(3)]
    assert all(0 <= s <= cap for s, cap in zip(spy.calls, caps))  # full jitter under the exponential cap
    assert "HubSpot server error" in waits[0].message
    http.close()


def test_503_forever_gives_a_clean_error_after_max_attempts(hs):
    http = http_for(hs, "hubspot")
    hs.add_fault(Fault(status=503, body={"status": "error", "message": "Service Unavailable"}, path=DEALS, count=99))
    with pytest.raises(CrmError) as info:
        http.get_json(DEALS, params={"limit": 3})
    assert len(hs.requests_to(DEALS)) == FAST.max_attempts == 5
    err = info.value
    assert (err.kind, err.status, err.exit_code) == ("server", 503, 1)
    assert str(err) == "GET /crm/v3/objects/deals: HTTP 503 HubSpot server error: Service Unavailable"
    http.close()


def test_503_forever_stops_at_the_deadline_before_max_attempts(hs):
    policy = RetryPolicy(max_attempts=50, backoff_base=0.2, backoff_max=0.4, retry_after_cap=60.0, deadline=1.0)
    http = http_for(hs, "hubspot", policy=policy)
    hs.add_fault(Fault(status=503, body={"message": "down"}, path=DEALS, count=999))
    with pytest.raises(CrmError) as info:
        http.get_json(DEALS, params={"limit": 3})
    assert 2 <= len(hs.requests_to(DEALS)) < 50
    assert "deadline" in str(info.value) and info.value.status == 503
    http.close()


def test_a_dripping_body_is_cut_at_the_total_deadline(hs):
    """HTTP-04: one byte every 0.1 s for 400 bytes (40 s); the 1 s call deadline ends it."""
    policy = RetryPolicy(max_attempts=5, backoff_base=0.01, backoff_max=0.05, deadline=1.0)
    http = http_for(hs, "hubspot", policy=policy)
    hs.add_fault(Fault(kind="drip", delay=0.1, length=400, path=DEALS))
    with pytest.raises(CrmError) as info:
        http.get_json(DEALS, params={"limit": 3})
    assert info.value.kind == "deadline" and "deadline" in str(info.value)
    assert len(hs.requests_to(DEALS)) == 1  # the deadline covers the retries too: nothing after it
    http.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_then_up():
    """HTTP-05: nothing listens; the client backs off; the server comes up during the wait."""
    port = _free_port()
    started: list[HubSpotEmulator] = []
    waits = []

    def on_wait(wait):
        waits.append(wait)
        if not started:
            started.append(HubSpotEmulator(deals=4, port=port))

    http = CrmHttp("hubspot", f"http://127.0.0.1:{port}", Secret("test-token"), rate=None, search_rate=None,
                   policy=FAST, on_wait=on_wait)
    try:
        data = http.get_json(DEALS, params={"limit": 10})
        assert [d["id"] for d in data["results"]] == started[0].order
        assert waits[0].reason == "backoff" and "cannot connect to HubSpot" in waits[0].message
        assert len(started[0].requests_to(DEALS)) == 1
    finally:
        http.close()
        for emu in started:
            emu.close()


def test_dns_failure_is_a_clear_offline_message():
    http = CrmHttp("hubspot", "https://no-such-host.invalid", Secret(CANARY), rate=None, search_rate=None,
                   policy=RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.01, deadline=10.0))
    with pytest.raises(CrmError) as info:
        http.get_json(DEALS)
    err = info.value
    assert err.kind == "network" and err.exit_code == 1
    assert "cannot connect to HubSpot" in str(err) and "check the network or the base URL" in str(err)
    assert CANARY not in str(err) and "\n" not in str(err)
    http.close()


# -- pacing and quota (HTTP-09, HTTP-10) ---------------------------------------------------------
def _max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_client_side_pacing_seen_from_the_server(hs):
    """HTTP-10: 50 GETs and 10 searches at 20 req/s (5/s for search): never more in any rolling
    second, measured on the emulator's arrival times."""
    http = http_for(hs, "hubspot", rate=20, search_rate=5)
    body = {"limit": 1, "after": "0", "filterGroups": [], "properties": ["dealname"]}
    for i in range(50):
        http.get_json("/crm/v3/owners")
        if i % 5 == 0:
            http.post_json(f"{DEALS}/search", body, idempotent=True, search=True)
    http.close()
    all_times = [s.at for s in hs.seen]
    search_times = [s.at for s in hs.seen if s.path.endswith("/search")]
    assert len(all_times) == 60 and len(search_times) == 10
    assert _max_in_window(all_times) <= 20
    assert _max_in_window(search_times) <= 5
    assert _max_in_window(all_times) >= 15  # it paces, it does not crawl


def test_rate_limiter_1000_requests_never_exceed_the_rate_in_any_rolling_second():
    now = [0.0]

    def clock():
        return now[0]

    def sleep(s):
        now[0] += s

    limiter = RateLimiter(10, clock=clock, sleep=sleep)
    times = []
    for i in range(1000):
        limiter.acquire()
        times.append(now[0])
        now[0] += 0.001 * (i % 3)  # the request itself takes a moment
    assert _max_in_window(times) == 10
    assert times[-1] < 1000 / 10 * 1.1  # and keeps close to 10/s


def test_salesforce_quota_guard_stops_the_sync_then_it_resumes(sqlite_services, sf, playbook):
    """HTTP-09: Sforce-Limit-Info api-usage reaching the configured share stops the run after
    the page in hand commits; no further request is sent; the next run resumes."""
    svc = sqlite_services
    # the count and page 1 take 7 calls (COUNT(), opportunities, 2 pages of OpportunityHistory,
    # field history, tasks, events): the 7th answer reads api-usage=81000/100000
    sf.api_limit, sf.api_used = 100_000, 81_000 - 7
    src = salesforce_source(sf, playbook, quota_stop=0.81)
    with pytest.raises(CrmError) as info:
        sync_source(svc.store, playbook, src, full=True, now=NOW)
    src.close()
    err = info.value
    assert err.kind == "quota" and "Salesforce daily API quota 81% used (stop at 81%); stopping, resume later" in str(err)
    assert len(sf.seen) == 7  # nothing sent after the threshold
    state = read_state(svc.store, "salesforce")
    assert state.status == "failed" and state.cursor and state.counts["deals"] == 200
    with svc.store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM deal")).scalar() == 200
    sf.api_used = 0  # a new day
    status = _sync(svc, salesforce_source(sf, playbook, quota_stop=0.81), playbook, full=True)
    assert status.resumed and status.state == "done" and status.deals == 450
    with svc.store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*), COUNT(DISTINCT external_id) FROM deal")).first() == (450, 450)


# -- redirects (HTTP-12) ---------------------------------------------------------------------------
def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else(hs):
    with HubSpotEmulator(token=CANARY) as elsewhere:
        http = http_for(hs, "hubspot")
        hs.add_fault(Fault(status=302, body=None, headers={"Location": f"{elsewhere.url}{DEALS}?limit=3"}, path=DEALS))
        with pytest.raises(CrmError) as info:
            http.get_json(DEALS, params={"limit": 3})
        assert info.value.kind == "redirect" and "not followed" in str(info.value)
        assert elsewhere.seen == []  # the other origin never saw a request, let alone the header
        assert len(hs.requests_to(DEALS)) == 1
        http.close()


# -- the canary token (SEC-SEC-01, 02, 03, 07) ------------------------------------------------------
def test_token_never_in_logs_at_debug(sqlite_services, playbook, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "inspector"):
        caplog.set_level(logging.DEBUG, logger=name)
    with HubSpotEmulator(token=CANARY, deals=60, activities=2) as emu:
        status = _sync(sqlite_services, hubspot_source(emu, playbook), playbook, full=True)
        assert status.deals == 60
        emu.add_fault(Fault(status=503, body={"message": "down"}, count=2))
        emu.add_fault(Fault(status=401, body={"message": "bad"}, path="/owners"))
        http = http_for(emu, "hubspot")
        with pytest.raises(CrmError):
            http.get_json("/crm/v3/owners")
        http.close()
    http_records = [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
    assert any("HTTP Request: GET" in r.getMessage() for r in http_records)  # logging did happen
    assert any(r.name.startswith("httpcore") and r.levelno == logging.DEBUG for r in http_records)
    for r in caplog.records:
        line = r.getMessage() + " " + repr(r.args) + " " + str(r.__dict__)
        assert CANARY not in line and "CANARY" not in line
        assert "Bearer" not in line and "authorization" not in line.lower()


def test_error_text_never_carries_the_token(hs):
    """SEC-SEC-03: 401/403/429/500 become one-line errors without the token, even when the
    server echoes it back in its error body."""
    messages = []
    http = http_for(hs, "hubspot", token=CANARY)  # not the emulator's token: 401
    with pytest.raises(CrmError) as info:
        http.get_json(DEALS)
    assert info.value.kind == "auth"
    messages.append(str(info.value))
    for status, body, headers in (
            (403, {"status": "error", "category": "FORBIDDEN", "message": f"token {CANARY} may not"}, {}),
            (429, {**BURST, "message": f"limit for {CANARY}"}, {"Retry-After": "999"}),
            (500, {"message": f"boom for Bearer {CANARY}"}, {}),
            (400, {"message": f"bad request for Bearer {CANARY}", "category": "VALIDATION_ERROR"}, {})):
        hs.add_fault(Fault(status=status, body=body, headers=headers, count=9))
        with pytest.raises(CrmError) as info:
            http.get_json(DEALS)
        messages.append(str(info.value))
        hs.faults.clear()
    http.close()
    assert [m.split(":")[1].strip()[:8] for m in messages] == ["HTTP 401", "HTTP 403", "HTTP 429", "HTTP 500", "HTTP 400"]
    assert all(CANARY not in m and "\n" not in m for m in messages)
    assert "***" in messages[1] and "***" in messages[3] and "***" in messages[4]  # scrubbed, not dropped
    # URLs in messages are redacted: query keys that look like credentials lose their values
    url = redact_url(f"https://api.example.com/crm/v3/objects/deals?hapikey={CANARY}&limit=5&access_token=x")
    assert CANARY not in url and "limit=5" in url and "hapikey=***" in url and "access_token=***" in url
    assert redact_url(f"https://user:{CANARY}@api.example.com/x") == "https://api.example.com/x"


def test_crash_traceback_with_locals_does_not_show_the_token(sqlite_services, playbook):
    """SEC-SEC-01: the sync raises mid-request (a progress callback bug during a retry wait);
    the traceback rendered as Textual renders crashes (Rich, show_locals=True) has no token."""
    from rich.console import Console
    from rich.traceback import Traceback

    with HubSpotEmulator(token=CANARY, deals=10) as emu:
        emu.add_fault(Fault(status=503, body={"message": "down"}, path=DEALS))

        def broken_progress(status):
            if status.message.startswith("HubSpot server error"):
                raise RuntimeError("progress widget exploded")

        src = hubspot_source(emu, playbook)
        with pytest.raises(RuntimeError) as info:
            sync_source(sqlite_services.store, playbook, src, full=True, now=NOW, progress=broken_progress)
        src.close()
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(
        Traceback.from_exception(info.type, info.value, info.tb, show_locals=True, max_frames=0, locals_max_string=10_000))
    rendered = out.getvalue()
    assert "progress widget exploded" in rendered and "sync_source" in rendered  # locals were shown
    assert CANARY not in rendered and "CANARY" not in rendered


def test_token_never_in_the_database_file_or_exports(tmp_path, playbook, clock, monkeypatch):
    """SEC-SEC-07: after a sync, an inspection, a push and exports, no file holds the token."""
    from inspector import writeback
    from inspector.cli import main
    from inspector.services import build_services

    db = tmp_path / "canary.db"
    monkeypatch.setenv("INSPECTOR_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("INSPECTOR_HUBSPOT_TOKEN", CANARY)
    with HubSpotEmulator(token=CANARY, deals=30, activities=2) as emu:
        monkeypatch.setenv("INSPECTOR_HUBSPOT_URL", emu.url)
        runner = CliRunner()
        r = runner.invoke(main, ["--db", str(db), "sync", "hubspot", "--full"])
        assert r.exit_code == 0, r.output
        svc = build_services(db, clock=clock, playbook=playbook, actor="Mia")
        with svc.store.engine.connect() as conn:
            ids = [row[0] for row in conn.execute(text("SELECT id FROM deal ORDER BY id LIMIT 3"))]
        insp = Inspections(svc.store)
        session = insp.start_session(manager="Mia", team="East", queue=ids, week_of=date(2026, 11, 30), now=NOW)
        for d in ids:
            st = insp.state(session.id, d)
            insp.save_decisions(st.id, {"forecast_call": (None, "commit"), "notes": ("", "ok")}, actor="Mia", now=NOW)
        insp.finish(session.id, actor="Mia", now=NOW)
        writeback.build_outbox(svc.store, playbook, now=NOW)
        svc.store.engine.dispose()
        r = runner.invoke(main, ["--db", str(db), "push"])
        assert r.exit_code == 0, r.output
        outputs = [r.output]
        for args in (["export", "session", str(session.id), "--format", "md"],
                     ["export", "session", str(session.id), "--format", "csv"],
                     ["export", "session", str(session.id), "--format", "json"],
                     ["export", "log", "--format", "csv"], ["export", "log", "--format", "json"],
                     ["auth", "status"]):
            r = runner.invoke(main, ["--db", str(db), *args])
            assert r.exit_code == 0, (args, r.output)
            outputs.append(r.output)
    assert "Deal 0" in outputs[1] or "Deal" in outputs[1]  # the export has content
    assert all(CANARY not in o for o in outputs)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "canary.db" for p in files)
    for p in files:
        assert CANARY.encode() not in p.read_bytes(), p
