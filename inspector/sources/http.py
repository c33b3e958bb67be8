"""One HTTP client per CRM source, with the retry policy of RELIABILITY.md §4.3.

- One `httpx.Client`, `follow_redirects=False`, explicit `Timeout(connect=5, read=30, write=30,
  pool=5)`; TLS verification always on (a CA bundle path may be given, never "off").
- HTTPS is required except for loopback hosts (tests and local emulators).
- Retries: GETs (and reads sent as POST, e.g. search and batch read) on connect errors,
  timeouts, 429 and 5xx; writes only when the request provably never reached the server
  (connect error) or was refused with 429. Full-jitter exponential back-off (base 0.5 s, max
  30 s, at most 5 attempts), all inside a total deadline per call.
- 429: `Retry-After` (seconds or HTTP-date) honoured up to a cap; beyond the cap, or HubSpot
  `policyName: DAILY`, the run stops with "limit reached, resume later".
- Client-side pacing: a token bucket (HubSpot 10 req/s, 4 req/s for search).
- Vendor quota headers are read: `X-HubSpot-RateLimit-*`, `Sforce-Limit-Info`; the run stops
  once the configured share of the daily quota is used.
- Errors become `CrmError(endpoint, status, message)`: one line with method, path and status,
  never the token, never query strings (URLs are redacted).
"""
from __future__ import annotations

import email.utils
import ipaddress
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from inspector.secrets import LABELS, Secret

TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_SENSITIVE = re.compile(r"(token|key|secret|session|sig|password|passwd|auth|code|hapikey|sid)", re.I)


class CrmError(Exception):
    """A CRM call failed. `kind` tells the caller what to do:

    auth (401: log in again), permission (403/missing scopes), quota (daily limit: resume
    later), rate_limited (a wait longer than we are willing to block), network, server (5xx),
    deadline, client (4xx: a bug or bad data), config (bad base URL), redirect.
    """

    USAGE_KINDS = frozenset({"auth", "permission", "config"})

    def __init__(self, endpoint: str, status: int | None, message: str, *, kind: str = "client",
                 retry_after: float | None = None, code: str = "") -> None:
        self.endpoint = endpoint
        self.status = status
        self.message = " ".join(str(message).split())[:300]
        self.kind = kind
        self.retry_after = retry_after
        self.code = code
        super().__init__(str(self))

    def __reduce__(self):  # pickles whole (a sync's helper process reports one this way)
        return (type(self), (self.endpoint, self.status, self.message), self.__dict__)

    def __str__(self) -> str:
        status = f" HTTP {self.status}" if self.status else ""
        return f"{self.endpoint}:{status} {self.message}".strip()

    @property
    def exit_code(self) -> int:
        """2 for what the user must fix in the configuration, 1 for runtime failures."""
        return 2 if self.kind in self.USAGE_KINDS else 1


def redact_url(url: str | httpx.URL) -> str:
    """scheme://host/path?...: no userinfo, and the values of sensitive query keys replaced."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = urlencode([(k, "***" if _SENSITIVE.search(k) else v) for k, v in parse_qsl(parts.query)],
                      safe="*")
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, label: str = "CRM") -> str:
    """HTTPS required except for loopback; no credentials or query strings in the base URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CrmError(label, None, f"base URL must look like https://host (got {redact_url(url)!r})",
                       kind="config")
    if parts.username or parts.password or parts.query:
        raise CrmError(label, None, "base URL must not carry credentials or a query string", kind="config")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise CrmError(label, None, f"refusing plain http to {parts.hostname}: HTTPS is required "
                       "(plain http is allowed only for loopback test servers)", kind="config")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now_ts = time.time() if now is None else now
    return max(0.0, when.timestamp() - now_ts)


class RateLimiter:
    """Client-side pacing: never more than `rate` requests in any rolling second.

    A sliding window of send times (stricter than a token bucket, whose full burst plus
    refill can put 2x the rate into one rolling second). The window is widened by `margin`
    because the server counts arrivals, and the time between taking a slot and the request
    reaching the server varies (a slot taken late can arrive early relative to the first)."""

    def __init__(self, rate: float | None, window: float = 1.0, margin: float = 0.05,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.n = max(1, int(rate)) if rate else 0
        self.window = (window if rate is None or rate >= 1 else window / rate) + margin
        self.clock, self.sleep = clock, sleep
        self.sent: deque[float] = deque()
        self.lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a free slot; returns the time slept."""
        if not self.rate:
            return 0.0
        with self.lock:
            now = self.clock()
            slept = 0.0
            if len(self.sent) >= self.n:
                wait = self.sent[0] + self.window - now
                if wait > 0:
                    self.sleep(wait)
                    slept = wait
                    now = self.clock()
                self.sent.popleft()
            self.sent.append(now)
            return slept


@dataclass
class Quota:
    """What the vendor headers said last (for the UI and the quota guard)."""

    daily_used: int | None = None
    daily_limit: int | None = None
    interval_remaining: int | None = None
    interval_ms: int | None = None

    @property
    def share_used(self) -> float | None:
        if self.daily_used is None or not self.daily_limit:
            return None
        return self.daily_used / self.daily_limit


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_cap: float = 60.0
    deadline: float = 60.0  # seconds per call, including retries and waits


class _BearerAuth(httpx.Auth):
    """Adds the bearer header at send time; holds only the Secret (repr shows no token)."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = "Bearer " + self._token.reveal()
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


@dataclass
class Wait:
    """A wait the user should see ("rate limited, retrying in 2s")."""

    reason: str  # rate_limited | backoff | pacing
    seconds: float
    message: str


class CrmHttp:
    """The HTTP client of one CRM source."""

    def __init__(self, vendor: str, base_url: str, token: Secret, *, rate: float | None = 10.0,
                 search_rate: float | None = 4.0, policy: RetryPolicy | None = None,
                 quota_stop: float = 0.9, transport: httpx.BaseTransport | None = None,
                 verify: bool | str = True, on_wait: Callable[[Wait], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, headers: dict[str, str] | None = None) -> None:
        self.vendor = vendor
        self.label = LABELS.get(vendor, vendor)
        self.base_url = check_base_url(base_url, self.label)
        if verify is False:
            raise CrmError(self.label, None, "TLS verification cannot be disabled (give a CA bundle path)",
                           kind="config")
        self._token = token
        self.policy = policy or RetryPolicy()
        self.quota_stop = quota_stop
        self.quota = Quota()
        self.on_wait = on_wait
        self.sleep = sleep
        self.requests = 0
        self.waits = 0
        self._bucket = RateLimiter(rate, sleep=sleep)
        self._search_bucket = RateLimiter(search_rate, sleep=sleep) if search_rate else None
        self._stopped: CrmError | None = None
        self.client = httpx.Client(base_url=self.base_url, timeout=TIMEOUT, follow_redirects=False,
                                   auth=_BearerAuth(token), transport=transport, verify=verify,
                                   headers={"Accept": "application/json",
                                            "User-Agent": "inspector-sync/0.1", **(headers or {})})

    def __repr__(self) -> str:
        return f"CrmHttp({self.vendor}, {self.base_url})"

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "CrmHttp":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the one entry point --------------------------------------------------------------------
    def request(self, method: str, url: str, *, params: dict[str, Any] | None = None,
                json_body: Any = None, idempotent: bool | None = None, search: bool = False,
                ok: tuple[int, ...] = (), headers: dict[str, str] | None = None) -> httpx.Response:
        """Send with pacing, retries and a total deadline; returns a 2xx (or `ok`) response."""
        method = method.upper()
        idempotent = (method in ("GET", "HEAD")) if idempotent is None else idempotent
        endpoint = f"{method} {self._path(url)}"
        if self._stopped is not None:
            raise self._stopped
        deadline = time.monotonic() + self.policy.deadline
        attempt = 0
        while True:
            attempt += 1
            self._pace(search)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CrmError(endpoint, None, f"no answer within {self.policy.deadline:.0f}s "
                               f"({self.label} deadline)", kind="deadline")
            try:
                response = self._send(method, url, params, json_body, headers, deadline, endpoint)
            except CrmError:
                raise
            except httpx.ConnectError as exc:
                error = CrmError(endpoint, None, f"cannot connect to {self.label} ({_reason(exc)}); "
                                 "check the network or the base URL", kind="network")
                retry_ok = True  # nothing reached the server
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                error = CrmError(endpoint, None, f"{self.label} connection failed ({_reason(exc)})",
                                 kind="network")
                retry_ok = idempotent
            else:
                self._read_quota(response)
                status = response.status_code
                if 200 <= status < 300 or status in ok:
                    self._check_quota(endpoint)
                    return response
                error = self._error(endpoint, response)
                if status == 429:
                    retry_ok = error.kind == "rate_limited" and error.retry_after is not None
                else:
                    retry_ok = idempotent and status in RETRY_STATUSES
                if error.kind == "quota":
                    self._stopped = error
                if not retry_ok or attempt >= self.policy.max_attempts:
                    raise error
                if status == 429:
                    wait = error.retry_after or 0.0
                    if wait > self.policy.retry_after_cap:
                        raise CrmError(endpoint, status, f"{self.label} limit reached, resume later "
                                       f"(asked to wait {wait:.0f}s)", kind="rate_limited",
                                       retry_after=wait)
                    self._wait(Wait("rate_limited", wait, f"rate limited, retrying in {wait:.0f}s"),
                               deadline, endpoint, error)
                    continue
            if not retry_ok or attempt >= self.policy.max_attempts:
                raise error
            backoff = random.uniform(0, min(self.policy.backoff_max,
                                            self.policy.backoff_base * 2 ** (attempt - 1)))
            self._wait(Wait("backoff", backoff, f"{error.message}; retrying in {backoff:.0f}s"),
                       deadline, endpoint, error)

    def get_json(self, url: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self._json(self.request("GET", url, params=params, **kw))

    def post_json(self, url: str, body: Any, **kw: Any) -> Any:
        return self._json(self.request("POST", url, json_body=body, **kw))

    # -- internals ------------------------------------------------------------------------------
    def _path(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path or "/"

    def _pace(self, search: bool) -> None:
        slept = self._bucket.acquire()
        if search and self._search_bucket is not None:
            slept += self._search_bucket.acquire()
        if slept > 0.5 and self.on_wait:
            self.on_wait(Wait("pacing", slept, f"pacing requests ({slept:.1f}s)"))

    def _wait(self, wait: Wait, deadline: float, endpoint: str, error: CrmError) -> None:
        if time.monotonic() + wait.seconds > deadline:
            raise CrmError(error.endpoint, error.status, f"{error.message} (gave up: the "
                           f"{self.policy.deadline:.0f}s deadline would pass)", kind=error.kind)
        self.waits += 1
        if self.on_wait:
            self.on_wait(wait)
        if wait.seconds > 0:
            self.sleep(wait.seconds)

    def _send(self, method: str, url: str, params: dict[str, Any] | None, json_body: Any,
              headers: dict[str, str] | None, deadline: float, endpoint: str) -> httpx.Response:
        """Stream the body so a server dripping bytes cannot outlive the deadline."""
        remaining = max(0.05, deadline - time.monotonic())
        timeout = httpx.Timeout(connect=min(5.0, remaining), read=min(30.0, remaining),
                                write=min(30.0, remaining), pool=min(5.0, remaining))
        content = None
        hdrs = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        request = self.client.build_request(method, url, params=params, content=content, headers=hdrs,
                                            timeout=timeout)
        self.requests += 1
        response = self.client.send(request, stream=True)
        try:
            chunks = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise CrmError(endpoint, response.status_code, f"{self.label} response still "
                                   f"arriving after {self.policy.deadline:.0f}s (deadline)", kind="deadline")
        finally:
            response.close()
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks),
                              request=request)

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CrmError(f"{response.request.method} {self._path(str(response.request.url))}",
                           response.status_code, f"{self.label} sent a body that is not JSON",
                           kind="server") from None

    def _read_quota(self, response: httpx.Response) -> None:
        h = response.headers
        if self.vendor == "hubspot":
            daily, remaining = _int(h.get("x-hubspot-ratelimit-daily")), _int(h.get("x-hubspot-ratelimit-daily-remaining"))
            if daily is not None and remaining is not None:
                self.quota.daily_limit, self.quota.daily_used = daily, daily - remaining
            self.quota.interval_remaining = _int(h.get("x-hubspot-ratelimit-remaining"))
            self.quota.interval_ms = _int(h.get("x-hubspot-ratelimit-interval-milliseconds"))
        else:
            m = re.search(r"api-usage=(\d+)/(\d+)", h.get("sforce-limit-info", ""))
            if m:
                self.quota.daily_used, self.quota.daily_limit = int(m.group(1)), int(m.group(2))

    def _check_quota(self, endpoint: str) -> None:
        share = self.quota.share_used
        if share is not None and share >= self.quota_stop:
            self._stopped = CrmError(endpoint, None, f"{self.label} daily API quota {share:.0%} used "
                                     f"(stop at {self.quota_stop:.0%}); stopping, resume later",
                                     kind="quota")
        elif self.vendor == "hubspot" and self.quota.interval_remaining == 0 and self.quota.interval_ms:
            wait = min(self.quota.interval_ms / 1000.0, self.policy.retry_after_cap)
            self.waits += 1
            if self.on_wait:
                self.on_wait(Wait("rate_limited", wait, f"rate limited, retrying in {wait:.0f}s"))
            self.sleep(wait)

    def _error(self, endpoint: str, response: httpx.Response) -> CrmError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        message, code, category, policy = "", "", "", ""
        if isinstance(body, list) and body and isinstance(body[0], dict):  # Salesforce
            message, code = str(body[0].get("message", "")), str(body[0].get("errorCode", ""))
        elif isinstance(body, dict):  # HubSpot
            message = str(body.get("message", ""))
            category = str(body.get("category", "") or body.get("errorType", ""))
            policy = str(body.get("policyName", ""))
            code = category
        message = self._token.scrub(message) or response.reason_phrase or "error"
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if 300 <= status < 400:
            target = redact_url(response.headers.get("location", ""))
            return CrmError(endpoint, status, f"unexpected redirect to {urlsplit(target).hostname or '?'} "
                            "(not followed; check the base URL)", kind="redirect")
        if status == 401:
            return CrmError(endpoint, status, f"{self.label} rejected the token ({code or 'unauthorized'}): "
                            f"log in again with `inspector auth login {self.vendor}`", kind="auth", code=code)
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            return CrmError(endpoint, status, f"{self.label} daily API request limit exceeded; "
                            "resume later", kind="quota", code=code)
        if status == 403:
            scopes = _scopes(body)
            if category == "MISSING_SCOPES" or scopes:
                need = f" (needs {', '.join(scopes)})" if scopes else ""
                return CrmError(endpoint, status, f"the {self.label} token is missing scopes{need}",
                                kind="permission", code=code)
            return CrmError(endpoint, status, f"{self.label} refused the request: {message}",
                            kind="permission", code=code)
        if status == 429:
            if policy.upper() == "DAILY" or "daily" in message.lower():
                return CrmError(endpoint, status, f"{self.label} daily limit reached; resume later",
                                kind="quota", code=policy or code)
            if retry_after is None:
                interval = _int(response.headers.get("x-hubspot-ratelimit-interval-milliseconds"))
                retry_after = interval / 1000.0 if interval else 1.0
            return CrmError(endpoint, status, f"rate limited ({policy or 'burst'})", kind="rate_limited",
                            retry_after=retry_after, code=policy)
        if status >= 500:
            return CrmError(endpoint, status, f"{self.label} server error: {message}", kind="server", code=code)
        return CrmError(endpoint, status, f"{code + ': ' if code else ''}{message}", kind="client", code=code)


def _scopes(body: Any) -> list[str]:
    out: list[str] = []
    if isinstance(body, dict):
        for err in body.get("errors") or []:
            ctx = err.get("context") or {} if isinstance(err, dict) else {}
            for key in ("requiredGranularScopes", "requiredScopes", "requiredScope"):
                vals = ctx.get(key) or []
                out.extend(str(v) for v in (vals if isinstance(vals, list) else [vals]))
    return out


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = re.sub(r"https?://\S+", lambda m: redact_url(m.group(0)), text)
    return text.splitlines()[0][:120]


@dataclass
class CallLog:
    """Optional request counting by endpoint (benchmarks)."""

    counts: dict[str, int] = field(default_factory=dict)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
