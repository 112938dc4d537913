"""The serving contract, in one place and without dependencies: the column a model scores, the
request formats a server accepts, and how an error names the bad rows of a request."""

from __future__ import annotations

from collections.abc import Iterable

TEXT_COLUMN = "text"  # the column of raw texts every served model and scorer reads
# The keys of MLflow's JSON request formats, and the media types a server reads (UTF-8 only).
FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")
MEDIA_TYPES = {"application/json": "json", "text/csv": "csv"}
MEDIA_HINT = f"send {' or '.join(MEDIA_TYPES)}"
FORMAT_HINT = (
    "send a JSON object with one of the keys dataframe_split, dataframe_records, inputs or "
    f"instances, holding a '{TEXT_COLUMN}' column of strings"
)
MAX_ROWS_NAMED = 5  # an error message names at most this many bad rows


def rows_named(problems: Iterable[tuple[int, str]]) -> str:
    """`row 1: ...; row 4: ...`, the first MAX_ROWS_NAMED problems, then how many more."""
    problems = list(problems)
    shown = "; ".join(f"row {row}: {problem}" for row, problem in problems[:MAX_ROWS_NAMED])
    more = len(problems) - MAX_ROWS_NAMED
    return shown + (f"; and {more} more rows" if more > 0 else "")
