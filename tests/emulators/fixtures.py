"""pytest fixtures and helpers for the CRM emulators (import them into a test module)."""
from __future__ import annotations

import pytest

from inspector.secrets import Secret
from inspector.sources.http import CrmHttp, RetryPolicy
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator

#: quick back-off so fault tests run fast; the policy shape is the production one
FAST = RetryPolicy(max_attempts=5, backoff_base=0.01, backoff_max=0.05, retry_after_cap=60.0, deadline=20.0)


@pytest.fixture
def hubspot_emu():
    emu = HubSpotEmulator(deals=120)
    yield emu
    emu.close()


@pytest.fixture
def salesforce_emu():
    emu = SalesforceEmulator(opportunities=450)
    yield emu
    emu.close()


def http_for(emu, vendor: str, *, token: str | None = None, policy: RetryPolicy | None = None,
             rate: float | None = None, search_rate: float | None = None, **kw) -> CrmHttp:
    return CrmHttp(vendor, emu.url, Secret(token or emu.token), rate=rate, search_rate=search_rate,
                   policy=policy or FAST, **kw)


def hubspot_source(emu, playbook, **kw):
    from inspector.sources.hubspot import HubSpotSource

    return HubSpotSource(http_for(emu, "hubspot", **kw), playbook)


def salesforce_source(emu, playbook, batch_size: int = 200, **kw):
    from inspector.sources.salesforce import SalesforceSource

    return SalesforceSource(http_for(emu, "salesforce", **kw), playbook, batch_size=batch_size)
