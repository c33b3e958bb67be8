"""CLI command `inspector import FILE`: a CSV export into the store, all or nothing.

Registered on the main group by inspector/cli.py. Imports happen inside the command so
`inspector --help` stays fast and Textual-free. Problems in the file are printed one per
line (file:line: column "X": problem) on stderr and exit 2 with nothing written; questions
the file raises (day/month order, decimal separator) are answered by flags, never guessed.
"""
from __future__ import annotations

import click

_FORMATS = ("auto", "salesforce", "hubspot", "maven", "inspector", "generic")


def _cli():
    from inspector import cli

    return cli


def register(main: click.Group) -> None:
    main.add_command(import_csv)


def _parse_maps(maps: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in maps:
        column, sep, fld = item.rpartition("=")
        if not sep or not column.strip() or not fld.strip():
            raise _cli().UserError(f"--map {item!r}: expected COLUMN=FIELD (e.g. --map \"Deal Title=name\")")
        out[column.strip()] = fld.strip()
    return out


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="auto", show_default=True,
              help="Which export the file is (auto: recognised by its headers).")
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD",
              help="Feed FIELD from COLUMN (repeatable). Fields: external_id, name, account, owner, team, "
                   "manager, stage, amount, currency, close_date, forecast_category, next_step, "
                   "next_step_date, created_on, updated_at, an evidence field, extra or ignore.")
@click.option("--dates", "--date-order", "date_order", type=click.Choice(["dmy", "mdy"]),
              help="Answer for date columns whose values could be day/month or month/day.")
@click.option("--decimal", type=click.Choice(["comma", "point"]),
              help="Answer for amount columns like 1,200 whose decimal separator cannot be told.")
@click.option("--amount-suffixes", is_flag=True, help="Accept amounts like 1.2M or 250k.")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--show", "show", default=50, show_default=True, type=click.IntRange(0),
              help="How many changes a dry run lists (0: all).")
@click.pass_context
def import_csv(ctx: click.Context, file: str, fmt: str, maps: tuple[str, ...], date_order: str | None,
               decimal: str | None, amount_suffixes: bool, dry_run: bool, show: int) -> None:
    """Import a CSV export (Salesforce, HubSpot, Maven CRM or any mapped file) into the store.

    All or nothing: a file with problems is reported line by line (exit 2) and nothing is
    written. Re-importing an updated export updates deals in place and records what moved.
    """
    from inspector.sources import csv_file
    from inspector.text import one_line

    cli = _cli()
    mapping = _parse_maps(maps)
    services = cli._services(ctx)
    if services.read_only and not dry_run:
        raise cli.UserError("the store is open read-only; import needs write access (or use --dry-run)")
    result = csv_file.parse(file, services.playbook, fmt=fmt, mapping=mapping, date_order=date_order,
                            decimal=decimal, amount_suffixes=amount_suffixes)
    f = result.fmt
    if f is not None:
        click.echo(one_line(f"{file}: {f.label}, {f.encoding}, {f.delimiter_name}-separated, "
                            f"{result.rows:,} rows"), err=True)
    if result.problem_count:
        for line in result.report(limit=50):
            click.echo(one_line(line), err=True)
        raise cli.UserError(f"{result.problem_count} problem{'s' if result.problem_count != 1 else ''} in "
                            f"{one_line(file)}; nothing was imported")
    if result.questions:
        for q in result.questions:
            click.echo(one_line(f"{file}: {q.cli_hint()}"), err=True)
        raise cli.UserError(f"{one_line(file)} needs {len(result.questions)} answer"
                            f"{'s' if len(result.questions) != 1 else ''} (see above); nothing was imported")
    for column, described in result.column_formats.items():
        if described != "text":
            click.echo(one_line(f"  {column}: {described}"), err=True)
    for note in result.notes:
        click.echo(one_line(f"  note: {note}"), err=True)
    try:
        outcome = csv_file.write(services.store, services.playbook, result.records, now=services.clock.now(),
                                 dry_run=dry_run)
    except Exception as exc:  # noqa: BLE001 - the store failed: one line, nothing committed
        raise cli.RuntimeFailure(f"import failed, nothing was written: {cli._one_line(exc)}")
    finally:
        services.store.engine.dispose()
    if dry_run:
        listed = outcome.preview if show == 0 else outcome.preview[:show]
        for line in listed:
            click.echo(one_line(line))
        if len(listed) < len(outcome.preview):
            click.echo(f"… and {len(outcome.preview) - len(listed):,} more (--show 0 lists all)")
        click.echo("dry run: nothing was written")
    for line in csv_file.summary_lines(outcome, dry_run=dry_run):
        click.echo(line)
