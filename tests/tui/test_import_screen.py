"""The Import screen (F6) by keyboard: pick a CSV export, see what was recognised and the
dry-run preview, import it (the Pipeline underneath reloads); a file with problems imports
nothing; an ambiguous date column asks once and the answer enables the import; a generic file
with unknown headers is mapped column by column; hostile names and file names show literally;
a read-only store previews but refuses to import. Fixed clock (conftest: 2026-12-03)."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from textual.widgets import DataTable, OptionList, Select, Static

from inspector.screens.app import InspectorApp
from inspector.screens.field_modal import CHOICES, FieldModal
from inspector.screens.import_screen import ImportScreen
from inspector.screens.pipeline_screen import PipelineScreen
from inspector.services import build_services
from inspector.widgets.csv_tree import CsvTree
from inspector.widgets.path_input import PathInput

from tests.pilot_helpers import settle as settle_workers

SIZE = (120, 40)
HOSTILE = ("[b]x[/b]", "Deal [/foo", "[@click=app.quit]")

SALESFORCE = (
    "Opportunity ID,Opportunity Name,Account Name,Opportunity Owner,Stage,Amount,Close Date,Forecast Category\n"
    "006A1,Alpha renewal,Acme,Dana Lee,Discovery,\"$1,200.50\",2026-12-20,Pipeline\n"
    "006A2,Beta expansion,Globex,Dana Lee,Commit,\"$30,000.00\",2026-12-28,Commit\n"
    "006A3,Gamma new logo,Initech,Sam Roe,Solution Fit,$950.00,2027-01-15,Best Case\n")
BAD = ("Opportunity ID,Opportunity Name,Account Name,Stage,Amount,Close Date\n"
       "006B1,Good one,Acme,Discovery,100.00,2026-12-20\n"
       "006B2,Bad stage,Acme,Nonsense Stage,100.00,2026-12-20\n"
       "006B3,Bad amount,Acme,Discovery,12 apples,2026-12-20\n")
DATES = ("Deal,Account,Stage,Amount,Close Date\n"
         "One,Acme,Discovery,100.00,03/04/2027\n"
         "Two,Acme,Discovery,200.00,05/06/2027\n")
GENERIC = ("Deal Title,Customer Org,Pipeline Phase,Worth\n"
           "Widget deal,Acme,Discovery,500.00\n"
           "Gadget deal,Globex,Commit,750.00\n")


def hostile_csv() -> str:
    rows = "".join(f'H-{i},"{name}",Acme,Discovery,100.00,2026-12-20,"{name}"\n' for i, name in enumerate(HOSTILE))
    return "Opportunity ID,Opportunity Name,Account Name,Stage,Amount,Close Date,[@click=app.quit]\n" + rows


@pytest.fixture
def exports(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir()
    for name, body in (("salesforce.csv", SALESFORCE), ("bad.csv", BAD), ("dates.csv", DATES),
                       ("generic.csv", GENERIC), ("[b]evil[@click=app.quit].csv", hostile_csv()), ("notes.md", "# not csv\n")):
        (folder / name).write_text(body, encoding="utf-8")
    monkeypatch.chdir(folder)  # F6 opens the picker in the working directory
    return folder


# -- helpers ----------------------------------------------------------------------------------------
async def settle(pilot) -> None:
    """Wait for the screens' workers (not the DirectoryTree's loader, which never ends)."""
    await settle_workers(pilot, skip=(CsvTree,))


async def wait_until(pilot, predicate, rounds: int = 400) -> None:
    for _ in range(rounds):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


def plain(screen, selector: str) -> str:
    visual = screen.query_one(selector, Static).visual
    return getattr(visual, "plain", str(visual))


def cells(table: DataTable) -> list[list[str]]:
    return [[getattr(c, "plain", str(c)) for c in table.get_row_at(i)] for i in range(table.row_count)]


def deals(svc) -> list[tuple]:
    with svc.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT external_id, name, account, stage, amount_minor, close_date FROM deal ORDER BY external_id"))]


def count(svc, table: str) -> int:
    with svc.store.engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


async def open_import(pilot) -> ImportScreen:
    await settle(pilot)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, PipelineScreen))
    await pilot.press("f6")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ImportScreen))
    return pilot.app.screen


async def type_path(pilot, screen: ImportScreen, path: str) -> None:
    """Type a path in the path box and press Enter, then wait for the read to finish."""
    box = screen.query_one("#path", PathInput)
    box.focus()
    box.value = ""
    await pilot.press(*path)
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.state not in ("idle", "reading"))
    await settle(pilot)


async def pick_in_tree(pilot, screen: ImportScreen, name: str) -> None:
    tree = screen.query_one(CsvTree)
    await wait_until(pilot, lambda: any(str(n.label) == name for n in tree.root.children))
    tree.focus()
    line = next(n for n in tree.root.children if str(n.label) == name).line
    tree.cursor_line = line
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.state not in ("idle", "reading"))
    await settle(pilot)


# -- tests ------------------------------------------------------------------------------------------
async def test_picks_a_salesforce_export_previews_and_imports(sqlite_services, exports):
    svc = sqlite_services
    app = InspectorApp(svc)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_import(pilot)
        assert screen.start_dir == exports
        tree = screen.query_one(CsvTree)
        await wait_until(pilot, lambda: len(tree.root.children) == 5)
        assert sorted(str(n.label) for n in tree.root.children) == sorted(
            ["salesforce.csv", "bad.csv", "dates.csv", "generic.csv", "[b]evil[@click=app.quit].csv"])  # no notes.md
        assert screen.check_action("import_file", ()) is None  # nothing chosen yet

        await pick_in_tree(pilot, screen, "salesforce.csv")
        assert screen.state == "ready"
        assert screen.query_one("#path", PathInput).value == "salesforce.csv"
        head = plain(screen, "#recognised")
        assert head.splitlines()[:2] == ["salesforce.csv: Salesforce opportunity report", "3 rows · utf-8 · comma-separated"]
        assert "✔ ready" in head
        columns = cells(screen.query_one("#columns", DataTable))
        assert columns[1][:2] == ["Opportunity Name", "Deal name"]
        assert columns[5][:3] == ["Amount", "Amount", "amount (point decimal, $)"]
        assert columns[6][:3] == ["Close Date", "Close date", "date (ISO)"]
        preview = cells(screen.query_one("#preview", DataTable))
        assert preview[:3] == [["create", "006A1", "Alpha renewal", "Stage", "", "Discovery"],
                               ["", "", "", "Amount", "", "$1,200.50"],
                               ["", "", "", "Close date", "", "2026-12-20"]]
        assert len(preview) == 9
        summary = plain(screen, "#summary")
        assert "deals: 3 would be created, 0 would be updated, 0 unchanged" in summary
        assert "press i to import" in summary
        assert deals(svc) == []  # the preview wrote nothing
        assert screen.check_action("import_file", ()) is True

        await pilot.press("i")
        await wait_until(pilot, lambda: screen.state == "imported")
        await settle(pilot)
        assert [(d[0], d[1], d[3], d[4]) for d in deals(svc)] == [
            ("006A1", "Alpha renewal", "discovery", 120050), ("006A2", "Beta expansion", "commit", 3000000),
            ("006A3", "Gamma new logo", "solution_fit", 95000)]
        assert "✔ imported salesforce.csv" in plain(screen, "#summary")
        assert "deals: 3 created, 0 updated, 0 unchanged" in plain(screen, "#summary")
        assert screen.check_action("import_file", ()) is None  # imported once

        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, PipelineScreen))
        pipeline = app.screen
        await wait_until(pilot, lambda: pipeline.phase == "complete" and len(pipeline.view.items) == 3)
        assert {it.row.name for it in pipeline.view.items} == {"Alpha renewal", "Beta expansion", "Gamma new logo"}

        # the same file again: nothing to change
        screen = await open_import(pilot)
        await type_path(pilot, screen, "salesforce.csv")
        assert "deals: 0 would be created, 0 would be updated, 3 unchanged" in plain(screen, "#summary")
        assert screen.query_one("#preview", DataTable).row_count == 0


async def test_a_file_with_problems_lists_them_and_imports_nothing(sqlite_services, exports):
    svc = sqlite_services
    app = InspectorApp(svc)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_import(pilot)
        await type_path(pilot, screen, "bad.csv")
        assert screen.state == "problems"
        assert "✘ 2 problems: nothing can be imported" in plain(screen, "#recognised")
        problems = plain(screen, "#problem-list").splitlines()
        assert problems[0].startswith("bad.csv:3: column \"Stage\": stage 'Nonsense Stage' is not in the playbook")
        assert problems[1] == "bad.csv:4: column \"Amount\": '12 apples' is not an amount"
        assert screen.query_one("#problems").display and not screen.query_one("#preview").display
        assert screen.check_action("import_file", ()) is None
        screen.query_one("#columns", DataTable).focus()
        await pilot.press("i")
        await settle(pilot)
        assert screen.state == "problems"
        assert count(svc, "deal") == 0 and count(svc, "deal_change") == 0

        # fixed on disk, r reads it again and the import goes through
        (exports / "bad.csv").write_text(BAD.replace("Nonsense Stage", "Discovery").replace("12 apples", "12.00"))
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.state == "ready")
        await pilot.press("i")
        await wait_until(pilot, lambda: screen.state == "imported")
        assert [d[0] for d in deals(svc)] == ["006B1", "006B2", "006B3"]


async def test_ambiguous_dates_ask_once_and_the_answer_enables_import(sqlite_services, exports):
    svc = sqlite_services
    app = InspectorApp(svc)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_import(pilot)
        await type_path(pilot, screen, "dates.csv")
        assert screen.state == "questions"
        assert screen.check_action("import_file", ()) is None
        selects = list(screen.query("#questions Select").results(Select))
        assert len(selects) == 1
        question = plain(screen, "#questions .question")
        assert question.startswith("Close Date: dates like 03/04/2027, 05/06/2027 could be day/month or month/day")
        assert selects[0].is_blank()
        assert screen.query_one("#preview", DataTable).row_count == 0

        selects[0].value = "dmy"
        await wait_until(pilot, lambda: screen.state == "ready")
        await settle(pilot)
        assert screen.answers["date_order"] == {"Close Date": "dmy"}
        assert list(screen.query("#questions Select").results(Select))[0].value == "dmy"  # still shown, answered
        assert ["", "", "", "Close date", "", "2027-04-03"] in cells(screen.query_one("#preview", DataTable))
        assert "date (D/M/Y as answered)" in cells(screen.query_one("#columns", DataTable))[4]

        screen.query_one("#preview", DataTable).focus()
        await pilot.press("i")
        await wait_until(pilot, lambda: screen.state == "imported")
        assert sorted(str(d[5])[:10] for d in deals(svc)) == ["2027-04-03", "2027-06-05"]


async def test_a_generic_file_is_mapped_column_by_column_and_imports(sqlite_services, exports):
    svc = sqlite_services
    app = InspectorApp(svc)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_import(pilot)
        await type_path(pilot, screen, "generic.csv")
        assert screen.state == "problems"
        assert "no header row recognised" in plain(screen, "#problem-list")
        table = screen.query_one("#columns", DataTable)
        assert [row[1] for row in cells(table)] == ["(kept as extra)"] * 4

        keys = [k for k, _label in CHOICES]
        for row, field in ((0, "name"), (1, "account"), (2, "stage"), (3, "amount")):
            table.focus()
            table.move_cursor(row=row)
            await pilot.press("m")
            await wait_until(pilot, lambda: isinstance(app.screen, FieldModal))
            modal = app.screen
            options = modal.query_one(OptionList)
            assert options.highlighted == keys.index("extra")  # the column's current field
            options.highlighted = keys.index(field)
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.screen is screen and screen.state not in ("reading",))
            await settle(pilot)
        assert screen.mapping == {"Deal Title": "name", "Customer Org": "account", "Pipeline Phase": "stage",
                                  "Worth": "amount"}
        assert [row[1] for row in cells(table)] == ["Deal name", "Account", "Stage", "Amount"]
        assert screen.state == "ready"
        assert "2 would be created" in plain(screen, "#summary")

        table.focus()
        await pilot.press("i")
        await wait_until(pilot, lambda: screen.state == "imported")
        assert sorted((d[1], d[2], d[3], d[4]) for d in deals(svc)) == [
            ("Gadget deal", "Globex", "commit", 75000), ("Widget deal", "Acme", "discovery", 50000)]

        # Escape in the field picker changes nothing
        table.focus()
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, FieldModal))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)
        assert screen.state == "imported"


async def test_hostile_names_and_file_names_show_literally(sqlite_services, exports):
    svc = sqlite_services
    app = InspectorApp(svc)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_import(pilot)
        await pick_in_tree(pilot, screen, "[b]evil[@click=app.quit].csv")
        assert screen.state == "ready"
        assert plain(screen, "#recognised").startswith("[b]evil[@click=app.quit].csv: Salesforce opportunity report")
        preview = cells(screen.query_one("#preview", DataTable))
        assert [row[2] for row in preview if row[0] == "create"] == list(HOSTILE)
        columns = cells(screen.query_one("#columns", DataTable))
        assert columns[-1][:2] == ["[@click=app.quit]", "(kept as extra)"]
        assert columns[-1][3] == "[b]x[/b]"
        # the rendered screen shows the brackets, not bold text or a link
        await pilot.press("i")
        await wait_until(pilot, lambda: screen.state == "imported")
        await pilot.click("#preview", offset=(20, 1))
        await pilot.click("#recognised", offset=(2, 0))
        await settle(pilot)
        assert app.is_running and app.screen is screen
        assert sorted(d[1] for d in deals(svc)) == sorted(HOSTILE)

        # a path typed with markup in it that does not exist: a literal warning, still running
        await type_path(pilot, screen, "[@click=app.quit]nope.csv")
        notes = [getattr(n.message, "plain", n.message) for n in app._notifications]
        assert any("No such file: [@click=app.quit]nope.csv" in str(n) for n in notes)
        assert app.is_running


async def test_read_only_store_previews_but_refuses_to_import(sqlite_services, exports, tmp_path):
    svc = sqlite_services
    svc.store.engine.dispose()
    ro = build_services(tmp_path / "inspector.db", clock=svc.clock, playbook=svc.playbook, read_only=True,
                        actor="RevOps")
    assert ro.read_only
    app = InspectorApp(ro)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.app.push_screen(ImportScreen(ro, start_dir=exports))  # a start folder given directly
        screen = app.screen
        assert isinstance(screen, ImportScreen)
        await type_path(pilot, screen, "salesforce.csv")
        assert screen.state == "ready"
        assert "deals: 3 would be created" in plain(screen, "#summary")
        assert "read-only store: this is a preview only" in plain(screen, "#summary")
        screen.query_one("#preview", DataTable).focus()
        await pilot.press("i")
        await settle(pilot)
        assert screen.state == "ready"
        notes = [str(getattr(n.message, "plain", n.message)) for n in app._notifications]
        assert any("read-only" in n and "nothing was written" in n for n in notes)
        assert count(ro, "deal") == 0
    ro.store.engine.dispose()


async def test_path_box_completes_with_tab_and_opens_folders(sqlite_services, exports):
    (exports / "q3").mkdir()
    (exports / "q3" / "pipeline-q3.csv").write_text(SALESFORCE, encoding="utf-8")
    app = InspectorApp(sqlite_services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.app.push_screen(ImportScreen(sqlite_services, start_dir=exports))
        screen = app.screen
        box = screen.query_one("#path", PathInput)
        box.focus()
        await pilot.press("s", "a")
        await wait_until(pilot, lambda: box._suggestion == "salesforce.csv")
        await pilot.press("tab")
        assert box.value == "salesforce.csv" and box.has_focus
        box.value = ""
        await pilot.press("q", "3", "/", "p")
        await wait_until(pilot, lambda: box._suggestion == "q3/pipeline-q3.csv")
        await pilot.press("tab", "enter")
        await wait_until(pilot, lambda: screen.state == "ready")
        assert plain(screen, "#recognised").startswith("q3/pipeline-q3.csv: Salesforce opportunity report")
        box.value = "q3"
        box.focus()
        await pilot.press("enter")  # a folder: the tree goes there
        await pilot.pause()
        assert Path(screen.query_one(CsvTree).path) == exports / "q3"
