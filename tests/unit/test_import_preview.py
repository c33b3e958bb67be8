"""The import preview field by field (ingest.PreviewChange, csv_preview.preview_rows): what the
Import screen's table lists for new and updated deals on a dry run."""
from __future__ import annotations

from datetime import datetime, timezone

from inspector.sources import csv_file, csv_preview

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
HEAD = "Id,Deal,Account,Owner,Stage,Amount,Close Date,Forecast Category\n"
FIRST = HEAD + ("A-1,Alpha renewal,Acme,Dana,Discovery,\"$1,200.50\",2026-12-20,Pipeline\n"
                "A-2,Beta expansion,Globex,Dana,Commit,\"$30,000.00\",2026-12-28,Commit\n")
SECOND = HEAD + ("A-1,Alpha renewal,Acme,Sam,Discovery,\"$1,500.00\",2027-01-20,Pipeline\n"
                 "A-2,Beta expansion,Globex,Dana,Commit,\"$30,000.00\",2026-12-28,Commit\n"
                 "A-3,[b]Gamma[/b],Initech,Sam,Solution Fit,€950.00,2027-01-15,Best Case\n")


def run(path, body, svc, *, dry_run):
    path.write_text(body, encoding="utf-8")
    result = csv_file.parse(path, svc.playbook)
    assert result.ok, result.report()
    return csv_file.write(svc.store, svc.playbook, result.records, now=NOW, dry_run=dry_run)


def test_new_deals_list_stage_amount_and_close_date(sqlite_services, tmp_path):
    outcome = run(tmp_path / "a.csv", FIRST, sqlite_services, dry_run=True)
    assert [c.kind for c in outcome.changes_preview] == ["new", "new"]
    assert outcome.changes_preview[0].fields == (("stage", None, "discovery"), ("amount_minor", None, "120050"),
                                                 ("close_date", None, "2026-12-20"))
    rows = csv_preview.preview_rows(outcome, sqlite_services.playbook)
    assert rows[:3] == [("create", "A-1", "Alpha renewal", "Stage", "", "Discovery"),
                        ("", "", "", "Amount", "", "$1,200.50"),
                        ("", "", "", "Close date", "", "2026-12-20")]
    assert len(rows) == 6
    assert csv_preview.preview_rows(outcome, sqlite_services.playbook, limit=1) == rows[:3]


def test_updates_list_each_field_that_moves_with_before_and_after(sqlite_services, tmp_path):
    svc = sqlite_services
    run(tmp_path / "a.csv", FIRST, svc, dry_run=False)
    outcome = run(tmp_path / "b.csv", SECOND, svc, dry_run=True)
    assert (outcome.created, outcome.updated, outcome.unchanged) == (1, 1, 1)
    assert len(outcome.changes_preview) == len(outcome.preview) == 2
    rows = csv_preview.preview_rows(outcome, svc.playbook)
    assert rows == [
        ("update", "A-1", "Alpha renewal", "Amount", "$1,200.50", "$1,500.00"),
        ("", "", "", "Close date", "2026-12-20", "2027-01-20"),
        ("", "", "", "Owner (rep)", "Dana", "Sam"),
        ("create", "A-3", "[b]Gamma[/b]", "Stage", "", "Solution fit"),
        ("", "", "", "Amount", "", "€950.00"),
        ("", "", "", "Close date", "", "2027-01-15"),
    ]
