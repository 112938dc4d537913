"""Reading labelled review files (the embedded sample, NSMC, or the user's own CSV/TSV).

Every fault of a file is one PipelineError naming the file and the line where the faulty row
starts (for a CSV row with a quoted line break, its first line)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

SHOWN_CHARS = 40  # a faulty value is quoted in an error up to this many characters
# Control characters that are not whitespace (tab, line breaks and \x1c-\x1f, \x85 are, and
# cleaning turns them into spaces): a review holds none, a binary or mis-encoded file does.
CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")


@dataclass(frozen=True)
class TableFormat:
    text_column: str
    label_column: str
    negative_label: str
    positive_label: str

    def label_of(self, value: str) -> int | None:
        return {self.negative_label: 0, self.positive_label: 1}.get(value.strip())

    def label_name(self, label: int) -> str:
        """How the file writes a class: e.g. "'1' (positive)"."""
        if label:
            return f"{self.positive_label!r} (positive)"
        return f"{self.negative_label!r} (negative)"


@dataclass(frozen=True)
class Row:
    line: int
    text: str | None
    label: int


NSMC_FORMAT = TableFormat("document", "label", "0", "1")


def read_table(path: Path, fmt: TableFormat) -> list[Row]:
    """Every data row of a CSV/TSV file (at least one); any fault names the file and the line."""
    return list(iter_table(path, fmt))


def iter_table(path: Path, fmt: TableFormat) -> Iterator[Row]:
    """The rows of read_table one at a time, with the same errors (raised when reached)."""
    if not path.is_file():
        raise PipelineError(f"data file not found: {path}")
    empty = True
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for row in _rows(path, f, fmt):
                empty = False
                yield row
    except UnicodeDecodeError as exc:
        raise PipelineError(undecodable(path, exc)) from exc
    if empty:
        raise PipelineError(f"{path} has a header line but no data rows")


@dataclass(frozen=True)
class TableRows:
    """The rows of a file, read again from disk on every iteration (never held in memory)."""

    path: Path
    fmt: TableFormat

    def __iter__(self) -> Iterator[Row]:
        return iter_table(self.path, self.fmt)


def undecodable(path: Path, exc: UnicodeDecodeError) -> str:
    """The error for a file that is not UTF-8: the first bad line and column (in characters)."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            problem = undecodable_line(path, number, raw)
            if problem:
                return problem
    return f"{path} is not valid UTF-8 text ({exc.reason}); save the file as UTF-8"


def undecodable_line(path: Path | str, number: int, raw: bytes) -> str | None:
    """The error for line `number` (its bytes) if it is not UTF-8, else None."""
    data = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        column = len(data[: bad.start].decode("utf-8")) + 1
        return (
            f"{path}, line {number}, column {column}: not valid UTF-8 text "
            f"(byte 0x{data[bad.start]:02x}: {bad.reason}); save the file as UTF-8"
        )
    return None


def _rows(path: Path, f, fmt: TableFormat) -> Iterator[Row]:
    tsv = path.suffix.lower() in {".tsv", ".txt"}
    reader = csv.reader(f, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else 0)
    records = _records(path, reader, tsv)
    _, _, header = next(records, (0, 0, None))
    text_at, label_at = header_columns(path, header, fmt)
    for line, last_line, fields in records:
        if fields:
            place = RowPlace(line, last_line, len(header), text_at, label_at)
            yield row_of(path, place, fields, fmt)


def header_columns(path: Path | str, header: list[str] | None, fmt: TableFormat) -> tuple[int, int]:
    """Where the header puts the text and the label; None: the file has no line at all."""
    if header is None:
        raise PipelineError(f"{path} is empty: expected a header line")
    missing = [c for c in (fmt.text_column, fmt.label_column) if c not in header]
    if missing:
        raise PipelineError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
            f"the header has {', '.join(map(repr, header))}"
        )
    return header.index(fmt.text_column), header.index(fmt.label_column)


@dataclass(frozen=True)
class RowPlace:
    """Where a record is: its first and last line, and where the header puts its columns."""

    line: int
    last_line: int
    columns: int
    text_at: int
    label_at: int


def row_of(path: Path | str, place: RowPlace, fields: list[str], fmt: TableFormat) -> Row:
    """The row of a record's fields; a fault is a PipelineError naming the file and the line
    (the Spark engine checks each line with it, as the local reader does)."""
    line = place.line
    # Only a quoted CSV field spans lines; when it does by mistake, it usually swallows the
    # rest of the file, and this row is where the quote was opened.
    runs_on = f" (the row runs on to line {place.last_line}: an unclosed quote?)"
    hint = runs_on if place.last_line > line else ""
    if len(fields) != place.columns:
        raise PipelineError(
            f"{path}, line {line}: expected {place.columns} fields, found {len(fields)}{hint}"
        )
    label = fmt.label_of(fields[place.label_at])
    if label is None:
        raise PipelineError(
            f"{path}, line {line}: label {shown(fields[place.label_at])} is not "
            f"{fmt.negative_label!r} (negative) or {fmt.positive_label!r} (positive){hint}"
        )
    control = CONTROL.search(fields[place.text_at])
    if control:
        raise PipelineError(
            f"{path}, line {line}: the text holds the control character "
            f"U+{ord(control.group()):04X}, which is no part of a review (binary data?){hint}"
        )
    return Row(line, fields[place.text_at], label)


def _records(path: Path, reader, tsv: bool) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of each record; a parser error names the first line."""
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise PipelineError(f"{path}, line {line}: {parse_problem(exc, tsv)}") from exc
        yield line, reader.line_num, fields


def parse_problem(exc: csv.Error, tsv: bool) -> str:
    if "field limit" in str(exc):
        limit = f"a field is longer than {csv.field_size_limit():,} characters"
        return limit if tsv else f"{limit} (an unclosed quote?)"
    return f"unreadable row ({exc})"


def shown(value: str) -> str:
    """A value from the file, quoted for an error message on one line and cut short."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}... ({len(value):,} characters)"
