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


_EXPORT = '''Opportunity ID,Opportunity Name,Account Name,Opportunity Owner,Stage,Amount,Close Date,\
Forecast Category,Next Step,Created Date,Last Modified Date,Lead Source,Type
0061,Acme renewal,Acme,Ana Ruiz,Prospecting,"$1,200.50",12/20/2026,Pipeline,Call CFO,3/1/2026,\
2026-11-30T10:00:00Z,Web,
0062,Globex expansion,Globex,Bo Li,Closed Won,$900.00,11/02/2026,Closed,,2/14/2026,,Partner,Upsell
0063,"Initech, ""phase 2""",Initech,Chen Okafor,Negotiation/Review,"(1,000.00)",1/31/2027,Commit,,,\
2026-12-01T08:30:00Z,,New Business
'''


def _stored(store, source: str) -> tuple[list, list]:
    skip = {"id"}
    with store.engine.connect() as conn:
        deal_cols = [c for c in conn.execute(text("SELECT * FROM deal LIMIT 0")).keys() if c not in skip]
        deals = conn.execute(text(f"SELECT {', '.join(deal_cols)} FROM deal WHERE source = :s "
                                  "ORDER BY external_id"), {"s": source}).all()
        changes = conn.execute(text(
            "SELECT d.external_id, c.field, c.old, c.new, c.changed_at, c.source FROM deal_change c "
            "JOIN deal d ON d.id = c.deal_id WHERE d.source = :s ORDER BY c.id"), {"s": source}).all()
    return [dict(zip(deal_cols, r)) for r in deals], [tuple(r) for r in changes]


def test_a_first_import_column_by_column_stores_what_the_record_path_stores(services, tmp_path, monkeypatch):
    """A CSV file's RecordBatch goes in straight from its columns the first time; the same
    records taken one by one (as a re-import or a CRM page is) must store the same rows."""
    from inspector.sources import csv_file
    from inspector.sources.records import RecordBatch

    store, pb = services.store, services.playbook
    path = tmp_path / "export.csv"
    path.write_text(_EXPORT, encoding="utf-8")
    fast = csv_file.parse(path, pb, source="fast")
    slow = csv_file.parse(path, pb, source="slow")
    assert fast.ok and isinstance(fast.records, RecordBatch)
    taken: list[str] = []
    real = ingest._insert_batch
    monkeypatch.setattr(ingest, "_insert_batch", lambda *a: (taken.append("batch"), real(*a))[1])
    monkeypatch.setattr(ingest, "BULK_LOAD", 2)  # the fast path's deferred indexes too
    out_fast = csv_file.write(store, pb, fast.records, now=NOW)
    assert taken == ["batch"] and not fast.records.materialized
    out_slow = csv_file.write(store, pb, list(slow.records), now=NOW)  # DealRecords: one by one
    assert taken == ["batch"]
    assert (out_fast.created, out_fast.changes) == (out_slow.created, out_slow.changes) == (3, 3)
    deals_fast, changes_fast = _stored(store, "fast")
    deals_slow, changes_slow = _stored(store, "slow")
    for row in (*deals_fast, *deals_slow):
        row.pop("source")
    assert deals_fast == deals_slow
    assert [c[:5] for c in changes_fast] == [c[:5] for c in changes_slow]
    by_id = {d["external_id"]: d for d in deals_fast}
    assert by_id["0061"]["amount_minor"] == 120050 and by_id["0063"]["amount_minor"] == -100000
    assert by_id["0063"]["name"] == 'Initech, "phase 2"'
    assert [c[1] for c in changes_fast] == ["created"] * 3


def test_a_batch_with_deals_already_stored_goes_record_by_record(services, tmp_path):
    from inspector.sources import csv_file

    store, pb = services.store, services.playbook
    path = tmp_path / "export.csv"
    path.write_text(_EXPORT, encoding="utf-8")
    first = csv_file.write(store, pb, csv_file.parse(path, pb).records, now=NOW)
    path.write_text(_EXPORT.replace("Prospecting", "Negotiation/Review"), encoding="utf-8")
    again = csv_file.parse(path, pb)
    second = csv_file.write(store, pb, again.records, now=NOW + timedelta(days=7))
    assert again.records.materialized  # taken one by one: updates and history
    assert (first.created, second.created, second.updated, second.changed_fields.get("stage")) == (3, 0, 1, 1)
    third = csv_file.write(store, pb, csv_file.parse(path, pb).records, now=NOW + timedelta(days=8))
    assert (third.created, third.updated, third.unchanged, third.changes) == (0, 0, 3, 0)


def test_a_dry_run_of_new_deals_previews_from_the_columns_and_the_import_stays_fast(sqlite_services, tmp_path,
                                                                                     monkeypatch):
    """The Import screen previews (dry run) and then imports the same parse result: the preview
    must list what the record-by-record dry run lists, and leave the batch for the fast path."""
    from inspector.sources import csv_file

    store, pb = sqlite_services.store, sqlite_services.playbook
    path = tmp_path / "export.csv"
    path.write_text(_EXPORT, encoding="utf-8")
    batch = csv_file.parse(path, pb).records
    preview = csv_file.write(store, pb, batch, now=NOW, dry_run=True)
    assert not batch.materialized
    one_by_one = upsert_deals(store, pb, list(csv_file.parse(path, pb).records), now=NOW, dry_run=True)
    assert (preview.created, preview.preview, preview.changes_preview) == \
        (one_by_one.created, one_by_one.preview, one_by_one.changes_preview)
    assert preview.changes_preview[0].fields == (("stage", None, "qualification"), ("amount_minor", None, "120050"),
                                                 ("close_date", None, "2026-12-20"))
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM deal")).scalar_one() == 0
    taken: list[str] = []
    real = ingest._insert_batch
    monkeypatch.setattr(ingest, "_insert_batch", lambda *a: (taken.append("batch"), real(*a))[1])
    assert csv_file.write(store, pb, batch, now=NOW).created == 3 and taken == ["batch"]


def test_a_record_batch_is_its_records_built_once():
    import pytest

    from inspector.sources.records import RecordBatch

    batch = RecordBatch("csv", {"external_id": ["a", "b"], "name": ["A", "B"], "stage": ["discovery", "commit"],
                                "amount_minor": [100, 200]},
                        fields={"champion": ["Ann", ""]}, extras=[("Lead Source", ["Web", ""])])
    assert len(batch) == 2 and not batch.materialized
    first = batch[0]
    assert (first.external_id, first.name, first.stage, first.amount_minor, first.currency, first.owner) == \
        ("a", "A", "discovery", 100, "USD", "")
    assert (first.fields, first.extras, batch[1].extras) == ({"champion": "Ann"}, {"Lead Source": "Web"}, {})
    first.fields = {}
    assert batch.materialized and list(batch)[0] is first and batch[0].fields == {}
    with pytest.raises(ValueError, match="column 'name' has 1 values for 2 rows"):
        RecordBatch("csv", {"external_id": ["a", "b"], "name": ["A"], "stage": ["x", "y"]})
    with pytest.raises(ValueError, match="not DealRecord columns"):
        RecordBatch("csv", {"external_id": [], "name": [], "stage": [], "colour": []})
