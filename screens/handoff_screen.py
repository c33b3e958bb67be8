"""Handoff: is this deal ready to receive? Closed-won readiness, finance fields, handoff tier
and its steps, deal-desk approvals, promises made, exceptions, CS acceptance, closed-lost.

One screen per deal: the manager sees what is present, missing or doubtful and logs an
exception for each gap it closes with; customer success accepts the handoff or returns it
with the gaps named. Every action has a key (footer and command palette); what does not
apply to the deal (accepting an open deal, closing a won deal as lost) is hidden.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from inspector.handoff import Candidate, CheckItem, OpenException, Review, review, risks_at_close
from inspector.money import format_money
from inspector.screens.form_modal import FormField, FormModal
from inspector.services import Services
from inspector.storage.handoffs import DealClosed, Handoffs
from inspector.storage.inspections import NotFound, StaleEdit
from inspector.widgets.text import styled, untrusted_line

MARK = {"present": ("✔", "$success"), "missing": ("✘", "$error"), "doubtful": ("?", "$warning")}
STATUS_LABEL = {"draft": "Draft (sales)", "submitted": "Submitted to CS", "accepted": "Accepted by CS",
                "returned": "Returned to sales"}
ALL_GAPS = "__all__"
OTHER = "__other__"


def _join(parts: list) -> Content:
    return Content("\n").join(parts)


def _short(text: str, n: int = 46) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


class HandoffScreen(Screen[None]):
    CSS_PATH = "handoff_screen.tcss"
    BINDINGS = [
        Binding("g", "pick_deal", "Deal", tooltip="Go to another deal in commit, won or lost"),
        Binding("t", "set_tier", "Tier", tooltip="Set the handoff tier (or go back to the suggestion)"),
        Binding("s", "toggle_step", "Step", tooltip="Mark a tier step done or not done"),
        Binding("p", "add_promise", "Promise", tooltip="Log a promise made to the buyer"),
        Binding("e", "add_exception", "Exception", tooltip="Close with a gap: missing item, owner, due date, risk"),
        Binding("x", "close_exception", "Close exc.", show=False, tooltip="Close an open exception"),
        Binding("a", "approve", "Desk", tooltip="Record a deal-desk approval decision"),
        Binding("o", "set_cs", "CS", tooltip="CS owner and kickoff date"),
        Binding("w", "hand_off", "Hand off", tooltip="Close won and submit the handoff to customer success"),
        Binding("y", "accept", "Accept", tooltip="Customer success accepts the handoff"),
        Binding("r", "return_to_sales", "Return", tooltip="Customer success returns it with the gaps named"),
        Binding("f", "feedback", "Feedback", tooltip="Post-sale feedback tied to the deal and its promises"),
        Binding("l", "close_lost", "Lost", tooltip="Close as lost with one specific reason"),
        Binding("m", "export", "Export", tooltip="Write the handoff packet as Markdown"),
        Binding("v", "toggle_view", "Packet/review", show=False,
                tooltip="Switch the left panel between the closed-won review and the handoff packet"),
        Binding("escape", "leave", "Back"),
        # last, so that at 120 columns a crowded footer (won, with deal-desk approvals) cuts this, not Back
        Binding("R", "revops", "RevOps", tooltip="Open exceptions and feedback patterns, all deals"),
    ]

    @dataclass
    class Loaded(Message):
        review: Review

    @dataclass
    class Empty(Message):
        why: str

    @dataclass
    class Saved(Message):
        what: str
        at: datetime

    @dataclass
    class SaveFailed(Message):
        what: str
        error: str
        title: str

    def __init__(self, services: Services, deal_id: int | None = None) -> None:
        super().__init__()
        self.services = services
        self.handoffs = Handoffs(services.store, services.playbook)
        self.deal_id = deal_id
        self.rv: Review | None = None
        self.last_saved = ""
        self.view = ""  # "review" | "packet"; "" follows the deal (packet once CS has it)
        self._save_lock = threading.Lock()

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading the handoff…", id="title")
        yield Static(id="verdict")
        with Horizontal(id="body"):
            with VerticalScroll(id="left"):
                yield Static(id="requirements")
                yield Static(id="finance")
            with VerticalScroll(id="right"):
                yield Static(id="tier")
                yield Static(id="desk")
                yield Static(id="acceptance")
        with Horizontal(id="logs"):
            with VerticalScroll(id="promises-box"):
                yield Static(id="promises")
            with VerticalScroll(id="exceptions-box"):
                yield Static(id="exceptions")
        yield Static(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#left").border_title = "Closed-won review"
        self.query_one("#right").border_title = "Tier · deal desk · CS acceptance"
        self.query_one("#promises-box").border_title = "Promises made"
        self.query_one("#exceptions-box").border_title = "Exceptions"
        self.query_one("#left").focus()
        self.load()

    def current_deal_id(self) -> int | None:
        return self.deal_id

    def shown_view(self, rv: Review) -> str:
        """The left panel: the manager's closed-won review, or the packet CS reviews."""
        if self.view:
            return self.view
        return "packet" if rv.phase == "won" and rv.handoff.status in ("submitted", "accepted") else "review"

    # -- loading ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="handoff-load", exit_on_error=False)
    def load(self) -> None:
        svc = self.services
        today = svc.clock.today()
        deal_id = self.deal_id
        if deal_id is None:
            first = self.handoffs.candidates(limit=1)
            if not first:
                self.post_message(self.Empty("No deals in commit, closed won or closed lost yet"))
                return
            deal_id = first[0].id
        try:
            record = self.handoffs.record(deal_id, today)
        except NotFound as exc:
            self.post_message(self.Empty(str(exc)))
            return
        self.post_message(self.Loaded(review(svc.playbook, record, today)))

    @on(Empty)
    def show_empty(self, message: Empty) -> None:
        self.rv = None
        self.query_one("#title", Static).update(styled("[b]$why[/b] · g to pick a deal", why=message.why))
        self.refresh_bindings()

    @on(Loaded)
    def show(self, message: Loaded) -> None:
        self.rv = rv = message.review
        self.deal_id = rv.deal.row.id
        self.app.sub_title = f"Handoff · deal {rv.deal.row.id}"
        self.query_one("#title", Static).update(self._title(rv))
        self.query_one("#verdict", Static).update(self._verdict(rv))
        lost = rv.phase == "lost"
        packet = not lost and self.shown_view(rv) == "packet"
        left, right = self.query_one("#left"), self.query_one("#right")
        if lost:
            left.border_title = "Closed-lost learning"
            self.query_one("#requirements", Static).update(self._lost(rv))
            right.border_title = "Tier · deal desk at close"
        elif packet:
            left.border_title = "Handoff packet · v: closed-won review"
            self.query_one("#requirements", Static).update(self._packet(rv))
            right.move_child(self.query_one("#acceptance"), before=self.query_one("#tier"))
            right.border_title = "CS acceptance · tier · deal desk"
        else:
            left.border_title = "Closed-won review · v: handoff packet"
            self.query_one("#requirements", Static).update(
                self._checklist("Closed-won requirements", rv.requirements, rv))
            right.move_child(self.query_one("#acceptance"), after=self.query_one("#desk"))
            right.border_title = "Tier · deal desk · CS acceptance"
        self.query_one("#finance", Static).update(self._checklist("Finance and billing", rv.finance, rv))
        self.query_one("#finance").display = not packet and not lost
        self.query_one("#tier", Static).update(self._tier(rv))
        self.query_one("#desk", Static).update(self._desk(rv))
        self.query_one("#acceptance", Static).update(self._acceptance(rv) if not lost else "")
        self.query_one("#acceptance").display = not lost
        self.query_one("#logs").set_class(not rv.record.promises and not rv.record.exceptions, "-empty")
        self.query_one("#promises", Static).update(self._promises(rv))
        self.query_one("#exceptions", Static).update(self._exceptions(rv))
        self.query_one("#promises-box").border_title = f"Promises made ({len(rv.record.promises)})"
        self.query_one("#exceptions-box").border_title = (
            f"Exceptions ({len(rv.open_exceptions)} open of {len(rv.record.exceptions)})")
        self._show_status()
        self.refresh_bindings()

    # -- rendering -------------------------------------------------------------------------------
    def _title(self, rv: Review) -> Content:
        pb = self.services.playbook
        row = rv.deal.row
        rec = rv.record
        state = {"open": " (open)", "won": "", "lost": ""}[rv.phase]
        when = (f"closed {rec.closed_on.isoformat()}" if rec.closed_on else f"close {row.close_date or 'none'}")
        lines = [
            styled("[b]$name[/b] · $ext", name=row.name, ext=rec.external_id or f"deal {row.id}"),
            styled("$account · rep $rep · $team · [b]$stage[/b]$state · $amount · $when · category $cat",
                   account=row.account, rep=row.owner, team=row.team, stage=pb.stage_label(row.stage), state=state,
                   amount=format_money(row.amount_minor, row.currency), when=when,
                   cat=pb.category_label(row.forecast_category)),
        ]
        if rv.phase == "open" and not rv.in_scope:
            lines.append(styled("[dim]Not in commit or closing yet: an early look at what the handoff will need[/dim]"))
        return _join(lines)

    def _verdict(self, rv: Review) -> Content:
        if rv.phase == "lost":
            lost = rv.record.lost
            reasons = {r.key: r.label for r in self.services.playbook.closed_lost_reasons}
            if lost is None:
                return styled("[b $error]Closed lost without a reason[/] · l to record one")
            return styled("[b]Closed lost:[/b] $reason$detail", reason=reasons.get(lost.reason, lost.reason),
                          detail=f" — {lost.detail}" if lost.detail else "")
        gaps = ", ".join(g.label for g in rv.uncovered[:4]) + (f" (+{len(rv.uncovered) - 4})"
                                                                 if len(rv.uncovered) > 4 else "")
        if rv.verdict == "ready":
            verdict = styled("[b $success]✔ READY TO RECEIVE[/] · every requirement present, approvals recorded")
        elif rv.verdict == "ready_with_exceptions":
            verdict = styled("[b $warning]⚑ READY WITH $n EXCEPTION(S)[/] · each gap has an owner, due date and risk",
                             n=len(rv.gaps))
        else:
            verdict = styled("[b $error]✘ NOT READY[/] · $n gap(s) without an exception: $gaps",
                             n=len(rv.uncovered), gaps=gaps)
        h = rv.handoff
        if rv.phase == "open" and h.status == "draft":
            return verdict
        when = h.decided_at.date().isoformat() if h.decided_at else ""
        status = {
            "draft": styled("[b]Handoff: not yet submitted to CS[/b] · w hands it off"),
            "submitted": styled("[b $accent]Handoff: with CS for acceptance[/] · y accepts, r returns to sales"),
            "accepted": styled("[b $success]Handoff: accepted by CS[/] ($by, $when)", by=h.decided_by, when=when),
            "returned": styled("[b $error]Handoff: returned to sales[/] ($by, $when): $n item(s) missing",
                               by=h.decided_by, when=when, n=len(h.returned_items)),
        }.get(h.status, styled("Handoff: $s", s=h.status))
        return Content("\n").join([status, verdict])

    def _item_line(self, item: CheckItem, rv: Review) -> Content:
        mark, colour = MARK[item.state]
        covered = None if item.ok else next(
            (g.covered_by for g in rv.close_gaps + rv.accept_gaps
             if g.covered_by and (g.label == item.label or g.fields == item.fields)), None)
        detail = item.note if item.state != "present" else ""
        value = _short(item.value) if item.value else ""
        line = (styled(f"[{colour}]$mark[/] $label [dim]$value[/dim]", mark=mark, label=item.label, value=value)
                if value else styled(f"[{colour}]$mark[/] $label", mark=mark, label=item.label))
        extra = []
        if detail:
            extra.append(styled(f"[{colour}]$d[/]", d=detail))
        if covered is not None:
            extra.append(styled("[$warning]⚑ exception due $due[/]",
                                due=covered.due_date.isoformat() if covered.due_date else "no date"))
        if extra:
            line = Content(" · ").join([line, *extra])
        return line

    def _checklist(self, title: str, items: tuple[CheckItem, ...], rv: Review) -> Content:
        ok = sum(1 for i in items if i.ok)
        lines = [styled("[b]$t[/b] $ok/$n", t=title, ok=ok, n=len(items))]
        lines += [self._item_line(i, rv) for i in items]
        return _join(lines)

    def _packet(self, rv: Review) -> Content:
        """The opportunity-to-customer packet CS receives: each item with its full content."""
        ok = sum(1 for i in rv.packet if i.ok)
        lines = [styled("[b]Handoff packet[/b] $ok/$n complete", ok=ok, n=len(rv.packet))]
        for item in rv.packet:
            mark, colour = MARK[item.state]
            lines.append(styled(f"[{colour}]$mark[/] [b]$label[/b]", mark=mark, label=item.label))
            if item.value:
                lines.append(styled("  $value", value=" ".join(item.value.split())))
            note = item.note if item.state != "present" else ""
            covered = None if item.ok else next(
                (g.covered_by for g in rv.close_gaps + rv.accept_gaps
                 if g.covered_by and (g.label == item.label or g.fields == item.fields)), None)
            extra = [styled(f"  [{colour}]$d[/]", d=note)] if note else []
            if covered is not None:
                extra.append(styled("  [$warning]⚑ exception due $due · $owner[/]",
                                    due=covered.due_date.isoformat() if covered.due_date else "no date",
                                    owner=covered.owner or "no owner"))
            lines += extra
        return _join(lines)

    def _tier(self, rv: Review) -> Content:
        t = rv.tier
        how = ("suggested: " + "; ".join(t.reasons)) if not t.set_by else (
            f"set by {t.set_by}" + (f"; suggested {t.suggested.label}" if t.overridden else ""))
        lines = [styled("[b]Handoff tier: $tier[/b] [dim]($how)[/dim]", tier=t.chosen.label, how=how),
                 styled("[dim]$req[/dim]", req=t.chosen.requirement)]
        covered = {g.key: g.covered_by for g in rv.accept_gaps if g.covered_by is not None}
        for s in rv.steps:
            mark, colour = ("✔", "$success") if s.done else ("✘", "$error")
            who = " [dim](automatic)[/dim]" if s.auto else (" [dim]by $by[/dim]" if s.done_by else "")
            exc = covered.get(f"step:{s.key}")
            if exc is not None and not s.done:
                who += " · [$warning]⚑ exception due $due[/]"
            lines.append(styled(f"  [{colour}]$mark[/] $label{who}", mark=mark, label=s.label, by=s.done_by,
                                due=exc.due_date.isoformat() if exc and exc.due_date else "no date"))
        return _join(lines)

    def _desk(self, rv: Review) -> Content:
        if not rv.desk:
            return styled("[b]Deal desk[/b] [dim]no approval trigger fires[/dim]")
        lines = [styled("[b]Deal desk[/b] $ok/$n approved", ok=sum(d.approved for d in rv.desk), n=len(rv.desk))]
        for d in rv.desk:
            colour = {"approved": "$success", "rejected": "$error"}.get(d.status, "$warning")
            lines.append(styled(f"  [{colour}]$status[/] $label → $who$by", status=d.status, label=d.label,
                                who=d.approver, by=f" (by {d.decided_by})" if d.decided_by else ""))
        return _join(lines)

    def _acceptance(self, rv: Review) -> Content:
        h = rv.handoff
        fields = rv.record.deal.fields
        owner = h.cs_owner or str(fields.get("cs_owner") or "") or "none"
        kickoff = h.kickoff_on or fields.get("kickoff_date")
        lines = [styled("[b]CS acceptance:[/b] $status · CS owner $owner · kickoff $kick",
                        status=STATUS_LABEL.get(h.status, h.status), owner=owner,
                        kick=kickoff.isoformat() if hasattr(kickoff, "isoformat") else "not set")]
        for item in rv.acceptance:
            lines.append(self._item_line(item, rv))
        if h.status == "accepted":
            lines.append(styled("[$success]Accepted by $by on $at[/]", by=h.decided_by,
                                at=h.decided_at.date().isoformat() if h.decided_at else "?"))
        elif h.status == "returned":
            lines.append(styled("[b $error]Returned by $by:[/] $why", by=h.decided_by, why=h.returned_reason or "—"))
            for x in h.returned_items:
                lines.append(styled("  [$error]✘[/] $x", x=x))
        elif h.status == "submitted":
            blockers = rv.accept_blockers
            if blockers:
                lines.append(styled("[$warning]To accept, these need an exception or a fix:[/] $b",
                                    b=", ".join(g.label for g in blockers)))
            else:
                lines.append(styled("[$success]Ready for CS to accept (y) or return (r)[/]"))
        fb = rv.record.feedback
        if fb:
            cats = {c.key: c.label for c in self.services.playbook.feedback_categories}
            lines.append(styled("[b]Post-sale feedback[/b] ($n)", n=len(fb)))
            for f in fb:
                lines.append(styled("  • $cat: $text [dim]$by[/dim]", cat=cats.get(f.category, f.category),
                                    text=_short(f.text, 50), by=f.recorded_by))
        return _join(lines)

    def _lost(self, rv: Review) -> Content:
        pb = self.services.playbook
        rec = rv.record
        lines = []
        if rec.lost is not None:
            lines.append(styled("Reason recorded by $by on $at", by=rec.lost.recorded_by,
                                at=rec.lost.recorded_at.date().isoformat() if rec.lost.recorded_at else "?"))
        else:
            lines.append(styled("[$error]No reason recorded yet[/] · l records one"))
        lines.append(styled("[b]Earlier inspections[/b] ($n)", n=len(rec.inspections)))
        for i in rec.inspections:
            verdict = i.stage_verdict or "no verdict"
            if i.supported_stage:
                verdict += f" → {pb.stage_label(i.supported_stage)}"
            colour = "$error" if i.stage_verdict == "overstated" else "$foreground"
            lines.append(styled(f"  week of $week · $mgr · stage $stage [{colour}]$verdict[/] · call $call$exc",
                                week=i.week_of.isoformat() if i.week_of else "?", mgr=i.manager,
                                stage=pb.stage_label(i.stage_at), verdict=verdict,
                                call=pb.category_label(i.forecast_call) or "—",
                                exc=f" (exception: {i.commit_exception})" if i.commit_exception else ""))
        if not rec.inspections:
            lines.append(styled("  [dim]never inspected[/dim]"))
        at_close = risks_at_close(rec)
        lines.append(styled("[b]Risks at close[/b] ($n)", n=len(at_close)))
        for r, state in at_close:
            lines.append(styled("  $sev $type · $state", sev=r.severity.upper(), type=pb.risk_label.get(r.type, r.type),
                                state=state))
        return _join(lines)

    def _promises(self, rv: Review) -> Content:
        cats = {c.key: c.label for c in self.services.playbook.promise_categories}
        if not rv.record.promises:
            return styled("[dim]No promises logged · p to log one[/dim]")
        return _join([styled("• [b]$cat[/b]: $text [dim]— $by$on[/dim]", cat=cats.get(p.category, p.category),
                             text=p.text, by=p.promised_by or "?",
                             on=f", {p.promised_on.isoformat()}" if p.promised_on else "")
                      for p in rv.record.promises])

    def _exceptions(self, rv: Review) -> Content:
        if not rv.record.exceptions:
            return styled("[dim]No exceptions · e to close with a gap visibly[/dim]")
        lines = []
        for e in sorted(rv.record.exceptions, key=lambda e: (e.status != "open", e.id)):
            template = ("[$warning]⚑ open[/] [b]$item[/b] · $owner · due $due · risk: $risk" if e.status == "open"
                        else "[dim]✔ closed $item · $owner[/dim]")
            lines.append(styled(template, item=e.missing_item, owner=e.owner or "no owner",
                                due=e.due_date.isoformat() if e.due_date else "no date", risk=e.risk or "—"))
        return _join(lines)

    def _show_status(self) -> None:
        if self.last_saved:
            text = styled("[$success]✔ $s[/]", s=self.last_saved)
        elif self.services.read_only:
            text = styled("[dim]Read-only: nothing can be saved[/dim]")
        else:
            text = styled("[dim]Saved as you go · v packet/review · x close an exception · "
                          "R open exceptions and feedback patterns · ^p all actions[/dim]")
        self.query_one("#status", Static).update(text)

    # -- which actions apply -----------------------------------------------------------------------
    _WRITES = {"set_tier", "toggle_step", "add_promise", "add_exception", "close_exception", "approve", "set_cs",
               "hand_off", "accept", "return_to_sales", "feedback", "close_lost"}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_view":
            return self.rv is not None and self.rv.phase != "lost"
        if action not in self._WRITES and action != "export":
            return True
        rv = self.rv
        if rv is None:
            return False
        if action in self._WRITES and self.services.read_only:
            return False
        phase, status = rv.phase, rv.handoff.status
        if phase == "lost":
            return action in ("close_lost", "export")
        return {
            "toggle_step": any(not s.auto for s in rv.steps),
            "close_exception": bool(rv.open_exceptions),
            "approve": bool(rv.desk),
            "hand_off": (phase == "open") or status in ("draft", "returned"),
            "accept": phase == "won" and status == "submitted",
            "return_to_sales": phase == "won" and status in ("submitted", "accepted"),
            "feedback": phase == "won",
            "close_lost": phase == "open",
        }.get(action, True)

    # -- saving ------------------------------------------------------------------------------------
    def save(self, what: str, fn: Callable[[Handoffs, datetime], Any]) -> None:
        if self.services.read_only:
            self.notify("Read-only mode: nothing can be saved", severity="warning")
            return
        self._save_worker(what, fn)

    @work(thread=True, group="handoff-save", exit_on_error=False)
    def _save_worker(self, what: str, fn: Callable[[Handoffs, datetime], Any]) -> None:
        with self._save_lock:
            now = self.services.clock.now()
            try:
                fn(self.handoffs, now)
            except StaleEdit as exc:
                self.post_message(self.SaveFailed(what, str(exc), "Changed by someone else"))
                return
            except (DealClosed, NotFound, ValueError) as exc:
                self.post_message(self.SaveFailed(what, str(exc), "Not saved"))
                return
            except Exception as exc:  # noqa: BLE001 - shown to the user, nothing half-written
                self.post_message(self.SaveFailed(what, f"{type(exc).__name__}: {exc}", "Not saved"))
                return
            self.post_message(self.Saved(what, now))

    @on(Saved)
    def saved(self, message: Saved) -> None:
        self.last_saved = f"Saved {message.what} at {message.at.astimezone().strftime('%H:%M:%S')}"
        self.load()

    @on(SaveFailed)
    def save_failed(self, message: SaveFailed) -> None:
        self.notify(untrusted_line(message.error), title=message.title, severity="error", timeout=8)
        self.load()

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.notify(untrusted_line(event.worker.error), title="Something went wrong", severity="error")

    def _ask(self, title: str, fields: list[FormField], done: Callable[[dict[str, Any]], None],
             intro: str = "") -> None:
        def handle(values: dict[str, Any] | None) -> None:
            if values is not None:
                done(values)
        self.app.push_screen(FormModal(title, fields, intro=intro), handle)

    def _actor(self) -> str:
        return self.services.actor

    # -- actions: the manager's closed-won review --------------------------------------------------
    def action_set_tier(self) -> None:
        rv = self.rv
        if rv is None:
            return
        pb = self.services.playbook
        sugg = rv.tier.suggested
        options = [(f"Suggested: {sugg.label} ({'; '.join(rv.tier.reasons)})", "")]
        options += [(f"{t.label}: {t.requirement}", t.key) for t in pb.handoff_tiers]
        current = rv.handoff.tier
        deal_id = rv.deal.row.id
        self._ask("Handoff tier", [FormField("tier", "Tier", "choice", current, options, required=True)],
                  lambda v: self.save("tier", lambda h, now: h.set_tier(deal_id, v["tier"], expected=current,
                                                                       actor=self._actor(), now=now)),
                  intro="Standard: low risk, simple scope. Managed: mid-size, moderate complexity. "
                        "Strategic: large, complex, high risk, executive visibility.")

    def action_toggle_step(self) -> None:
        rv = self.rv
        if rv is None:
            return
        manual = [s for s in rv.steps if not s.auto]
        if not manual:
            self.notify("This tier has no steps to tick", severity="warning")
            return
        first = next((s for s in manual if not s.done), manual[0])
        state = {s.key: s.done for s in manual}
        deal_id = rv.deal.row.id
        self._ask(f"{rv.tier.chosen.label} handoff steps", [
            FormField("step", "Step", "choice", first.key,
                      [(("✔ " if s.done else "✘ ") + s.label, s.key) for s in manual], required=True),
            FormField("done", "State", "choice", "done", [("Done", "done"), ("Not done", "not_done")],
                      required=True),
        ], lambda v: self.save("step", lambda h, now: h.set_step(
            deal_id, v["step"], v["done"] == "done", expected=state[v["step"]], actor=self._actor(), now=now)))

    def action_add_promise(self) -> None:
        rv = self.rv
        if rv is None:
            return
        pb = self.services.playbook
        deal_id = rv.deal.row.id
        self._ask("Log a promise", [
            FormField("category", "What kind of promise", "choice", None,
                      [(c.label, c.key) for c in pb.promise_categories], required=True),
            FormField("text", "What was promised", "textarea", "", required=True),
            FormField("by", "Promised by", "text", rv.deal.row.owner, required=True),
            FormField("on", "Promised on", "date", self.services.clock.today()),
        ], lambda v: self.save("promise", lambda h, now: h.add_promise(
            deal_id, category=v["category"], text_=v["text"], promised_by=v["by"], promised_on=v["on"],
            actor=self._actor(), now=now)))

    def action_add_exception(self) -> None:
        rv = self.rv
        if rv is None:
            return
        gaps = rv.uncovered
        options = [(f"{g.label} ({g.note})", g.label) for g in gaps]
        if len(gaps) > 1:
            options.insert(0, (f"All {len(gaps)} gaps without an exception (one exception each)", ALL_GAPS))
        options.append(("Something else (name it below)", OTHER))
        deal_id = rv.deal.row.id
        labels = [g.label for g in gaps]

        def done(v: dict[str, Any]) -> None:
            items = labels if v["item"] == ALL_GAPS else [v["other"]] if v["item"] == OTHER else [v["item"]]
            self.save("exception", lambda h, now: h.add_exceptions(
                deal_id, items, owner=v["owner"], due_date=v["due"], risk=v["risk"], actor=self._actor(), now=now))
        self._ask("Close with a gap: log an exception", [
            FormField("item", "Missing item", "choice", options[0][1], options, required=True),
            FormField("other", "Name of the missing item", "text", "", required_when=("item", OTHER)),
            FormField("owner", "Owner", "text", rv.deal.row.owner, required=True),
            FormField("due", "Due date", "date", None, required=True),
            FormField("risk", "Risk if it stays missing", "textarea", "", required=True),
        ], done, intro="A visible exception is manageable; an invisible one becomes a post-sale surprise.")

    def action_close_exception(self) -> None:
        rv = self.rv
        if rv is None or not rv.open_exceptions:
            return
        opts = [(f"{e.missing_item} · {e.owner or 'no owner'} · due "
                 f"{e.due_date.isoformat() if e.due_date else 'no date'}", str(e.id)) for e in rv.open_exceptions]
        self._ask("Close an exception", [
            FormField("exc", "Exception", "choice", opts[0][1], opts, required=True),
            FormField("note", "How it was resolved", "text", ""),
        ], lambda v: self.save("exception closed", lambda h, now: h.close_exception(
            int(v["exc"]), actor=self._actor(), now=now, note=v["note"])))

    def action_approve(self) -> None:
        rv = self.rv
        if rv is None or not rv.desk:
            return
        first = next((d for d in rv.desk if not d.approved), rv.desk[0])
        current = {d.key: (None if d.status == "not recorded" else d.status) for d in rv.desk}
        deal_id = rv.deal.row.id
        self._ask("Deal desk approval", [
            FormField("trigger", "Trigger", "choice", first.key,
                      [(f"{d.label} → {d.approver} ({d.status})", d.key) for d in rv.desk], required=True),
            FormField("status", "Decision", "choice", "approved",
                      [("Approved", "approved"), ("Rejected", "rejected"), ("Pending (requested)", "pending")],
                      required=True),
            FormField("note", "Note", "text", ""),
        ], lambda v: self.save("approval", lambda h, now: h.record_approval(
            deal_id, v["trigger"], v["status"], v["note"], expected=current[v["trigger"]], actor=self._actor(),
            now=now)), intro="Commit without a required approval needs an exception on the Inspect screen.")

    def action_set_cs(self) -> None:
        rv = self.rv
        if rv is None:
            return
        h = rv.handoff
        fields = rv.deal.fields
        deal_id = rv.deal.row.id
        expected = (h.cs_owner, h.kickoff_on)
        self._ask("Customer-success owner and kickoff", [
            FormField("owner", "CS owner", "text", h.cs_owner or fields.get("cs_owner") or "", required=True),
            FormField("kickoff", "Kickoff date", "date", h.kickoff_on or fields.get("kickoff_date")),
        ], lambda v: self.save("CS owner", lambda hh, now: hh.set_cs(
            deal_id, v["owner"], v["kickoff"], expected=expected, actor=self._actor(), now=now)))

    def action_hand_off(self) -> None:
        rv = self.rv
        if rv is None:
            return
        status = rv.handoff.status
        if rv.phase == "won" and status not in ("draft", "returned"):
            self.notify(f"The handoff is already {status}", severity="warning")
            return
        blockers = rv.close_blockers
        if blockers:
            self.notify(untrusted_line(f"Not ready to close won: {len(blockers)} gap(s) without an exception: "
                                       + ", ".join(g.label for g in blockers[:6])
                                       + (" …" if len(blockers) > 6 else "") + ". Fill them or log an exception (e)."),
                        title="Not ready", severity="error", timeout=10)
            return
        deal_id = rv.deal.row.id
        closing = rv.phase == "open"
        today = self.services.clock.today()
        title = "Close won and hand off to customer success?" if closing else "Submit the handoff to customer success?"
        exc = len(rv.gaps)
        self._ask(title, [FormField("ok", "Confirm", "choice", "yes",
                                    [("Yes, close won and submit" if closing else "Yes, submit", "yes")],
                                    required=True)],
                  lambda v: self.save("closed-won handoff" if closing else "handoff", lambda h, now: h.submit(
                      deal_id, expected_status=status, actor=self._actor(), now=now, today=today,
                      close_won=closing)),
                  intro=(f"{rv.verdict_text}. " + (f"{exc} gap(s) go with an exception. " if exc else "")
                         + "CS reviews the packet against the acceptance checklist."))

    def action_close_lost(self) -> None:
        rv = self.rv
        if rv is None:
            return
        pb = self.services.playbook
        needs = next((r.key for r in pb.closed_lost_reasons if r.requires_detail), None)
        deal_id = rv.deal.row.id
        today = self.services.clock.today()
        current = rv.record.lost
        self._ask("Close as lost" if rv.phase == "open" else "Closed-lost reason", [
            FormField("reason", "One specific reason", "choice", current.reason if current else None,
                      [(r.label, r.key) for r in pb.closed_lost_reasons], required=True),
            FormField("detail", "What happened", "textarea", current.detail if current else "",
                      required_when=("reason", needs) if needs else None,
                      hint="Required for 'Other'"),
        ], lambda v: self.save("closed-lost", lambda h, now: h.close_lost(
            deal_id, v["reason"], v["detail"], actor=self._actor(), now=now, today=today)),
            intro="Specific reasons feed marketing, product and finance; the deal keeps its inspections.")

    # -- actions: customer success -----------------------------------------------------------------
    def action_accept(self) -> None:
        rv = self.rv
        if rv is None:
            return
        if rv.handoff.status != "submitted":
            self.notify("Only a submitted handoff can be accepted", severity="warning")
            return
        blockers = rv.accept_blockers
        if blockers:
            self.notify(untrusted_line("Cannot accept yet: " + ", ".join(g.label for g in blockers[:6])
                                       + ". Return it to sales (r) or log an exception (e)."),
                        title="Gaps in the handoff", severity="error", timeout=10)
            return
        deal_id = rv.deal.row.id
        today = self.services.clock.today()
        self._ask("Accept the customer into onboarding?", [
            FormField("note", "Note for sales (optional)", "text", ""),
        ], lambda v: self.save("acceptance", lambda h, now: h.accept(
            deal_id, expected_status="submitted", actor=self._actor(), now=now, note=v["note"], today=today)),
            intro=f"Acceptance checklist complete{' with exceptions' if rv.gaps else ''}.")

    def action_return_to_sales(self) -> None:
        rv = self.rv
        if rv is None:
            return
        status = rv.handoff.status
        gaps = [g.label for g in rv.accept_blockers] or [g.label for g in rv.uncovered]
        deal_id = rv.deal.row.id
        self._ask("Return the handoff to sales", [
            FormField("items", "What is missing (one per line)", "textarea", "\n".join(gaps), required=True),
            FormField("reason", "Why it goes back", "textarea", "", required=True),
        ], lambda v: self.save("return", lambda h, now: h.return_to_sales(
            deal_id, [x for x in v["items"].splitlines() if x.strip()], v["reason"], expected_status=status,
            actor=self._actor(), now=now)))

    def action_feedback(self) -> None:
        rv = self.rv
        if rv is None:
            return
        pb = self.services.playbook
        promises = [("No promise", "0")] + [(f"{p.text} ({p.promised_by})", str(p.id)) for p in rv.record.promises]
        deal_id = rv.deal.row.id
        self._ask("Post-sale feedback", [
            FormField("category", "What went wrong", "choice", None,
                      [(c.label, c.key) for c in pb.feedback_categories], required=True),
            FormField("promise", "Tied to a promise", "choice", "0", promises, required=True),
            FormField("text", "What happened", "textarea", ""),
        ], lambda v: self.save("feedback", lambda h, now: h.add_feedback(
            deal_id, v["category"], v["text"], int(v["promise"]) or None, actor=self._actor(), now=now)))

    # -- actions: moving around ----------------------------------------------------------------------
    def action_pick_deal(self) -> None:
        def chosen(deal_id: int | None) -> None:
            if deal_id is not None:
                self.open_deal(deal_id)
        self.app.push_screen(DealPicker(self.services), chosen)

    def action_revops(self) -> None:
        def chosen(deal_id: int | None) -> None:
            if deal_id is not None:
                self.open_deal(deal_id)
        self.app.push_screen(RevOpsModal(self.services), chosen)

    def open_deal(self, deal_id: int) -> None:
        self.deal_id = deal_id
        self.view = ""
        self.rv = None
        self.last_saved = ""
        self.load()

    def action_toggle_view(self) -> None:
        rv = self.rv
        if rv is None or rv.phase == "lost":
            return
        self.view = "review" if self.shown_view(rv) == "packet" else "packet"
        self.post_message(self.Loaded(rv))

    def action_export(self) -> None:
        if self.rv is not None:
            self.write_export(self.rv)

    @work(thread=True, exclusive=True, group="handoff-export", exit_on_error=False)
    def write_export(self, rv: Review) -> None:
        from inspector.handoff import packet_markdown

        body = packet_markdown(self.services.playbook, rv, generated_at=self.services.clock.now())
        name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in (rv.record.external_id or str(rv.deal.row.id)))
        path = Path.cwd() / f"handoff-{name}.md"
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(body, encoding="utf-8", newline="")
        tmp.replace(path)
        self.app.call_from_thread(self.notify, untrusted_line(f"Wrote {path}"), title="Handoff packet exported")

    def action_leave(self) -> None:
        self.app.pop_screen()


# -- choosing a deal ------------------------------------------------------------------------------
class DealPicker(ModalScreen[int | None]):
    """Deals in commit or closing, won or lost; type to filter, Enter to open."""

    DEFAULT_CSS = """
    DealPicker { align: center middle; }
    DealPicker #picker { width: 110; height: 80%; border: thick $primary; background: $surface; padding: 0 1; }
    DealPicker #picker-title { text-style: bold; margin: 0 0 1 0; }
    DealPicker OptionList { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("down", "move(1)", "Down", show=False),
                Binding("up", "move(-1)", "Up", show=False)]
    SHOWN = 300

    @dataclass
    class Ready(Message):
        items: list[Candidate]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.items: list[Candidate] = []
        self.shown: list[Candidate] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label("Go to a deal: won awaiting CS, commit or closing, accepted, lost", id="picker-title")
            yield Input(placeholder="filter: name, account, rep, team, id, status", id="picker-filter")
            yield OptionList(id="picker-list")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self.fetch()

    @work(thread=True, exclusive=True, group="picker", exit_on_error=False)
    def fetch(self) -> None:
        self.post_message(self.Ready(Handoffs(self.services.store, self.services.playbook).candidates()))

    @on(Ready)
    def ready(self, message: Ready) -> None:
        self.items = message.items
        self._fill("")

    def _fill(self, query: str) -> None:
        q = query.lower().split()
        items = [c for c in self.items
                 if all(w in f"{c.name} {c.account} {c.owner} {c.team} {c.external_id} {c.id} {c.status} "
                             f"{c.handoff_status}".lower() for w in q)]
        self.shown = items[: self.SHOWN]
        ol = self.query_one(OptionList)
        ol.clear_options()
        pb = self.services.playbook
        opts = []
        for c in self.shown:
            state = {"won": f"won · {c.handoff_status or 'no handoff'}", "lost": f"lost · {c.lost_reason or 'no reason'}",
                     "open": f"open · {pb.stage_label(c.stage)}"}.get(c.status, c.status)
            when = c.closed_on or c.close_date
            opts.append(Option(styled("$state  [b]$name[/b] · $acct · $amount · $when$exc",
                                      state=f"{state:<24}", name=_short(c.name, 44), acct=_short(c.account, 20),
                                      amount=format_money(c.amount_minor, c.currency),
                                      when=when.isoformat() if when else "no date",
                                      exc=f" · ⚑{c.open_exceptions}" if c.open_exceptions else ""), id=f"d{c.id}"))
        if not opts:
            opts.append(Option(styled("[dim]No deal matches[/dim]"), disabled=True))
        ol.add_options(opts)
        if self.shown:
            ol.highlighted = 0
        more = len(items) - len(self.shown)
        self.query_one("#picker-title", Label).update(
            styled("Go to a deal ($n$more) · Enter opens, Esc cancels", n=len(items),
                   more=f", first {self.SHOWN} shown" if more > 0 else ""))

    @on(Input.Changed)
    def _filter(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def action_move(self, step: int) -> None:
        ol = self.query_one(OptionList)
        if ol.option_count:
            cur = ol.highlighted if ol.highlighted is not None else 0
            ol.highlighted = max(0, min(ol.option_count - 1, cur + step))

    @on(Input.Submitted)
    def _submit(self) -> None:
        ol = self.query_one(OptionList)
        if self.shown and ol.highlighted is not None and ol.highlighted < len(self.shown):
            self.dismiss(self.shown[ol.highlighted].id)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.dismiss(int(event.option.id[1:]))

    def action_cancel(self) -> None:
        self.dismiss(None)


class RevOpsModal(ModalScreen[int | None]):
    """Across deals: open handoff exceptions (Enter opens the deal) and post-sale feedback patterns."""

    DEFAULT_CSS = """
    RevOpsModal { align: center middle; }
    RevOpsModal #revops { width: 110; height: 85%; border: thick $primary; background: $surface; padding: 0 1; }
    RevOpsModal #patterns { height: auto; max-height: 12; margin-bottom: 1; }
    RevOpsModal OptionList { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "cancel", "Close")]

    @dataclass
    class Ready(Message):
        exceptions: list[OpenException]
        patterns: list[tuple[str, int, list[int]]]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.exceptions: list[OpenException] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="revops"):
            yield Static("Loading…", id="patterns")
            yield OptionList(id="open-exceptions")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self.fetch()

    @work(thread=True, exclusive=True, group="revops", exit_on_error=False)
    def fetch(self) -> None:
        from inspector.storage.handoffs import feedback_patterns, open_exceptions

        store = self.services.store
        self.post_message(self.Ready(open_exceptions(store), feedback_patterns(store)))

    @on(Ready)
    def ready(self, message: Ready) -> None:
        cats = {c.key: c.label for c in self.services.playbook.feedback_categories}
        lines = [styled("[b]Post-sale feedback patterns[/b] (repeated categories change the sales process)")]
        for cat, n, deals in message.patterns:
            colour = "$warning" if len(deals) > 1 else "$foreground"
            lines.append(styled(f"  [{colour}]$n × $cat[/] [dim]$deals deal(s)[/dim]", n=n, cat=cats.get(cat, cat),
                                deals=len(deals)))
        if not message.patterns:
            lines.append(styled("  [dim]No feedback recorded[/dim]"))
        lines.append(styled("[b]Open handoff exceptions[/b] ($n) · Enter opens the deal", n=len(message.exceptions)))
        self.query_one("#patterns", Static).update(_join(lines))
        self.exceptions = message.exceptions
        ol = self.query_one(OptionList)
        ol.clear_options()
        today = self.services.clock.today()
        for ox in message.exceptions:
            e = ox.exception
            overdue = e.due_date is not None and e.due_date < today
            ol.add_option(Option(styled(
                ("[$error]overdue[/] " if overdue else "") + "$due [b]$item[/b] · $owner · $deal · $risk",
                due=e.due_date.isoformat() if e.due_date else "no date", item=e.missing_item,
                owner=e.owner or "no owner", deal=_short(ox.deal_name, 40), risk=_short(e.risk, 30)),
                id=f"x{e.id}-{e.deal_id}"))
        if message.exceptions:
            ol.highlighted = 0

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.dismiss(int(event.option.id.rsplit("-", 1)[1]))

    def action_cancel(self) -> None:
        self.dismiss(None)
