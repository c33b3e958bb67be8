"""Exports of a saved inspection session: a Markdown report and a CSV, both Textual-free.

Outside text (deal names, answers, notes) is kept literal. In Markdown it only gets what
keeps the structure intact: table cells escape backslash and `|` and turn line breaks into
`<br>`; headings and list lines fold line breaks into spaces. In CSV every text cell that a
spreadsheet would run as a formula is neutralised with a leading `'` (RELIABILITY.md EXP-01);
numeric columns are never touched (EXP-02).

Every export ends with the audit anchor (event count and chain head), so an export can
later be checked against the store's event log (AUD-03).
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import date, datetime, timezone
from typing import Any

from inspector.inspect import SessionSummary
from inspector.money import format_money, from_minor, minor_per_unit
from inspector.playbook import Playbook

#: Leading characters that make Excel / LibreOffice / Sheets treat a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: CSV columns in order, before the per-question columns and the audit anchor.
BASE_COLUMNS = (
    "session_id", "deal_id", "deal", "account", "rep", "status", "skip_reason", "stage",
    "stage_verdict", "supported_stage", "amount", "currency", "close_date", "close_date_verdict",
    "proposed_close_date", "rep_category", "forecast_call", "commit_criteria_met",
    "commit_exception", "next_step", "next_step_date", "notes", "open_risks", "findings",
)
ANCHOR_COLUMNS = ("chain_head", "event_count")
#: Columns whose values are numbers we produce ourselves: never neutralised.
NUMERIC_COLUMNS = frozenset({"session_id", "deal_id", "amount", "open_risks", "event_count"})


def neutralise(cell: str) -> str:
    """A text cell a spreadsheet will show as text: a leading `'` before formula starters."""
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


# -- shared formatting ---------------------------------------------------------------------
def _iso(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _yes_no(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return ""


def amount_text(minor: int, currency: str) -> str:
    """Minor units as a plain decimal string in major units: 120050 USD -> "1200.50"."""
    places = 0 if minor_per_unit(currency or "USD") == 1 else 2
    return f"{from_minor(minor, currency or 'USD'):.{places}f}"


# -- Markdown ------------------------------------------------------------------------------
def md_cell(value: Any) -> str:
    """Outside text for a Markdown table cell: literal, but it cannot end or split the row."""
    s = "" if value is None else str(value)
    s = s.replace("\\", "\\\\").replace("|", "\\|")
    return s.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def md_line(value: Any) -> str:
    """Outside text for a heading or list line: line breaks folded into spaces."""
    s = "" if value is None else str(value)
    return " ".join(s.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return out


def _currencies(summary: SessionSummary) -> list[str]:
    seen = Counter(r["currency"] for r in summary.rows if r.get("currency"))
    return [c for c, _n in seen.most_common()]


def _bucket_totals_by_currency(summary: SessionSummary, pb: Playbook) -> dict[str, dict[str, int]]:
    """currency -> {manager_commit, rep_commit, manager_best_case, rep_best_case} (footnote)."""
    bucket = {c.key: c.bucket for c in pb.forecast_categories}
    out: dict[str, dict[str, int]] = {}
    for r in summary.rows:
        t = out.setdefault(r["currency"] or "?", Counter())
        call = r["forecast_call"] or r["rep_category"]
        for who, cat in (("rep", r["rep_category"]), ("manager", call)):
            b = bucket.get(cat)
            if b in ("commit", "best_case"):
                t[f"{who}_{b}"] += r["amount_minor"]
    return out


def session_markdown(summary: SessionSummary, playbook: Playbook) -> str:
    """The session as a report a sales manager or RevOps analyst reads (GitHub Markdown)."""
    pb = playbook
    s = summary.session
    currencies = _currencies(summary)
    cur = currencies[0] if currencies else "USD"
    mixed = len(currencies) > 1
    mark = "[^currencies]" if mixed else ""

    def money(minor: int) -> str:
        return format_money(minor, cur)

    total = summary.inspected + summary.skipped + summary.pending
    out = [f"# Pipeline inspection: {md_line(s.team) or 'all teams'}", ""]
    out += [f"- **Manager:** {md_line(s.manager)}",
            f"- **Week of:** {s.week_of.isoformat()}",
            f"- **Status:** {s.status}",
            f"- **Started:** {_when(s.started_at)}",
            f"- **Finished:** {_when(s.finished_at) if s.finished_at else 'not finished'}", ""]

    out += ["## Headline", ""]
    out.append(f"- **Deals:** {total} in the session: {summary.inspected} inspected, "
               f"{summary.skipped} skipped, {summary.pending} pending")
    v = summary.verdicts
    out.append(f"- **Stage verdicts:** {v.get('supported', 0)} supported, "
               f"{v.get('overstated', 0)} overstated ({summary.overstated_steps} stages overstated "
               f"in total), {v.get('understated', 0)} understated")
    out.append(f"- **Commit:** manager {money(summary.manager_commit)}{mark} "
               f"vs rep {money(summary.rep_commit)}{mark}")
    out.append(f"- **Best case:** manager {money(summary.manager_best_case)}{mark} "
               f"vs rep {money(summary.rep_best_case)}{mark}")
    out.append(f"- **Commit exceptions:** {len(summary.commit_exceptions)}; "
               f"**close dates not credible:** {len(summary.not_credible)}; "
               f"**missing stage evidence:** {len(summary.missing_evidence)}; "
               f"**activity without progress:** {len(summary.no_progress)}")
    out.append("")

    out += ["## Forecast category changes", ""]
    if summary.category_changes:
        out += _table(["Deal", "Rep category", "Manager call"],
                      [[name, pb.category_label(rep), pb.category_label(mgr)]
                       for _id, name, rep, mgr in summary.category_changes])
    else:
        out.append("No category changes.")
    out.append("")

    out += ["## Commit exceptions", ""]
    if summary.commit_exceptions:
        out += _table(["Deal", "Reason for committing without the criteria"],
                      [[name, reason] for _id, name, reason in summary.commit_exceptions])
    else:
        out.append("None: every Commit call meets the commit criteria or has no exception recorded.")
    out.append("")

    out += ["## Close dates judged not credible", ""]
    if summary.not_credible:
        out += _table(["Deal", "Proposed close date"],
                      [[name, _iso(proposed) or "none proposed"]
                       for _id, name, proposed in summary.not_credible])
    else:
        out.append("None.")
    out.append("")

    out += ["## Deals missing stage evidence", ""]
    out += [f"- {md_line(name)} (#{deal_id})" for deal_id, name in summary.missing_evidence] or ["None."]
    out.append("")

    out += ["## Activity without progress", ""]
    out += [f"- {md_line(name)} (#{deal_id})" for deal_id, name in summary.no_progress] or ["None."]
    out.append("")

    out += ["## Risks", ""]
    types = sorted(set(summary.new_risks) | set(summary.open_risks),
                   key=lambda t: (-summary.open_risks.get(t, 0), -summary.new_risks.get(t, 0), t))
    if types:
        out += _table(["Risk type", "New this session", "Open"],
                      [[pb.risk_label.get(t, t), summary.new_risks.get(t, 0), summary.open_risks.get(t, 0)]
                       for t in types])
    else:
        out.append("No risks recorded on these deals.")
    out.append("")

    out += ["## Deals", ""]
    questions = {q.key: q.text for q in pb.questions}
    for n, r in enumerate(summary.rows, 1):
        out += [f"### {n}. {md_line(r['deal'])} (#{r['deal_id']})", ""]
        verdict = r["stage_verdict"] or "no verdict"
        if r["stage_verdict"] in ("overstated", "understated") and r["supported_stage"]:
            verdict += f" (evidence supports {pb.stage_label(r['supported_stage'])})"
        close = r["close_date_verdict"] or "no verdict"
        if r["proposed_close_date"]:
            close += f", proposed {_iso(r['proposed_close_date'])}"
        call = pb.category_label(r["forecast_call"]) if r["forecast_call"] else "not called"
        facts = [
            ["Account", r["account"]], ["Rep", r["rep"]],
            ["Status", r["status"] + (f" ({r['skip_reason']})" if r["skip_reason"] else "")],
            ["Amount", format_money(r["amount_minor"], r["currency"] or "USD")],
            ["Stage", pb.stage_label(r["stage"])], ["Stage verdict", verdict],
            ["Close date", _iso(r["close_date"]) or "-"], ["Close date verdict", close],
            ["Forecast", f"manager {call} vs rep {pb.category_label(r['rep_category'])}"],
            ["Commit criteria met", _yes_no(r["commit_criteria_met"]) or "not assessed"],
        ]
        if r["commit_exception"]:
            facts.append(["Commit exception", r["commit_exception"]])
        facts.append(["Next step", r["next_step"] + (f" (by {_iso(r['next_step_date'])})"
                                                     if r["next_step_date"] else "")])
        facts.append(["Notes", r["notes"]])
        if r["open_risks"]:
            facts.append(["Open risks", r["open_risks"]])
        if r["findings"]:
            facts.append(["Findings", ", ".join(r["findings"])])
        out += _table(["Field", "Value"], facts)
        out.append("")
        answers = r["answers"]
        keys = [q.key for q in pb.questions] + sorted(k for k in answers if k not in questions)
        out += _table(["Question", "Answer", "Evidence"],
                      [[questions.get(k, k), answers.get(k, {}).get("text", ""),
                        answers.get(k, {}).get("evidence", "missing")] for k in keys])
        out.append("")

    if mixed:
        per = _bucket_totals_by_currency(summary, pb)
        parts = []
        for c in currencies:
            t = per.get(c, {})
            parts.append(f"{c}: commit manager {format_money(t.get('manager_commit', 0), c)} vs rep "
                         f"{format_money(t.get('rep_commit', 0), c)}, best case manager "
                         f"{format_money(t.get('manager_best_case', 0), c)} vs rep "
                         f"{format_money(t.get('rep_best_case', 0), c)}")
        out += [f"[^currencies]: These totals add amounts in {', '.join(currencies)} at face value, "
                f"without conversion, and show them in {cur}. By currency: " + "; ".join(parts) + ".", ""]

    out += ["---", "", f"Event log: {summary.event_count} events, chain head {summary.chain_head}", ""]
    return "\n".join(out)


# -- CSV -----------------------------------------------------------------------------------
def question_keys(summary: SessionSummary, playbook: Playbook | None = None) -> list[str]:
    """Playbook questions in order, then any other answered question (sorted)."""
    keys = [q.key for q in playbook.questions] if playbook is not None else []
    seen = set(keys)
    extra = sorted({k for r in summary.rows for k in r["answers"] if k not in seen})
    return keys + extra


def csv_columns(summary: SessionSummary, playbook: Playbook | None = None) -> list[str]:
    cols = list(BASE_COLUMNS)
    for k in question_keys(summary, playbook):
        cols += [f"q_{k}", f"q_{k}_evidence"]
    return cols + list(ANCHOR_COLUMNS)


def session_csv(summary: SessionSummary, playbook: Playbook | None = None) -> str:
    """One row per deal; every row carries the chain head and event count (the audit anchor).

    Without a playbook, the question columns are the questions answered in this session.
    """
    cols = csv_columns(summary, playbook)
    qkeys = question_keys(summary, playbook)
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(cols)
    for r in summary.rows:
        values: dict[str, Any] = {
            "session_id": str(summary.session.id), "deal_id": str(r["deal_id"]), "deal": r["deal"],
            "account": r["account"], "rep": r["rep"], "status": r["status"],
            "skip_reason": r["skip_reason"], "stage": r["stage"], "stage_verdict": r["stage_verdict"],
            "supported_stage": r["supported_stage"],
            "amount": amount_text(r["amount_minor"], r["currency"]), "currency": r["currency"],
            "close_date": _iso(r["close_date"]), "close_date_verdict": r["close_date_verdict"],
            "proposed_close_date": _iso(r["proposed_close_date"]), "rep_category": r["rep_category"],
            "forecast_call": r["forecast_call"], "commit_criteria_met": _yes_no(r["commit_criteria_met"]),
            "commit_exception": r["commit_exception"], "next_step": r["next_step"],
            "next_step_date": _iso(r["next_step_date"]), "notes": r["notes"],
            "open_risks": str(r["open_risks"]), "findings": ";".join(r["findings"]),
            "chain_head": summary.chain_head, "event_count": str(summary.event_count),
        }
        for k in qkeys:
            ans = r["answers"].get(k)
            values[f"q_{k}"] = ans["text"] if ans else ""
            values[f"q_{k}_evidence"] = ans["evidence"] if ans else ""
        writer.writerow([values[c] if c in NUMERIC_COLUMNS else neutralise("" if values[c] is None
                                                                           else str(values[c]))
                         for c in cols])
    return buf.getvalue()
