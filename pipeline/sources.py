"""Reading labelled review files (the embedded sample, NSMC, or the user's own CSV/TSV)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError


@dataclass(frozen=True)
class TableFormat:
    text_column: str
    label_column: str
    negative_label: str
    positive_label: str

    def label_of(self, value: str) -> int | None:
        return {self.negative_label: 0, self.positive_label: 1}.get(value.strip())


@dataclass(frozen=True)
class Row:
    line: int
    text: str | None
    label: int


NSMC_FORMAT = TableFormat("document", "label", "0", "1")


def read_table(path: Path, fmt: TableFormat) -> list[Row]:
    """Read every data row of a CSV/TSV file; bad labels or structure name the file and line."""
    if not path.is_file():
        raise PipelineError(f"data file not found: {path}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            return list(_rows(path, f, fmt))
    except UnicodeDecodeError as exc:
        raise PipelineError(
            f"{path} is not valid UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc


def _rows(path: Path, f, fmt: TableFormat) -> Iterator[Row]:
    tsv = path.suffix.lower() in {".tsv", ".txt"}
    reader = csv.reader(f, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else 0)
    header = next(reader, None)
    if header is None:
        raise PipelineError(f"{path} is empty: expected a header line")
    missing = [c for c in (fmt.text_column, fmt.label_column) if c not in header]
    if missing:
        raise PipelineError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
            f"the header has {', '.join(map(repr, header))}"
        )
    text_at, label_at = header.index(fmt.text_column), header.index(fmt.label_column)
    for fields in reader:
        line = reader.line_num
        if not fields:
            continue
        if len(fields) != len(header):
            raise PipelineError(
                f"{path}, line {line}: expected {len(header)} fields, found {len(fields)}"
            )
        label = fmt.label_of(fields[label_at])
        if label is None:
            raise PipelineError(
                f"{path}, line {line}: label {fields[label_at]!r} is not "
                f"{fmt.negative_label!r} (negative) or {fmt.positive_label!r} (positive)"
            )
        yield Row(line, fields[text_at], label)
