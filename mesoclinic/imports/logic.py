"""Reading a CSV file as people send them, free of Django: the bytes decoded (UTF-8 with or
without a byte-order mark, else Windows-1252), the delimiter found (comma or semicolon), the
rows split, the columns matched to fields by their headers, and dates read in the clinic's
order (which lib/formats.date_order decides)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mesoclinic.lib.formats import DAY_FIRST as DAY_FIRST
from mesoclinic.lib.formats import MONTH_FIRST as MONTH_FIRST

# The most data rows one file may hold: a clinic's whole patient list, with room to spare.
MAX_ROWS = 20_000


class FileProblem(ValueError):
    """The file cannot be read as a table at all; the message says why, in words."""


@dataclass(frozen=True)
class Table:
    headers: list[str]
    # (row number as a spreadsheet shows it, header = 1; the row's cells)
    rows: list[tuple[int, list[str]]]


def decode(data: bytes) -> tuple[str, str]:
    """The file's text and the name of its encoding. UTF-8 is tried first (a byte-order mark,
    as Excel writes one, is dropped); a file that is not UTF-8 is read as Windows-1252, which
    is what Excel on Windows saves a "CSV (comma delimited)" file in."""
    if b"\x00" in data:
        # UTF-16 ("Unicode text") and every binary format carry NUL bytes; no CSV does.
        raise FileProblem(
            "This file is not a CSV text file. Save it from the spreadsheet as "
            "“CSV UTF-8” and upload it again."
        )
    try:
        return data.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError as exc:
        raise FileProblem(
            "This file's characters could not be read. Save it from the spreadsheet as "
            "“CSV UTF-8” and upload it again."
        ) from exc


def sniff_delimiter(text: str) -> str:
    """Comma or semicolon, whichever the header line holds more of (a spreadsheet set to a
    language that writes decimal commas saves its CSV files with semicolons). Counting on the
    header alone is deterministic where csv.Sniffer guesses from quoting and can pick a letter."""
    header = text.lstrip("\ufeff").split("\n", 1)[0]
    return ";" if header.count(";") > header.count(",") else ","


def read_table(text: str, delimiter: str) -> Table:
    """The header and the data rows. Blank rows are skipped but still counted, so a row's
    number is the one a spreadsheet shows."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        lines = list(reader)
    except csv.Error as exc:
        raise FileProblem(f"This file is not a well-formed CSV file ({exc}).") from exc
    if not lines or not any(cell.strip() for cell in lines[0]):
        raise FileProblem("This file is empty: its first row should name the columns.")
    headers = [cell.strip() for cell in lines[0]]
    rows = [
        (number, [cell.strip() for cell in cells])
        for number, cells in enumerate(lines[1:], start=2)
        if any(cell.strip() for cell in cells)
    ]
    if not rows:
        raise FileProblem("This file has a header row but no rows below it.")
    if len(rows) > MAX_ROWS:
        raise FileProblem(
            f"This file has {len(rows):,} rows; at most {MAX_ROWS:,} can be imported at once. "
            "Split it into smaller files."
        )
    return Table(headers=headers, rows=rows)


def normalise(text: str) -> str:
    """A header as it is compared: lower case, no accents, letters and digits only
    ("Date de naissance", "date_de_naissance" and "DATE DE NAISSANCE" are alike)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]", "", plain.lower())


def guess_mapping(
    headers: Sequence[str], fields: Iterable[tuple[str, Iterable[str]]]
) -> dict[str, int | None]:
    """For each (field key, names it goes by), the index of the first column whose header is
    one of those names, or None. A column is given to one field at most."""
    by_name: dict[str, int] = {}
    for index, header in enumerate(headers):
        by_name.setdefault(normalise(header), index)
    taken: set[int] = set()
    mapping: dict[str, int | None] = {}
    for key, names in fields:
        found: int | None = None
        for name in names:
            column = by_name.get(normalise(name))
            if column is not None and column not in taken:
                found = column
                break
        if found is not None:
            taken.add(found)
        mapping[key] = found
    return mapping


# The separators people type in a date. Which of day and month comes first is the clinic's
# (lib/formats.date_order, the one place that decides it for search, import and forms).
_ISO = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_LOCAL = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})$")
_DAY_NAME = re.compile(r"^(\d{1,2})[\s\-]+([^\W\d_]+)\.?[\s\-]+(\d{4})$")
_NAME_DAY = re.compile(r"^([^\W\d_]+)\.?\s+(\d{1,2}),?\s+(\d{4})$")
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}


def parse_day(text: str, order: str = DAY_FIRST) -> dt.date | None:
    """A date written as ISO (2026-12-07), in the clinic's order with slashes, dots or dashes
    (07/12/2026 day first, 12/07/2026 month first), or with the month's English name or its
    abbreviation (7 Dec 2026, December 7, 2026); None when it is none of those or no such
    day."""
    text = text.strip()
    try:
        if found := _ISO.match(text):
            return dt.date(int(found[1]), int(found[2]), int(found[3]))
        if found := _LOCAL.match(text):
            first, second, year = int(found[1]), int(found[2]), int(found[3])
            day, month = (first, second) if order == DAY_FIRST else (second, first)
            return dt.date(year, month, day)
        if found := _DAY_NAME.match(text):
            named = _MONTHS.get(found[2].lower())
            return dt.date(int(found[3]), named, int(found[1])) if named else None
        if found := _NAME_DAY.match(text):
            named = _MONTHS.get(found[1].lower())
            return dt.date(int(found[3]), named, int(found[2])) if named else None
    except ValueError:
        return None
    return None


def date_example(order: str) -> str:
    return "31/12/1980" if order == DAY_FIRST else "12/31/1980"


def parse_decimal_text(text: str) -> str:
    """A number as Python reads it: a decimal comma, as a semicolon-separated file from a
    European spreadsheet writes it, becomes a point."""
    text = text.strip().replace(" ", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    return text
