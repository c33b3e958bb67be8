"""The monthly governance pack and the event-log exports (Textual-free).

`build_report` computes the metrics of the seed article's governance agenda for a period and
scope; `report_markdown/_csv/_json/_html` render it. Every export carries the audit anchor
(event count and chain head), and `verify_against` later proves that the exported prefix of
the hash chain is unchanged (AUD-03).

Outside text (names, reasons, notes) is literal data: Markdown cells keep the table intact
(`md_cell`), HTML escapes everything (`html.escape`), CSV text cells are neutralised against
formula injection while numbers stay numbers (EXP-01/02).
"""
from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import text

from inspector.exports import md_cell, md_line, neutralise
from inspector.metrics import (REPORT_KEYS, DrillDeal, MetricResult, Scope, compute_with_top,
                               pct_text)
from inspector.money import format_compact
from inspector.playbook import Playbook
from inspector.review import FeedbackPattern, HandoffExceptionRow, feedback_pattern_rows, handoff_exceptions
from inspector.storage.events import GENESIS, event_hash, read_ts, utc_z, verify_chain
from inspector.storage.repo import Store

AGENDA = (
    ("Forecast slippage", ("slippage", "forecast_accuracy")),
    ("Stage aging", ("stage_aging",)),
    ("Commit conversion", ("commit_conversion", "commit_exceptions", "call_differences")),
    ("Closed-won handoff completeness", ("handoff",)),
    ("Missing finance fields", ("finance",)),
    ("Onboarding delays tied to sales handoff", ("kickoff",)),
    ("Closed-lost reasons", ("lost_reasons",)),
    ("Post-sale risks from promises made", ("promise_risk", "implementation_risk")),
    ("Inspection quality", ("coverage", "verdict_accuracy", "no_progress", "deal_desk",
                            "pipeline_by_stage")),
)
#: Top offenders listed under a metric: (metric, row key, heading).
OFFENDERS = (("slippage", "3+", "Deals pushed three times or more"),
             ("slippage", "2", "Deals pushed twice"),
             ("stage_aging", None, "Longest in stage"),
             ("no_progress", None, "Most activity without progress"),
             ("commit_exceptions", None, "Commit calls without the criteria"))
AMOUNT_COLUMNS = frozenset({"Amount", "Called amount", "Won amount", "Amount called"})


#: Issue 6: open handoff exceptions follow the handoff metric, repeated feedback the promise metric.
EXCEPTIONS_HEADING = "Open handoff exceptions"
FEEDBACK_HEADING = "Repeated post-sale feedback categories"
EXCEPTIONS_SHOWN = 50


@dataclass
class Report:
    scope: Scope
    generated_at: datetime
    metrics: dict[str, MetricResult]
    offenders: dict[str, list[DrillDeal]] = field(default_factory=dict)
    chain_head: str = GENESIS
    event_count: int = 0
    chain_ok: bool = True
    #: open now (as of the scope's today), in the team/manager scope, earliest due first
    open_exceptions: list[HandoffExceptionRow] = field(default_factory=list)
    #: feedback recorded in the period, by category (repeated first)
    feedback: list[FeedbackPattern] = field(default_factory=list)

    @property
    def repeated_feedback(self) -> list[FeedbackPattern]:
        return [p for p in self.feedback if p.repeated]


def build_report(store: Store, pb: Playbook, scope: Scope, now: datetime, *,
                 offenders: int = 10) -> Report:
    metrics, lists = compute_with_top(store, pb, scope, REPORT_KEYS, [(k, b) for k, b, _h in OFFENDERS],
                                      limit=offenders)
    rep = Report(scope, now, metrics)
    for (_key, _bucket, heading), deals in zip(OFFENDERS, lists):
        if deals:
            rep.offenders[heading] = deals
    rep.open_exceptions = handoff_exceptions(store, scope.today, team=scope.team, manager=scope.manager)
    rep.feedback = feedback_pattern_rows(store, pb, since=scope.start, until=scope.end, team=scope.team,
                                         manager=scope.manager)
    with store.engine.connect() as conn:
        chain = verify_chain(conn)
    rep.chain_head, rep.event_count, rep.chain_ok = chain.head, chain.count, chain.ok
    return rep


def anchor_line(count: int, head: str) -> str:
    """The sentence every export carries; `verify_against` finds it again."""
    return f"Event log: {count} events, chain head {head}"


# -- formatting ------------------------------------------------------------------------------------
def cell_text(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column in AMOUNT_COLUMNS and isinstance(value, int):
        return format_compact(value, "USD").lstrip("$")
    if isinstance(value, float):
        if column.endswith("%") or column in ("Share", "Coverage", "Missing %", "Slipped or lost"):
            return pct_text(value)
        return f"{value:.1f}"
    return str(value)


def _scope_lines(rep: Report) -> list[str]:
    s = rep.scope
    return [f"Period: {s.label or s.start.isoformat()} ({s.start.isoformat()} to {s.last_day.isoformat()})",
            f"Team: {s.team or 'all teams'}" + (f" · Manager: {s.manager}" if s.manager else ""),
            f"Generated: {utc_z(rep.generated_at)[:16].replace('T', ' ')} UTC (as of {s.today.isoformat()})",
            "Amounts add all currencies at face value (no conversion)."]


def report_markdown(rep: Report) -> str:
    s = rep.scope
    out = [f"# Monthly governance review: {md_line(s.label)}", ""]
    out += [f"- {md_line(line)}" for line in _scope_lines(rep)] + [""]
    out += ["## Agenda", ""] + [f"{i}. {title}" for i, (title, _k) in enumerate(AGENDA, 1)] + [""]
    for i, (title, keys) in enumerate(AGENDA, 1):
        out += [f"## {i}. {title}", ""]
        for key in keys:
            m = rep.metrics[key]
            out += [f"### {m.title}", "", f"*{m.definition}*", "", f"**{md_line(m.headline)}**", ""]
            if m.rows:
                out.append("| " + " | ".join(m.columns) + " |")
                out.append("|" + "|".join("---" for _ in m.columns) + "|")
                for row in m.rows:
                    out.append("| " + " | ".join(md_cell(cell_text(c, v)) for c, v in zip(m.columns, row)) + " |")
                out.append("")
            for heading, deals in rep.offenders.items():
                if any(k == key for k, _b, h in OFFENDERS if h == heading):
                    out += [f"**{heading}**", "", "| Deal | Rep | Team | Stage | Amount | Detail |",
                            "|---|---|---|---|---|---|"]
                    out += ["| " + " | ".join(md_cell(x) for x in (
                        f"{d.name} (#{d.deal_id})", d.owner, d.team, d.stage,
                        format_compact(d.amount_minor, d.currency), d.detail)) + " |" for d in deals]
                    out.append("")
            if key == "handoff":
                out += _exceptions_markdown(rep)
            elif key == "promise_risk":
                out += _feedback_markdown(rep)
    out += ["---", "", anchor_line(rep.event_count, rep.chain_head)
            + ("" if rep.chain_ok else " (WARNING: the chain does not verify)"), ""]
    return "\n".join(out)


def _exception_cells(x: HandoffExceptionRow) -> tuple[str, ...]:
    return (f"{x.deal} (#{x.deal_id})", x.missing_item, x.owner or "no owner",
            x.due_date.isoformat() if x.due_date else "no date",
            f"{x.overdue_days} days" if x.overdue else "-", x.risk or "-", f"{x.age_days} days")


EXCEPTION_HEADERS = ("Deal", "Missing item", "Owner", "Due", "Overdue", "Risk", "Open for")
FEEDBACK_HEADERS = ("Category", "Items", "Deals", "On deals")


def _feedback_cells(p: FeedbackPattern) -> tuple[str, ...]:
    return (p.label, str(p.items), str(len(p.deals)),
            ", ".join(f"{d.deal} (#{d.deal_id})" for d in p.deals[:5])
            + (f", +{len(p.deals) - 5} more" if len(p.deals) > 5 else ""))


def _md_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    return (["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
            + ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows] + [""])


def _exceptions_markdown(rep: Report) -> list[str]:
    xs = rep.open_exceptions
    out = [f"**{EXCEPTIONS_HEADING}** ({len(xs)} open as of {rep.scope.today.isoformat()}, "
           f"{sum(x.overdue for x in xs)} overdue; earliest due first)", ""]
    if not xs:
        return out + ["None open.", ""]
    out += _md_table(EXCEPTION_HEADERS, [_exception_cells(x) for x in xs[:EXCEPTIONS_SHOWN]])
    if len(xs) > EXCEPTIONS_SHOWN:
        out += [f"... and {len(xs) - EXCEPTIONS_SHOWN} more (`inspector review --exceptions`)", ""]
    return out


def _feedback_markdown(rep: Report) -> list[str]:
    reps = rep.repeated_feedback
    out = [f"**{FEEDBACK_HEADING}** (recorded in the period more than once)", ""]
    if not reps:
        return out + ["No feedback category repeated in the period.", ""]
    return out + _md_table(FEEDBACK_HEADERS, [_feedback_cells(p) for p in reps])


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.1f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))
    return str(v)


REPORT_CSV_COLUMNS = ("period_start", "period_end", "team", "manager", "metric", "metric_title",
                      "definition", "row_key", "row_label", "measure", "value", "chain_head",
                      "event_count")


def report_csv(rep: Report) -> str:
    """Long format (one value per line) for spreadsheets and BI tools.

    Numbers are plain numbers (never neutralised); amounts are in currency units with two
    decimals (`-1200.00`), all currencies at face value. Text cells are neutralised (EXP-01).
    """
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(REPORT_CSV_COLUMNS)
    s = rep.scope
    for key in REPORT_KEYS:
        m = rep.metrics[key]
        for row, rk in zip(m.rows, m.row_keys):
            for col, val in zip(m.columns[1:], row[1:]):
                number = isinstance(val, (int, float)) and not isinstance(val, bool)
                cells = [s.start.isoformat(), s.last_day.isoformat(), s.team or "", s.manager or "", key,
                         m.title, m.definition, rk, str(row[0]), col]
                if number and col in AMOUNT_COLUMNS:  # minor units to currency units, as a number
                    value = f"{'-' if val < 0 else ''}{abs(int(val)) // 100}.{abs(int(val)) % 100:02d}"
                else:
                    value = _num(val) if number else neutralise("" if val is None else str(val))
                w.writerow([neutralise(c) for c in cells] + [value, rep.chain_head, str(rep.event_count)])
    return buf.getvalue()


def _jsonable(v: Any) -> Any:
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def report_json(rep: Report) -> str:
    s = rep.scope
    doc = {
        "report": "governance",
        "period": {"label": s.label, "start": s.start.isoformat(), "end": s.last_day.isoformat()},
        "scope": {"team": s.team, "manager": s.manager, "as_of": s.today.isoformat()},
        "generated_at": utc_z(rep.generated_at),
        "currency_note": "amounts in minor units, all currencies added at face value",
        "agenda": [{"title": t, "metrics": list(k)} for t, k in AGENDA],
        "metrics": [_jsonable(rep.metrics[k].as_dict()) for k in REPORT_KEYS],
        "offenders": {h: [_jsonable(d.__dict__) for d in ds] for h, ds in rep.offenders.items()},
        "open_handoff_exceptions": [_jsonable(asdict(x)) for x in rep.open_exceptions],
        "feedback_patterns": [{"category": p.category, "label": p.label, "items": p.items,
                               "repeated": p.repeated, "deals": [_jsonable(asdict(d)) for d in p.deals]}
                              for p in rep.feedback],
        "chain": {"head": rep.chain_head, "count": rep.event_count, "verified": rep.chain_ok},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# -- HTML with inline SVG charts -----------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #2b6cb0;padding-bottom:.2em;margin-top:2em}
h3{margin-bottom:.2em}.def{color:#555;font-style:italic;margin:.2em 0}.head{font-weight:600}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em}
th{background:#f0f4f8;text-align:left}td.n{text-align:right}.anchor{color:#555;font-family:monospace}
svg{display:block;margin:.5em 0}"""
_COLORS = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096")
e = html.escape


def svg_bars(labels: list[str], values: list[float], *, width: int = 640, unit: str = "") -> str:
    """Horizontal bars, one per label. All text escaped."""
    if not labels:
        return ""
    bar_h, gap, label_w = 18, 6, 220
    top = max([v for v in values if v is not None] + [0]) or 1
    h = len(labels) * (bar_h + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img">']
    for i, (lbl, v) in enumerate(zip(labels, values)):
        y = gap + i * (bar_h + gap)
        w = int((width - label_w - 80) * (v or 0) / top)
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="12">{e(lbl[:40])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" fill="{_COLORS[0]}"/>')
        parts.append(f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{e(_num(v or 0))}{e(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_weekly(series: dict[str, list[tuple[str, float]]], *, width: int = 640, height: int = 180) -> str:
    """Grouped columns per week, one colour per series, with a legend."""
    names = [n for n, pts in series.items() if pts]
    if not names:
        return ""
    weeks = sorted({w for n in names for w, _v in series[n]})
    top = max((v for n in names for _w, v in series[n]), default=0) or 1
    left, bottom, legend = 10, 30, 18
    plot_h = height - bottom - legend
    slot = (width - left) / max(len(weeks), 1)
    bw = max(2, int(slot * 0.8 / len(names)))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for si, n in enumerate(names):
        vals = dict(series[n])
        color = _COLORS[si % len(_COLORS)]
        parts.append(f'<rect x="{left + si * 150}" y="2" width="10" height="10" fill="{color}"/>'
                     f'<text x="{left + si * 150 + 14}" y="11" font-size="11">{e(n)}</text>')
        for wi, wk in enumerate(weeks):
            v = vals.get(wk, 0) or 0
            bh = int(plot_h * v / top)
            x = int(left + wi * slot + si * bw)
            parts.append(f'<rect x="{x}" y="{legend + plot_h - bh}" width="{bw - 1}" height="{max(bh, 0)}" '
                         f'fill="{color}"><title>{e(wk)} {e(n)}: {e(_num(v))}</title></rect>')
    step = max(1, len(weeks) // 8)
    for wi, wk in enumerate(weeks):
        if wi % step == 0:
            parts.append(f'<text x="{int(left + wi * slot)}" y="{height - 8}" font-size="10">{e(wk[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def metric_svg(m: MetricResult) -> str:
    if m.chart == "weekly" and m.series:
        return svg_weekly(m.series)
    if m.rows and m.chart:
        col = m.columns[m.bar_column] if m.bar_column < len(m.columns) else ""
        vals = [float(r[m.bar_column] or 0) if m.bar_column < len(r) and isinstance(r[m.bar_column], (int, float))
                else 0.0 for r in m.rows]
        unit = "%" if col.endswith("%") or col in ("Share", "Coverage", "Slipped or lost") else ""
        return svg_bars([str(r[0]) for r in m.rows], vals, unit=unit)
    return ""


def report_html(rep: Report) -> str:
    s = rep.scope
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>Governance review: {e(s.label)}</title>", f"<style>{_CSS}</style></head><body>",
           f"<h1>Monthly governance review: {e(s.label)}</h1>", "<ul>"]
    out += [f"<li>{e(line)}</li>" for line in _scope_lines(rep)] + ["</ul>", "<h2>Agenda</h2>", "<ol>"]
    out += [f"<li>{e(t)}</li>" for t, _k in AGENDA] + ["</ol>"]
    for i, (title, keys) in enumerate(AGENDA, 1):
        out.append(f"<h2>{i}. {e(title)}</h2>")
        for key in keys:
            m = rep.metrics[key]
            out += [f'<section id="{e(key)}"><h3>{e(m.title)}</h3>', f'<p class="def">{e(m.definition)}</p>',
                    f'<p class="head">{e(m.headline)}</p>', metric_svg(m)]
            if m.rows:
                out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in m.columns) + "</tr>")
                for row in m.rows:
                    out.append("<tr>" + "".join(
                        f'<td class="{"n" if isinstance(v, (int, float)) else ""}">{e(cell_text(c, v))}</td>'
                        for c, v in zip(m.columns, row)) + "</tr>")
                out.append("</table>")
            for heading, deals in rep.offenders.items():
                if any(k == key for k, _b, h in OFFENDERS if h == heading):
                    out.append(f"<h4>{e(heading)}</h4><table><tr><th>Deal</th><th>Rep</th><th>Team</th>"
                               "<th>Stage</th><th>Amount</th><th>Detail</th></tr>")
                    out += ["<tr>" + "".join(f"<td>{e(x)}</td>" for x in (
                        f"{d.name} (#{d.deal_id})", d.owner, d.team, d.stage,
                        format_compact(d.amount_minor, d.currency), d.detail)) + "</tr>" for d in deals]
                    out.append("</table>")
            if key == "handoff":
                out += _exceptions_html(rep)
            elif key == "promise_risk":
                out += _feedback_html(rep)
            out.append("</section>")
    out += ["<hr>", f'<p class="anchor">{e(anchor_line(rep.event_count, rep.chain_head))}'
            + ("" if rep.chain_ok else " (WARNING: the chain does not verify)") + "</p>", "</body></html>", ""]
    return "\n".join(out)


def _html_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    return (["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>"]
            + ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows] + ["</table>"])


def _exceptions_html(rep: Report) -> list[str]:
    xs = rep.open_exceptions
    out = [f'<h4 id="open-handoff-exceptions">{e(EXCEPTIONS_HEADING)} ({len(xs)} open as of '
           f"{e(rep.scope.today.isoformat())}, {sum(x.overdue for x in xs)} overdue)</h4>"]
    if not xs:
        return out + ["<p>None open.</p>"]
    out += _html_table(EXCEPTION_HEADERS, [_exception_cells(x) for x in xs[:EXCEPTIONS_SHOWN]])
    if len(xs) > EXCEPTIONS_SHOWN:
        out.append(f"<p>... and {len(xs) - EXCEPTIONS_SHOWN} more</p>")
    return out


def _feedback_html(rep: Report) -> list[str]:
    out = [f'<h4 id="repeated-feedback">{e(FEEDBACK_HEADING)}</h4>']
    if not rep.repeated_feedback:
        return out + ["<p>No feedback category repeated in the period.</p>"]
    return out + _html_table(FEEDBACK_HEADERS, [_feedback_cells(p) for p in rep.repeated_feedback])


RENDERERS = {"md": report_markdown, "csv": report_csv, "json": report_json, "html": report_html}


# -- the event log export -------------------------------------------------------------------------
LOG_COLUMNS = ("seq", "at", "actor", "kind", "entity", "entity_id", "session_id", "deal_id", "payload",
               "prev_hash", "hash")
LOG_NUMERIC = frozenset({"seq", "entity_id", "session_id", "deal_id"})


@dataclass
class LogExport:
    events: list[dict]
    chain_head: str
    event_count: int
    chain_ok: bool


def log_export(store: Store, *, session_id: int | None = None, deal_id: int | None = None) -> LogExport:
    where, p = [], {}
    if session_id is not None:
        where.append("session_id = :s")
        p["s"] = session_id
    if deal_id is not None:
        where.append("deal_id = :d")
        p["d"] = deal_id
    sql = ("SELECT seq, at, actor, kind, entity, entity_id, session_id, deal_id, payload, prev_hash, hash "
           "FROM inspection_event" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq")
    with store.engine.connect() as conn:
        with conn.begin():
            rows = conn.execute(text(sql), p).fetchall()
            chain = verify_chain(conn)
    events = [dict(zip(LOG_COLUMNS, r)) for r in rows]
    for ev in events:
        ev["at"] = utc_z(read_ts(ev["at"]))
    return LogExport(events, chain.head, chain.count, chain.ok)


def log_csv(x: LogExport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(LOG_COLUMNS + ("chain_head", "event_count"))
    for ev in x.events:
        w.writerow([("" if ev[c] is None else str(ev[c])) if c in LOG_NUMERIC
                    else neutralise("" if ev[c] is None else str(ev[c])) for c in LOG_COLUMNS]
                   + [x.chain_head, str(x.event_count)])
    return buf.getvalue()


def log_json(x: LogExport) -> str:
    doc = {"events": [{**ev, "payload": json.loads(ev["payload"])} for ev in x.events],
           "chain": {"head": x.chain_head, "count": x.event_count, "verified": x.chain_ok}}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def log_markdown(x: LogExport) -> str:
    out = ["# Inspection event log", "", f"{len(x.events)} events exported.", "",
           "| Seq | At (UTC) | Actor | Kind | Entity | Session | Deal | Payload | Hash |",
           "|---|---|---|---|---|---|---|---|---|"]
    for ev in x.events:
        out.append("| " + " | ".join(md_cell(v) for v in (
            ev["seq"], ev["at"][:19].replace("T", " "), ev["actor"], ev["kind"],
            f"{ev['entity']} {ev['entity_id']}", ev["session_id"] or "", ev["deal_id"] or "",
            ev["payload"], ev["hash"][:12])) + " |")
    out += ["", "---", "", anchor_line(x.event_count, x.chain_head)
            + ("" if x.chain_ok else " (WARNING: the chain does not verify)"), ""]
    return "\n".join(out)


LOG_RENDERERS = {"csv": log_csv, "json": log_json, "md": log_markdown}


# -- verify an export against the store ----------------------------------------------------------
class AnchorError(ValueError):
    """The file carries no readable audit anchor."""


_ANCHOR = re.compile(r"(\d+) events, chain head ([0-9a-f]{64})")


def read_anchor(path: Path) -> tuple[int, str]:
    """(event count, chain head) recorded in an export (Markdown, HTML, CSV or JSON)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnchorError(f"{path}: cannot read ({exc.strerror})") from None
    body = raw.decode("utf-8-sig", errors="replace")
    stripped = body.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
            chain = doc.get("chain") or {}
            return int(chain["count"]), str(chain["head"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AnchorError(f"{path}: JSON without a chain head and count") from None
    first = body.split("\n", 1)[0]
    if "chain_head" in first and "event_count" in first:
        reader = csv.DictReader(io.StringIO(body))
        for row in reader:
            try:
                return int(row["event_count"]), str(row["chain_head"])
            except (KeyError, ValueError, TypeError):
                break
        raise AnchorError(f"{path}: CSV without a chain head and event count in its rows")
    found = _ANCHOR.findall(body)
    if not found:
        raise AnchorError(f"{path}: no audit anchor (\"N events, chain head H\") found")
    count, head = found[-1]
    return int(count), head


@dataclass(frozen=True)
class PrefixCheck:
    ok: bool
    count: int
    head: str
    current_count: int
    current_head: str
    message: str


def verify_prefix(store: Store, count: int, head: str) -> PrefixCheck:
    """Is (count, head) a prefix of the current chain, and does the whole chain verify?"""
    if not re.fullmatch(r"[0-9a-f]{64}", head or ""):
        return PrefixCheck(False, count, head, 0, "", "the export's chain head is not a SHA-256 hex digest")
    with store.engine.connect() as conn:
        whole = verify_chain(conn)
        if count == 0:
            at_count = GENESIS
        else:
            prev = GENESIS
            at_count = None
            for r in conn.execute(text(
                    "SELECT seq, at, actor, kind, entity, entity_id, session_id, deal_id, payload, prev_hash, "
                    "hash FROM inspection_event WHERE seq <= :n ORDER BY seq"), {"n": count}):
                seq, at, actor, kind, entity, eid, sid, did, payload, prev_hash, h = r
                if prev_hash != prev or event_hash(seq, read_ts(at), actor, kind, entity, eid, sid, did,
                                                   payload, prev_hash) != h:
                    return PrefixCheck(False, count, head, whole.count, whole.head,
                                       f"event {seq} no longer matches its hash: the log was changed")
                prev = h
                if seq == count:
                    at_count = h
    if at_count is None:
        return PrefixCheck(False, count, head, whole.count, whole.head,
                           f"the export names {count} events but the log holds fewer: events were removed")
    if at_count != head:
        return PrefixCheck(False, count, head, whole.count, whole.head,
                           f"event {count} now hashes to {at_count[:16]}…, the export recorded {head[:16]}…: "
                           "the log was rewritten")
    if not whole.ok:
        return PrefixCheck(False, count, head, whole.count, whole.head,
                           f"the exported prefix is intact, but the log breaks at event {whole.broken_seq}: "
                           f"{whole.problem}")
    added = whole.count - count
    return PrefixCheck(True, count, head, whole.count, whole.head,
                       f"ok: the export's {count} events are unchanged"
                       + (f"; {added} events were added since" if added else "; nothing was added since"))


def write_atomically(target: Path, data: bytes) -> None:
    """Write a file via a temporary file and rename (keeps an existing file's mode)."""
    import os
    import tempfile

    target = target.expanduser()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o777)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def session_json(summary, playbook: Playbook | None = None) -> str:
    """A saved session as JSON (rows as in the CSV export, plus the audit anchor)."""
    s = summary.session
    doc = {"session": {"id": s.id, "manager": s.manager, "team": s.team, "week_of": s.week_of.isoformat(),
                       "status": s.status, "started_at": utc_z(s.started_at) if s.started_at else None,
                       "finished_at": utc_z(s.finished_at) if s.finished_at else None},
           "totals": {"inspected": summary.inspected, "skipped": summary.skipped, "pending": summary.pending,
                      "verdicts": dict(summary.verdicts), "manager_commit_minor": summary.manager_commit,
                      "rep_commit_minor": summary.rep_commit},
           "deals": _jsonable(summary.rows),
           "chain": {"head": summary.chain_head, "count": summary.event_count}}
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
