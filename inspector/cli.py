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
    result = demo_mod.seed(services.store, services.playbook, services.clock.today(), n_deals, seed,
                           history_weeks=8)  # past weeks of finished inspections
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
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "json"]), default="md", show_default=True,
              help="Markdown report, one CSV row per deal, or JSON.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (atomically) instead of stdout.")
@click.pass_context
def export_session(ctx: click.Context, session_id: int, fmt: str, output: Path | None) -> None:
    """Export inspection session ID with its audit anchor (event count, chain head)."""
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
    if fmt == "json":
        from inspector.reports import session_json

        body = session_json(summary, services.playbook)
    _emit(body, output, fmt, f"session {session_id}, {len(summary.rows)} deals, {summary.event_count} events")


def _emit(body: str, output: Path | None, fmt: str, what: str) -> None:
    """Print `body` (terminal-safe) or write it atomically to `output` (CSV with a BOM)."""
    import re

    from inspector.reports import write_atomically

    if output is None:
        if sys.stdout.isatty():  # outside text must not drive the terminal (escape sequences)
            body = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]",
                          "\ufffd", body)
        click.echo(body, nl=False)
        return
    target = output.expanduser()
    try:
        write_atomically(target, body.encode("utf-8-sig" if fmt == "csv" else "utf-8"))
    except OSError as exc:
        raise RuntimeFailure(f"{target}: cannot write ({exc.strerror})")
    click.echo(f"Wrote {target} ({what})", err=True)


@export.command("log")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "md"]), default="csv", show_default=True,
              help="One CSV row per event, JSON, or a Markdown table.")
@click.option("--session", "session_id", type=int, help="Only the events of this session.")
@click.option("--deal", "deal_id", type=int, help="Only the events about this deal.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (atomically) instead of stdout.")
@click.pass_context
def export_log(ctx: click.Context, fmt: str, session_id: int | None, deal_id: int | None,
               output: Path | None) -> None:
    """Export the inspection event log with its audit anchor (event count, chain head)."""
    from inspector.reports import LOG_RENDERERS, log_export

    services = _services(ctx, read_only=True)
    x = log_export(services.store, session_id=session_id, deal_id=deal_id)
    _emit(LOG_RENDERERS[fmt](x), output, fmt, f"{len(x.events)} events, chain of {x.event_count}")


@main.group()
def log() -> None:
    """The hash-chained inspection event log."""


@log.command("verify")
@click.option("--against", "against", type=click.Path(dir_okay=False, path_type=Path),
              help="An export (report, session or log; md/csv/json/html): check that the chain it "
                   "recorded is an unchanged prefix of the current log.")
@click.pass_context
def log_verify(ctx: click.Context, against: Path | None) -> None:
    """Check the event log's hash chain: exit 0 if intact, 1 naming the first broken event."""
    from inspector.storage.inspections import Inspections

    services = _services(ctx, read_only=True)
    if against is not None:
        from inspector.reports import AnchorError, read_anchor, verify_prefix

        try:
            count, head = read_anchor(against)
        except AnchorError as exc:
            raise UserError(str(exc))
        check = verify_prefix(services.store, count, head)
        if not check.ok:
            click.echo(f"{against}: {check.message}", err=True)
            sys.exit(1)
        click.echo(f"{against}: {check.message} (now {check.current_count} events, head {check.current_head})")
        return
    report = Inspections(services.store).chain()
    if not report.ok:
        click.echo(f"broken at event {report.broken_seq}: {report.problem}", err=True)
        sys.exit(1)
    click.echo(f"ok: {report.count} events, head {report.head}")


def _scope(ctx: click.Context, services, period: str, team: str | None, manager: str | None):
    from inspector.metrics import Scope, parse_period

    today = services.clock.today()
    try:
        start, end, label = parse_period(period, today)
    except ValueError as exc:
        raise UserError(str(exc))
    return Scope(start, end, today, team or None, manager or None, label)


@main.command()
@click.option("--period", required=True, metavar="PERIOD",
              help="2026-11, 2026-Q4, 2026, 2026-10-01..2026-10-31 or last-8-weeks.")
@click.option("--team", help="Only this team.")
@click.option("--manager", help="Only this manager's deals and sessions.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "json", "html"]), default="md",
              show_default=True, help="Markdown, long-format CSV, JSON, or HTML with charts.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (atomically) instead of stdout.")
@click.pass_context
def report(ctx: click.Context, period: str, team: str | None, manager: str | None, fmt: str,
           output: Path | None) -> None:
    """The monthly governance pack: slippage, aging, commit conversion, handoff, finance, ..."""
    from inspector.reports import RENDERERS, build_report

    services = _services(ctx, read_only=True)
    scope = _scope(ctx, services, period, team, manager)
    rep = build_report(services.store, services.playbook, scope, services.clock.now())
    _emit(RENDERERS[fmt](rep), output, fmt, f"{scope.describe()}, {rep.event_count} events")


@main.command()
@click.option("--manager", help="Only this manager's sessions.")
@click.option("--team", help="Only this team.")
@click.option("--rep", help="Only this rep's deals.")
@click.option("--weeks", metavar="FROM..TO", help="Week range, e.g. 2026-10-05..2026-11-23 (Mondays).")
@click.option("--verdict", type=click.Choice(["overstated", "supported", "understated", "not_credible",
                                              "at_risk", "realistic"]), help="A stage or close-date verdict.")
@click.option("--risk", "risk_type", help="Risks of this type recorded in the inspection.")
@click.option("--exception", type=click.Choice(["any", "commit", "handoff", "category_change"]),
              help="Only inspections with this kind of exception.")
@click.option("--sessions", "sessions_only", is_flag=True, help="List sessions, not inspections.")
@click.option("--deal", "deal_id", type=int, help="One deal's verdict history across weeks.")
@click.option("--exceptions", "handoff_exceptions", is_flag=True,
              help="Open handoff exceptions across deals (missing item, owner, due date, risk), earliest due "
                   "first; --team/--manager narrow them.")
@click.option("--feedback", "feedback", is_flag=True,
              help="Post-sale feedback by category, repeated categories first; --team/--manager/--weeks "
                   "narrow it.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100000))
@click.pass_context
def review(ctx: click.Context, manager, team, rep, weeks, verdict, risk_type, exception, sessions_only,
           deal_id, handoff_exceptions, feedback, limit) -> None:
    """RevOps review of saved inspections (what the Review screen shows), as text."""
    from datetime import date as _date
    from datetime import timedelta

    from inspector import review as rv
    from inspector.text import one_line

    services = _services(ctx, read_only=True)
    wf = wt = None
    if weeks:
        try:
            a, _sep, b = weeks.partition("..")
            wf = _date.fromisoformat(a) if a else None
            wt = _date.fromisoformat(b) if b else None
        except ValueError:
            raise UserError(f"--weeks {weeks!r}: expected FROM..TO as YYYY-MM-DD..YYYY-MM-DD")
    pb = services.playbook
    out: list[str] = []
    if handoff_exceptions or feedback:
        today = services.clock.today()
        if handoff_exceptions:
            rows = rv.handoff_exceptions(services.store, today, team=team, manager=manager)
            out.append(f"Open handoff exceptions: {len(rows)}, {sum(x.overdue for x in rows)} overdue "
                       f"(as of {today.isoformat()})")
            for x in rows[:limit]:
                late = f"OVERDUE {x.overdue_days}d" if x.overdue else ""
                out.append(f"{x.due_date.isoformat() if x.due_date else 'no date':<10}  {late:<12} "
                           f"#{x.deal_id:<6} {one_line(x.deal)[:40]:<40} {one_line(x.missing_item)[:32]:<32} "
                           f"{one_line(x.owner or 'no owner')[:20]:<20} {x.age_days:>4}d open  "
                           f"risk: {one_line(x.risk) or '-'}")
            if len(rows) > limit:
                out.append(f"... and {len(rows) - limit} more (--limit)")
        if feedback:
            until = wt + timedelta(days=7) if wt else None
            patterns = rv.feedback_pattern_rows(services.store, pb, since=wf, until=until, team=team,
                                                manager=manager)
            if out:
                out.append("")
            out.append(f"Post-sale feedback: {sum(p.items for p in patterns)} items in {len(patterns)} "
                       f"categories, {sum(p.repeated for p in patterns)} repeated")
            for p in patterns[:limit]:
                deals = ", ".join(f"#{d.deal_id} {one_line(d.deal)[:30]}" + (f" ({d.items})" if d.items > 1 else "")
                                  for d in p.deals[:5]) + (f", +{len(p.deals) - 5} more" if len(p.deals) > 5 else "")
                count = (f"{p.items} item{'s' if p.items != 1 else ''}, "
                         f"{len(p.deals)} deal{'s' if len(p.deals) != 1 else ''}")
                out.append(f"{'REPEATED' if p.repeated else '':<8}  {count:<20} {one_line(p.label)[:44]:<44}  {deals}")
        click.echo("\n".join(out))
        return
    if deal_id is not None:
        try:
            h = rv.deal_history(services.store, pb, deal_id)
        except KeyError:
            raise UserError(f"no deal {deal_id}")
        out.append(f"{one_line(h.name)} (#{h.deal_id}) · {one_line(h.owner)} · {one_line(h.team)} · "
                   f"{h.status} · {pb.stage_label(h.stage)}")
        out += [f"  ! {p}" for p in h.patterns] or ["  (nothing notable)"]
        out.append("Week        Stage              Verdict      Close date  Verdict       Rep call   Manager    Exception")
        for w in h.weeks:
            out.append(f"{w.week_of.isoformat()}  {pb.stage_label(w.stage_at)[:18]:<18} {w.stage_verdict or '-':<12} "
                       f"{w.close_date_at.isoformat() if w.close_date_at else '-':<11} "
                       f"{w.close_date_verdict or '-':<13} {pb.category_label(w.rep_category)[:10]:<10} "
                       f"{pb.category_label(w.forecast_call)[:10] or '-':<10} {one_line(w.commit_exception)}")
        out.append("Changes:")
        out += [f"  {c.at.date().isoformat()} {c.field}: {one_line(c.old) or '-'} -> {one_line(c.new) or '-'}"
                for c in h.changes]
        click.echo("\n".join(out))
        return
    filters = rv.ReviewFilters(manager=manager, team=team, rep=rep, week_from=wf, week_to=wt,
                               verdict=verdict, risk_type=risk_type, exception=exception)
    if sessions_only:
        for s in rv.list_sessions(services.store, filters, limit=limit):
            out.append(f"#{s.id:<5} {s.week_of.isoformat()}  {one_line(s.team)[:26]:<26} {one_line(s.manager)[:24]:<24} "
                       f"{s.status:<9} {s.inspected}/{s.deals} inspected, {s.overstated} overstated, "
                       f"{s.commit_exceptions} commit exceptions, {s.risks} risks")
    else:
        for f in rv.list_findings(services.store, filters, limit=limit):
            out.append(f"{f.week_of.isoformat()}  #{f.deal_id:<6} {one_line(f.deal)[:40]:<40} {one_line(f.rep)[:18]:<18} "
                       f"{f.stage_verdict or f.status:<11} {f.close_date_verdict or '-':<12} "
                       f"{f.rep_category or '-'}->{f.forecast_call or '-'}"
                       + (f"  exception: {one_line(f.commit_exception)}" if f.commit_exception else ""))
    click.echo("\n".join(out) if out else f"No inspections match ({filters.describe()})")


# -- closed-won handoff packet and closed-lost (issue 6) -------------------------------------------
def _print_or_write(body: str, output: Path | None, what: str) -> None:
    """Print `body` terminal-safe, or write it atomically to `output`."""
    _emit(body, output, "md", what)


def _handoff_deal(services, ref: str) -> int:
    from inspector.storage.handoffs import Handoffs
    from inspector.storage.inspections import NotFound

    try:
        return Handoffs(services.store, services.playbook).resolve(ref)
    except (NotFound, ValueError) as exc:
        raise UserError(str(exc))


@main.command("handoff")
@click.argument("deal_ref", metavar="DEAL")
@click.option("--format", "fmt", type=click.Choice(["md"]), default="md", show_default=True,
              help="Markdown handoff packet with the closed-won readiness review.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (atomically) instead of stdout.")
@click.pass_context
def handoff_packet(ctx: click.Context, deal_ref: str, fmt: str, output: Path | None) -> None:
    """Export the handoff packet of DEAL (a deal id or external id)."""
    from inspector.handoff import packet_markdown, review
    from inspector.storage.handoffs import Handoffs

    del fmt  # Markdown is the one format
    services = _services(ctx, read_only=True)
    deal_id = _handoff_deal(services, deal_ref)
    today = services.clock.today()
    rv = review(services.playbook, Handoffs(services.store, services.playbook).record(deal_id, today), today)
    _print_or_write(packet_markdown(services.playbook, rv, generated_at=services.clock.now()), output,
                    f"handoff packet of deal {deal_id}: {rv.verdict_text}")


@main.command("close-lost")
@click.argument("deal_ref", metavar="DEAL")
@click.option("--reason", metavar="KEY", help="One specific reason from the playbook (see `playbook show`).")
@click.option("--detail", default="", help="What happened (required for reasons such as 'other').")
@click.pass_context
def close_lost(ctx: click.Context, deal_ref: str, reason: str | None, detail: str) -> None:
    """Close DEAL (id or external id) as lost with one specific reason; shows its earlier inspections."""
    from inspector.handoff import lost_reason_problem, risks_at_close
    from inspector.storage.handoffs import DealClosed, Handoffs
    from inspector.storage.inspections import StaleEdit

    if ctx.find_root().obj["read_only"]:
        raise UserError("close-lost writes to the store; drop --read-only")
    services = _services(ctx, read_only=False)
    pb = services.playbook
    problem = lost_reason_problem(pb, reason, detail)
    if problem:
        raise UserError(problem)
    deal_id = _handoff_deal(services, deal_ref)
    handoffs = Handoffs(services.store, pb)
    try:
        handoffs.close_lost(deal_id, reason, detail, actor=services.actor, now=services.clock.now(),
                            today=services.clock.today())
    except (DealClosed, StaleEdit, ValueError) as exc:
        raise UserError(str(exc))
    rec = handoffs.record(deal_id, services.clock.today())
    label = {r.key: r.label for r in pb.closed_lost_reasons}.get(reason or "", reason)
    out = [f"Closed lost: {rec.external_id or deal_id} {rec.deal.row.name}: {label}"
           + (f" ({detail.strip()})" if detail.strip() else "")]
    if rec.inspections:
        out.append(f"Earlier inspections ({len(rec.inspections)}):")
        for i in rec.inspections:
            verdict = i.stage_verdict or "no verdict"
            if i.supported_stage:
                verdict += f" (evidence supports {pb.stage_label(i.supported_stage)})"
            out.append(f"  week of {i.week_of.isoformat() if i.week_of else '?'}, {i.manager}: stage "
                       f"{pb.stage_label(i.stage_at)} {verdict}; rep {pb.category_label(i.rep_category) or '-'}, "
                       f"manager {pb.category_label(i.forecast_call) or '-'}"
                       + (f"; commit exception: {i.commit_exception}" if i.commit_exception else ""))
    else:
        out.append("Earlier inspections: none")
    open_risks = [f"{pb.risk_label.get(r.type, r.type)} ({r.severity})"
                  for r, state in risks_at_close(rec) if state == "open at close"]
    out.append("Risks open at close: " + (", ".join(open_risks) if open_risks else "none"))
    from inspector.text import display_safe  # CRM text must not drive the terminal

    click.echo(display_safe("\n".join(out)))


# CRM commands (sync, auth, push) live in cli_crm; each imports what it needs when run.
from inspector.cli_crm import register as _register_crm  # noqa: E402

_register_crm(main)
from inspector.cli_import import register as _register_import  # noqa: E402

_register_import(main)

if __name__ == "__main__":  # pragma: no cover
    main()
