"""Inspect: one deal under inspection — facts, changes, activity vs progress, questions,
exit checklist, and every decision, each saved the moment it is given."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from inspector.inspect import DealInspection, load_deal_inspection
from inspector.money import format_money
from inspector.services import Services
from inspector.storage.inspections import Inspections, SessionClosed, StaleEdit
from inspector.screens.form_modal import FormField, FormModal
from inspector.widgets.deal_grid import Column, DealGrid
from inspector.widgets.text import styled, untrusted_line

#: the activity-vs-progress timeline; the activity's text takes the width that is left
ACTIVITY_COLUMNS = [Column("mark", "", 1), Column("date", "Date", 10), Column("kind", "Type", 7),
                    Column("progress", "Buyer progress", 14), Column("summary", "Activity", 0)]

STATE_STYLE = {"confirmed": "green", "claimed": "yellow", "missing": "red"}
VERDICT_LABEL = {"supported": "Supported", "overstated": "Overstated", "understated": "Understated"}
CLOSE_LABEL = {"realistic": "Realistic", "at_risk": "At risk", "not_credible": "Not credible"}


class InspectScreen(Screen[None]):
    CSS_PATH = "inspect_screen.tcss"
    BINDINGS = [
        Binding("n", "next_deal", "Next"),
        Binding("b", "prev_deal", "Back"),
        Binding("a", "answer", "Answer"),
        Binding("v", "stage_verdict", "Stage"),
        Binding("d", "close_verdict", "Close"),
        Binding("c", "forecast_call", "Call"),
        Binding("r", "add_risk", "Risk"),
        Binding("m", "mark_progress", "Progress"),
        Binding("t", "next_step", "Step"),
        Binding("o", "notes", "Notes"),
        Binding("s", "skip", "Skip"),
        Binding("g", "queue", "Queue"),
        Binding("F", "finish", "Finish"),
        Binding("e", "edit_risk", "Edit risk", show=False),
        Binding("x", "close_risk", "Close risk", show=False),
        Binding("p", "add_promise", "Promise", show=False, tooltip="Log a promise made to the buyer"),
        Binding("escape", "leave", "List"),
    ] + [Binding(str(i), f"answer_n({i})", f"Answer question {i}", show=False) for i in range(1, 10)]

    @dataclass
    class Loaded(Message):
        data: DealInspection

    @dataclass
    class Saved(Message):
        what: str
        at: datetime

    @dataclass
    class SaveFailed(Message):
        what: str
        error: str
        stale: bool
        title: str = ""

    def __init__(self, services: Services, session_id: int, deal_id: int,
                 question: str | None = None) -> None:
        super().__init__()
        self.services = services
        self.insp = Inspections(services.store)
        self.session_id = session_id
        self.deal_id = deal_id
        self.start_question = question
        self.data: DealInspection | None = None
        self._save_lock = threading.Lock()
        self._position_lock = threading.Lock()
        self._position_wanted: tuple[int, str | None] | None = None
        self._position_written: tuple[int, str | None] | None = None
        self.last_saved = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Static(id="facts")
                yield Static(id="changes")
                yield Static(id="timeline-head")
                yield DealGrid(ACTIVITY_COLUMNS, id="activities")
                yield OptionList(id="risks")
            with Vertical(id="right"):
                yield OptionList(id="questions")
                yield Static(id="checklist")
        yield Static(id="decisions")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#activities").border_title = "Activity vs progress"
        self.query_one("#risks").border_title = "Risks"
        self.query_one("#questions").border_title = "Inspection questions"
        self.query_one("#questions").focus()
        self.load()

    # -- loading -----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        svc = self.services
        data = load_deal_inspection(svc.store, self.insp, svc.playbook, self.session_id, self.deal_id,
                                    svc.clock.today())
        self.post_message(self.Loaded(data))

    @on(Loaded)
    def show(self, message: Loaded) -> None:
        first = self.data is None or self.data.deal.row.id != message.data.deal.row.id
        self.data = d = message.data
        pb = self.services.playbook
        row = d.deal.row
        self.app.sub_title = f"{d.session.team} · deal {d.position + 1} of {d.total}"
        status = {"pending": "", "inspected": " · inspected", "skipped": f" · skipped ({d.state.skip_reason})"}
        facts = [
            styled("[b]$name[/b]$status", name=row.name, status=status.get(d.state.status, "")),
            styled("$account · rep $rep · $team", account=row.account, rep=row.owner, team=row.team),
            styled("Stage [b]$stage[/b] ($days days) · $amount · close [b]$close[/b]$pushes",
                   stage=pb.stage_label(row.stage), days=row.days_in_stage if row.days_in_stage is not None else "?",
                   amount=format_money(row.amount_minor, row.currency), close=row.close_date or "none",
                   pushes=f" (pushed {row.close_pushes}×)" if row.close_pushes else ""),
            styled("Rep's category [b]$cat[/b] · next step: $step ($date) · created $created",
                   cat=pb.category_label(row.forecast_category), step=row.next_step or "none",
                   date=row.next_step_date or "no date", created=row.created_on or "?"),
        ]
        self.query_one("#facts", Static).update(_join(facts))
        self.query_one("#changes", Static).update(self._changes_text(d))
        tl = d.timeline
        head = [styled("Last 14 days: $a14 activities, [b]$p14 progress[/b] · last 30: $a30 / [b]$p30[/b] · "
                       "since activity $da · since progress $dp",
                       a14=tl.activities_14, p14=tl.progress_14, a30=tl.activities_30, p30=tl.progress_30,
                       da=_days(tl.days_since_activity), dp=_days(tl.days_since_progress))]
        if tl.warning:
            head.append(styled("[b $error]⚠ $w[/]", w=tl.warning))
        self.query_one("#timeline-head", Static).update(_join(head))
        self._fill_activities(d, keep=not first)
        self._fill_risks(d, keep=not first)
        self._fill_questions(d, keep=not first)
        self.query_one("#checklist", Static).update(self._checklist_text(d))
        self._show_decisions()

    def _changes_text(self, d: DealInspection):
        since = d.changes_since.date().isoformat()
        ch = d.changes
        if ch is None or not ch.any:
            return styled("[dim]No changes since $since[/dim]", since=since)
        pb = self.services.playbook
        parts = []
        if ch.is_new:
            parts.append("new deal")
        for c in ch.changes:
            day = c.changed_at.date().isoformat()
            if c.field == "stage":
                direction = "forward" if pb.stage_index.get(c.new or "", 0) > pb.stage_index.get(c.old or "", 0) else "back"
                parts.append(f"{day} stage {direction}: {pb.stage_label(c.old)} → {pb.stage_label(c.new)}")
            elif c.field == "amount_minor":
                parts.append(f"{day} amount {format_money(int(c.old or 0), d.deal.row.currency)} → "
                             f"{format_money(int(c.new or 0), d.deal.row.currency)}")
            elif c.field == "close_date":
                verb = "pushed" if (c.new or "") > (c.old or "") else "pulled in"
                parts.append(f"{day} close date {verb}: {c.old} → {c.new}")
            elif c.field == "forecast_category":
                parts.append(f"{day} category {pb.category_label(c.old)} → {pb.category_label(c.new)}")
        return styled("[b]Changed since $since:[/b] $parts", since=since, parts=" · ".join(parts))

    def _fill_activities(self, d: DealInspection, keep: bool) -> None:
        """The timeline in a virtualised grid: a deal with 500 activities renders only the
        lines in view. Buyer progress is starred and green, with its type."""
        grid = self.query_one("#activities", DealGrid)
        old = grid.cursor_row if keep else None
        pb = self.services.playbook
        grid.empty_text = "No activities recorded"
        items = d.timeline.items
        grid.set_rows([("★" if a.is_progress else "·", a.occurred_at.date().isoformat(), a.kind,
                        pb.progress_label.get(a.progress_type or "", a.progress_type or "progress")
                        if a.is_progress else "", a.summary) for a in items], [a.id for a in items])
        grid.set_row_styles({a.id: "good" for a in items if a.is_progress})
        grid.cursor_row = grid.validate_cursor_row(old if old is not None else 0)

    def _fill_risks(self, d: DealInspection, keep: bool) -> None:
        ol = self.query_one("#risks", OptionList)
        old = ol.highlighted if keep else None
        ol.clear_options()
        pb = self.services.playbook
        options = []
        for r in d.deal.risks:
            mark = "[dim]closed[/dim]" if r.status == "closed" else "[b]open[/b]"
            options.append(Option(styled(f"{mark} $sev $type · $owner · due $due · $mit", sev=r.severity.upper(),
                                        type=pb.risk_label.get(r.type, r.type), owner=r.owner or "no owner",
                                        due=r.due_date.isoformat() if r.due_date else "—",
                                        mit=r.mitigation or "no mitigation"), id=f"r{r.id}"))
        if not d.deal.risks:
            options.append(Option(styled("[dim]No risks recorded · r to add[/dim]"), disabled=True))
        ol.add_options(options)
        if not d.deal.risks:
            pass
        elif old is not None and old < ol.option_count:
            ol.highlighted = old
        else:
            ol.highlighted = 0

    def _fill_questions(self, d: DealInspection, keep: bool) -> None:
        ol = self.query_one("#questions", OptionList)
        old = ol.highlighted if keep else None
        ol.clear_options()
        options = []
        for i, q in enumerate(self.services.playbook.questions, 1):
            text, state = d.state.answers.get(q.key, ("", "missing"))
            template = f"[b]$n. $q[/b]  [{STATE_STYLE[state]}]● $state[/]" + ("\n   $answer" if text else "")
            options.append(Option(styled(template, n=i, q=q.text, state=state, answer=text), id=f"q{q.key}"))
        ol.add_options(options)
        if old is not None:
            ol.highlighted = old
        elif self.start_question:
            keys = [q.key for q in self.services.playbook.questions]
            if self.start_question in keys:
                ol.highlighted = keys.index(self.start_question)
            self.start_question = None
        else:
            ol.highlighted = 0

    def _checklist_text(self, d: DealInspection):
        pb = self.services.playbook
        lines = [styled("[b]Exit checklist: $stage[/b]", stage=pb.stage_label(d.stage.current))]
        for e in d.stage.exit_items:
            lines.append(styled("[$c]$mark[/] $label [dim]$how[/dim]", c="green" if e.established else "red",
                                mark="✔" if e.established else "✘", label=e.label, how=e.how))
        if d.stage.missing_for_current:
            missing = ", ".join(d.evidence[k].label for k in d.stage.missing_for_current)
            lines.append(styled("[b $error]Missing for this stage:[/] $m", m=missing))
        verdict = d.stage.verdict
        target = pb.stage_label(d.stage.supported)
        lines.append(styled("Suggested verdict: [b]$v[/b]$t", v=VERDICT_LABEL.get(verdict, verdict),
                            t="" if verdict == "supported" else f" (evidence supports {target})"))
        met = sum(ok for *_x, ok in d.commit.items)
        lines.append(styled("[b]Commit criteria[/b] $met/$n met$missing", met=met, n=len(d.commit.items),
                            missing="" if d.commit.met else " · missing: " + ", ".join(d.commit.missing)))
        if d.desk:
            lines.append(styled("[b $warning]Deal desk:[/] $t", t="; ".join(
                f"{t.label} → {t.approver}" + (" ✔ approved" if t.key in d.approvals else "") for t in d.desk)))
        return _join(lines)

    def _show_decisions(self) -> None:
        d = self.data
        if d is None:
            return
        pb = self.services.playbook
        dec = d.state.decisions
        verdict = dec["stage_verdict"]
        stage_txt = VERDICT_LABEL.get(verdict, "—") if verdict else "—"
        if verdict in ("overstated", "understated") and dec["supported_stage"]:
            stage_txt += f" → {pb.stage_label(dec['supported_stage'])}"
        close_txt = CLOSE_LABEL.get(dec["close_date_verdict"] or "", "—")
        if dec["proposed_close_date"]:
            close_txt += f" (proposed {dec['proposed_close_date'].isoformat()})"
        call = dec["forecast_call"]
        call_txt = pb.category_label(call) if call else "—"
        exception = dec["commit_exception"] if call == "commit" and dec["commit_exception"] else ""
        open_risks = sum(1 for r in d.deal.risks if r.status == "open")
        lines = [
            styled("Stage: [b]$s[/b] · Close date: [b]$c[/b] · Call: [b]$call[/b] (rep: $rep) · Risks open: $r",
                   s=stage_txt, c=close_txt, call=call_txt, rep=pb.category_label(d.state.rep_category), r=open_risks),
            styled("Next step: $ns ($nd) · Notes: $notes", ns=dec["next_step"] or "—",
                   nd=dec["next_step_date"].isoformat() if dec["next_step_date"] else "no date",
                   notes=(dec["notes"] or "—")[:80]),
        ]
        if exception:
            lines.append(styled("[b $error]Commit exception:[/] $e", e=exception))
        if self.last_saved:
            lines.append(styled("[$success]✔ $s[/]", s=self.last_saved))
        else:
            lines.append(styled("[dim]Every answer is saved the moment you give it[/dim]"))
        self.query_one("#decisions", Static).update(_join(lines))

    # -- saving ------------------------------------------------------------------------------
    def save(self, what: str, fn: Callable[[Inspections, datetime], Any]) -> None:
        if self.services.read_only:
            self.notify("Read-only mode: nothing can be saved", severity="warning")
            return
        self._save_worker(what, fn)

    @work(thread=True, group="save", exit_on_error=False)
    def _save_worker(self, what: str, fn: Callable[[Inspections, datetime], Any]) -> None:
        with self._save_lock:
            now = self.services.clock.now()
            try:
                fn(self.insp, now)
            except SessionClosed as exc:
                self.post_message(self.SaveFailed(what, str(exc), False, "Inspection finished"))
                return
            except StaleEdit as exc:
                self.post_message(self.SaveFailed(what, str(exc), True))
                return
            except Exception as exc:  # noqa: BLE001 - shown to the user, nothing half-written
                self.post_message(self.SaveFailed(what, f"{type(exc).__name__}: {exc}", False))
                return
            self.post_message(self.Saved(what, now))

    @on(Saved)
    def saved(self, message: Saved) -> None:
        self.last_saved = f"Saved {message.what} at {message.at.astimezone().strftime('%H:%M:%S')}"
        self.load()

    @on(SaveFailed)
    def save_failed(self, message: SaveFailed) -> None:
        title = message.title or ("Changed by someone else" if message.stale else "Not saved")
        self.notify(untrusted_line(message.error), title=title, severity="error", timeout=8)
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

    # -- questions ---------------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#questions")
    def _question_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_answer()

    @on(OptionList.OptionHighlighted, "#questions")
    def _question_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and self.data is not None:
            self._remember(event.option.id[1:])

    @work(thread=True, exclusive=True, group="position", exit_on_error=False)
    def _remember(self, question: str | None) -> None:
        """Record where the manager is (deal, question) for resume, off the UI thread: a
        durable write costs an fsync, and this runs on every move between questions."""
        if not self.services.read_only:
            self._position_wanted = (self.deal_id, question)
            self._write_position()

    @work(thread=True, group="position", exit_on_error=False)
    def _write_position(self) -> None:
        with self._position_lock:  # the last position asked for is the one that stays
            wanted = self._position_wanted
            if wanted is None or wanted == self._position_written:
                return
            self.insp.set_position(self.session_id, *wanted)
            self._position_written = wanted

    def action_answer_n(self, n: int) -> None:
        ol = self.query_one("#questions", OptionList)
        if 1 <= n <= ol.option_count:
            ol.highlighted = n - 1
            self.action_answer()

    def action_answer(self) -> None:
        d = self.data
        ol = self.query_one("#questions", OptionList)
        if d is None or ol.highlighted is None:
            return
        q = self.services.playbook.questions[ol.highlighted]
        current = d.state.answers.get(q.key, ("", "missing"))
        evidence = ", ".join(d.evidence[k].label + (" ✔" if d.evidence[k].established else "")
                             for k in q.evidence)
        self._ask(q.text, [
            FormField("text", "Answer", "textarea", current[0]),
            FormField("state", "Evidence", "choice", current[1],
                      [("Confirmed by the buyer", "confirmed"), ("Claimed by the rep", "claimed"),
                       ("Missing", "missing")], required=True),
        ], lambda v: self.save(f"answer to {q.key}", lambda insp, now: insp.save_answer(
            d.state.id, q.key, v["text"], v["state"], expected=current, actor=self.services.actor, now=now)),
            intro=f"Establishes: {evidence}")

    # -- decisions ---------------------------------------------------------------------------
    def _decide(self, what: str, changes: dict[str, Any], kind: str = "decision.saved") -> None:
        d = self.data
        assert d is not None
        expected = {f: (d.state.decisions[f], v) for f, v in changes.items()}
        self.save(what, lambda insp, now: insp.save_decisions(d.state.id, expected, actor=self.services.actor,
                                                             now=now, kind=kind))

    def action_stage_verdict(self) -> None:
        d = self.data
        if d is None:
            return
        pb = self.services.playbook
        dec = d.state.decisions
        stages = [(s.label, s.key) for s in pb.open_stages]
        self._ask("Stage verdict", [
            FormField("verdict", "Does the evidence support the stage?", "choice",
                      dec["stage_verdict"] or d.stage.verdict,
                      [("Supported", "supported"), ("Overstated", "overstated"), ("Understated", "understated")],
                      required=True),
            FormField("stage", "Stage the evidence supports", "choice",
                      dec["supported_stage"] or d.stage.supported, stages,
                      required_when=("verdict", "overstated"),
                      hint="Needed when the stage is overstated or understated"),
        ], lambda v: self._decide("stage verdict", {
            "stage_verdict": v["verdict"],
            "supported_stage": None if v["verdict"] == "supported" else v["stage"]}),
            intro=f"Current stage {pb.stage_label(d.stage.current)}; suggested: "
                  f"{VERDICT_LABEL[d.stage.verdict]} ({pb.stage_label(d.stage.supported)})")

    def action_close_verdict(self) -> None:
        d = self.data
        if d is None:
            return
        dec = d.state.decisions
        row = d.deal.row
        self._ask("Close-date verdict", [
            FormField("verdict", "Is the close date credible?", "choice", dec["close_date_verdict"],
                      [("Realistic", "realistic"), ("At risk", "at_risk"), ("Not credible", "not_credible")],
                      required=True),
            FormField("date", "Proposed close date", "date", dec["proposed_close_date"],
                      required_when=("verdict", "not_credible")),
        ], lambda v: self._decide("close-date verdict", {"close_date_verdict": v["verdict"],
                                                        "proposed_close_date": v["date"]}),
            intro=f"Close date {row.close_date or 'none'}, pushed {row.close_pushes} time(s)")

    def action_forecast_call(self) -> None:
        d = self.data
        if d is None:
            return
        pb = self.services.playbook
        dec = d.state.decisions
        unapproved = [t for t in d.desk if t.key not in d.approvals]  # count like unmet criteria
        met = d.commit.met and not unapproved
        missing = list(d.commit.missing) + [f"deal desk approval of {t.label} ({t.approver})" for t in unapproved]
        intro = (f"Rep's category: {pb.category_label(d.state.rep_category)}. Commit criteria "
                 + ("all met." if met else "not met: " + "; ".join(missing)
                    + ". Calling Commit needs an exception reason."))
        fields = [FormField("call", "Your forecast call", "choice", dec["forecast_call"] or d.state.rep_category,
                            [(c.label, c.key) for c in pb.forecast_categories], required=True)]
        if not met:
            fields.append(FormField("exception", "Exception reason (required for Commit)", "textarea",
                                    dec["commit_exception"], required_when=("call", "commit")))

        def done(v: dict[str, Any]) -> None:
            exception = v.get("exception", "") if v["call"] == "commit" and not met else ""
            self._decide("forecast call", {"forecast_call": v["call"], "commit_criteria_met": met,
                                           "commit_exception": exception})
        self._ask("Forecast call", fields, done, intro=intro)

    def action_next_step(self) -> None:
        d = self.data
        if d is None:
            return
        dec = d.state.decisions
        self._ask("Next step", [
            FormField("step", "Next step (buyer action, not seller activity)", "text", dec["next_step"], required=True),
            FormField("date", "Due", "date", dec["next_step_date"], required=True),
        ], lambda v: self._decide("next step", {"next_step": v["step"], "next_step_date": v["date"]}))

    def action_notes(self) -> None:
        d = self.data
        if d is None:
            return
        self._ask("Notes", [FormField("notes", "Notes", "textarea", d.state.decisions["notes"])],
                  lambda v: self._decide("notes", {"notes": v["notes"]}))

    def action_skip(self) -> None:
        d = self.data
        if d is None:
            return
        status = d.state.status

        def done(v: dict[str, Any]) -> None:
            self.save("skip", lambda insp, now: insp.set_status(d.state.id, "skipped", v["reason"],
                                                               expected=status, actor=self.services.actor, now=now))
            self.action_next_deal()
        self._ask("Skip this deal", [FormField("reason", "Why skip it this week?", "text", "", required=True)], done)

    # -- promises (the promises-made log, captured during inspection) -------------------------
    def action_add_promise(self) -> None:
        from datetime import date as _date

        d = self.data
        if d is None:
            return
        pb = self.services.playbook
        today: _date = self.services.clock.today()
        self._ask("Log a promise", [
            FormField("category", "What kind of promise", "choice", None,
                      [(c.label, c.key) for c in pb.promise_categories], required=True),
            FormField("text", "What was promised", "textarea", "", required=True),
            FormField("by", "Promised by", "text", d.deal.row.owner, required=True),
            FormField("on", "Promised on", "date", today),
        ], lambda v: self.save("promise", lambda insp, now: _handoffs(insp, pb).add_promise(
            d.deal.row.id, category=v["category"], text_=v["text"], promised_by=v["by"], promised_on=v["on"],
            actor=self.services.actor, now=now)),
            intro="Outcomes, capabilities, timelines, services, reporting, stakeholder commitments, "
                  "concessions and known limitations: customer success should not discover them later.")

    # -- risks -------------------------------------------------------------------------------
    def _risk_fields(self, r=None) -> list[FormField]:
        pb = self.services.playbook
        d = self.data
        return [
            FormField("type", "Risk type", "choice", r.type if r else None,
                      [(x.label, x.key) for x in pb.risk_types], required=True),
            FormField("severity", "Severity", "choice", r.severity if r else "medium",
                      [(s.capitalize(), s) for s in pb.risk_severities], required=True),
            FormField("owner", "Owner", "text", r.owner if r else (d.deal.row.owner if d else "")),
            FormField("due", "Due date", "date", r.due_date if r else None),
            FormField("mitigation", "Mitigation", "textarea", r.mitigation if r else ""),
        ]

    def action_add_risk(self) -> None:
        d = self.data
        if d is None:
            return
        self._ask("Add a risk", self._risk_fields(), lambda v: self.save("risk", lambda insp, now: insp.add_risk(
            d.deal.row.id, type=v["type"], severity=v["severity"], owner=v["owner"], due_date=v["due"],
            mitigation=v["mitigation"], actor=self.services.actor, now=now, inspection_id=d.state.id,
            session_id=self.session_id)))

    def _selected_risk(self):
        d = self.data
        ol = self.query_one("#risks", OptionList)
        if d is None or ol.highlighted is None or not d.deal.risks:
            self.notify("Highlight a risk in the Risks list first (Tab to move there)", severity="warning")
            return None
        return d.deal.risks[ol.highlighted]

    @on(OptionList.OptionSelected, "#risks")
    def _risk_selected(self) -> None:
        self.action_edit_risk()

    def action_edit_risk(self) -> None:
        r = self._selected_risk()
        if r is None:
            return
        fields = self._risk_fields(r) + [FormField("status", "Status", "choice", r.status,
                                                   [("Open", "open"), ("Closed", "closed")], required=True)]

        def done(v: dict[str, Any]) -> None:
            old = {"type": r.type, "severity": r.severity, "owner": r.owner, "due_date": r.due_date,
                   "mitigation": r.mitigation, "status": r.status}
            new = {"type": v["type"], "severity": v["severity"], "owner": v["owner"], "due_date": v["due"],
                   "mitigation": v["mitigation"], "status": v["status"]}
            changes = {k: (old[k], new[k]) for k in old if old[k] != new[k]}
            if changes:
                self.save("risk", lambda insp, now: insp.update_risk(r.id, changes, actor=self.services.actor,
                                                                     now=now, session_id=self.session_id))
        self._ask("Edit risk", fields, done)

    def action_close_risk(self) -> None:
        r = self._selected_risk()
        if r is None or r.status == "closed":
            return
        self.save("risk closed", lambda insp, now: insp.update_risk(
            r.id, {"status": ("open", "closed")}, actor=self.services.actor, now=now, session_id=self.session_id))

    # -- activities --------------------------------------------------------------------------
    @on(DealGrid.RowSelected, "#activities")
    def _activity_selected(self) -> None:
        self.action_mark_progress()

    def action_mark_progress(self) -> None:
        d = self.data
        grid = self.query_one("#activities", DealGrid)
        if d is None or not d.timeline.items:
            return
        a = next((x for x in d.timeline.items if x.id == grid.cursor_key), None)
        if a is None:
            self.notify("Highlight an activity first (Tab to the activity list)", severity="warning")
            return
        pb = self.services.playbook
        current = a.progress_type if a.is_progress else None
        options = [("Seller activity only (not progress)", "")] + [(p.label, p.key) for p in pb.progress_types]
        self._ask("Is this buyer progress?", [
            FormField("ptype", "What did the buyer do?", "choice", current or "", options, required=True),
        ], lambda v: self.save("progress mark", lambda insp, now: insp.mark_progress(
            a.id, v["ptype"] or None, expected=current, actor=self.services.actor, now=now,
            session_id=self.session_id)),
            intro=f"{a.occurred_at.date().isoformat()} {a.kind}: {a.summary}")

    def current_deal_id(self) -> int | None:
        return self.deal_id

    # -- moving ------------------------------------------------------------------------------
    def _go(self, step: int) -> None:
        d = self.data
        if d is None:
            return
        queue = list(d.session.queue)
        pos = queue.index(self.deal_id) + step
        if not 0 <= pos < len(queue):
            self.notify("End of the queue: press F to finish" if step > 0 else "First deal in the queue")
            return
        self.open_deal(queue[pos])

    def open_deal(self, deal_id: int) -> None:
        self.deal_id = deal_id
        self.data = None
        self.last_saved = ""
        self._remember(None)
        self.load()

    def action_next_deal(self) -> None:
        self._go(1)

    def action_prev_deal(self) -> None:
        self._go(-1)

    def action_queue(self) -> None:
        from inspector.screens.queue_modal import QueueModal

        def done(result: tuple[list[int], int | None] | None) -> None:
            if result is None:
                return
            order, jump = result
            d = self.data
            if d is not None and order != list(d.session.queue):
                self.save("queue order", lambda insp, now: insp.reorder(self.session_id, order,
                                                                       actor=self.services.actor, now=now))
            if jump is not None:
                self.open_deal(jump)
        self.app.push_screen(QueueModal(self.services, self.session_id, self.deal_id), done)

    def action_finish(self) -> None:
        from inspector.screens.summary_screen import SummaryScreen

        d = self.data
        if d is None:
            return
        if d.session.status == "open" and not self.services.read_only:
            pending = len(d.session.queue)
            self._ask("Finish this inspection?", [FormField("ok", "Finish", "choice", "yes",
                                                            [("Yes, finish the session", "yes")], required=True)],
                      lambda v: self.app.switch_screen(SummaryScreen(self.services, self.session_id, finish=True)),
                      intro=f"{pending} deals in the queue. Finishing records the session as done; "
                            "next week's changes are measured from it.")
        else:
            self.app.switch_screen(SummaryScreen(self.services, self.session_id))

    def action_leave(self) -> None:
        self.app.pop_screen()


def _handoffs(insp: Inspections, playbook):  # noqa: ANN001, ANN202
    from inspector.storage.handoffs import Handoffs

    return Handoffs(insp.store, playbook)


def _join(parts: list) -> Any:
    from textual.content import Content

    return Content("\n").join(parts)


def _days(n: int | None) -> str:
    return "never" if n is None else f"{n}d"
