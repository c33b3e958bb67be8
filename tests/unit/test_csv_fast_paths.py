"""The CSV import's fast paths (issue 4's 100k-row benchmark) read files exactly as the
value-by-value paths do: amounts converted over a column's joined text, rows read at C speed
with their line numbers worked out, and problems still naming the right line."""
from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.sources import csv_file

HEADER = "Opportunity ID,Opportunity Name,Stage,Amount,Close Date\n"


def _general(values: list[str]) -> tuple[list[int], list[str], str]:
    """The value-by-value reading of an amount column (what the fast path must equal)."""
    probs = csv_file._Problems("x.csv")
    lines = list(range(2, 2 + len(values)))
    fmt, question = csv_file._money_format("Amount", values, lines, probs, None)
    assert fmt is not None and question is None and not probs.count
    minor, currency = csv_file._convert_money("Amount", values, lines, fmt, None, probs, False)
    assert not probs.count, [str(p) for p in probs.items]
    return minor, currency, fmt.described


def _written(minor: int, style: str) -> str:
    whole, cents = divmod(minor, 100)
    if style == "us":
        return f"${whole:,}.{cents:02d}"
    if style == "eu":
        return f"{whole:,}".replace(",", ".") + f",{cents:02d} €"
    if style == "gbp":
        return f"£{whole}.{cents:02d}"
    return f"{whole:,}".replace(",", ".") + f",{cents:02d}"  # comma decimal, no symbol


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 2_000_000_000), st.just(None)), min_size=1, max_size=40)
       .filter(lambda xs: any(x is not None for x in xs)),
       st.sampled_from(["us", "eu", "gbp", "plain-eu"]))
def test_a_uniform_amount_column_reads_as_the_value_by_value_path_reads_it(amounts, style):
    values = ["" if a is None else _written(a, style) for a in amounts]
    fast = csv_file._uniform_money(values)
    assert fast is not None, values
    minor, dec, currency, symbol = fast
    general_minor, general_currency, described = _general(values)
    assert minor == general_minor == [a or 0 for a in amounts]
    assert [currency or "USD"] * len(values) == general_currency
    assert described == f"amount ({'comma' if dec == ',' else 'point'} decimal{', ' + symbol if symbol else ''})"


def test_columns_written_more_than_one_way_take_the_value_by_value_path():
    for values in (["$1,200.50", "€980.00"],  # two currencies
                   ["$1,200.50", "$980"],  # no decimals on one
                   ["$1,200.50", " $980.00"],  # padded
                   ["$1,200.50", "-$980.00"], ["(1,200.00)"],  # negatives
                   ["$1,200.50", "$1.00\n$2.00"],  # a quoted line break in a cell
                   ["1.200,50 €", "1.200,50\u00a0€"],  # another space before the symbol
                   ["¥1,200.50"], ["1,200"], ["1200"], [""]):
        assert csv_file._uniform_money(values) is None, values


def test_amounts_with_a_line_break_in_one_cell_are_a_problem_not_two_amounts(tmp_path: Path, playbook):
    path = tmp_path / "export.csv"
    path.write_text(HEADER + 'A1,Acme,Prospecting,"$1.00\n$2.00",2026-12-20\nA2,Globex,Prospecting,$3.00,'
                    "2026-12-21\n", encoding="utf-8")
    result = csv_file.parse(path, playbook)
    assert result.report() == [f'{path}:2: column "Amount": \'$1.00 $2.00\' is not an amount']


def _file(tmp_path: Path, body: str, newline: str = "\n") -> Path:
    path = tmp_path / "export.csv"
    path.write_bytes(body.replace("\n", newline).encode("utf-8"))
    return path


def _rows(n: int, bad: int | None = None) -> str:
    def amount(k: int) -> str:
        return "$x" if k == bad else f'"${k},000.00"'
    return "".join(f"A{k},Deal {k},Prospecting,{amount(k)},2026-12-20\n" for k in range(n))


def test_problems_name_the_line_whether_rows_are_read_fast_or_one_by_one(tmp_path: Path, playbook):
    fast = _file(tmp_path, HEADER + _rows(50, bad=30))
    assert csv_file._rows_one_per_line(fast.read_text(), csv_file.sniff(fast)) is not None
    assert csv_file.parse(fast, playbook).report() == [f'{fast}:32: column "Amount": \'$x\' is not an amount']
    crlf = _file(tmp_path, HEADER + _rows(50, bad=30), "\r\n")
    assert csv_file.parse(crlf, playbook).report() == [f'{crlf}:32: column "Amount": \'$x\' is not an amount']
    # a quoted line break and blank lines: read row by row, the same line numbers
    body = ("\n\n" + HEADER + 'A0,"Deal\nwith two lines",Prospecting,$1.00,2026-12-20\n\n'
            + _rows(50, bad=30).split("\n", 1)[1])
    slow = _file(tmp_path, body)
    assert csv_file._rows_one_per_line(slow.read_text(), csv_file.sniff(slow)) is None
    assert csv_file.parse(slow, playbook).report() == [f'{slow}:36: column "Amount": \'$x\' is not an amount']


def test_rows_read_fast_are_the_rows_read_one_by_one(tmp_path: Path, playbook):
    path = _file(tmp_path, "\n" + HEADER + _rows(40))
    text = path.read_text()
    fmt = csv_file.sniff(path)
    rows, lines = csv_file._rows_one_per_line(text, fmt)
    assert (len(rows), lines[0], lines[-1]) == (40, 3, 42)
    assert rows[7] == ["A7", "Deal 7", "Prospecting", "$7,000.00", "2026-12-20"]
    assert csv_file.parse(path, playbook).records[7].amount_minor == 7_000_00
    # the same file with one blank line inside: the row-by-row reader, same rows
    blank = _file(tmp_path, "\n" + HEADER + _rows(20) + "\n" + _rows(40).split("\n", 20)[20])
    probs = csv_file._Problems(str(blank))
    slow_rows, slow_lines = csv_file._read_rows(blank.read_text(), csv_file.sniff(blank), probs)
    assert slow_rows == rows and list(slow_lines) == list(range(3, 23)) + list(range(24, 44))
    assert not probs.count


def test_short_and_long_rows_still_name_their_lines(tmp_path: Path, playbook):
    rows = _rows(10).split("\n")
    rows[3] += ",extra"
    rows[6] = "A6,Deal 6"
    path = _file(tmp_path, HEADER + "\n".join(rows))
    assert csv_file.parse(path, playbook).report() == [
        f"{path}:5: row has 6 fields, the header has 5 (long row)",
        f"{path}:8: row has 2 fields, the header has 5 (short row)"]
