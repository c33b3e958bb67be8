"""Command line: `inspector` opens the TUI; subcommands run headless (no Textual import).

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input. Errors are one line on stderr.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click


class UserError(click.ClickException):
    """Bad usage or input: one line, exit 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # noqa: ARG002 - click's signature
        click.echo(f"inspector: {self.format_message()}", err=True)


class RuntimeFailure(UserError):
    exit_code = 1


def _services(ctx: click.Context, *, read_only: bool | None = None, db: str | None = None):
    from inspector.playbook import PlaybookError
    from inspector.storage.db import StoreError
    from inspector.services import build_services

    opts = ctx.find_root().obj
    try:
        return build_services(db or opts["db"], playbook_path=opts["playbook"],
                              read_only=opts["read_only"] if read_only is None else read_only)
    except PlaybookError as exc:
        raise UserError(f"{exc.source}: {exc.problems[0]}"
                        + (f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""))
    except StoreError as exc:
        raise UserError(str(exc))
    except Exception as exc:  # database unreachable, permissions...
        raise RuntimeFailure(f"cannot open the store: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run_tui(services) -> int:
    from inspector.screens.app import InspectorApp  # deferred: headless commands stay Textual-free

    app = InspectorApp(services)
    app.run()
    return app.return_code or 0


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar="INSPECTOR_DB", metavar="PATH|URL",
              help="SQLite file or postgresql+psycopg:// URL (env INSPECTOR_DB; default: user data dir).")
@click.option("--playbook", "playbook", envvar="INSPECTOR_PLAYBOOK", type=click.Path(path_type=Path),
              help="Playbook TOML to use (env INSPECTOR_PLAYBOOK; default: built in).")
@click.option("--read-only", is_flag=True, help="Open the store read-only (reviewers).")
@click.version_option(package_name="inspector")
@click.pass_context
def main(ctx: click.Context, db: str | None, playbook: Path | None, read_only: bool) -> None:
    """Inspector: the weekly pipeline inspection, in your terminal.

    Run without a command to open the app. Precedence: options > INSPECTOR_* env > defaults.
    """
    ctx.obj = {"db": db, "playbook": playbook, "read_only": read_only}
    if ctx.invoked_subcommand is None:
        sys.exit(run_tui(_services(ctx)))


@main.command()
@click.option("--deals", "n_deals", default=600, show_default=True, type=click.IntRange(1, 2_000_000),
              help="How many deals to generate.")
@click.option("--db", "demo_db", metavar="PATH", help="Where to write the demo database.")
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same data).")
@click.option("--no-tui", is_flag=True, help="Only seed; do not open the app.")
@click.pass_context
def demo(ctx: click.Context, n_deals: int, demo_db: str | None, seed: int, no_tui: bool) -> None:
    """Seed a fresh demo database and open the app on it."""
    import time

    from inspector import demo as demo_mod
    from inspector.storage.db import default_db_path

    chosen = demo_db or ctx.find_root().obj["db"]
    if chosen and "://" in chosen:  # check the text: Path() would collapse the "//"
        raise UserError("demo writes a fresh SQLite file; give a path, not a URL")
    target = Path(chosen or default_db_path().with_name("demo.db"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    services = _services(ctx, read_only=False, db=str(target))
    started = time.perf_counter()
    result = demo_mod.seed(services.store, services.playbook, services.clock.today(), n_deals, seed)
    click.echo(f"Seeded {target}: {result.deals} deals, {result.changes} history rows, "
               f"{result.activities} activities in {time.perf_counter() - started:.1f}s", err=True)
    if not no_tui:
        sys.exit(run_tui(services))


@main.group()
def playbook() -> None:
    """Show, copy or validate a playbook."""


@playbook.command("show")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.pass_context
def playbook_show(ctx: click.Context, path: Path | None) -> None:
    """Print the playbook in use (or the one at PATH) as a readable summary."""
    from inspector.playbook import PlaybookError
    from inspector.services import resolve_playbook

    try:
        pb = resolve_playbook(path or ctx.find_root().obj["playbook"])
    except PlaybookError as exc:
        raise UserError(f"{exc.source}: {exc.problems[0]}")
    out = [f"{pb.name} (version {pb.version})", "", "Stages (exit evidence):"]
    for s in pb.stages:
        ev = ", ".join(pb.evidence_by_key[k].label for k in s.exit_evidence) or "-"
        out.append(f"  {s.label:<18} {s.probability:>3}%  aging {s.aging_limit_days:>2}d  {ev}")
    out += ["", "Forecast categories: " + ", ".join(c.label for c in pb.forecast_categories)]
    out += ["", "Commit criteria:"] + [f"  - {c.label}" for c in pb.commit_criteria]
    out += ["", "Manager inspection questions:"]
    out += [f"  {i}. {q.text}" for i, q in enumerate(pb.questions, 1)]
    out += ["", "Risk types: " + ", ".join(r.label for r in pb.risk_types)]
    out += ["", "Deal desk triggers:"] + [f"  - {t.label} -> {t.approver}" for t in pb.deal_desk_triggers]
    out += ["", "Closed-won requirements: " + ", ".join(r.label for r in pb.closed_won_requirements)]
    out += ["Finance fields: " + ", ".join(r.label for r in pb.finance_fields)]
    out += ["", "Handoff tiers:"] + [f"  - {t.label}: {t.requirement}" for t in pb.handoff_tiers]
    out += ["", "CS acceptance: " + ", ".join(r.label for r in pb.acceptance_checklist)]
    out += ["Closed-lost reasons: " + ", ".join(r.label for r in pb.closed_lost_reasons)]
    th = pb.thresholds
    out += ["", f"Thresholds: next step stale after {th.stale_next_step_days}d, quiet after "
            f"{th.stale_activity_days}d, progress window {th.progress_window_days}d, "
            f"push warning at {th.close_date_push_warn}, large deal {th.large_deal_amount:,}"]
    click.echo("\n".join(out))


@playbook.command("init")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def playbook_init(path: Path, force: bool) -> None:
    """Write an editable copy of the default playbook to PATH."""
    import tomli_w

    from inspector.playbook import load_playbook, playbook_to_dict

    if path.exists() and not force:
        raise UserError(f"{path}: already exists (use --force to overwrite)")
    data = playbook_to_dict(load_playbook())
    header = ("# Inspector playbook (edit me). Validate with: inspector playbook check "
              f"{path.name}\n# Stage keys, evidence keys and question keys are referenced "
              "elsewhere in this file.\n\n")
    try:
        path.write_text(header + tomli_w.dumps(data), encoding="utf-8")
    except OSError as exc:
        raise RuntimeFailure(f"{path}: cannot write ({exc.strerror})")
    click.echo(f"Wrote {path}")


@playbook.command("check")
@click.argument("path", type=click.Path(path_type=Path))
def playbook_check(path: Path) -> None:
    """Validate the playbook at PATH; each problem names its key path (exit 2 if any)."""
    from inspector.playbook import PlaybookError, load_playbook

    try:
        pb = load_playbook(path)
    except PlaybookError as exc:
        for problem in exc.problems:
            click.echo(f"{exc.source}: {problem}", err=True)
        sys.exit(2)
    click.echo(f"{path}: ok ({len(pb.stages)} stages, {len(pb.questions)} questions, "
               f"{len(pb.evidence)} evidence items)")


@main.group()
def db() -> None:
    """Store maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply schema migrations (also done on every start)."""
    services = _services(ctx, read_only=False)
    click.echo(f"{services.db_label}: schema is current")


@db.command("info")
@click.pass_context
def db_info(ctx: click.Context) -> None:
    """Where the store is and what it holds."""
    from inspector.storage.db import current_revision

    services = _services(ctx)
    click.echo(f"store: {services.db_label}\nschema: {current_revision(services.store.engine)}\n"
               f"deals: {services.store.deal_count()}")


@main.group()
def export() -> None:
    """Export saved inspections (Markdown report or CSV)."""


@export.command("session")
@click.argument("session_id", metavar="ID", type=int)
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md", show_default=True,
              help="Markdown report or one CSV row per deal.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (atomically) instead of stdout.")
@click.pass_context
def export_session(ctx: click.Context, session_id: int, fmt: str, output: Path | None) -> None:
    """Export inspection session ID with its audit anchor (event count, chain head)."""
    import os
    import re
    import tempfile

    from inspector.exports import session_csv, session_markdown
    from inspector.inspect import session_summary
    from inspector.storage.inspections import Inspections, NotFound

    services = _services(ctx, read_only=True)
    insp = Inspections(services.store)
    try:
        summary = session_summary(services.store, insp, services.playbook, session_id,
                                  services.clock.today())
    except NotFound:
        raise UserError(f"no inspection session {session_id}")
    body = (session_markdown(summary, services.playbook) if fmt == "md"
            else session_csv(summary, services.playbook))
    if output is None:
        if sys.stdout.isatty():  # outside text must not drive the terminal (escape sequences)
            body = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]",
                          "\ufffd", body)
        click.echo(body, nl=False)
        return
    target = output.expanduser()
    data = body.encode("utf-8-sig" if fmt == "csv" else "utf-8")  # BOM: Excel reads CSV as UTF-8
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    except OSError as exc:
        raise RuntimeFailure(f"{target}: cannot write ({exc.strerror})")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o777)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RuntimeFailure(f"{target}: cannot write ({exc.strerror})")
    click.echo(f"Wrote {target} (session {session_id}, {len(summary.rows)} deals, "
               f"{summary.event_count} events)", err=True)


@main.group()
def log() -> None:
    """The hash-chained inspection event log."""


@log.command("verify")
@click.pass_context
def log_verify(ctx: click.Context) -> None:
    """Check the event log's hash chain: exit 0 if intact, 1 naming the first broken event."""
    from inspector.storage.inspections import Inspections

    services = _services(ctx, read_only=True)
    report = Inspections(services.store).chain()
    if not report.ok:
        click.echo(f"broken at event {report.broken_seq}: {report.problem}", err=True)
        sys.exit(1)
    click.echo(f"ok: {report.count} events, head {report.head}")


# CRM commands (sync, auth, push) live in cli_crm; each imports what it needs when run.
from inspector.cli_crm import register as _register_crm  # noqa: E402

_register_crm(main)

if __name__ == "__main__":  # pragma: no cover
    main()
