"""CSV exports to DealRecords: Salesforce and HubSpot report exports, the Maven CRM sample,
Inspector's own session export, or any file with a column mapping.

Two steps, both Textual-free:

* `sniff(path)` reads the file once to learn its encoding (UTF-8 with or without BOM, else
  cp1252), delimiter, header row and which export it is (with the column mapping that goes
  with it). Anything that makes the file unreadable raises `CsvError`.
* `parse(path, playbook, ...)` converts every row. Each column's format (currency symbol,
  decimal and thousands separators; ISO, D/M/Y, M/D/Y or Excel-serial dates) is decided
  once from all of its values, then the column is converted on a fast path. Nothing is
  guessed row by row: a column that cannot be decided (`03/04/2026` only, `1,200` only)
  becomes a `Question` the caller answers once (CLI flags, a TUI modal). Every problem
  names file, line and column; a result with problems or open questions has no records,
  so callers write nothing (all or nothing).

The records come back as a `RecordBatch` (one list per column; DealRecords when iterated).
`write(store, playbook, records, now=..., dry_run=...)` hands them to `ingest.upsert_deals`
(one transaction, history of what moved, idempotent): a file's first import (and its dry
run) goes straight from the columns, a re-import record by record. Reading, amounts, stage
and category mapping each have a fast path for the common file (rows one per line, amounts
all written alike, few distinct values) and fall back to the value-by-value path, which
names every problem, whenever the file is anything else.
See RELIABILITY.md §7.6 (CSV-01..14, EXP-03) for the cases this module is built against.
"""
from __future__ import annotations

import csv
import gc
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from itertools import chain
from pathlib import Path
from typing import Any

from inspector.money import minor_per_unit
from inspector.playbook import DEAL_FIELDS, Playbook
from inspector.sources.records import DealRecord, RecordBatch
from inspector.text import one_line

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_FIELD_CHARS = 100 * 1024
MAX_PROBLEMS_KEPT = 1000
#: deal.amount_minor is a 32-bit INTEGER column (migration 0001); larger amounts cannot be stored.
MAX_AMOUNT_MINOR = 2**31 - 1

# -- fields a column can feed ---------------------------------------------------------------------
_DATE_EVIDENCE = ("contract_signed_on", "contract_start", "contract_end", "renewal_date", "kickoff_date")
_NON_TEXT_EVIDENCE = frozenset({"discount_pct", "partner_margin_pct", "term_months", "custom_terms",
                                "legal_exception", "product_commitment", "scope_change"})
_BASE_TEXT = ("name", "account", "owner", "team", "manager", "next_step")
#: What `--map COLUMN=FIELD` accepts (besides `extra` = keep in extras and `ignore`).
CORE_FIELDS = ("external_id", "name", "account", "owner", "team", "manager", "stage", "amount", "currency",
               "close_date", "forecast_category", "next_step", "next_step_date", "created_on", "updated_at")
EVIDENCE_FIELDS = tuple(sorted(DEAL_FIELDS - set(CORE_FIELDS) - {"amount_minor"} - _NON_TEXT_EVIDENCE))
FIELDS = CORE_FIELDS + EVIDENCE_FIELDS
_ALIASES = {"category": "forecast_category", "id": "external_id", "close": "close_date", "created": "created_on",
            "crm_updated_at": "updated_at", "amount_minor": "amount", "rep": "owner", "deal": "name",
            "keep": "extra"}
_DATE_FIELDS = frozenset({"close_date", "next_step_date", "created_on", *_DATE_EVIDENCE})
REQUIRED = ("name", "stage")

FIELD_LABELS = {
    "external_id": "Deal id", "name": "Deal name", "account": "Account", "owner": "Owner (rep)",
    "team": "Team", "manager": "Manager", "stage": "Stage", "amount": "Amount", "currency": "Currency",
    "close_date": "Close date", "forecast_category": "Forecast category", "next_step": "Next step",
    "next_step_date": "Next step date", "created_on": "Created on", "updated_at": "Last modified",
}


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " ").capitalize())


# -- profiles: the exports we recognise by their headers ------------------------------------------
@dataclass(frozen=True)
class Profile:
    key: str
    label: str
    #: field -> header names (normalised: lower case, single spaces), first present wins
    columns: dict[str, tuple[str, ...]]
    #: the file is this export when every group has one of its names in the header
    signature: tuple[tuple[str, ...], ...] = ()


SALESFORCE = Profile("salesforce", "Salesforce opportunity report", {
    "external_id": ("opportunity id", "opportunity id (18)", "id", "opportunity: opportunity id"),
    "name": ("opportunity name", "name", "opportunity: opportunity name"),
    "account": ("account name", "account.name", "account: account name", "accountid", "account id"),
    "owner": ("opportunity owner", "owner.name", "owner name", "owner full name", "owner"),
    "stage": ("stage", "stagename", "stage name"),
    "amount": ("amount", "amount (converted)"),
    "currency": ("amount currency", "opportunity currency", "currencyisocode", "currency"),
    "close_date": ("close date", "closedate"),
    "forecast_category": ("forecast category", "forecastcategoryname", "forecastcategory"),
    "next_step": ("next step", "nextstep"),
    "created_on": ("created date", "createddate"),
    "updated_at": ("last modified date", "lastmodifieddate", "systemmodstamp"),
}, signature=(("opportunity name", "name"), ("stage", "stagename"),
              ("opportunity name", "opportunity id", "opportunity owner", "stagename", "closedate",
               "forecastcategoryname", "forecastcategory", "accountid")))

HUBSPOT = Profile("hubspot", "HubSpot deals export", {
    "external_id": ("record id", "deal id", "hs_object_id"),
    "name": ("deal name", "dealname"),
    "account": ("associated company", "associated company (primary)", "company name",
                "associated company name"),
    "owner": ("deal owner", "hubspot_owner_id"),
    "stage": ("deal stage", "dealstage"),
    "amount": ("amount", "amount in company currency"),
    "currency": ("currency", "deal_currency_code"),
    "close_date": ("close date", "closedate"),
    "forecast_category": ("forecast category", "hs_forecast_category"),
    "next_step": ("next step", "hs_next_step"),
    "created_on": ("create date", "createdate"),
    "updated_at": ("last modified date", "hs_lastmodifieddate"),
}, signature=(("deal name", "dealname"), ("deal stage", "dealstage")))

MAVEN = Profile("maven", "Maven CRM sales pipeline", {
    "external_id": ("opportunity_id",), "owner": ("sales_agent",), "products": ("product",),
    "account": ("account",), "stage": ("deal_stage",), "created_on": ("engage_date",),
    "close_date": ("close_date",), "amount": ("close_value",),
}, signature=(("opportunity_id",), ("deal_stage",), ("sales_agent",)))

INSPECTOR = Profile("inspector", "Inspector session export", {
    "external_id": ("deal_id",), "name": ("deal",), "account": ("account",), "owner": ("rep",),
    "stage": ("stage",), "amount": ("amount",), "currency": ("currency",), "close_date": ("close_date",),
    "forecast_category": ("rep_category",), "next_step": ("next_step",), "next_step_date": ("next_step_date",),
}, signature=(("session_id",), ("deal_id",), ("chain_head",), ("event_count",)))

GENERIC = Profile("generic", "CSV file (columns mapped by name)", {
    "external_id": ("id", "deal id", "opportunity id", "record id", "external id", "external_id", "crm id"),
    "name": ("deal", "deal name", "name", "opportunity", "opportunity name", "title"),
    "account": ("account", "account name", "company", "company name", "customer", "client"),
    "owner": ("owner", "rep", "sales rep", "salesperson", "deal owner", "opportunity owner", "sales agent"),
    "team": ("team", "sales team"),
    "manager": ("manager", "sales manager"),
    "stage": ("stage", "deal stage", "stage name", "sales stage"),
    "amount": ("amount", "value", "deal value", "deal amount", "acv"),
    "currency": ("currency", "currency code"),
    "close_date": ("close date", "close_date", "expected close date", "closing date", "close"),
    "forecast_category": ("forecast category", "forecast", "category"),
    "next_step": ("next step", "next_step"),
    "next_step_date": ("next step date", "next_step_date"),
    "created_on": ("created", "created date", "create date", "created on"),
})

PROFILES = {p.key: p for p in (SALESFORCE, HUBSPOT, MAVEN, INSPECTOR, GENERIC)}
FORMATS = ("auto", *PROFILES)


# -- results ------------------------------------------------------------------------------------
def _q(value: object, limit: int = 40) -> str:
    s = one_line(value)
    return "'" + (s if len(s) <= limit else s[:limit - 1] + "…") + "'"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file, where it is: `file:line: column "X": message`."""

    file: str
    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        col = f' column "{one_line(self.column)}":' if self.column is not None else ""
        return one_line(f"{where}:{col} {self.message}")


class CsvError(Exception):
    """The file cannot be read as a CSV export at all (size, encoding, no header...)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(str(problems[0]))


@dataclass(frozen=True)
class Question:
    """An ambiguity only the user can settle, asked once per column."""

    kind: str  # "date_order" | "decimal"
    column: str
    text: str  # one line, names the column and the examples
    examples: tuple[str, ...]
    options: tuple[tuple[str, str], ...]  # (answer, label)
    flag: str  # the CLI flag that answers it

    def cli_hint(self) -> str:
        choices = " or ".join(f"{self.flag} {a}" for a, _l in self.options)
        return f'column "{one_line(self.column)}": {self.text}; rerun with {choices}'


@dataclass
class CsvFormat:
    path: str
    encoding: str  # utf-8-sig | utf-8 | cp1252
    delimiter: str
    header: list[str]
    header_line: int
    profile: str  # a key of PROFILES
    mapping: dict[str, str]  # column -> field, "extra" (kept in extras) or "ignore"
    sample: list[list[str]] = field(default_factory=list)  # first data rows as read
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return PROFILES[self.profile].label

    @property
    def delimiter_name(self) -> str:
        return {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(self.delimiter, self.delimiter)

    def mapped(self, fld: str) -> str | None:
        """The column feeding `fld`, if any."""
        return next((c for c, f in self.mapping.items() if f == fld), None)

    def missing(self) -> list[str]:
        need = [f for f in REQUIRED if not (f == "name" and self.profile == "maven")]
        return [f for f in need if self.mapped(f) is None]


@dataclass
class ParseResult:
    fmt: CsvFormat | None
    records: Sequence[DealRecord] = field(default_factory=list)  # a RecordBatch once parsed
    problems: list[Problem] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    problem_count: int = 0
    rows: int = 0
    column_formats: dict[str, str] = field(default_factory=dict)  # column -> what was detected
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problem_count and not self.questions

    def report(self, limit: int = 20) -> list[str]:
        """The first `limit` problems in file order as one-line strings, then how many more."""
        ordered = sorted(self.problems, key=lambda p: (p.line is not None, p.line or 0))
        lines = [str(p) for p in ordered[:limit]]
        if self.problem_count > limit:
            lines.append(f"… and {self.problem_count - limit} more problems")
        return lines


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []
        self.count = 0

    def add(self, line: int | None, column: str | None, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_PROBLEMS_KEPT:
            self.items.append(Problem(self.file, line, column, message))


# -- reading ------------------------------------------------------------------------------------
_C1 = re.compile("[\x80-\x9f]")
_DELIMITERS = (",", ";", "\t", "|")


def _norm(header: str) -> str:
    return " ".join(header.replace("\ufeff", "").split()).lower()


def _line_of(data: bytes | str, pos: int) -> int:
    return data.count(b"\n" if isinstance(data, bytes) else "\n", 0, pos) + 1


def _read_text(path: Path, label: str) -> tuple[str, str]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CsvError([Problem(label, None, None, f"file is {size / 1048576:.1f} MB; the limit is "
                                    f"{MAX_FILE_BYTES // 1048576} MB (split the export)")])
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CsvError([Problem(label, None, None, f"cannot read ({exc.strerror or exc})")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise CsvError([Problem(label, None, None, f"file is larger than {MAX_FILE_BYTES // 1048576} MB "
                                "(split the export)")])
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise CsvError([Problem(label, 1, None, "UTF-16 file: save it as CSV UTF-8")])
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise CsvError([Problem(label, _line_of(data, exc.start + 3), None,
                                    f"byte 0x{data[exc.start + 3]:02X} is not UTF-8 although the file "
                                    "starts with a UTF-8 byte order mark")]) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise CsvError([Problem(label, _line_of(data, exc.start), None,
                                f"byte 0x{data[exc.start]:02X} is neither UTF-8 nor Windows-1252 text "
                                "(save the file as CSV UTF-8)")]) from None


def _pick_delimiter(text: str) -> str | None:
    head = text[:65536]
    if len(text) > len(head) and "\n" in head:
        head = head[:head.rindex("\n")]
    best: tuple[float, int, str] | None = None
    for d in _DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(head, newline=""), delimiter=d) if any(r)][:50]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        share = sum(1 for r in rows if len(r) == width) / len(rows)
        score = (share, width, d)
        if best is None or score[:2] > best[:2]:
            best = score
    return best[2] if best else None


_LOOKS_NUMERIC = re.compile(r"[-+(]?\s*[$€£¥]?\s*\d[\d.,\s]*\)?\s*[$€£¥]?")
_LOOKS_DATE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[T ].*)?")


def _looks_like_data(cell: str) -> bool:
    s = cell.strip()
    return bool(s) and bool(_LOOKS_NUMERIC.fullmatch(s) or _LOOKS_DATE.fullmatch(s))


def _recognise(header_norm: list[str]) -> Profile:
    present = set(header_norm)
    for p in (INSPECTOR, MAVEN, HUBSPOT, SALESFORCE):
        if p.signature and all(any(n in present for n in group) for group in p.signature):
            return p
    return GENERIC


def _profile_mapping(profile: Profile, header: list[str]) -> dict[str, str]:
    norm = [_norm(h) for h in header]
    mapping = {h: "extra" for h in header}
    taken: set[str] = set()
    for fld, names in profile.columns.items():
        for name in names:
            if name in norm:
                col = header[norm.index(name)]
                if col not in taken:
                    mapping[col] = fld
                    taken.add(col)
                    break
    return mapping


def _canonical_field(name: str) -> str | None:
    f = name.strip().lower().replace(" ", "_").replace("-", "_")
    f = _ALIASES.get(f, f)
    return f if f in FIELDS or f in ("extra", "ignore") else None


def sniff(path: str | os.PathLike, *, profile: str = "auto") -> CsvFormat:
    """Encoding, delimiter, header row and export format of the file at `path`.

    Raises CsvError when the file cannot be read as a CSV export (too big, not text in a
    supported encoding, no delimiter, no header row)."""
    p = Path(path)
    label = str(path)
    text, encoding = _read_text(p, label)
    return _sniff_text(p, label, text, encoding, profile)


def _sniff_text(p: Path, label: str, text: str, encoding: str, profile: str) -> CsvFormat:
    if not text.strip():
        raise CsvError([Problem(label, None, None, "the file is empty")])
    if text.count("\x00") > max(8, len(text) // 10):
        raise CsvError([Problem(label, 1, None, "the file looks like UTF-16 (NUL bytes): save it as CSV UTF-8")])
    delimiter = _pick_delimiter(text)
    if delimiter is None:
        raise CsvError([Problem(label, 1, None, "no header row recognised: the first line has one column "
                                "(no comma, semicolon, tab or | delimiter found)")])
    header: list[str] = []
    header_line = 0
    sample: list[list[str]] = []
    reader = csv.reader(io.StringIO(text[:262144], newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if not header:
                if any(c.strip() for c in row):
                    header, header_line = row, reader.line_num
                continue
            if any(row):
                sample.append(row)
            if len(sample) >= 20:
                break
    except csv.Error:
        pass  # a field larger than csv's own limit: parse() reports it with its line
    if not header:
        raise CsvError([Problem(label, None, None, "no header row recognised: the file has no rows")])
    data_like = [(i, c) for i, c in enumerate(header) if _looks_like_data(c)]
    if data_like:
        i, c = data_like[0]
        raise CsvError([Problem(label, header_line, None,
                                f"no header row recognised: line {header_line} looks like data "
                                f"({_q(c)} in column {i + 1}); the first line must name the columns")])
    norm = [_norm(h) for h in header]
    if profile == "auto":
        prof = _recognise(norm)
    else:
        prof = PROFILES[profile]
    fmt = CsvFormat(path=label, encoding=encoding, delimiter=delimiter, header=header, header_line=header_line,
                    profile=prof.key, mapping=_profile_mapping(prof, header), sample=sample)
    if prof is MAVEN and (p.parent / "sales_teams.csv").is_file():
        fmt.notes.append("manager and team joined from sales_teams.csv (by sales agent)")
    return fmt


def _read_rows(text: str, fmt: CsvFormat, probs: _Problems) -> tuple[list[list[str]], Sequence[int]]:
    """Data rows after the header with their first line numbers; short/long/oversized rows are problems."""
    width = len(fmt.header)
    fast = _rows_one_per_line(text, fmt)
    if fast is not None:
        rows, lines = fast
        if max(map(len, text.split("\n"))) > MAX_FIELD_CHARS:  # a row is a line: no field is longer
            _check_field_sizes(text, fmt, probs, rows, lines)
        return rows, lines
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter)
    rows = []
    lines: list[int] = []  # type: ignore[no-redef]
    prev_end = 0
    seen_header = False
    try:
        for row in reader:
            start, prev_end = prev_end + 1, reader.line_num
            if not seen_header:
                seen_header = start >= fmt.header_line or prev_end >= fmt.header_line
                continue
            if not row or (len(row) == 1 and not row[0]):
                continue  # blank line
            if len(row) != width:
                if len(row) < width and not any(row):
                    continue
                probs.add(start, None, f"row has {len(row)} fields, the header has {width} "
                                       f"({'short' if len(row) < width else 'long'} row)")
                continue
            rows.append(row)
            lines.append(start)
    except csv.Error as exc:
        msg = str(exc)
        if "field larger than field limit" in msg:
            raise CsvError([Problem(probs.file, prev_end + 1, None, f"a field is larger than the "
                                    f"{MAX_FIELD_CHARS // 1024} kB limit")]) from None
        raise CsvError([Problem(probs.file, prev_end + 1, None, f"not valid CSV ({msg})")]) from None
    _check_field_sizes(text, fmt, probs, rows, lines)
    return rows, lines


def _rows_one_per_line(text: str, fmt: CsvFormat) -> tuple[list[list[str]], range] | None:
    """The data rows read at C speed, when every row of the file is one line of it (no quoted
    line breaks) and has the header's width: then row k's line number is plain arithmetic.
    None when that does not hold (or the file is not valid CSV): `_read_rows` then reads row
    by row and reports blank, short and long rows with their lines."""
    if text.count("\r") != text.count("\r\n"):
        return None  # lone CR line breaks: csv and our line numbers would count differently
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter))
    except csv.Error:
        return None
    ends = text.count("\n") + (0 if text.endswith("\n") else 1)
    head = fmt.header_line - 1
    if ends != len(rows) or head >= len(rows) or rows[head] != fmt.header:
        return None
    width = len(fmt.header)
    data = rows[head + 1:]
    del rows
    if not all(len(r) == width for r in data):
        return None
    return data, range(head + 2, head + 2 + len(data))


def _check_field_sizes(text: str, fmt: CsvFormat, probs: _Problems, rows: list[list[str]],
                       lines: Sequence[int]) -> None:
    """Oversized fields: one pass over all cells at C speed, then find the first offending row."""
    if len(text) > MAX_FIELD_CHARS and rows and max(map(len, chain.from_iterable(rows))) > MAX_FIELD_CHARS:
        for row, start in zip(rows, lines):
            if max(map(len, row)) > MAX_FIELD_CHARS:
                big = max(range(len(fmt.header)), key=lambda i: len(row[i]))
                raise CsvError([Problem(probs.file, start, fmt.header[big],
                                        f"field of {len(row[big]):,} characters; the limit is "
                                        f"{MAX_FIELD_CHARS // 1024} kB")])


# -- money --------------------------------------------------------------------------------------
_SYMBOL_CURRENCY = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "US$": "USD"}
_PLAIN_MONEY = re.compile(r"-?\d+(?:\.\d{1,2})?")
_MONEY = re.compile(
    r"(?P<lp>\()?\s*(?P<s1>-)?\s*(?P<pre>US\$|[$€£¥]|[A-Z]{3}(?=[\s\d-]))?\s*(?P<s2>-)?\s*"
    r"(?P<num>\d(?:[\d.,'\u00a0\u202f ]*\d)?)"
    r"\s*(?P<suf>bn|BN|[kKmMbB])?\s*(?P<post>[$€£¥]|[A-Z]{3})?\s*(?P<rp>\))?")
_GROUP_CHARS = str.maketrans("", "", "'\u00a0\u202f ")
_SUFFIX = {"k": 1000, "m": 1_000_000, "b": 1_000_000_000, "bn": 1_000_000_000}


_PER_UNIT: dict[str, int] = {}


def _minor(number: str, currency: str) -> int:
    """'1200.50' (point decimal, no grouping) in minor units of `currency`."""
    per = _PER_UNIT.get(currency)
    if per is None:
        per = _PER_UNIT[currency] = minor_per_unit(currency)
    whole, _, frac = number.partition(".")
    places = 2 if per == 100 else 0
    if len(frac) <= places:
        return int(whole) * per + (int(frac.ljust(places, "0")) if places else 0)
    return int((Decimal(number) * per).to_integral_value())


@dataclass
class _MoneyFormat:
    decimal: str | None  # "." or "," (None: no separators seen)
    described: str
    #: the one currency the column's symbols name ('12,5' beside '1.200,50 €' is EUR too)
    currency: str | None = None
    #: each value's `_MONEY` match (None: empty or no match), so converting does not match again
    matches: list[re.Match | None] | None = field(default=None, repr=False)


def _money_format(name: str, values: Sequence[str], lines: Sequence[int], probs: _Problems,
                  answer: str | None) -> tuple[_MoneyFormat | None, Question | None]:
    evidence: dict[str, tuple[int, str]] = {}
    ambiguous: list[str] = []
    symbols: set[str] = set()
    matches: list[re.Match | None] = [None] * len(values)
    match = _MONEY.fullmatch
    for i, v in enumerate(values):
        if not v:
            continue
        m = matches[i] = match(v.strip())
        if m is None:
            continue  # reported when converting
        _lp, _s1, pre, _s2, num, _suf, post, _rp = m.groups()
        if pre or post:
            symbols.add(pre or post)
        num = num.translate(_GROUP_CHARS)
        dots, commas = num.count("."), num.count(",")
        if dots and commas:
            dec = "." if num.rindex(".") > num.rindex(",") else ","
            if dec in evidence:
                continue
        elif dots + commas == 0:
            continue
        else:
            sep = "." if dots else ","
            if dots + commas > 1:
                dec = "," if sep == "." else "."
            elif len(num) - num.index(sep) - 1 != 3:
                dec = sep
            else:
                if len(ambiguous) < 3:
                    ambiguous.append(v.strip())
                elif not ambiguous:
                    pass
                continue
        if dec not in evidence:
            evidence[dec] = (lines[i], v.strip())
    if "." in evidence and "," in evidence:
        (l1, v1), (l2, v2) = evidence["."], evidence[","]
        probs.add(max(l1, l2), name, f"amounts mix point decimals ({_q(v1)} on line {l1}) and comma decimals "
                                     f"({_q(v2)} on line {l2})")
        return None, None
    sym = f", {'/'.join(sorted(symbols))}" if symbols else ""
    codes = {_SYMBOL_CURRENCY.get(s, s) for s in symbols}
    one = next(iter(codes)) if len(codes) == 1 else None
    if evidence:
        dec = next(iter(evidence))
        return _MoneyFormat(dec, f"amount ({'comma' if dec == ',' else 'point'} decimal{sym})", one, matches), None
    if ambiguous:
        if answer in ("comma", "point"):
            dec = "," if answer == "comma" else "."
            return _MoneyFormat(dec, f"amount ({answer} decimal as answered{sym})", one, matches), None
        return None, Question(
            "decimal", name,
            f"amounts like {', '.join(ambiguous)} could use a comma or a point as the decimal separator",
            tuple(ambiguous),
            (("point", "Point is the decimal separator (1,200 = one thousand two hundred)"),
             ("comma", "Comma is the decimal separator (1,200 = one point two)")),
            "--decimal")
    return _MoneyFormat(None, f"amount{sym}" if sym else "amount (plain numbers)", one, matches), None


#: one amount written the simplest common ways: "$1,200.50", "1.200,50 €", "£980.00", "1200.50"
_SHAPE = re.compile(r"(?P<pre>US\$|[$€£])?(?:\d{1,3}(?:(?P<group>[.,])\d{3})+|\d+)(?P<dec>[.,])\d\d"
                    r"(?P<post>[ \u00a0]?[$€£])?")
_UNIFORM: dict[tuple[str, str, str, str], re.Pattern] = {}


def _uniform_money(values: Sequence[str]) -> tuple[list[int], str, str | None, str] | None:
    """A column whose every amount is written like its first one ("$1,200.50": the same symbol,
    separators and two decimals; empty cells allowed), converted at C speed over the column's
    joined text: (minor units, decimal separator, currency or None, symbol). None for any other
    column, which `_money_format` and `_convert_money` then take value by value (they read
    such a column the same way: this is only their fast path)."""
    first = next((v for v in values if v), None)
    m = _SHAPE.fullmatch(first) if first is not None else None
    if m is None or (m["pre"] and m["post"]) or m["group"] == m["dec"]:
        return None
    pre, post, dec = m["pre"] or "", m["post"] or "", m["dec"]
    group = "," if dec == "." else "."
    symbol = (pre or post).strip()
    currency = _SYMBOL_CURRENCY.get(symbol) if symbol else None
    if minor_per_unit(currency or "USD") != 100:
        return None
    key = (pre, post, dec, group)
    whole = _UNIFORM.get(key)
    if whole is None:
        one = (re.escape(pre) + rf"(?:\d{{1,3}}(?:{re.escape(group)}\d{{3}})+|\d+){re.escape(dec)}\d\d"
               + re.escape(post))
        whole = _UNIFORM[key] = re.compile(rf"(?:{one})?(?:\n(?:{one})?)*")
    joined = "\n".join(values)
    if whole.fullmatch(joined) is None:
        return None
    for part in (pre, post, group, dec):
        if part:
            joined = joined.replace(part, "")
    minor = [int(v) if v else 0 for v in joined.split("\n")]
    if len(minor) != len(values):
        return None  # a quoted line break inside an amount
    return minor, dec, currency, symbol


def _convert_money(name: str, values: Sequence[str], lines: Sequence[int], fmt: _MoneyFormat,
                   currencies: Sequence[str] | None, probs: _Problems, suffixes: bool
                   ) -> tuple[list[int], list[str]]:
    """Amounts in minor units and each row's currency (column, else symbol, else USD)."""
    n = len(values)
    cur_col = list(currencies) if currencies is not None else [""] * n
    default = (fmt.currency if currencies is None else None) or "USD"
    out_cur = [(c.strip().upper() or default) for c in cur_col]
    if all(not v or _PLAIN_MONEY.fullmatch(v) for v in values):  # fast path: 1200 / -1200.5
        out = []
        for i, v in enumerate(values):
            out.append(_minor(v, out_cur[i]) if v else 0)
        _check_range(name, out, values, lines, probs)
        return out, out_cur
    dec = fmt.decimal
    thousands = {".": ",", ",": "."}.get(dec or "", "")
    out = [0] * n
    matches = fmt.matches if fmt.matches is not None and len(fmt.matches) == n else None
    for i, raw in enumerate(values):
        if not raw:
            continue
        if matches is not None:
            m = matches[i]
            if m is None and not raw.strip():
                continue
        else:
            v = raw.strip()
            if not v:
                continue
            m = _MONEY.fullmatch(v)
        if m is None:
            probs.add(lines[i], name, f"{_q(raw)} is not an amount")
            continue
        lp, s1, pre, s2, num, suf, post, rp = m.groups()
        if (lp is None) != (rp is None) or (s1 and s2) or (pre and post):
            probs.add(lines[i], name, f"{_q(raw)} is not an amount")
            continue
        num = num.translate(_GROUP_CHARS)
        if thousands:
            num = num.replace(thousands, "")
        if dec == ",":
            num = num.replace(",", ".")
        elif dec is None and ("," in num or "." in num):
            probs.add(lines[i], name, f"{_q(raw)} is not an amount")
            continue
        if num.count(".") > 1:
            probs.add(lines[i], name, f"{_q(raw)} is not an amount (separators do not match the column)")
            continue
        if suf:
            if not suffixes:
                probs.add(lines[i], name, f"{_q(raw)} has a K/M/B suffix; amounts must be written out "
                                          "(or turn on amount suffixes: --amount-suffixes)")
                continue
            num = str(Decimal(num) * _SUFFIX[suf.lower()])
        sym = pre or post
        if sym:
            code = _SYMBOL_CURRENCY.get(sym, sym)
            c = cur_col[i]
            if c and c.strip() and c.strip().upper() != code:
                probs.add(lines[i], name, f"{_q(raw)} is in {code} but the currency column says "
                                          f"{_q(c.strip())}")
                continue
            out_cur[i] = code
        try:
            minor = _minor(num, out_cur[i])
        except (ValueError, InvalidOperation):
            probs.add(lines[i], name, f"{_q(raw)} is not an amount")
            continue
        out[i] = -minor if (s1 or s2 or lp) else minor
    _check_range(name, out, values, lines, probs)
    return out, out_cur


def _check_range(name: str, out: list[int], values: Sequence[str], lines: Sequence[int],
                 probs: _Problems) -> None:
    if out and max(map(abs, out)) > MAX_AMOUNT_MINOR:
        for i, m in enumerate(out):
            if abs(m) > MAX_AMOUNT_MINOR:
                probs.add(lines[i], name, f"{_q(values[i])} is larger than the store can hold "
                                          f"({MAX_AMOUNT_MINOR // 100:,} in major units)")


# -- dates --------------------------------------------------------------------------------------
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?\s*"
                  r"(?:Z|[+-]\d{2}:?\d{2})?)?")
_YMD_SLASH = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})")
_DM = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})"
                 r"(?:,?[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?)?")
_SERIAL = re.compile(r"\d+(?:\.\d+)?")
_MONTH_NAME = re.compile(r"[A-Za-z]{3,}")
_EXCEL_EPOCH = date(1899, 12, 30)
_EXCEL_MAX = 2958465  # 9999-12-31


def _year(y: str) -> int:
    n = int(y)
    if len(y) == 2:
        return 2000 + n if n < 70 else 1900 + n
    return n


def _hms(h: str | None, mi: str | None, s: str | None, ampm: str | None) -> time:
    if h is None:
        return time(0)
    hour = int(h)
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError("hour")
        hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
    return time(hour, int(mi or 0), int(s or 0))


def _named_date(v: str) -> datetime:
    """A date written with a month name ('Apr 3, 2026', '3 April 2026'): every part must be there."""
    from dateutil import parser

    a = parser.parse(v, default=datetime(1901, 1, 1))
    b = parser.parse(v, default=datetime(1902, 2, 2))
    if a.date() != b.date():
        raise ValueError("incomplete date")
    return a


def _to_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _example_date(example: str, month: int, day: int, pattern: str) -> str:
    """' (03/04/2026 = 3 April)' for a question's option, or '' when that reading is no date."""
    try:
        return f" ({example} = {date(2000, month, day).strftime(pattern)})"
    except ValueError:
        return ""


class _Bad(str):
    """A conversion failure cached per distinct value: the message after the quoted value."""


def _convert_dates(name: str, values: Sequence[str], lines: Sequence[int], probs: _Problems,
                   answer: str | None, want_datetime: bool) -> tuple[list[Any], str, Question | None]:
    """A date column: decide its format once, then convert. Returns (values, description, question).

    Exports repeat dates a lot (100k rows hold a few hundred distinct close dates), so the
    format is decided and each distinct text converted once; problems still name every row."""
    n = len(values)
    out: list[Any] = [None] * n
    keys = list(map(str.strip, values))
    first = dict.fromkeys(keys)  # the distinct values in file order
    first.pop("", None)
    if not first:
        return out, "date (empty)", None
    iso = _ISO.fullmatch
    conv: dict[str, Any] = {}

    def iso_value(v: str) -> Any:
        if want_datetime:
            return _to_utc(datetime.fromisoformat(v.replace(" ", "T", 1) if len(v) > 10 else v))
        return date.fromisoformat(v[:10])

    def spread() -> None:  # the distinct conversions to every row, problems in file order
        if not any(type(r) is _Bad for r in conv.values()):
            conv[""] = None
            out[:] = map(conv.__getitem__, keys)
            return
        for i, s in enumerate(keys):
            if s:
                r = conv[s]
                if type(r) is _Bad:
                    probs.add(lines[i], name, _q(values[i]) + r)
                else:
                    out[i] = r

    non_iso = [s for s in first if not iso(s)]
    if not non_iso:  # the common case: ISO dates or datetimes
        for s in first:
            try:
                conv[s] = iso_value(s)
            except ValueError:
                conv[s] = _Bad(" is not a valid date")
        spread()
        return out, "date (ISO)", None
    if all(_SERIAL.fullmatch(s) for s in first):
        for s in first:
            num = float(s)
            if num <= 60:
                conv[s] = _Bad(" is not a date: Excel serials up to 60 fall in the 1900 leap-year bug range")
            elif num > _EXCEL_MAX:
                conv[s] = _Bad(" is not a date (too large for an Excel serial)")
            else:
                whole = int(num)
                day = _EXCEL_EPOCH + timedelta(days=whole)
                conv[s] = datetime.combine(day, time(0), timezone.utc) + timedelta(days=num - whole) \
                    if want_datetime else day
        spread()
        return out, "date (Excel serial numbers)", None
    # D/M/Y or M/D/Y: the column's values decide; if none can, the user does (once)
    dm: dict[str, re.Match] = {}
    dmy_at: tuple[int, str] | None = None
    mdy_at: tuple[int, str] | None = None
    for s in non_iso:  # distinct values in order of first appearance
        m = _DM.fullmatch(s)
        if m is None:
            continue
        dm[s] = m
        a, b = int(m[1]), int(m[3])
        if a > 12 and dmy_at is None:
            dmy_at = (lines[keys.index(s)], s)
        if b > 12 and mdy_at is None:
            mdy_at = (lines[keys.index(s)], s)
    order: str | None = None
    question = None
    description = "date (ISO)"
    if dm:
        if dmy_at and mdy_at:
            probs.add(max(dmy_at[0], mdy_at[0]), name,
                      f"dates mix day/month ({_q(dmy_at[1])} on line {dmy_at[0]}) and month/day "
                      f"({_q(mdy_at[1])} on line {mdy_at[0]})")
            return out, "date (mixed)", None
        if dmy_at:
            order, description = "dmy", "date (D/M/Y)"
        elif mdy_at:
            order, description = "mdy", "date (M/D/Y)"
        elif answer in ("dmy", "mdy"):
            order = answer
            description = f"date ({'D/M/Y' if answer == 'dmy' else 'M/D/Y'} as answered)"
        else:
            examples = tuple(list(dm)[:3])
            first_m = dm[examples[0]]
            a, b = int(first_m[1]), int(first_m[3])
            question = Question(
                "date_order", name,
                f"dates like {', '.join(examples)} could be day/month or month/day",
                examples,
                (("dmy", "Day/Month/Year" + _example_date(examples[0], b, a, "%-d %B")),
                 ("mdy", "Month/Day/Year" + _example_date(examples[0], a, b, "%B %-d"))),
                "--dates")
            return out, "date (day/month order unknown)", question
    for v in first:
        try:
            m = dm.get(v)
            if m is not None:
                a, b = int(m[1]), int(m[3])
                day, month = (a, b) if order == "dmy" else (b, a)
                d = date(_year(m[4]), month, day)
                conv[v] = datetime.combine(d, _hms(m[5], m[6], m[7], m[8]), timezone.utc) if want_datetime else d
                continue
            if iso(v) is not None:
                conv[v] = iso_value(v)
                continue
            m = _YMD_SLASH.fullmatch(v)
            if m is not None:
                d = date(int(m[1]), int(m[2]), int(m[3]))
                conv[v] = datetime.combine(d, time(0), timezone.utc) if want_datetime else d
                continue
            if _SERIAL.fullmatch(v):
                conv[v] = _Bad(" is a number in a column of dates")
                continue
            if _MONTH_NAME.search(v):
                moment = _named_date(v)
                conv[v] = _to_utc(moment) if want_datetime else moment.date()
                if description == "date (ISO)":
                    description = "date (month names)"
                continue
            conv[v] = _Bad(" is not a date")
        except (ValueError, OverflowError):
            conv[v] = _Bad(" is not a valid date")
    spread()
    return out, description, None


# -- the parse ----------------------------------------------------------------------------------
def _answer(answers: str | dict[str, str] | None, column: str) -> str | None:
    if isinstance(answers, dict):
        return answers.get(column)
    return answers


def _resolve_mapping(fmt: CsvFormat, mapping: dict[str, str] | None, probs: _Problems) -> None:
    """Apply the user's COLUMN=FIELD choices on top of the profile's mapping."""
    if not mapping:
        return
    by_norm = {_norm(h): h for h in fmt.header}
    chosen: dict[str, str] = {}
    for col, fld in mapping.items():
        real = col if col in fmt.mapping else by_norm.get(_norm(col))
        target = _canonical_field(fld)
        if real is None:
            probs.add(None, col, f"mapping: the file has no such column (columns: "
                                 f"{', '.join(fmt.header)[:200]})")
            continue
        if target is None:
            probs.add(None, col, f"mapping: unknown field {_q(fld)} (one of: extra, ignore, "
                                 f"{', '.join(FIELDS)})")
            continue
        if target not in ("extra", "ignore") and target in chosen.values():
            other = next(c for c, f in chosen.items() if f == target)
            probs.add(None, real, f"mapping: {target} is already fed by column \"{other}\"")
            continue
        chosen[real] = target
    for real, target in chosen.items():
        if target not in ("extra", "ignore"):
            for c, f in fmt.mapping.items():
                if f == target and c not in chosen:
                    fmt.mapping[c] = "extra"
        fmt.mapping[real] = target


def _teams_beside(path: Path) -> dict[str, tuple[str, str]]:
    """Maven's sales_teams.csv: sales_agent -> (manager, regional_office)."""
    teams_path = path.parent / "sales_teams.csv"
    try:
        text, _enc = _read_text(teams_path, str(teams_path))
    except CsvError:
        return {}
    out = {}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        agent = (row.get("sales_agent") or "").strip()
        if agent:
            out[agent] = ((row.get("manager") or "").strip(), (row.get("regional_office") or "").strip())
    return out


def _map_value(lookup: Callable[[str], str | None], value: str) -> str | None:
    key = lookup(value)
    if key is None:
        key = lookup(re.sub(r"[\s/_.\-]+", " ", value).strip())
    if key is None:
        key = lookup(re.sub(r"[^0-9a-z]", "", value.lower()))
    return key


def _unneutralise(value: str) -> str:
    """Our own CSV exports put `'` before cells a spreadsheet would run as formulas (EXP-01)."""
    from inspector.exports import FORMULA_PREFIXES

    if len(value) > 1 and value[0] == "'" and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while a big file becomes lists and records: they hold no cycles, and
    CPython's generation-2 passes over 100k fresh rows cost about as much as the parse."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse(path: str | os.PathLike, playbook: Playbook, *, fmt: CsvFormat | str | None = None,
          mapping: dict[str, str] | None = None, date_order: str | dict[str, str] | None = None,
          decimal: str | dict[str, str] | None = None, source: str = "csv",
          amount_suffixes: bool = False) -> ParseResult:
    """Read the export at `path` into DealRecords (see the module docstring).

    `fmt` is a profile name ("auto", "salesforce", ...) or a CsvFormat from `sniff`;
    `mapping` maps columns to fields on top of the profile's; `date_order` ("dmy"/"mdy") and
    `decimal` ("comma"/"point") answer questions, for every column or per column (dict).
    """
    with _gc_paused():
        return _parse(path, playbook, fmt=fmt, mapping=mapping, date_order=date_order, decimal=decimal,
                      source=source, amount_suffixes=amount_suffixes)


def _parse(path: str | os.PathLike, playbook: Playbook, *, fmt: CsvFormat | str | None,
           mapping: dict[str, str] | None, date_order: str | dict[str, str] | None,
           decimal: str | dict[str, str] | None, source: str, amount_suffixes: bool) -> ParseResult:
    p = Path(path)
    label = str(path)
    probs = _Problems(label)
    try:
        text, encoding = _read_text(p, label)
        profile = fmt if isinstance(fmt, str) else (fmt.profile if fmt is not None else "auto")
        base = _sniff_text(p, label, text, encoding, profile)
    except CsvError as exc:
        return ParseResult(None, problems=exc.problems, problem_count=len(exc.problems))
    if isinstance(fmt, CsvFormat):  # keep the caller's mapping (e.g. edited in the TUI)
        base.mapping = {h: fmt.mapping.get(h, "extra") for h in base.header}
    cf = base
    _resolve_mapping(cf, mapping, probs)
    result = ParseResult(cf, notes=list(cf.notes))
    try:
        rows, lines = _read_rows(text, cf, probs)
    except CsvError as exc:
        result.problems, result.problem_count = exc.problems, len(exc.problems)
        return result
    result.rows = len(rows)
    header = cf.header
    width = len(header)
    columns: list[tuple[str, ...]] = list(zip(*rows)) if rows else [() for _ in header]

    # header problems
    seen: dict[str, int] = {}
    for i, h in enumerate(header):
        key = _norm(h)
        if not key:
            if any(v.strip() for v in columns[i]):
                probs.add(cf.header_line, f"#{i + 1}", f"column {i + 1} has values but no name in the header")
            else:
                cf.mapping[h] = "ignore"
            continue
        if key in seen:
            probs.add(cf.header_line, h, f"duplicate column name (columns {seen[key] + 1} and {i + 1})")
        else:
            seen[key] = i
    missing = cf.missing()
    if missing and cf.profile == "generic" and not mapping and \
            all(f in ("extra", "ignore") for f in cf.mapping.values()):
        probs.add(cf.header_line, None,
                  "no header row recognised: none of the names on the first line ("
                  + ", ".join(_q(h, 20) for h in header[:6]) + (", …" if len(header) > 6 else "")
                  + ") is a column Inspector knows; add a header row or map the columns with --map COLUMN=FIELD")
        missing = []
    for fld in missing:
        probs.add(cf.header_line, None,
                  f"no column for the {field_label(fld).lower()} ({fld}); map one with --map COLUMN={fld}"
                  + (" (not a Salesforce, HubSpot or Maven export)" if cf.profile == "generic" else ""))
    if not rows:
        probs.add(cf.header_line, None, "no data rows after the header")
    if probs.count:
        result.problems, result.problem_count = probs.items, probs.count
        return result

    # text cells: no C1 controls (an encoding mix-up), no NUL (not storable in PostgreSQL)
    if _C1.search(text) or "\x00" in text:
        for i in range(width):
            for v, line in zip(columns[i], lines):
                if "\x00" in v:
                    probs.add(line, header[i], "NUL character in the text (the store cannot keep it)")
                m = _C1.search(v)
                if m:
                    probs.add(line, header[i], f"control character U+{ord(m.group()):04X} in the text: the file "
                                               "mixes encodings (cp1252 read as Latin-1?); re-export it as UTF-8")
    if cf.profile == "inspector":
        columns = [tuple(map(_unneutralise, col)) for col in columns]

    col_of = {f: header.index(c) for c, f in cf.mapping.items() if f not in ("extra", "ignore")}
    n = len(rows)

    def column(fld: str) -> tuple[str, ...] | None:
        i = col_of.get(fld)
        return columns[i] if i is not None else None

    questions: list[Question] = []
    values: dict[str, list[Any]] = {}
    for fld in sorted(col_of, key=col_of.get):
        name = header[col_of[fld]]
        col = columns[col_of[fld]]
        if fld in _DATE_FIELDS or fld == "updated_at":
            conv, desc, question = _convert_dates(name, col, lines, probs, _answer(date_order, name),
                                                  fld == "updated_at")
            result.column_formats[name] = desc
            if question:
                questions.append(question)
            values[fld] = conv
        elif fld == "amount":
            uniform = _uniform_money(col) if "currency" not in col_of else None
            if uniform is not None:
                minor, dec, currency, symbol = uniform
                result.column_formats[name] = (f"amount ({'comma' if dec == ',' else 'point'} decimal"
                                               f"{', ' + symbol if symbol else ''})")
                values["amount"], values["currency"] = minor, [currency or "USD"] * n
                _check_range(name, minor, col, lines, probs)
                continue
            mfmt, question = _money_format(name, col, lines, probs, _answer(decimal, name))
            if question:
                questions.append(question)
                result.column_formats[name] = "amount (decimal separator unknown)"
            elif mfmt is not None:
                result.column_formats[name] = mfmt.described
                values["amount"], values["currency"] = _convert_money(
                    name, col, lines, mfmt, column("currency"), probs, amount_suffixes)
        elif fld == "currency":
            result.column_formats[name] = "currency code"
            bad = [(line, v) for v, line in zip(col, lines) if v.strip() and not re.fullmatch(r"[A-Za-z]{3}", v.strip())]
            for line, v in bad[:50]:
                probs.add(line, name, f"{_q(v)} is not a currency code (like USD, EUR)")
        else:
            result.column_formats[name] = "text"
    if "currency" in col_of and "amount" not in col_of:
        values["currency"] = [(v.strip().upper() or "USD") for v in columns[col_of["currency"]]]

    # ids: given, or derived from name + account when the export has none
    ids_col = column("external_id")
    if ids_col is not None:
        ids = list(map(str.strip, ids_col))
        id_name = header[col_of["external_id"]]
        distinct = set(ids)
        if "" in distinct:
            for i, v in enumerate(ids):
                if not v:
                    probs.add(lines[i], id_name, "empty id")
    else:
        id_name = "(derived id)"
        names = column("name") or [""] * n
        accounts = column("account") or [""] * n
        ids = ["h" + hashlib.sha1(f"{nm.strip()}\x1f{ac.strip()}".encode()).hexdigest()[:15]
               for nm, ac in zip(names, accounts)]
        distinct = set(ids)
        result.notes.append("no id column: each deal's id is a hash of its name and account, so a "
                            "re-import matches deals by name and account (renaming one makes it new)")
    if len(distinct - {""}) < n - ids.count(""):  # duplicates: name both lines of each
        first_line: dict[str, int] = {}
        for i, v in enumerate(ids):
            if not v:
                continue
            if v in first_line:
                what = f"duplicate id {_q(v)}" if ids_col is not None else \
                    "same name and account as another row (no id column; map one with --map COLUMN=external_id)"
                probs.add(lines[i], id_name if ids_col is not None else None,
                          f"{what}: lines {first_line[v]} and {lines[i]}")
            else:
                first_line[v] = lines[i]

    # stage and category through the playbook's maps (one problem per unknown value)
    stage_col = column("stage")
    stage_name = header[col_of["stage"]] if "stage" in col_of else ""
    stage_keys: list[str] = [""] * n
    crm_stages: list[str] = list(map(str.strip, stage_col)) if stage_col is not None else []
    if stage_col is not None:
        # each distinct value mapped once; row by row only to say where the unmapped ones are
        cache: dict[str, str | None] = {s: _map_value(playbook.map_stage, s) if s else None
                                        for s in dict.fromkeys(crm_stages)}
        unknown: dict[str, list[int]] = {}
        if None not in cache.values():
            stage_keys = list(map(cache.__getitem__, crm_stages))
        else:
            for i, s in enumerate(crm_stages):
                key = cache[s]
                if key is None:
                    if not s:
                        probs.add(lines[i], stage_name, "empty stage")
                    else:
                        unknown.setdefault(s, []).append(lines[i])
                else:
                    stage_keys[i] = key
        for s, where in unknown.items():
            more = f" (and {len(where) - 1} more rows)" if len(where) > 1 else ""
            probs.add(where[0], stage_name,
                      f"stage {_q(s)}{more} is not in the playbook: add \"{one_line(s).lower()}\" = \"<stage key>\" "
                      f"under [crm_stage_map] (stages: {', '.join(playbook.stage_by_key)})")
    cat_col = column("forecast_category")
    cats: list[str] = ["pipeline"] * n
    if cat_col is not None:
        cat_name = header[col_of["forecast_category"]]
        stripped = list(map(str.strip, cat_col))
        cache = {s: _map_value(playbook.map_category, s) if s else "pipeline" for s in dict.fromkeys(stripped)}
        unknown = {}
        if None not in cache.values():
            cats = list(map(cache.__getitem__, stripped))
        else:
            for i, s in enumerate(stripped):
                if cache[s] is None:
                    unknown.setdefault(s, []).append(lines[i])
                else:
                    cats[i] = cache[s]
        for s, where in unknown.items():
            more = f" (and {len(where) - 1} more rows)" if len(where) > 1 else ""
            probs.add(where[0], cat_name,
                      f"forecast category {_q(s)}{more} is not in the playbook: add \"{one_line(s).lower()}\" = "
                      f"\"<category key>\" under [crm_category_map] "
                      f"(categories: {', '.join(playbook.category_by_key)})")

    names_col = column("name")
    if names_col is not None:
        nm = header[col_of["name"]]
        if "" in set(map(str.strip, names_col)):
            for i, v in enumerate(names_col):
                if not v.strip():
                    probs.add(lines[i], nm, "empty deal name")

    result.questions = questions
    if probs.count or questions:
        result.problems, result.problem_count = probs.items, probs.count
        return result

    # the records, column by column (a RecordBatch: DealRecords when used as a sequence)
    teams = _teams_beside(p) if cf.profile == "maven" else {}
    extras_cols = [(i, header[i]) for i, h in enumerate(header) if cf.mapping.get(h) == "extra"]
    text_fields = [f for f in (*_BASE_TEXT, *EVIDENCE_FIELDS) if f in col_of and f not in _DATE_FIELDS]
    evidence = [f for f in EVIDENCE_FIELDS if f in col_of]
    tcols = {f: columns[col_of[f]] for f in text_fields}
    cols: dict[str, Sequence[Any]] = {"external_id": ids, "stage": stage_keys, "forecast_category": cats}
    if "name" in tcols:
        cols["name"] = tcols["name"]
    else:  # Maven: no deal name; account and product say what it is
        empty = [""] * n
        cols["name"] = [" · ".join(x for x in (a.strip(), pr.strip()) if x) or ext for a, pr, ext in
                        zip(tcols.get("account") or empty, tcols.get("products") or empty, ids)]
    for fld in ("account", "owner", "team", "manager", "next_step"):
        if fld in tcols:
            cols[fld] = tcols[fld]
    if stage_col is not None:
        cols["crm_stage"] = crm_stages
    if "amount" in values:
        cols["amount_minor"] = values["amount"]
    if "currency" in values:
        cols["currency"] = values["currency"]
    for fld in ("close_date", "next_step_date", "created_on"):
        if fld in values:
            cols[fld] = values[fld]
    if "updated_at" in values:
        cols["crm_updated_at"] = values["updated_at"]
    if teams:
        owners = cols.get("owner") or [""] * n
        team_c, manager_c = list(cols.get("team") or [""] * n), list(cols.get("manager") or [""] * n)
        for i, owner in enumerate(owners):
            joined = teams.get(owner.strip())
            if joined is not None:
                manager, office = joined
                manager_c[i], team_c[i] = manager, f"{office} · {manager}" if office else manager
        cols["team"], cols["manager"] = team_c, manager_c
        result.notes.append("manager and team joined from sales_teams.csv (by sales agent)")
        result.notes = list(dict.fromkeys(result.notes))
    if cf.profile == "maven":
        result.notes.append("no deal name column: names are account · product")
    result.records = RecordBatch(source, cols, fields={f: values[f] if f in values else tcols[f] for f in evidence},
                                 extras=[(h, columns[j]) for j, h in extras_cols])
    return result


# -- writing ------------------------------------------------------------------------------------
def _drop_unchanged_fields(store, records: Sequence[DealRecord]) -> None:
    """Evidence fields equal to the stored ones are dropped, so a re-import writes nothing.

    (`upsert_deals` updates a deal whenever a record carries evidence fields.)"""
    from sqlalchemy import text as sql

    keys = sorted({k for r in records for k in r.fields})
    if not keys:
        return
    source = records[0].source
    with store.engine.connect() as conn:
        stored = {row[0]: dict(zip(keys, row[1:])) for row in conn.execute(
            sql(f"SELECT external_id, {', '.join(keys)} FROM deal WHERE source = :s"), {"s": source})}
    for rec in records:
        old = stored.get(rec.external_id)
        if old is None:
            continue
        rec.fields = {k: v for k, v in rec.fields.items() if _same(old.get(k), v) is False}


def _same(old: Any, new: Any) -> bool:
    def norm(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, (date, datetime)):
            return v.isoformat()[:10]
        return str(v)[:10] if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", v) else str(v)
    return norm(old) == norm(new)


def write(store, playbook: Playbook, records: Sequence[DealRecord], *, now: datetime, dry_run: bool = False):
    """Upsert the parsed records in one transaction (nothing is written on a dry run)."""
    from inspector.sources.ingest import upsert_deals

    with _gc_paused():
        if isinstance(records, RecordBatch) and not records.materialized and not _stored(store, records):
            # a first import of these deals (or its dry run) goes column by column; upsert_deals
            # checks again that none is stored yet, and takes them record by record when some are
            return upsert_deals(store, playbook, records, now=now, dry_run=dry_run)
        records = list(records)
        if records:
            _drop_unchanged_fields(store, records)
        return upsert_deals(store, playbook, records, now=now, dry_run=dry_run)


def _stored(store, batch: RecordBatch) -> bool:
    """Whether any deal of the batch is in the store already."""
    from inspector.sources.ingest import _rows_by_external_id

    with store.engine.connect() as conn:
        return bool(_rows_by_external_id(conn, batch.source, batch.column("external_id"), "id"))


def summary_lines(result, *, dry_run: bool = False) -> list[str]:
    """Human summary of an UpsertResult."""
    verb = "would be " if dry_run else ""
    lines = [f"deals: {result.created} {verb}created, {result.updated} {verb}updated, "
             f"{result.unchanged} unchanged"]
    if result.changed_fields:
        names = {"amount_minor": "amount", "forecast_category": "category", "close_date": "close date"}
        shown = sorted((names.get(k, k), v) for k, v in result.changed_fields.items())
        lines.append("changes: " + ", ".join(f"{name} {v}" for name, v in shown))
    if not dry_run:
        lines.append(f"history rows: {result.changes}, activities: {result.activities}")
    return lines
