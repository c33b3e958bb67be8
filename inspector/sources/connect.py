"""Build a CRM source client from the user's credentials and settings (CLI and TUI share it)."""
from __future__ import annotations

import os
from collections.abc import Callable

from inspector import secrets
from inspector.playbook import Playbook
from inspector.sources.http import CrmHttp, RetryPolicy, Wait

#: client-side pacing (requests per second); HubSpot search has its own, stricter bucket
RATES = {"hubspot": (10.0, 4.0), "salesforce": (20.0, None)}


def open_client(source: str, playbook: Playbook, *, base_url: str | None = None,
                env: dict[str, str] | None = None, on_wait: Callable[[Wait], None] | None = None,
                policy: RetryPolicy | None = None, paced: bool = True, transport=None):
    """A HubSpotSource or SalesforceSource; raises `secrets.SecretError` (no token / no URL)
    or `CrmError(kind="config")` (a base URL that is not HTTPS)."""
    if source not in secrets.SOURCES:
        raise secrets.SecretError(f"unknown CRM {source!r} (use hubspot or salesforce)")
    url = secrets.base_url(source, base_url, env)
    if not url:
        raise secrets.SecretError(f"no {secrets.LABELS[source]} instance URL: set {secrets.url_env_var(source)} "
                                  "(e.g. https://yourorg.my.salesforce.com) or pass --base-url")
    cred = secrets.resolve(source, env)
    rate, search_rate = RATES[source] if paced else (None, None)
    verify: bool | str = (os.environ if env is None else env).get("INSPECTOR_CA_BUNDLE") or True  # a CA bundle path; never "off"
    http = CrmHttp(source, url, cred.token, rate=rate, search_rate=search_rate, policy=policy,
                   on_wait=on_wait, verify=verify, transport=transport)
    if source == "hubspot":
        from inspector.sources.hubspot import HubSpotSource

        return HubSpotSource(http, playbook)
    from inspector.sources.salesforce import SalesforceSource

    return SalesforceSource(http, playbook)
