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
`progress` may be called from it too (waits: "rate limited, retrying in 2s"). A big sync
into a SQLite file instead commits pages in a helper process (`_ProcessWriter`), which also
maps the CRM's JSON to records: reading and writing then each have a core.
"""
from __future__ import annotations

import json
import os
import pickle
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, bindparam, event, text

from inspector import subproc
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
        total = f"/{self.total:,}" if self.total else ""
        return (f"{self.pages:,} page{'' if self.pages == 1 else 's'}, {self.deals:,}{total} deals: "
                f"{self.created:,} new, {self.updated:,} updated, {self.unchanged:,} unchanged; "
                f"{self.activities:,} activities"
                + (f"; {self.removed:,} removed" if self.removed else "")
                + (f"; {self.rate_waits:,} rate-limit waits" if self.rate_waits else ""))


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
_MARK_SEEN = text("UPDATE deal SET synced_at = :now WHERE source = :s AND external_id IN :ids "
                  "AND (synced_at IS NULL OR synced_at <> :now)").bindparams(bindparam("ids", expanding=True))


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
                should_stop: Callable[[], bool] = lambda: False,
                writer_process: bool | None = None) -> SyncStatus:
    """Run (or resume) one sync of `source_client` into `store`; returns the final status.

    `writer_process`: commit pages in a helper process while this one reads (default: for a
    SQLite file when the source estimates at least WRITE_ELSEWHERE_FROM deals).
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
    pages: Any = None
    writer: _ProcessWriter | None = None
    try:
        if status.total is None and hasattr(source_client, "estimate_total"):
            status.total = source_client.estimate_total(since)
        if _write_elsewhere(store, writer_process, status.total):
            writer = _ProcessWriter(store, playbook, run, status, started, now)
            if hasattr(source_client, "defer_mapping"):  # JSON to records in the helper too
                source_client.defer_mapping = True
            pages = _Inline(source_client.iter_pages(since, run.cursor))
        else:
            pages = _Prefetch(source_client.iter_pages(since, run.cursor))
        for page in pages:
            if writer is None:
                _commit_page(store, playbook, page, run, status, started, now)
            else:  # pages go to the helper while the next are read; wait only when AHEAD are out
                writer.submit(page, status.rate_waits)
                done = writer.take_ready(run, status)
                if writer.in_flight >= AHEAD:
                    writer.take(run, status)
                elif not done:
                    continue
            status.message = ""
            progress(status)
            if status.state != "done" and should_stop():
                pages.close()
                if writer is not None:  # the page handed over is complete: it commits
                    writer.drain(run, status, progress)
                    writer = None
                    if status.state == "done":
                        return status
                _interrupt(store, run, "cancelled by the user")
                status.state = "cancelled"
                status.message = f"cancelled after page {status.pages}; the next run resumes there"
                progress(status)
                return status
        if writer is not None:
            writer.drain(run, status, progress)
            writer = None
        if status.state == "running":  # a source that yielded no page at all
            with store.engine.begin() as conn:
                _finish(store, conn, run, status, started, now)
    except CrmError as exc:
        if writer is not None:  # pages read before the failure still commit, in order
            try:
                writer.drain(run, status, progress)
            except Exception:  # noqa: BLE001 - the CRM error is the one to report
                pass
            writer = None
        _interrupt(store, run, str(exc), failed=True)
        status.state = "failed"
        status.error, status.error_kind = str(exc), exc.kind
        status.message = ""
        progress(status)
        raise
    except BaseException as exc:  # network down mid-page, a bug: keep the checkpoint
        if writer is not None:
            writer.close(finished=False)
            writer = None
        _interrupt(store, run, f"{type(exc).__name__}: interrupted", failed=True)
        raise
    finally:
        if pages is not None:
            pages.close()
        if writer is not None:
            writer.close(finished=False)
        if http is not None:
            http.on_wait = None
        if getattr(source_client, "defer_mapping", False):
            source_client.defer_mapping = False
    progress(status)
    return status


def _commit_page(store: Store, playbook: Playbook, page: Page, run: SyncStateRow, status: SyncStatus,
                 started: datetime, now: datetime) -> None:
    """One page, one transaction: its deals, their seen stamps and the checkpoint (or, on the
    last page, the run's end). `run` and `status` are updated in place."""
    source = run.source
    page.materialize(playbook)
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


# -- writing in a helper process ---------------------------------------------------------------
#: deals (the source's estimate) from which a SQLite sync writes in a helper process
WRITE_ELSEWHERE_FROM = 5000
#: pages read ahead of the last one committed (the helper evens out the CRM's slow answers)
AHEAD = 4
#: the helper's WAL auto-checkpoint threshold, in 4 KiB pages (SQLite's default is 1000)
HELPER_WAL_PAGES = 10_000
#: what a committed page changes in SyncStatus (the rest is the reading side's: waits, messages)
_PAGE_FIELDS = ("state", "pages", "deals", "created", "updated", "unchanged", "changes", "activities",
                "removed", "total")


def _write_elsewhere(store: Store, requested: bool | None, total: int | None) -> bool:
    if requested is None:  # a tuning knob (and how tests drive the CLI down either path)
        requested = {"process": True, "inline": False}.get(os.environ.get("INSPECTOR_SYNC_WRITER", ""))
    if requested is not None:
        return requested
    url = store.engine.url
    return (url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
            and total is not None and total >= WRITE_ELSEWHERE_FROM)


class _Inline:
    """The source's pages read in this thread (the helper process does the writing)."""

    def __init__(self, pages: Iterator[Page]) -> None:
        self._pages = pages

    def __iter__(self) -> Iterator[Page]:
        return self._pages

    def close(self) -> None:
        close = getattr(self._pages, "close", None)
        if close is not None:
            close()


class _ProcessWriter:
    """Pages committed by `_commit_page` in a helper process, in the order they are handed
    over, while this process reads the next pages: reading (HTTP) and writing (JSON to
    records, SQLite) each get a core instead of sharing one interpreter lock.

    The helper opens its own connection to the same SQLite file and holds the run's `run`
    and `status`; after each page it sends them back, and `take` copies them here. Two small
    threads move bytes: one writes pickled pages to the helper's stdin (handing a page over
    never waits for a commit), one reads the helper's answers (so `take_ready` can apply the
    commits that are done without waiting). If this process dies, the helper reads the end
    of its input and stops: a page is committed whole or not at all, with its checkpoint.
    """

    def __init__(self, store: Store, playbook: Playbook, run: SyncStateRow, status: SyncStatus,
                 started: datetime, now: datetime) -> None:
        self.in_flight = 0
        self._proc = subproc.start("inspector.sync", "_write_pages", "sync writer")
        self._out: queue.Queue = queue.Queue(maxsize=AHEAD)
        self._acks: queue.Queue = queue.Queue()
        url = store.engine.url.render_as_string(hide_password=False)
        self._out.put(pickle.dumps((url, playbook, run, status, started, now), pickle.HIGHEST_PROTOCOL))
        self._closed = False
        self._sender = threading.Thread(target=self._send, name="sync-writer-feed", daemon=True)
        self._sender.start()
        threading.Thread(target=self._receive, name="sync-writer-acks", daemon=True).start()

    def _send(self) -> None:
        stdin = self._proc.stdin
        try:
            while (data := self._out.get()) is not None:
                subproc.send_bytes(stdin, data)
        except (OSError, ValueError):  # the helper is gone; `take` says why
            pass
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _receive(self) -> None:
        while True:
            try:
                self._acks.put(subproc.receive(self._proc))
            except BaseException as exc:  # noqa: BLE001 - the helper stopped: `take` raises it
                self._acks.put(exc)
                return

    def submit(self, page: Page, rate_waits: int) -> None:
        data = pickle.dumps((page, rate_waits), pickle.HIGHEST_PROTOCOL)
        while True:
            try:
                self._out.put(data, timeout=0.5)
                break
            except queue.Full:
                if not self._sender.is_alive():  # the helper stopped reading: its error
                    self._apply(self._acks.get(), None, None)
                    raise subproc.HelperError("the sync writer stopped reading pages")
        self.in_flight += 1

    def take(self, run: SyncStateRow, status: SyncStatus) -> None:
        """Wait for the oldest page handed over to commit; copy the helper's run and status."""
        self._apply(self._acks.get(), run, status)

    def take_ready(self, run: SyncStateRow, status: SyncStatus) -> int:
        """Apply the commits that are already done; how many there were."""
        n = 0
        while self.in_flight:
            try:
                item = self._acks.get_nowait()
            except queue.Empty:
                break
            self._apply(item, run, status)
            n += 1
        return n

    def _apply(self, item: Any, run: SyncStateRow | None, status: SyncStatus | None) -> None:
        if isinstance(item, BaseException):
            raise item
        kind, *reply = item
        if kind == "crm_error":  # the CRM's JSON did not map (a broken body): a CRM failure
            raise reply[0]
        self.in_flight -= 1
        new_run, new_status = reply
        if run is not None and status is not None:
            run.__dict__.update(new_run.__dict__)
            for name in _PAGE_FIELDS:
                setattr(status, name, getattr(new_status, name))

    def drain(self, run: SyncStateRow, status: SyncStatus, progress: Callable[[SyncStatus], None]) -> None:
        """Every page handed over committed (or the helper's error raised); then stop it."""
        try:
            while self.in_flight:
                self.take(run, status)
                status.message = ""
                progress(status)
        except BaseException:
            self.close(finished=False)
            raise
        self.close(finished=True)

    def close(self, *, finished: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if not finished:
            subproc.stop(self._proc, finished=False)  # kill first: the feed thread may be mid-write
        try:
            self._out.put_nowait(None)
        except queue.Full:
            pass
        self._sender.join(timeout=5)
        if finished:
            subproc.stop(self._proc, finished=True)


def _write_pages() -> None:
    """The helper process of `_ProcessWriter`. A thread receives and maps the next page while
    this one writes the current page and waits for its commit to reach the disk."""
    from inspector.storage.db import make_engine

    out, inp = sys.stdout.buffer, sys.stdin.buffer
    try:
        url, playbook, run, status, started, now = subproc.receive(None, inp)
        mapped: queue.Queue = queue.Queue(maxsize=1)
        threading.Thread(target=_map_ahead, args=(inp, playbook, mapped), name="sync-map-ahead",
                         daemon=True).start()
        engine = make_engine(url)
        # A page dirties the same index and table-tail pages as the page before; checkpointing
        # every ~40 MB of WAL instead of SQLite's ~4 MB copies each of them once rather than
        # ten times (a 100k-deal sync writes ~10% less). This connection only; it checkpoints
        # what is left when the run ends, so the WAL does not stay big.
        event.listen(engine, "connect", lambda dbapi, _rec: dbapi.execute(
            f"PRAGMA wal_autocheckpoint={HELPER_WAL_PAGES}"))
        store = Store(engine)
        try:
            while (item := mapped.get()) is not None:
                if isinstance(item, BaseException):
                    if isinstance(item, CrmError):  # the CRM's JSON did not map: a CRM failure
                        subproc.send(out, ("crm_error", item))
                        return
                    raise item
                page, status.rate_waits = item
                _commit_page(store, playbook, page, run, status, started, now)
                subproc.send(out, ("ok", run, status))
        finally:
            try:
                with engine.connect() as conn:  # outside a transaction: the driver's own cursor
                    conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # noqa: BLE001 - a checkpoint left for later is not an error
                pass
            engine.dispose()
    except BaseException:
        subproc.send_failure(out)


def _map_ahead(inp: Any, playbook: Playbook, mapped: queue.Queue) -> None:
    """In the helper: pages from the parent, their JSON mapped to records, queued in order;
    then None (end of input) or the exception that stopped it."""
    mappers: dict[Any, Any] = {}  # one per run, so its caches last from page to page
    try:
        while True:
            try:
                page, rate_waits = subproc.receive(None, inp)
            except EOFError:
                mapped.put(None)
                return
            if page.deferred is not None:
                mapper, payload = page.deferred
                page.deferred = (mappers.setdefault(getattr(mapper, "key", id(mapper)), mapper), payload)
                page.materialize(playbook)
            mapped.put((page, rate_waits))
    except BaseException as exc:  # noqa: BLE001 - handed to the writing thread
        mapped.put(exc)


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
