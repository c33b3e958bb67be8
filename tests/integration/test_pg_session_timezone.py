"""PostgreSQL: list rows must not depend on the server's session TimeZone setting.

Timestamps are stored as UTC (DESIGN §4). SQLite derives `last_activity` and the day counts
from the UTC value; a PostgreSQL server configured with another TimeZone (initdb picks the
OS zone) must give the same rows, or findings like "quiet" change with the server config.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from inspector.storage.db import ensure_schema, make_engine
from inspector.storage.repo import Store

pytestmark = pytest.mark.postgres

TODAY = date(2026, 12, 3)
DEAL = {
    "id": 1, "source": "test", "external_id": "TZ-1", "name": "Late call", "account": "Acme",
    "owner": "Aarav Mehta", "team": "APAC", "manager": "Mei-Ling Zhāng", "stage": "commit",
    "status": "open", "amount_minor": 100_000, "currency": "USD", "close_date": date(2026, 12, 20),
    "forecast_category": "commit", "next_step": "Call", "next_step_date": date(2026, 12, 5),
    "stage_entered_on": date(2026, 11, 30),
    # 23:30 UTC on 2 December is already 3 December in Auckland
    "last_activity_at": datetime(2026, 12, 2, 23, 30, tzinfo=timezone.utc),
    # 03:00 UTC on 2 November is still 1 November in Los Angeles
    "last_progress_at": datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc),
}


def _rows(url: str):
    engine = make_engine(url)
    try:
        ensure_schema(engine)
        store = Store(engine)
        if store.deal_count() == 0:
            store.bulk_insert("deal", [dict(DEAL)])
        return store.list_deals(TODAY)
    finally:
        engine.dispose()


def test_utc_session_matches_sqlite(pg_url, tmp_path):
    sqlite_rows = _rows(f"sqlite:///{tmp_path / 'tz.db'}")
    utc_rows = _rows(pg_url + "%20-ctimezone%3DUTC")
    assert utc_rows == sqlite_rows
    assert sqlite_rows[0].last_activity == "2026-12-02"
    assert sqlite_rows[0].days_since_activity == 1
    assert sqlite_rows[0].days_since_progress == (TODAY - date(2026, 11, 2)).days


@pytest.mark.parametrize("zone", ["Pacific%2FAuckland", "America%2FLos_Angeles"])
def test_non_utc_session_gives_the_same_rows(pg_url, tmp_path, zone):
    sqlite_rows = _rows(f"sqlite:///{tmp_path / 'tz.db'}")
    pg_rows = _rows(pg_url + f"%20-ctimezone%3D{zone}")
    assert pg_rows == sqlite_rows
