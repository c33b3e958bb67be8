"""CRM sync: pages from a source client into the store, resumable, Textual-free.

Each page is one transaction: `upsert_deals(..., conn=)` plus the `sync_state` checkpoint
(the cursor of the next page and the running counts). A run that is killed, loses the
network or hits a quota resumes from its checkpoint: the pages committed are not fetched
again and nothing is skipped. Running the same sync twice changes nothing (upsert is
idempotent). A full run marks deals of that source it did not see as removed (never
deletes them); local inspection data is never touched.

The TUI wires `progress` to `post_message` and `should_stop` to worker cancellation; the
CLI prints progress to stderr. The next page is read (HTTP) in a helper thread while the
current one is written and committed; only the reading thread touches the source client, so
`progress` may be called from it too (waits: "rate limited, retrying in 2s").
"""
from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, bindparam, text

from inspector.playbook import Playbook
from inspector.sources.crm import Page, SourceClient, iso, parse_dt
from inspector.sources.http import CrmError, Wait
from inspector.sources.ingest import mark_removed, upsert_deals
from inspector.storage.events import read_ts
from inspector.storage.repo import Store

#: incremental runs re-read this much before the watermark (search indexes lag; clocks skew)
LOOKBACK = timedelta(minutes=5)


@dataclass
class SyncStatus:
    source: str
    full: bool
    state: str = "running"  # running | done | cancelled | failed
    resumed: bool = False
    pages: int = 0
    deals: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changes: int = 0
    activities: int = 0
    removed: int = 0
    total: int | None = None
    rate_waits: int = 0
    message: str = ""  # e.g. "rate limited, retrying in 2s"
    error: str = ""
    error_kind: str = ""

    def counts(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()
                if k in ("pages", "deals", "created", "updated", "unchanged", "changes", "activities", "removed",
                         "total", "rate_waits")}

    def line(self) -> str:
        total = f"/{self.total}" if self.total else ""
        return (f"{self.pages} pages, {self.deals}{total} deals: {self.created} new, {self.updated} updated, "
                f"{self.unchanged} unchanged; {self.activities} activities"
                + (f"; {self.removed} removed" if self.removed else "")
                + (f"; {self.rate_waits} rate-limit waits" if self.rate_waits else ""))


@dataclass
class SyncStateRow:
    source: str
    cursor: str | None = None
    watermark: str | None = None
    run_started_at: datetime | None = None
    run_finished_at: datetime | None = None
    status: str = "idle"
    counts: dict[str, Any] = field(default_factory=dict)
    last_error: str = ""


def read_state(store: Store, source: str, conn: Connection | None = None) -> SyncStateRow | None:
    if conn is None:
        with store.engine.connect() as c:
            return read_state(store, source, c)
    row = conn.execute(text("SELECT source, cursor, watermark, run_started_at, run_finished_at, status, counts, "
                            "last_error FROM sync_state WHERE source = :s"), {"s": source}).first()
    if row is None:
        return None
    try:
        counts = json.loads(row[6] or "{}")
    except ValueError:
        counts = {}
    return SyncStateRow(row[0], row[1], row[2], read_ts(row[3]), read_ts(row[4]), row[5], counts, row[7] or "")


def _write_state(store: Store, conn: Connection, st: SyncStateRow) -> None:
    values = store.params(conn, {"s": st.source, "c": st.cursor, "w": st.watermark, "rs": st.run_started_at,
                                 "rf": st.run_finished_at, "st": st.status,
                                 "n": json.dumps(st.counts, sort_keys=True), "e": st.last_error})
    updated = conn.execute(text("UPDATE sync_state SET cursor = :c, watermark = :w, run_started_at = :rs, "
                                "run_finished_at = :rf, status = :st, counts = :n, last_error = :e "
                                "WHERE source = :s"), values).rowcount
    if not updated:
        conn.execute(text("INSERT INTO sync_state (source, cursor, watermark, run_started_at, run_finished_at, "
                          "status, counts, last_error) VALUES (:s, :c, :w, :rs, :rf, :st, :n, :e)"), values)


def _max_iso(a: str | None, b: str | None) -> str | None:
    da, db = parse_dt(a), parse_dt(b)
    if da is None:
        return iso(db) if db else None
    if db is None:
        return iso(da)
    return iso(max(da, db))


class _Prefetch:
    """The source's pages read one ahead in a thread, handed over in order.

    While page N is written and committed (the fsync waits on the disk), page N+1's requests
    are already on the wire. An error reading a page is raised where that page would have been
    taken, after every earlier page was handed over (and committed), so checkpoints are the
    same as reading inline. `close()` stops reading: it waits for a fetch in flight (at most one
    page), then closes the source's iterator."""

    def __init__(self, pages: Iterator[Page]) -> None:
        self._pages = pages
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="sync-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for page in self._pages:
                if not self._put(("page", page)) or self._stop.is_set():
                    return
            self._put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the writing thread
            self._put(("error", exc))

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> "_Prefetch":
        return self

    def __next__(self) -> Page:
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "page":
            return value
        self._done = True
        self._thread.join()
        if kind == "end":
            raise StopIteration
        raise value

    def close(self) -> None:
        self._done = True
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()
        close = getattr(self._pages, "close", None)
        if close is not None:
            close()


#: one statement, compiled once (SQLAlchemy's cache): the id list is an expanding parameter
_MARK_SEEN = text("UPDATE deal SET synced_at = :now WHERE source = :s AND external_id IN :ids").bindparams(
    bindparam("ids", expanding=True))


def _mark_seen(store: Store, conn: Connection, source: str, external_ids: list[str], now: datetime) -> None:
    """Every deal in the page is stamped as seen by this run (removal detection on full runs)."""
    for start in range(0, len(external_ids), 500):
        conn.execute(_MARK_SEEN, {"now": store.p(conn, now), "s": source, "ids": external_ids[start:start + 500]})


def _unseen(store: Store, conn: Connection, source: str, since: datetime) -> list[str]:
    return [r[0] for r in conn.execute(text(
        "SELECT external_id FROM deal WHERE source = :s AND status != 'removed' "
        "AND (synced_at IS NULL OR synced_at < :since)"), {"s": source, "since": store.p(conn, since)})]


def sync_source(store: Store, playbook: Playbook, source_client: SourceClient, *, full: bool, now: datetime,
                progress: Callable[[SyncStatus], None] = lambda s: None,
                should_stop: Callable[[], bool] = lambda: False) -> SyncStatus:
    """Run (or resume) one sync of `source_client` into `store`; returns the final status.

    Raises `CrmError` after checkpointing when the CRM fails (auth, quota, network...)."""
    source = source_client.source
    prev = read_state(store, source) or SyncStateRow(source)
    status = SyncStatus(source, full)
    resume = prev.status in ("running", "interrupted", "failed") and prev.cursor is not None and \
        (prev.counts.get("mode") == "full" or not full)
    if not full and not prev.watermark and not resume:
        full = True
        status.full = True
        status.message = "no earlier sync: running a full sync"
    if resume:
        status.resumed = True
        status.full = full = prev.counts.get("mode") == "full"
        for k, v in prev.counts.items():
            if hasattr(status, k) and k not in ("mode", "since", "max_seen"):
                setattr(status, k, v)
        run = SyncStateRow(source, prev.cursor, prev.watermark, prev.run_started_at, None, "running",
                           dict(prev.counts), "")
        status.message = f"resuming an interrupted {'full' if full else 'incremental'} sync at page {status.pages + 1}"
    else:
        since_dt = parse_dt(prev.watermark)
        since = None if full or since_dt is None else iso(since_dt - LOOKBACK)
        run = SyncStateRow(source, None, prev.watermark, now, None, "running",
                           {"mode": "full" if full else "incremental", "since": since}, "")
        with store.engine.begin() as conn:
            _write_state(store, conn, run)
    since = run.counts.get("since")
    started = run.run_started_at or now

    def on_wait(wait: Wait) -> None:
        if wait.reason == "rate_limited":
            status.rate_waits += 1
        status.message = wait.message
        progress(status)

    http = getattr(source_client, "http", None)
    if http is not None:
        http.on_wait = on_wait
    progress(status)
    pages: _Prefetch | None = None
    try:
        if status.total is None and hasattr(source_client, "estimate_total"):
            status.total = source_client.estimate_total(since)
        pages = _Prefetch(source_client.iter_pages(since, run.cursor))
        for page in pages:
            with store.engine.begin() as conn:
                result = upsert_deals(store, playbook, page.records, now=now, conn=conn)
                _mark_seen(store, conn, source, [r.external_id for r in page.records], now)
                status.pages += 1
                status.deals += len(page.records)
                status.created += result.created
                status.updated += result.updated
                status.unchanged += result.unchanged
                status.changes += result.changes
                status.activities += result.activities
                if page.total is not None and status.total is None:
                    status.total = page.total
                run.cursor = page.next_cursor
                run.counts.update(status.counts())
                run.counts["max_seen"] = _max_iso(run.counts.get("max_seen"), page.watermark)
                if page.next_cursor is None:
                    _finish(store, conn, run, status, started, now)
                else:
                    _write_state(store, conn, run)
            status.message = ""
            progress(status)
            if page.next_cursor is not None and should_stop():
                pages.close()
                _interrupt(store, run, "cancelled by the user")
                status.state = "cancelled"
                status.message = f"cancelled after page {status.pages}; the next run resumes there"
                progress(status)
                return status
        if status.state == "running":  # a source that yielded no page at all
            with store.engine.begin() as conn:
                _finish(store, conn, run, status, started, now)
    except CrmError as exc:
        _interrupt(store, run, str(exc), failed=True)
        status.state = "failed"
        status.error, status.error_kind = str(exc), exc.kind
        status.message = ""
        progress(status)
        raise
    except BaseException as exc:  # network down mid-page, a bug: keep the checkpoint
        _interrupt(store, run, f"{type(exc).__name__}: interrupted", failed=True)
        raise
    finally:
        if pages is not None:
            pages.close()
        if http is not None:
            http.on_wait = None
    progress(status)
    return status


def _finish(store: Store, conn: Connection, run: SyncStateRow, status: SyncStatus, started: datetime,
            now: datetime) -> None:
    if status.full:
        unseen = _unseen(store, conn, run.source, started)
        status.removed = mark_removed(store, run.source, unseen, now=now, conn=conn) if unseen else 0
    # deals changed during the run may carry times before the newest one seen on a later page:
    # never move the watermark past the run's start
    seen = parse_dt(run.counts.get("max_seen"))
    candidate = min(seen, started) if seen else None
    run.watermark = _max_iso(run.watermark, iso(candidate) if candidate else None)
    run.cursor = None
    run.status = "idle"
    run.run_finished_at = now
    run.counts.update(status.counts())
    run.last_error = ""
    status.state = "done"
    _write_state(store, conn, run)


def _interrupt(store: Store, run: SyncStateRow, reason: str, failed: bool = False) -> None:
    run.status = "failed" if failed else "interrupted"
    run.last_error = reason.splitlines()[0][:300] if reason else ""
    try:
        with store.engine.begin() as conn:
            current = read_state(store, run.source, conn)
            if current is not None:  # keep the committed cursor; only the status and error change
                current.status, current.last_error = run.status, run.last_error
                _write_state(store, conn, current)
    except Exception:  # the store itself is gone: the committed checkpoint stands
        pass


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
