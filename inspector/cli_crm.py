"""CLI commands for the CRMs: `sync`, `auth login|status|logout`, `push`.

Registered on the main group by inspector/cli.py. Imports happen inside the commands so
`inspector --help` stays fast and Textual-free. Progress goes to stderr; errors are one
line (exit 2: bad usage, credentials or configuration; exit 1: network, server, quota).
Tokens are read from stdin or a no-echo prompt, never from the command line.
"""
from __future__ import annotations

import sys

import click

SOURCE = click.Choice(["hubspot", "salesforce"])


def _cli():
    from inspector import cli

    return cli


def _fail(exc: BaseException) -> None:
    """Turn our known errors into one-line exits."""
    from inspector.secrets import SecretError
    from inspector.sources.http import CrmError

    cli = _cli()
    if isinstance(exc, SecretError):
        raise cli.UserError(str(exc))
    if isinstance(exc, CrmError):
        err = cli.UserError(str(exc)) if exc.exit_code == 2 else cli.RuntimeFailure(str(exc))
        raise err
    raise exc


def register(main: click.Group) -> None:
    main.add_command(sync)
    main.add_command(auth)
    main.add_command(push)


@click.command()
@click.argument("source", type=SOURCE)
@click.option("--full", is_flag=True, help="Re-read every deal (and mark deals gone from the CRM as removed).")
@click.option("--base-url", metavar="URL", help="API base URL (env INSPECTOR_HUBSPOT_URL / INSPECTOR_SALESFORCE_URL).")
@click.pass_context
def sync(ctx: click.Context, source: str, full: bool, base_url: str | None) -> None:
    """Sync deals from HubSpot or Salesforce (incremental unless --full; resumes an interrupted run)."""
    from inspector.sources.connect import open_client
    from inspector.sync import SyncStatus, sync_source

    cli = _cli()
    services = cli._services(ctx, read_only=False)
    try:
        client = open_client(source, services.playbook, base_url=base_url)
    except Exception as exc:  # noqa: BLE001 - SecretError / CrmError(config) become one line
        _fail(exc)
        return
    last_pages = [-1]

    def progress(st: SyncStatus) -> None:
        if st.message:
            click.echo(f"{source}: {st.message}", err=True)
            st.message = ""
        if st.pages != last_pages[0]:
            last_pages[0] = st.pages
            if st.pages:
                click.echo(f"{source}: page {st.pages} committed — {st.line()}", err=True)

    try:
        with client.http:
            status = sync_source(services.store, services.playbook, client, full=full, now=services.clock.now(),
                                 progress=progress)
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
        return
    click.echo(f"{source}: {'full' if status.full else 'incremental'} sync done — {status.line()}")


@click.group()
def auth() -> None:
    """CRM credentials (OS keyring, or an opted-in 0600 file; env vars win)."""


@auth.command("login")
@click.argument("source", type=SOURCE)
@click.option("--insecure-storage", is_flag=True,
              help="No keyring here: keep the token in a 0600 file in the config directory.")
@click.option("--base-url", metavar="URL", help="Remember this API base URL (Salesforce: your instance URL).")
def auth_login(source: str, insecure_storage: bool, base_url: str | None) -> None:
    """Store a token, read from stdin or a no-echo prompt (never an argument)."""
    import getpass

    from inspector import secrets
    from inspector.sources.http import CrmError, check_base_url

    cli = _cli()
    if base_url:
        try:
            base_url = check_base_url(base_url, secrets.LABELS[source])
        except CrmError as exc:
            raise cli.UserError(exc.message)
    try:
        if sys.stdin is not None and not sys.stdin.isatty():
            raw = sys.stdin.readline()
        else:
            raw = getpass.getpass(f"{secrets.LABELS[source]} token (input hidden): ")
        token = secrets.Secret(raw)
        del raw
    except (EOFError, KeyboardInterrupt):
        raise cli.UserError("no token given")
    except secrets.SecretError:
        raise cli.UserError("no token given (pipe it on stdin or type it at the prompt)")
    try:
        if insecure_storage:
            path = secrets.store_in_file(source, token)
            where = f"a 0600 file ({path})"
        else:
            secrets.store_in_keyring(source, token)
            where = "the OS keyring"
        if base_url:
            secrets.write_auth_config(source, base_url=base_url)
    except secrets.SecretError as exc:
        raise cli.UserError(str(exc))
    click.echo(f"{secrets.LABELS[source]} token stored in {where}.", err=True)
    if secrets.env_var(source) in __import__("os").environ:
        click.echo(f"note: {secrets.env_var(source)} is set and takes precedence.", err=True)


@auth.command("status")
def auth_status() -> None:
    """Where each CRM's token and base URL come from (never the token)."""
    from inspector import secrets

    for source in secrets.SOURCES:
        url = secrets.base_url(source) or "(not set)"
        click.echo(f"{secrets.LABELS[source]}: token from {secrets.where(source)}; base URL {url}")


@auth.command("logout")
@click.argument("source", type=SOURCE)
def auth_logout(source: str) -> None:
    """Forget the stored token (keyring entry and token file)."""
    from inspector import secrets

    removed = []
    try:
        import keyring

        keyring.delete_password(secrets.KEYRING_SERVICE, source)
        removed.append("keyring")
    except Exception:  # noqa: BLE001 - nothing stored there, or no keyring
        pass
    path = secrets.token_file(source)
    if path.exists():
        path.unlink()
        removed.append(str(path))
    click.echo(f"{secrets.LABELS[source]}: removed {', '.join(removed) if removed else 'nothing (no stored token)'}",
               err=True)


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would change in the CRM; queue and send nothing.")
@click.option("--source", type=SOURCE, help="Only this CRM.")
@click.option("--session", "session_ids", type=int, multiple=True, metavar="ID",
              help="Use these inspection sessions (default: the latest decisions of finished sessions).")
@click.option("--retry-failed", is_flag=True, help="Re-queue rows that ran out of attempts.")
@click.option("--base-url", metavar="URL", help="API base URL (with --source).")
@click.pass_context
def push(ctx: click.Context, dry_run: bool, source: str | None, session_ids: tuple[int, ...], retry_failed: bool,
         base_url: str | None) -> None:
    """Write the managers' decisions back to the CRM (outbox, preview, batches, conflicts reported)."""
    from inspector import writeback
    from inspector.sources.connect import open_client

    cli = _cli()
    if base_url and not source:
        raise cli.UserError("--base-url needs --source")
    services = cli._services(ctx, read_only=False)
    now = services.clock.now()
    built = writeback.build_outbox(services.store, services.playbook, now=now, source=source,
                                   session_ids=list(session_ids) or None, dry_run=dry_run)
    if retry_failed and not dry_run:
        n = writeback.retry_failed(services.store, source)
        if n:
            click.echo(f"re-queued {n} failed rows", err=True)
    lines = built.lines if dry_run else []
    lines += writeback.preview(services.store, source=source, statuses=("queued",))
    if not lines:
        click.echo("Nothing to push.")
        return
    click.echo(f"{len(lines)} change(s) to push:")
    for line in lines:
        click.echo(f"  {_safe(line.text())}")
    if dry_run:
        click.echo("dry run: nothing was queued or sent.")
        return
    failed = False
    for src in sorted({line.source for line in lines}):
        try:
            client = open_client(src, services.playbook, base_url=base_url if src == source else None)
        except Exception as exc:  # noqa: BLE001
            _fail(exc)
            return
        try:
            with client.http:
                result = writeback.push(services.store, client, now=now, actor=services.actor)
        except Exception as exc:  # noqa: BLE001
            _fail(exc)
            return
        click.echo(result.line())
        for err in result.errors:
            click.echo(f"  {_safe(err)}", err=True)
        failed = failed or result.failed > 0
    if failed:
        raise cli.RuntimeFailure("some changes were not accepted; they stay queued for the next push")


def _safe(text: str) -> str:
    from inspector.text import one_line

    return one_line(text) if sys.stdout.isatty() else text
