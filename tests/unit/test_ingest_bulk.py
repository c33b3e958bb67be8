"""upsert_deals' fast paths: new deal ids taken from SQLite's row numbering, and a big first
load that builds the indexes after the rows. Both must put every row on the right deal."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import text

from inspector.sources import ingest
from inspector.sources.ingest import upsert_deals
from inspector.sources.records import ActivityRecord, DealRecord, HistoryItem

NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)


def _record(source: str, ext: str, stage: str = "discovery") -> DealRecord:
    at = NOW - timedelta(days=3)
    return DealRecord(
        source=source, external_id=ext, name=f"Deal {ext}", stage=stage, amount_minor=100_00,
        close_date=date(2027, 1, 15),
        history=[HistoryItem("amount_minor", None, f"{len(ext)}{ext[-3:]}", at)],
        activities=[ActivityRecord(f"a-{ext}-{k}", "call", at + timedelta(hours=k), f"call about {ext}")
                    for k in range(2)])


def _rows_on_their_deals(store, source: str) -> None:
    with store.engine.connect() as conn:
        acts = conn.execute(text(
            "SELECT d.external_id, a.summary FROM activity a JOIN deal d ON d.id = a.deal_id "
            "WHERE d.source = :s"), {"s": source}).all()
        hist = conn.execute(text(
            "SELECT d.external_id, c.new FROM deal_change c JOIN deal d ON d.id = c.deal_id "
            "WHERE d.source = :s AND c.field = 'amount_minor'"), {"s": source}).all()
        n = conn.execute(text("SELECT COUNT(*) FROM deal WHERE source = :s"), {"s": source}).scalar_one()
    assert len(acts) == 2 * n and all(summary == f"call about {ext}" for ext, summary in acts)
    assert len(hist) == n and all(new == f"{len(ext)}{ext[-3:]}" for ext, new in hist)


def test_new_deals_after_a_gap_in_ids_get_their_own_history_and_activities(services):
    store, pb = services.store, services.playbook
    upsert_deals(store, pb, [_record("crm", f"OLD-{i:03d}") for i in range(30)], now=NOW)
    with store.engine.begin() as conn:  # a gap in the middle and at the top of the id range
        conn.execute(text("DELETE FROM deal WHERE external_id IN ('OLD-010', 'OLD-011', 'OLD-029')"))
    mixed = [_record("crm", f"OLD-{i:03d}", "solution_fit") for i in range(5)] + \
        [_record("crm", f"NEW-{i:03d}") for i in range(40)]
    result = upsert_deals(store, pb, mixed, now=NOW + timedelta(days=1))
    assert (result.created, result.updated) == (40, 5)
    _rows_on_their_deals(store, "crm")


def test_a_big_first_load_builds_the_same_indexes_and_links(sqlite_services, monkeypatch):
    store, pb = sqlite_services.store, sqlite_services.playbook
    monkeypatch.setattr(ingest, "BULK_LOAD", 10)
    listing = "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
    with store.engine.connect() as conn:
        before = conn.execute(text(listing)).all()
    upsert_deals(store, pb, [_record("csv", f"R-{i:04d}") for i in range(300)], now=NOW)
    with store.engine.connect() as conn:
        after = conn.execute(text(listing)).all()
        plan = " ".join(r[3] for r in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT * FROM deal_change WHERE deal_id = 7 ORDER BY changed_at")))
    assert after == before
    assert "ix_deal_change_deal_field" in plan  # built, and used
    _rows_on_their_deals(store, "csv")
    # a second load is not a first load: the indexes stay in place while it writes
    upsert_deals(store, pb, [_record("csv", f"S-{i:04d}") for i in range(300)], now=NOW)
    _rows_on_their_deals(store, "csv")
