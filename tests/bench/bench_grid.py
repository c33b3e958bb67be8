"""Benchmark DealGrid against Textual's DataTable and textual-fastdatatable.

Run: python tests/bench/bench_grid.py  (not a pytest test; prints numbers, asserts nothing)

For each grid: time to load the rows and get the first paint (load call + `pilot.pause()`),
then the median time of one `pilot.press("down")` + `pilot.pause()` and of one "pagedown".
Textual's DataTable is measured at 10k rows (100k takes far too long) and extrapolated.
"""
from __future__ import annotations

import asyncio
import statistics
import sys
from time import perf_counter, process_time
from typing import Callable

from textual.app import App, ComposeResult
from textual.widget import Widget
from textual.widgets import DataTable

from inspector.widgets.deal_grid import Column, DealGrid

SIZE = (120, 40)
PRESSES = 40

COLUMNS = [
    Column("id", "ID", 7, "right"),
    Column("name", "Deal name", 32),
    Column("amount", "Amount", 14, "right"),
    Column("stage", "Stage", 14),
    Column("owner", "Owner", 18),
    Column("close", "Close", 10),
]
STAGES = ["Prospect", "Qualified", "Proposal", "Negotiation", "Closed won", "Closed lost"]


def make_rows(n: int) -> tuple[list[tuple[str, ...]], list[int]]:
    rows = [
        (
            str(i),
            f"Deal {i} for ACME Holdings",
            f"{(i * 7919) % 10_000_000:,}.00",
            STAGES[i % len(STAGES)],
            f"Owner {i % 97}",
            f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
        )
        for i in range(n)
    ]
    return rows, list(range(n))


class Harness(App):
    def __init__(self, factory: Callable[[], Widget]) -> None:
        super().__init__()
        self._factory = factory

    def compose(self) -> ComposeResult:
        yield self._factory()


async def press_median(pilot, key: str, count: int = PRESSES) -> tuple[float, float]:
    """Median (wall, cpu) seconds of `pilot.press(key)` + `pilot.pause()`.

    The wall time has a floor of several tens of ms: the pilot waits for the process to go
    idle (it sleeps in fixed slices). The process CPU time of the same span is the real work
    done for one key press (event dispatch, widget update, compositor, headless driver).
    """
    wall, cpu = [], []
    for _ in range(count):
        start, start_cpu = perf_counter(), process_time()
        await pilot.press(key)
        await pilot.pause()
        wall.append(perf_counter() - start)
        cpu.append(process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def direct_median(grid: DealGrid, action: Callable[[], None], count: int = PRESSES) -> float:
    """Median seconds of a cursor action plus rendering every visible line (no event loop)."""
    region = grid.scrollable_content_region
    samples = []
    for _ in range(count):
        start = perf_counter()
        action()
        for y in range(region.height):
            grid.render_line(y)
        samples.append(perf_counter() - start)
    return statistics.median(samples)


def count_render_lines(widget: Widget) -> list[int]:
    """Wrap render_line on the instance to count how many lines a paint actually renders."""
    counter = [0]
    original = widget.render_line

    def render_line(y: int):
        counter[0] += 1
        return original(y)

    widget.render_line = render_line  # type: ignore[method-assign]
    return counter


async def bench_deal_grid(n: int) -> dict:
    rows, keys = make_rows(n)
    app = Harness(lambda: DealGrid(COLUMNS))
    async with app.run_test(size=SIZE) as pilot:
        grid = app.query_one(DealGrid)
        grid.focus()
        await pilot.pause()
        counter = count_render_lines(grid)
        start = perf_counter()
        grid.set_rows(rows, keys)
        await pilot.pause()
        load = perf_counter() - start
        painted = counter[0]
        down = await press_median(pilot, "down")
        page = await press_median(pilot, "pagedown")
        await pilot.press("home")
        direct_down = direct_median(grid, grid.action_cursor_down)
        direct_page = direct_median(grid, grid.action_page_down)
    return {
        "rows": n,
        "load": load,
        "down": down,
        "page": page,
        "painted": painted,
        "direct": (direct_down, direct_page),
    }


async def bench_data_table(n: int) -> dict:
    rows, keys = make_rows(n)
    app = Harness(lambda: DataTable(cursor_type="row"))
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(DataTable)
        table.add_columns(*(column.label for column in COLUMNS))
        table.focus()
        await pilot.pause()
        counter = count_render_lines(table)
        start = perf_counter()
        for key, row in zip(keys, rows):
            table.add_row(*row, key=str(key))
        await pilot.pause()
        load = perf_counter() - start
        painted = counter[0]
        down = await press_median(pilot, "down")
        page = await press_median(pilot, "pagedown")
    return {"rows": n, "load": load, "down": down, "page": page, "painted": painted}


async def bench_fast_data_table(n: int) -> dict | None:
    try:
        from textual_fastdatatable import ArrowBackend
        from textual_fastdatatable import DataTable as FastDataTable
    except Exception as error:  # noqa: BLE001 - optional comparison only
        print(f"textual-fastdatatable not available: {error!r}", file=sys.stderr)
        return None
    rows, _keys = make_rows(n)
    labels = [column.label for column in COLUMNS]
    app = Harness(lambda: Widget())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        start = perf_counter()
        backend = ArrowBackend.from_records(rows, column_names=labels)
        table = FastDataTable(backend=backend, cursor_type="row", render_markup=False)
        await app.screen.mount(table)
        table.focus()
        await pilot.pause()
        load = perf_counter() - start
        down = await press_median(pilot, "down")
        page = await press_median(pilot, "pagedown")
    return {"rows": n, "load": load, "down": down, "page": page, "painted": None}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.2f}"


async def main() -> None:
    results: list[tuple[str, dict, str]] = []
    deal = await bench_deal_grid(100_000)
    results.append(("DealGrid", deal, ""))
    table = await bench_data_table(10_000)
    per_row_us = table["load"] / table["rows"] * 1e6
    results.append(
        (
            "textual DataTable",
            table,
            f"{per_row_us:.1f} µs/row load, ~{per_row_us * 100_000 / 1e6:.1f} s for 100k (extrapolated)",
        )
    )
    fast = await bench_fast_data_table(100_000)
    if fast is not None:
        results.append(("textual-fastdatatable", fast, "load = Arrow backend build + mount"))

    header = (
        f"{'widget':<22} {'rows':>7} {'load+paint':>11} {'down wall':>10} {'down cpu':>9} "
        f"{'pgdn wall':>10} {'pgdn cpu':>9} {'painted':>8}  note"
    )
    print("times in ms; down/pgdn = median of pilot.press + pilot.pause "
          f"({PRESSES} presses); wall has the pilot's idle-wait floor, cpu is the work done")
    print(header)
    print("-" * len(header))
    for name, result, note in results:
        painted = "" if result["painted"] is None else str(result["painted"])
        print(
            f"{name:<22} {result['rows']:>7} {ms(result['load']):>11} {ms(result['down'][0]):>10} "
            f"{ms(result['down'][1]):>9} {ms(result['page'][0]):>10} {ms(result['page'][1]):>9} "
            f"{painted:>8}  {note}"
        )
    deal_per_row = deal["load"] / deal["rows"] * 1e6
    direct_down, direct_page = deal["direct"]
    print(f"\nDealGrid load cost: {deal_per_row:.2f} µs/row (set_rows = list copies; paint = visible lines only)")
    print(f"DealGrid direct (action + render all visible lines, no event loop): "
          f"down {ms(direct_down).strip()} ms, pgdn {ms(direct_page).strip()} ms")


if __name__ == "__main__":
    asyncio.run(main())
