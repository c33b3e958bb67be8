"""CSV import (RELIABILITY.md §7.6 CSV-01..CSV-12, CSV-14; issue 4): reading, per-column format
detection, questions asked once, problems naming file/line/column, all-or-nothing writes,
re-import history, dry runs, the `inspector import` command, and the real third-party files."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from inspector.cli import main
from inspector.playbook import default_playbook_text, parse_playbook
from inspector.sources import csv_file
from inspector.text import display_safe
from tests.conftest import SHARED

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
MAVEN = SHARED / "datasets" / "maven-crm" / "sales_pipeline.csv"
APEX = SHARED / "datasets" / "sf-apex-recipes"
LWC = SHARED / "datasets" / "sf-lwc-recipes"


def put(tmp_path: Path, body: str | bytes, name: str = "export.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode(encoding))
    return path


def ok(path: Path, playbook, **kw) -> csv_file.ParseResult:
    result = csv_file.parse(path, playbook, **kw)
    assert result.ok, (result.report(), result.questions)
    return result


def problems(path: Path, playbook, **kw) -> list[str]:
    result = csv_file.parse(path, playbook, **kw)
    assert not result.records
    assert result.problem_count, "expected problems"
    return result.report(limit=100)


def deals(store) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT id, external_id, name, account, stage, amount_minor, currency, close_date, forecast_category, "
            "version FROM deal ORDER BY external_id"))]


def changes(store) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT d.external_id, c.field, c.old, c.new FROM deal_change c JOIN deal d ON d.id = c.deal_id "
            "ORDER BY d.external_id, c.field, c.id"))]


GOOD = ("Id,Deal,Account,Stage,Amount,Close Date,Forecast Category\n"
        "A-1,Alpha renewal,Acme,Discovery,\"$1,200.50\",2026-12-20,Pipeline\n"
        "A-2,Beta expansion,Globex,Commit,\"$30,000.00\",2026-12-28,Commit\n"
        "A-3,Gamma new logo,Initech,Solution Fit,$950.00,2027-01-15,Best Case\n")


# -- CSV-01..03: encodings ------------------------------------------------------------------------
def test_csv01_utf8_bom_header_is_clean(tmp_path, playbook):
    path = put(tmp_path, "\ufeff" + GOOD)
    result = ok(path, playbook)
    assert result.fmt.encoding == "utf-8-sig"
    assert result.fmt.header[1] == "Deal"
    assert result.fmt.mapped("name") == "Deal"
    assert result.fmt.mapped("external_id") == "Id"  # the BOM did not stick to the first header
    assert [r.name for r in result.records] == ["Alpha renewal", "Beta expansion", "Gamma new logo"]


def test_csv02_cp1252_file_keeps_the_exact_text(tmp_path, playbook):
    body = "Deal;Account;Stage;Amount\nRenewal;Société Générale €;Commit;1.200,50 €\n"
    path = put(tmp_path, body, encoding="cp1252")
    assert b"\x80" in path.read_bytes()  # the euro sign is cp1252 byte 0x80
    result = ok(path, playbook)
    assert result.fmt.encoding == "cp1252"
    assert result.records[0].account == "Société Générale €"
    assert csv_file.sniff(path).encoding == "cp1252"


def test_csv03_c1_controls_from_an_encoding_mixup_are_rejected(tmp_path, playbook):
    # cp1252 bytes read as Latin-1 and saved as UTF-8: the euro sign became U+0080
    body = "Deal,Account,Stage\nRenewal,Soci\u00e9t\u00e9 \u0080,Commit\n"
    report = problems(put(tmp_path, body), playbook)
    assert len(report) == 1
    assert report[0].startswith(f"{tmp_path / 'export.csv'}:2: column \"Account\":")
    assert "U+0080" in report[0]


def test_csv03_bytes_that_are_not_cp1252_are_rejected(tmp_path, playbook):
    path = put(tmp_path, b"Deal,Account,Stage\nRenewal,Acme\x81,Commit\n")
    report = problems(path, playbook)
    assert "byte 0x81" in report[0] and ":2:" in report[0]


# -- CSV-04..06: amounts --------------------------------------------------------------------------
def test_csv04_semicolon_file_with_eu_amounts(tmp_path, playbook):
    body = "Deal;Stage;Amount\nOne;Commit;1.200,50 €\nTwo;Commit;€ 3.000,00\nThree;Commit;12,5\n"
    result = ok(put(tmp_path, body), playbook)
    assert result.fmt.delimiter == ";"
    assert [(r.amount_minor, r.currency) for r in result.records] == [(120050, "EUR"), (300000, "EUR"),
                                                                      (1250, "EUR")]
    assert "comma decimal" in result.column_formats["Amount"]


def test_csv05_us_amounts_and_accounting_negatives(tmp_path, playbook):
    body = 'Deal,Stage,Amount\nOne,Commit,"$1,200.50"\nTwo,Commit,"(1,200.00)"\nThree,Commit,-75.5\n'
    result = ok(put(tmp_path, body), playbook)
    assert [(r.amount_minor, r.currency) for r in result.records] == [(120050, "USD"), (-120000, "USD"),
                                                                      (-7550, "USD")]


@pytest.mark.parametrize("bad", ["1e3", "NaN", "inf", "1.2M", "12 apples"])
def test_csv05_non_amounts_are_rejected_with_line_and_column(tmp_path, playbook, bad):
    body = f"Deal,Stage,Amount\nOne,Commit,100.00\nTwo,Commit,{bad}\n"
    report = problems(put(tmp_path, body), playbook)
    assert report == [f"{tmp_path / 'export.csv'}:3: column \"Amount\": '{bad}' is not an amount"] or \
        (bad == "1.2M" and "K/M/B suffix" in report[0] and ":3: column \"Amount\"" in report[0])


def test_csv05_suffix_accepted_only_when_turned_on(tmp_path, playbook):
    path = put(tmp_path, "Deal,Stage,Amount\nOne,Commit,1.2M\nTwo,Commit,250k\n")
    assert "suffix" in problems(path, playbook)[0]
    result = ok(path, playbook, amount_suffixes=True)
    assert [r.amount_minor for r in result.records] == [120_000_000, 25_000_000]


def test_csv06_ambiguous_amount_column_is_a_question_not_a_guess(tmp_path, playbook):
    path = put(tmp_path, 'Deal,Stage,Amount\nOne,Commit,"1,200"\nTwo,Commit,"3,500"\n')
    result = csv_file.parse(path, playbook)
    assert not result.records and not result.problem_count
    assert [(q.kind, q.column, q.flag) for q in result.questions] == [("decimal", "Amount", "--decimal")]
    assert "1,200" in result.questions[0].text
    assert [r.amount_minor for r in ok(path, playbook, decimal="point").records] == [120000, 350000]
    assert [r.amount_minor for r in ok(path, playbook, decimal="comma").records] == [120, 350]


def test_mixed_decimal_conventions_in_one_column_are_rejected(tmp_path, playbook):
    path = put(tmp_path, 'Deal,Stage,Amount\nOne,Commit,"1,200.50"\nTwo,Commit,"3.500,25"\n')
    report = problems(path, playbook)
    assert "mix point decimals" in report[0] and "line 2" in report[0] and "line 3" in report[0]


# -- CSV-07, CSV-08: dates ------------------------------------------------------------------------
def test_csv07_one_unambiguous_value_decides_the_column(tmp_path, playbook):
    path = put(tmp_path, "Deal,Stage,Close Date\nOne,Commit,03/04/2026\nTwo,Commit,13/04/2026\n")
    result = ok(path, playbook)
    assert [r.close_date for r in result.records] == [date(2026, 4, 3), date(2026, 4, 13)]
    assert result.column_formats["Close Date"] == "date (D/M/Y)"
    us = ok(put(tmp_path, "Deal,Stage,Close Date\nOne,Commit,03/04/2026\nTwo,Commit,04/13/2026\n", "us.csv"),
            playbook)
    assert [r.close_date for r in us.records] == [date(2026, 3, 4), date(2026, 4, 13)]


def test_csv07_day_month_and_month_day_in_one_column_are_rejected(tmp_path, playbook):
    path = put(tmp_path, "Deal,Stage,Close Date\nOne,Commit,13/04/2026\nTwo,Commit,04/13/2026\n")
    report = problems(path, playbook)
    assert "mix day/month" in report[0] and 'column "Close Date"' in report[0]


def test_csv07_all_ambiguous_column_asks_once(tmp_path, playbook):
    rows = "".join(f"Deal {i},Commit,0{i}/0{i + 1}/2026\n" for i in range(1, 8))
    path = put(tmp_path, "Deal,Stage,Close Date\n" + rows)
    result = csv_file.parse(path, playbook)
    assert not result.records and not result.problem_count
    assert len(result.questions) == 1  # one question for the column, not one per row
    q = result.questions[0]
    assert (q.kind, q.column, q.flag) == ("date_order", "Close Date", "--dates")
    assert [a for a, _label in q.options] == ["dmy", "mdy"]
    assert "01/02/2026 = 1 February" in q.options[0][1]
    mdy = ok(path, playbook, date_order="mdy")
    dmy = ok(path, playbook, date_order={"Close Date": "dmy"})
    assert mdy.records[0].close_date == date(2026, 1, 2)
    assert dmy.records[0].close_date == date(2026, 2, 1)


def test_csv07_iso_dates_never_flip(tmp_path, playbook):
    body = "Deal,Stage,Close Date,Created\nOne,Commit,2026-04-03,2026-04-03\nTwo,Commit,05/06/2026,2026-01-02\n"
    path = put(tmp_path, body)
    for order in ("dmy", "mdy"):
        result = ok(path, playbook, date_order=order)
        assert result.records[0].close_date == date(2026, 4, 3)
        assert result.records[0].created_on == date(2026, 4, 3)
        assert result.records[1].created_on == date(2026, 1, 2)
    assert ok(path, playbook, date_order="dmy").records[1].close_date == date(2026, 6, 5)


def test_csv08_excel_serial_dates(tmp_path, playbook):
    path = put(tmp_path, "Deal,Stage,Close Date\nOne,Commit,46115\nTwo,Commit,46115.5\n")
    result = ok(path, playbook)
    assert [r.close_date for r in result.records] == [date(2026, 4, 3), date(2026, 4, 3)]
    report = problems(put(tmp_path, "Deal,Stage,Close Date\nOne,Commit,46115\nTwo,Commit,60\n", "b.csv"),
                      playbook)
    assert ":3: column \"Close Date\": '60' is not a date" in report[0] and "leap-year" in report[0]


# -- CSV-09..12: structure ------------------------------------------------------------------------
def test_csv09_duplicate_ids_name_both_lines(tmp_path, playbook):
    body = "Id,Deal,Stage\nX-1,One,Commit\nX-2,Two,Commit\nX-1,Three,Commit\n"
    report = problems(put(tmp_path, body), playbook)
    assert report == [f"{tmp_path / 'export.csv'}:4: column \"Id\": duplicate id 'X-1': lines 2 and 4"]


def test_csv10_duplicate_header_names_are_rejected(tmp_path, playbook):
    report = problems(put(tmp_path, "Deal,Stage,Amount,amount\nOne,Commit,1,2\n"), playbook)
    assert any("duplicate column name (columns 3 and 4)" in p and ":1:" in p for p in report)


def test_csv11_headerless_file(tmp_path, playbook):
    data_first = problems(put(tmp_path, "A-1,Alpha,Commit,1200.00,2026-12-20\nA-2,Beta,Commit,5,2026-12-21\n"),
                          playbook)
    assert data_first[0].startswith(f"{tmp_path / 'export.csv'}:1:")
    assert "no header row recognised" in data_first[0]
    words_first = problems(put(tmp_path, "Alpha,Acme,Commit\nBeta,Globex,Discovery\n", "w.csv"), playbook)
    assert "no header row recognised" in words_first[0]


def test_csv12_short_and_long_rows(tmp_path, playbook):
    body = "Deal,Stage,Amount\nOne,Commit,1\nTwo,Commit\nThree,Commit,3,extra\n"
    report = problems(put(tmp_path, body), playbook)
    assert report == [f"{tmp_path / 'export.csv'}:3: row has 2 fields, the header has 3 (short row)",
                      f"{tmp_path / 'export.csv'}:4: row has 4 fields, the header has 3 (long row)"]


def test_oversized_field_is_a_size_error(tmp_path, playbook):
    report = problems(put(tmp_path, "Deal,Stage\n" + "x" * 200_000 + ",Commit\n"), playbook)
    assert "limit" in report[0] and ":2:" in report[0]


def test_unknown_stage_is_reported_once_with_the_fix(tmp_path, playbook):
    body = "Deal,Stage\nOne,Gone fishing\nTwo,Gone fishing\nThree,Commit\n"
    report = problems(put(tmp_path, body), playbook)
    assert len(report) == 1
    assert ":2: column \"Stage\": stage 'Gone fishing' (and 1 more rows) is not in the playbook" in report[0]
    assert "[crm_stage_map]" in report[0]


# -- CSV-14: control characters and markup stored verbatim ------------------------------------------
def test_csv14_control_characters_and_markup_are_stored_verbatim(sqlite_services, tmp_path, playbook):
    names = ["Deal [/foo", "[@click=app.quit]x[/]", "A\x1b]52;c;UFdORUQ=\x07B", "ACME\u202eVOD", "x [/] y"]
    body = "Id,Deal,Stage\n" + "".join(f'H-{i},"{n}",Commit\n' for i, n in enumerate(names))
    result = ok(put(tmp_path, body), playbook)
    csv_file.write(sqlite_services.store, playbook, result.records, now=NOW)
    stored = [r[2] for r in deals(sqlite_services.store)]
    assert stored == names
    assert display_safe(names[2]) == "A\ufffd]52;c;UFdORUQ=\ufffdB"


def test_nul_in_text_is_rejected_with_its_place(tmp_path, playbook):
    report = problems(put(tmp_path, "Deal,Stage\nA\x00B,Commit\n"), playbook)
    assert report[0].startswith(f"{tmp_path / 'export.csv'}:2: column \"Deal\": NUL character")


# -- recognised exports -----------------------------------------------------------------------------
def test_salesforce_report_export_is_recognised(tmp_path, playbook):
    body = ("Opportunity Owner,Account Name,Opportunity Name,Stage,Amount,Close Date,Forecast Category,"
            "Next Step,Opportunity ID,Lead Source\n"
            'Ana Ruiz,Acme,Acme - 200 seats,Negotiation/Review,"USD 48,000.00",12/24/2026,Commit,'
            "Send order form,0065g00000AbCdE,Web\n"
            "Bo Li,Globex,Globex pilot,Closed Won,USD 9000.00,11/30/2026,Closed,,0065g00000AbCdF,Partner\n")
    result = ok(put(tmp_path, body), playbook)
    assert result.fmt.profile == "salesforce"
    first = result.records[0]
    assert (first.external_id, first.name, first.account, first.owner) == \
        ("0065g00000AbCdE", "Acme - 200 seats", "Acme", "Ana Ruiz")
    assert (first.stage, first.crm_stage, first.amount_minor, first.currency) == \
        ("commit", "Negotiation/Review", 4_800_000, "USD")
    assert (first.close_date, first.forecast_category, first.next_step) == \
        (date(2026, 12, 24), "commit", "Send order form")
    assert first.extras == {"Lead Source": "Web"}  # unknown columns are kept, not dropped
    assert result.records[1].stage == "closed_won"


def test_hubspot_deals_export_is_recognised(tmp_path, playbook):
    body = ("Record ID,Deal Name,Deal Stage,Amount,Close Date,Deal owner,Create Date,Pipeline\n"
            "9001,Initech upgrade,Appointment Scheduled,1500,2026-12-31 10:00,Maya Fox,2026-10-01 09:12,Sales\n"
            "9002,Umbrella renewal,Closed Lost,0,2026-11-02 08:00,Maya Fox,2026-09-01 09:12,Sales\n")
    result = ok(put(tmp_path, body), playbook)
    assert result.fmt.profile == "hubspot"
    assert [(r.external_id, r.stage, r.amount_minor, r.close_date, r.owner) for r in result.records] == [
        ("9001", "qualification", 150000, date(2026, 12, 31), "Maya Fox"),
        ("9002", "closed_lost", 0, date(2026, 11, 2), "Maya Fox")]


def test_unrecognised_file_needs_a_mapping(tmp_path, playbook):
    path = put(tmp_path, "Title,Phase,Value,Customer\nAlpha,Commit,100,Acme\n")
    report = problems(path, playbook)
    assert "no header row recognised" in report[0] or "--map" in report[0]
    result = ok(path, playbook, mapping={"Title": "name", "Phase": "stage", "value": "amount",
                                         "Customer": "account"})
    assert (result.records[0].name, result.records[0].amount_minor, result.records[0].account) == \
        ("Alpha", 10000, "Acme")
    bad = problems(path, playbook, mapping={"Nope": "name", "Phase": "wat"})
    assert any('column "Nope": mapping: the file has no such column' in p for p in bad)
    assert any("unknown field 'wat'" in p for p in bad)


# -- writing: all or nothing, re-import history, dry run ---------------------------------------------
UPDATED = ("Id,Deal,Account,Stage,Amount,Close Date,Forecast Category\n"
           "A-1,Alpha renewal,Acme,Commit,\"$1,500.00\",2027-01-10,Commit\n"  # all four moved
           "A-2,Beta expansion,Globex,Commit,\"$30,000.00\",2026-12-28,Commit\n"  # unchanged
           "A-3,Gamma new logo,Initech,Solution Fit,$950.00,2027-01-15,Best Case\n"
           "A-4,Delta,Hooli,Discovery,$10.00,2027-02-01,Pipeline\n")  # new


def test_reimport_updates_in_place_and_records_history(services, tmp_path, playbook):
    store = services.store
    first = ok(put(tmp_path, GOOD), playbook)
    res = csv_file.write(store, playbook, first.records, now=NOW)
    assert (res.created, res.updated) == (3, 0)
    before = {r[1]: r for r in deals(store)}
    again = csv_file.write(store, playbook, ok(put(tmp_path, GOOD), playbook).records, now=NOW)
    assert (again.created, again.updated, again.unchanged, again.changes) == (0, 0, 3, 0)  # idempotent

    later = datetime(2026, 12, 10, 9, 0, tzinfo=timezone.utc)
    res = csv_file.write(store, playbook, ok(put(tmp_path, UPDATED, "v2.csv"), playbook).records, now=later)
    assert (res.created, res.updated, res.unchanged) == (1, 1, 2)
    after = {r[1]: r for r in deals(store)}
    assert after["A-1"][0] == before["A-1"][0]  # same row, updated in place
    assert after["A-1"][4:9] == ("commit", 150000, "USD", after["A-1"][7], "commit")
    assert str(after["A-1"][7])[:10] == "2027-01-10"
    assert after["A-1"][9] == before["A-1"][9] + 1
    assert after["A-2"] == before["A-2"]
    moved = [c for c in changes(store) if c[0] == "A-1" and c[1] != "created"]
    assert sorted(moved) == [("A-1", "amount_minor", "120050", "150000"),
                             ("A-1", "close_date", "2026-12-20", "2027-01-10"),
                             ("A-1", "forecast_category", "pipeline", "commit"),
                             ("A-1", "stage", "discovery", "commit")]
    assert not [c for c in changes(store) if c[0] in ("A-2", "A-3") and c[1] != "created"]


def test_bad_file_leaves_the_store_unchanged(sqlite_services, tmp_path, playbook):
    store = sqlite_services.store
    csv_file.write(store, playbook, ok(put(tmp_path, GOOD), playbook).records, now=NOW)
    snapshot, history = deals(store), changes(store)
    bad = UPDATED.replace("A-4,Delta,Hooli,Discovery,$10.00", "A-4,Delta,Hooli,Discovery,ten dollars")
    result = csv_file.parse(put(tmp_path, bad, "bad.csv"), playbook)
    assert not result.ok and result.records == []
    assert csv_file.write(store, playbook, result.records, now=NOW).created == 0
    assert (deals(store), changes(store)) == (snapshot, history)


def test_dry_run_writes_nothing_and_lists_the_changes(sqlite_services, tmp_path, playbook):
    store = sqlite_services.store
    csv_file.write(store, playbook, ok(put(tmp_path, GOOD), playbook).records, now=NOW)
    snapshot, history = deals(store), changes(store)
    res = csv_file.write(store, playbook, ok(put(tmp_path, UPDATED, "v2.csv"), playbook).records, now=NOW,
                         dry_run=True)
    assert (deals(store), changes(store)) == (snapshot, history)
    assert (res.created, res.updated) == (1, 1)
    assert "new  A-4  Delta" in res.preview
    upd = next(p for p in res.preview if p.startswith("update A-1"))
    assert "stage discovery → commit" in upd and "amount_minor 120050 → 150000" in upd


# -- the command line -------------------------------------------------------------------------------
def run(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), "import", *args], catch_exceptions=False)


def count(db: Path) -> int:
    from inspector.services import build_services

    svc = build_services(db)
    try:
        with svc.store.engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM deal")).scalar_one()
    finally:
        svc.store.engine.dispose()


def test_cli_imports_and_reimports(tmp_path):
    db = tmp_path / "cli.db"
    path = put(tmp_path, GOOD)
    res = run(db, str(path))
    assert res.exit_code == 0, res.output
    assert "deals: 3 created, 0 updated, 0 unchanged" in res.stdout
    assert "CSV file" in res.stderr and "utf-8, comma-separated, 3 rows" in res.stderr
    res = run(db, str(put(tmp_path, UPDATED, "v2.csv")))
    assert res.exit_code == 0 and "deals: 1 created, 1 updated, 2 unchanged" in res.stdout
    assert "changes: amount 1, category 1, close date 1, stage 1" in res.stdout
    assert count(db) == 4


def test_cli_bad_file_exits_2_with_one_line_per_problem(tmp_path):
    db = tmp_path / "cli.db"
    body = GOOD + "A-1,Again,Acme,Discovery,$5,2026-12-20,Pipeline\nA-9,Bad,Acme,Discovery,NaN,2026-12-20,Pipeline\n"
    path = put(tmp_path, body)
    res = run(db, str(path))
    assert res.exit_code == 2
    lines = res.stderr.splitlines()
    # header on line 1, GOOD on lines 2-4: the repeated A-1 is line 5, the NaN amount line 6
    assert lines[1:3] == [f"{path}:5: column \"Id\": duplicate id 'A-1': lines 2 and 5",
                          f"{path}:6: column \"Amount\": 'NaN' is not an amount"]  # in file order
    assert not any("duplicate id 'A-9'" in line for line in lines)
    assert lines[-1] == f"inspector: 2 problems in {path}; nothing was imported"
    assert "Traceback" not in res.output
    assert count(db) == 0


def test_cli_questions_are_answered_by_flags(tmp_path):
    db = tmp_path / "cli.db"
    path = put(tmp_path, 'Deal,Stage,Amount,Close Date\nOne,Commit,"1,200",03/04/2026\nTwo,Commit,"3,500",05/06/2026\n')
    res = run(db, str(path))
    assert res.exit_code == 2
    assert "rerun with --dates dmy or --dates mdy" in res.stderr
    assert "rerun with --decimal point or --decimal comma" in res.stderr
    assert count(db) == 0
    res = run(db, str(path), "--dates", "dmy", "--decimal", "point")
    assert res.exit_code == 0, res.output
    assert "Close Date: date (D/M/Y as answered)" in res.stderr
    assert count(db) == 2


def test_cli_dry_run_and_map(tmp_path):
    db = tmp_path / "cli.db"
    path = put(tmp_path, "Title,Phase,Value\nAlpha,Commit,100\nBeta,Discovery,7\n")
    res = run(db, str(path), "--dry-run")
    assert res.exit_code == 2 and "--map" in res.stderr
    res = run(db, str(path), "--map", "Title=name", "--map", "Phase=stage", "--map", "Value=amount", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "new  " in res.stdout and "Alpha" in res.stdout
    assert "dry run: nothing was written" in res.stdout
    assert "deals: 2 would be created" in res.stdout
    assert count(db) == 0
    res = run(db, str(path), "--map", "Title")
    assert res.exit_code == 2 and "expected COLUMN=FIELD" in res.stderr


def test_cli_missing_file_and_format_choice(tmp_path):
    db = tmp_path / "cli.db"
    res = run(db, str(tmp_path / "nope.csv"))
    assert res.exit_code == 2 and "nope.csv: cannot read" in res.stderr
    path = put(tmp_path, GOOD)
    res = run(db, str(path), "--format", "hubspot")
    assert res.exit_code == 2 and "no column for the deal name" in res.stderr


# -- the real third-party files -------------------------------------------------------------------------
needs_maven = pytest.mark.skipif(not MAVEN.is_file(), reason=f"shared dataset absent: {MAVEN}")
needs_apex = pytest.mark.skipif(not (APEX / "Opportunities.csv").is_file(),
                                reason=f"shared dataset absent: {APEX}")
needs_lwc = pytest.mark.skipif(not (LWC / "Opportunities.json").is_file(), reason=f"shared dataset absent: {LWC}")


@needs_maven
def test_maven_crm_pipeline_imports(sqlite_services, playbook):
    result = ok(MAVEN, playbook)
    assert result.fmt.profile == "maven" and result.rows == 8800
    res = csv_file.write(sqlite_services.store, playbook, result.records, now=NOW)
    assert res.created == 8800
    with sqlite_services.store.engine.connect() as conn:
        by_stage = dict(conn.execute(text("SELECT stage, COUNT(*) FROM deal GROUP BY stage")).all())
        first = conn.execute(text("SELECT name, owner, manager, amount_minor, close_date FROM deal "
                                  "WHERE external_id = '1C1I7A6R'")).one()
    assert sum(by_stage.values()) == 8800
    assert set(by_stage) == {"closed_won", "closed_lost", "discovery", "qualification"}
    assert (first[0], first[1], first[2], first[3], str(first[4])) == \
        ("Cancity · GTX Plus Basic", "Moses Frase", "Dustin Brinkmann", 105400, "2017-03-01")
    again = csv_file.write(sqlite_services.store, playbook, ok(MAVEN, playbook).records, now=NOW)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 8800)


def _apex_playbook():
    body = default_playbook_text().replace("[crm_stage_map]\n",
                                            '[crm_stage_map]\n"assigned dynamically" = "qualification"\n', 1)
    return parse_playbook(body, "test playbook")


@needs_apex
def test_apex_recipes_csv_needs_its_stage_mapped_then_imports(sqlite_services, playbook):
    path = APEX / "Opportunities.csv"
    report = problems(path, playbook)
    assert report == [f"{path}:8: column \"StageName\": stage 'Assigned dynamically' (and 7 more rows) is not in "
                      "the playbook: add \"assigned dynamically\" = \"<stage key>\" under [crm_stage_map] "
                      "(stages: qualification, discovery, solution_fit, commercial_review, commit, closed_won, "
                      "closed_lost)"]
    pb = _apex_playbook()
    result = ok(path, pb)
    assert result.fmt.profile == "salesforce" and len(result.records) == 50
    res = csv_file.write(sqlite_services.store, pb, result.records, now=NOW)
    assert res.created == 50
    with sqlite_services.store.engine.connect() as conn:
        stored = {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT name, extras, amount_minor FROM deal"))}
    assert stored["Pelican, great white"][1] == 1506574
    descriptions = {json.loads(extras)["description"] for extras, _a in stored.values()
                    if "description" in json.loads(extras)}
    assert "<img src=x onerror=alert('hi') />" in descriptions
    assert "../../../../../../../../../../../etc/passwd%00" in descriptions


def hostile_csv(tmp_path: Path) -> tuple[Path, list[str]]:
    """A HubSpot-style export whose deal names are the apex recipes' naughty strings."""
    records = json.loads((APEX / "Opportunities.json").read_text(encoding="utf-8"))["records"]
    names = list(dict.fromkeys(r["description"] for r in records if r["description"].strip()))
    names += ["Deal [/foo]", "[@click=app.quit]x[/]", "[link=file:///etc/passwd]x[/link]", "$name [b]$x[/b]"]
    import csv as _csv

    path = tmp_path / "hostile.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = _csv.writer(fh)
        w.writerow(["Record ID", "Deal Name", "Deal Stage", "Amount", "Close Date", "Deal owner", "Associated Company"])
        for i, name in enumerate(names):
            w.writerow([f"HX-{i:03d}", name, "Qualified To Buy", f"{1000 + i}.00", f"2026-12-{10 + i % 18:02d}",
                        "Rep " + name[:5], name[::-1]])
    return path, names


@needs_apex
def test_apex_hostile_strings_import_verbatim(sqlite_services, tmp_path, playbook):
    path, names = hostile_csv(tmp_path)
    result = ok(path, playbook)
    csv_file.write(sqlite_services.store, playbook, result.records, now=NOW)
    with sqlite_services.store.engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT external_id, name FROM deal")).all())
    assert [stored[f"HX-{i:03d}"] for i in range(len(names))] == names


@needs_lwc
def test_lwc_recipes_opportunities_as_a_csv_export(sqlite_services, tmp_path, playbook):
    """The LWC recipes ship JSON; written out as a Salesforce-style CSV they import with their accounts."""
    import csv as _csv

    opps = json.loads((LWC / "Opportunities.json").read_text(encoding="utf-8"))["records"]
    accounts = {r["attributes"]["referenceId"]: r["Name"]
                for r in json.loads((LWC / "Accounts.json").read_text(encoding="utf-8"))["records"]}
    path = tmp_path / "lwc.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = _csv.writer(fh)
        w.writerow(["Opportunity Name", "Account Name", "Stage", "Amount", "Close Date"])
        for r in opps:
            w.writerow([r["Name"], accounts[r["AccountId"].lstrip("@")], r["StageName"], r["Amount"], r["CloseDate"]])
    result = ok(path, playbook)
    assert result.fmt.profile == "salesforce" and len(result.records) == len(opps) == 20
    res = csv_file.write(sqlite_services.store, playbook, result.records, now=NOW)
    assert res.created == 20
    with sqlite_services.store.engine.connect() as conn:
        got = dict(conn.execute(text("SELECT name, account FROM deal")).all())
    assert got["Cloud Platform Expansion"] == accounts["AccountRef1"]
    assert {r.stage for r in result.records} >= {"closed_won", "closed_lost", "qualification"}
