"""Benchmark the CSV import (issue 4): parse + write of a 100k-row report export.

Run: python tests/bench/bench_import.py [--rows 100000] [--variant us|eu|both] [--repeat 3]
     [--profile]   (not a pytest test; prints a table, asserts nothing)

The file is generated into a temp dir: a Salesforce opportunity report export (its header
names), amounts with currency symbols and thousands separators, dates as the report writes
them. Variants: `us` (comma-separated, "$1,200.50", "12/20/2026") and `eu` (semicolon-
separated, "1.200,50 €", "20.12.2026"). Each repetition imports into a fresh SQLite store
(`build_services`), timing `csv_file.parse(...)` and `csv_file.write(store, playbook, records,
now=...)` as `inspector import` calls them; then re-imports the same export with 1% of its
rows changed (stage, amount or close date: updates in place plus history rows). Last, the
whole `inspector import FILE` command as a user runs it (a new process: start-up, parse,
write, close) on an existing empty store. The table shows the median of `--repeat` runs (the
machine is shared; see the note column for the spread).
Target: parse + write of 100k rows ≤ 2 s.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 12, 3, 9, tzinfo=timezone.utc)
LATER = datetime(2026, 12, 10, 9, tzinfo=timezone.utc)
ROWS: list[tuple[str, str, str, str]] = []

HEADER = ["Opportunity Owner", "Account Name", "Opportunity Name", "Stage", "Amount", "Close Date",
          "Forecast Category", "Next Step", "Opportunity ID", "Created Date", "Lead Source", "Type"]
STAGES = [("Prospecting", "Pipeline"), ("Needs Analysis", "Pipeline"), ("Value Proposition", "Best Case"),
          ("Proposal/Price Quote", "Best Case"), ("Negotiation/Review", "Commit"), ("Closed Won", "Closed"),
          ("Closed Lost", "Omitted")]
OWNERS = [f"{f} {l}" for f in ("Ana", "Bo", "Chen", "Dee", "Eli", "Fay", "Gus", "Hana") for l in ("Ruiz", "Li", "Okafor")]
SOURCES = ["Web", "Partner", "Outbound", "Event", "Referral"]


def row(name: str, value: str, target: str, note: str = "") -> None:
    ROWS.append((name, value, target, note))
    print(f"  {name:<52} {value:>12}   target {target:<8} {note}", flush=True)


def _money(minor: int, variant: str) -> str:
    whole, cents = divmod(minor, 100)
    if variant == "us":
        return f"${whole:,}.{cents:02d}"
    return f"{whole:,}".replace(",", ".") + f",{cents:02d} €"


def _date(d: date, variant: str) -> str:
    return f"{d.month}/{d.day}/{d.year}" if variant == "us" else f"{d.day:02d}.{d.month:02d}.{d.year}"


def make_rows(n: int, seed: int = 4) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for k in range(n):
        stage, cat = STAGES[rnd.randrange(len(STAGES))]
        created = date(2026, 1, 1) + timedelta(days=rnd.randrange(330))
        out.append({"owner": OWNERS[k % len(OWNERS)], "account": f"Account {k % 9000} Inc",
                    "name": f"Opportunity {k} - {rnd.randrange(10, 500)} seats", "stage": stage,
                    "amount": rnd.randrange(1_000_00, 900_000_00), "close": created + timedelta(days=rnd.randrange(20, 200)),
                    "cat": cat, "next": "Send order form" if k % 3 else "", "id": f"0065g{k:010d}AAA",
                    "created": created, "source": SOURCES[k % len(SOURCES)], "type": "New Business"})
    return out


def change_rows(rows: list[dict], share: float = 0.01, seed: int = 5) -> tuple[list[dict], int]:
    """A copy with `share` of the rows changed: stage, amount or close date (cycling)."""
    rnd = random.Random(seed)
    out = [dict(r) for r in rows]
    picks = rnd.sample(range(len(out)), max(1, int(len(out) * share)))
    for j, i in enumerate(picks):
        r = out[i]
        if j % 3 == 0:
            r["stage"], r["cat"] = ("Negotiation/Review", "Commit") if r["stage"] != "Negotiation/Review" \
                else ("Proposal/Price Quote", "Best Case")
        elif j % 3 == 1:
            r["amount"] = r["amount"] + 50_000
        else:
            r["close"] = r["close"] + timedelta(days=30)
    return out, len(picks)


def write_csv(path: Path, rows: list[dict], variant: str) -> None:
    import csv

    delim = "," if variant == "us" else ";"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=delim)
        w.writerow(HEADER)
        for r in rows:
            w.writerow([r["owner"], r["account"], r["name"], r["stage"], _money(r["amount"], variant),
                        _date(r["close"], variant), r["cat"], r["next"], r["id"], _date(r["created"], variant),
                        r["source"], r["type"]])


def _fresh_store(tmp: Path, tag: str):
    from inspector.services import build_services

    db = tmp / f"import-{tag}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return build_services(db, actor="bench")


def import_once(path: Path, svc, now: datetime) -> tuple[float, float, object, object]:
    from inspector.sources import csv_file

    t = time.perf_counter()
    result = csv_file.parse(path, svc.playbook)
    t_parse = time.perf_counter() - t
    if not result.ok:
        raise SystemExit(f"benchmark file did not parse: {result.report(5)} {result.questions}")
    t = time.perf_counter()
    outcome = csv_file.write(svc.store, svc.playbook, result.records, now=now)
    t_write = time.perf_counter() - t
    return t_parse, t_write, result, outcome


def _command_once(tmp: Path, path: Path, tag: str, rows: int) -> float:
    """Wall time of `inspector --db STORE import FILE` in a new Python process; the store is
    created (migrated) first, as a manager's store already is."""
    import subprocess

    db = tmp / f"command-{tag}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    cli = [sys.executable, "-m", "inspector", "--db", str(db)]
    subprocess.run([*cli, "db", "upgrade"], check=True, capture_output=True, cwd=ROOT)
    t = time.perf_counter()
    done = subprocess.run([*cli, "import", str(path)], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - t
    if done.returncode != 0 or f"{rows} created" not in done.stdout.replace(",", ""):
        raise SystemExit(f"inspector import failed ({done.returncode}): {done.stdout[-300:]} {done.stderr[-300:]}")
    return elapsed


def _med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s"


def _spread(xs: list[float]) -> str:
    return f"runs {' / '.join(f'{x:.2f}' for x in xs)}"


def run(tmp: Path, n: int, variants: list[str], repeat: int, profile: bool = False) -> None:
    import gc

    rows = make_rows(n)
    changed, n_changed = change_rows(rows)
    files = {}
    for variant in variants:
        f1, f2 = tmp / f"opportunities-{variant}-{n}.csv", tmp / f"opportunities-{variant}-{n}-changed.csv"
        write_csv(f1, rows, variant)
        write_csv(f2, changed, variant)
        files[variant] = (f1, f2)
    del rows, changed  # the generator's 200k dicts would otherwise slow every GC pass of the import
    gc.collect()
    for variant in variants:
        f1, f2 = files[variant]
        size = f1.stat().st_size / 1048576
        parses, writes, totals, re_parses, re_writes, re_totals = [], [], [], [], [], []
        res = out = re_out = None
        for k in range(repeat):
            svc = _fresh_store(tmp, f"{variant}-{k}")
            p, w, res, out = import_once(f1, svc, NOW)
            parses.append(p), writes.append(w), totals.append(p + w)
            p, w, _r, re_out = import_once(f2, svc, LATER)
            re_parses.append(p), re_writes.append(w), re_totals.append(p + w)
            svc.store.engine.dispose()
        label = "US: $1,200.50, 12/20/2026" if variant == "us" else "EU: 1.200,50 €, 20.12.2026, ;"
        formats = ", ".join(f"{c}: {d}" for c, d in res.column_formats.items() if d != "text")
        print(f"    {f1.name}: {size:.1f} MB, {res.rows:,} rows · {formats}", flush=True)
        row(f"import {n:,} rows ({label}): parse", _med(parses), "-", _spread(parses))
        row("  write (fresh SQLite store)", _med(writes), "-",
            f"{_spread(writes)} · {out.created:,} created, {out.changes:,} history rows")
        row("  parse + write", _med(totals), "≤ 2 s", f"median of {repeat}: {_spread(totals)}")
        row(f"re-import, {n_changed:,} rows (1%) changed: parse", _med(re_parses), "-", _spread(re_parses))
        row("  write (updates in place + history)", _med(re_writes), "-",
            f"{_spread(re_writes)} · {re_out.updated:,} updated, {re_out.unchanged:,} unchanged, "
            f"{re_out.changes:,} history rows")
        row("  parse + write", _med(re_totals), "-", _spread(re_totals))
        commands = [_command_once(tmp, f1, f"{variant}-{k}", n) for k in range(repeat)]
        row("  `inspector import FILE` as a user runs it", _med(commands), "-",
            f"{_spread(commands)} · the whole command in a new process (start-up, parse, write, "
            "close) on an existing empty store")
        if profile:
            import cProfile
            import pstats

            svc = _fresh_store(tmp, f"{variant}-profile")
            prof = cProfile.Profile()
            prof.enable()
            import_once(f1, svc, NOW)
            prof.disable()
            svc.store.engine.dispose()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


def run_from_run_all(tmp: Path) -> None:
    """One call from tests/bench/run_all.py: 100k rows, both variants, median of 3."""
    run(tmp, 100_000, ["us", "eu"], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--variant", choices=("us", "eu", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one import and print the top functions")
    parser.add_argument("--keep", type=Path, help="write files and stores into this directory")
    args = parser.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="inspector-bench-import-"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"Inspector import benchmarks · {os.cpu_count()} cores · load {os.getloadavg()[0]:.2f} · "
          f"Python {sys.version.split()[0]} · {tmp}")
    run(tmp, args.rows, ["us", "eu"] if args.variant == "both" else [args.variant], args.repeat, args.profile)
    print("\n| measure | value | target | note |\n|---|---|---|---|")
    for name, value, target, note in ROWS:
        print(f"| {name.strip()} | {value} | {target} | {note} |")


if __name__ == "__main__":
    main()
