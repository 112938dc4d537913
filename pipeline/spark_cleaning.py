"""Stage `prepare` on Spark: the local engine's cleaning (pipeline/prepare.py), with the same
results, byte for byte, for corpora larger than one machine.

Each line of a tab-separated file is read with its line number and checked, cleaned and
normalised on the executors by the local reader's own code (pipeline/sources.py,
pipeline/text.py); a fault is the local engine's message for the first faulty line. Repeats
are resolved by grouping the texts: a text seen with both labels is dropped, else its first
line is kept unless the test file has the text (pipeline/dedup.py's rules, compared on the
texts rather than on their digests). The kept rows are written sorted by line number, so in
the input's order. CSV files (whose quoted fields may span lines) are the local engine's only.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.dedup import Cleaned, TestCounts
from pipeline.errors import PipelineError
from pipeline.sources import (
    RowPlace,
    TableFormat,
    header_columns,
    parse_problem,
    row_of,
    undecodable_line,
)
from pipeline.spark_lines import json_line, numbered_lines, shuffle_partitions, write_lines
from pipeline.spark_session import is_uri
from pipeline.text import normalize_text

LINE_BASED = (".tsv", ".txt")
# One row per data line: its text (normalised) and label, or the fault that stops the stage.
SCHEMA = "line long, text string, label int, error string"


@dataclass(frozen=True)
class SparkTable:
    location: str  # a path or URI, as the params or the command line give it
    fmt: TableFormat


def fields_of(line: str) -> list[str]:
    """A tab-separated line's fields, as the local reader splits them (no quoting)."""
    return next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE), [])


def parsed_rows(
    location: str, place: RowPlace, fmt: TableFormat, lines: Iterable[tuple[bytes, int]]
) -> Iterator[tuple]:
    """(line, text, label, None) for each data line, (line, None, None, fault) for a faulty
    one; the header (line 1) and empty lines give nothing. Runs on the executors."""
    for raw, index in lines:
        number = index + 1
        if number == 1:
            continue
        fault = undecodable_line(location, number, raw)
        if fault:
            yield number, None, None, fault
            continue
        try:
            fields = fields_of(raw.decode("utf-8"))
        except csv.Error as exc:
            yield number, None, None, f"{location}, line {number}: {parse_problem(exc, True)}"
            continue
        if not fields:
            continue
        try:
            here = RowPlace(number, number, place.columns, place.text_at, place.label_at)
            row = row_of(location, here, fields, fmt)
        except PipelineError as exc:
            yield number, None, None, str(exc)
            continue
        yield number, normalize_text(row.text), row.label, None


def check_readable(table: SparkTable) -> None:
    """Faults seen before Spark reads: a missing local file, a format Spark cannot split."""
    if not is_uri(table.location) and not Path(table.location).is_file():
        raise PipelineError(f"data file not found: {table.location}")
    suffix = Path(table.location.rstrip("/")).suffix.lower()
    if suffix not in LINE_BASED:
        raise PipelineError(
            f"{table.location}: engine spark reads tab-separated files (.tsv, .txt) only; "
            "set engine.name: local for CSV"
        )


def _header_place(table: SparkTable, first: bytes | None) -> RowPlace:
    """The header's columns (line 1), with the local reader's faults."""
    header = None
    if first is not None:
        raw = first.removeprefix(b"\xef\xbb\xbf")
        fault = undecodable_line(table.location, 1, raw)
        if fault:
            raise PipelineError(fault)
        header = fields_of(raw.decode("utf-8"))
    text_at, label_at = header_columns(table.location, header, table.fmt)
    return RowPlace(1, 1, len(header), text_at, label_at)


def parsed_table(spark, table: SparkTable, partitions: int | None):
    """(the table's rows as a cached DataFrame of SCHEMA, (rows read, empty texts, positive
    non-empty rows)); raises the first faulty line's error, or the local reader's error for a
    file without data rows."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    check_readable(table)
    lines, first = numbered_lines(spark, table.location, partitions)
    place = _header_place(table, first)
    location, fmt = table.location, table.fmt
    rows = lines.mapPartitions(lambda part: parsed_rows(location, place, fmt, part))
    frame = spark.createDataFrame(rows, SCHEMA, verifySchema=False)
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    empty = F.col("text") == ""
    counts = frame.agg(
        F.min_by("error", F.when(F.col("error").isNotNull(), F.col("line"))).alias("fault"),
        F.count("*").alias("read"),
        F.sum(F.when(empty, 1).otherwise(0)).alias("empty"),
        F.sum(F.when(~empty, F.col("label")).otherwise(0)).alias("positive"),
    ).first()
    if counts["fault"]:
        frame.unpersist()
        raise PipelineError(counts["fault"])
    if not counts["read"]:
        raise PipelineError(f"{table.location} has a header line but no data rows")
    return frame, (counts["read"], counts["empty"] or 0, counts["positive"] or 0)


@dataclass(frozen=True)
class Frames:
    """What prepare writes: the kept training rows and the test rows, with their line numbers."""

    train: object
    test: object | None


def clean(spark, train: SparkTable, test: SparkTable | None, partitions: int | None):
    """(Cleaned, Frames): the local engine's counts and rows to write, computed on Spark."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    shuffle_partitions(spark, partitions)
    train_rows, (train_read, empty_train, _) = parsed_table(spark, train, partitions)
    test_rows = test_counts = None
    if test is not None:
        test_rows, (read, empty, positive) = parsed_table(spark, test, partitions)
        test_counts = TestCounts(read, empty, read - empty, positive)
        test_rows = test_rows.where(F.col("text") != "")
    texts = (
        train_rows.where(F.col("text") != "")
        .groupBy("text")
        .agg(
            F.min("line").alias("line"),
            F.min("label").alias("low"),
            F.max("label").alias("label"),
            F.count("*").alias("copies"),
        )
    )
    if test_rows is not None:
        in_test = test_rows.select("text").distinct().withColumn("in_test", F.lit(True))
        texts = texts.join(in_test, "text", "left")
    else:
        texts = texts.withColumn("in_test", F.lit(None).cast("boolean"))
    texts = texts.persist(StorageLevel.MEMORY_AND_DISK)
    both = F.col("low") != F.col("label")
    firsts = ~both
    kept = firsts & F.col("in_test").isNull()
    counts = texts.agg(
        F.sum(F.when(both, F.col("copies")).otherwise(0)).alias("conflicting"),
        F.sum(F.when(firsts, F.col("copies") - 1).otherwise(0)).alias("duplicate"),
        F.sum(F.when(firsts & F.col("in_test"), 1).otherwise(0)).alias("in_test"),
        F.sum(F.when(kept, 1).otherwise(0)).alias("kept"),
        F.sum(F.when(kept, F.col("label")).otherwise(0)).alias("kept_positive"),
    ).first()
    cleaned = Cleaned(
        train_read,
        empty_train,
        duplicate=counts["duplicate"] or 0,
        conflicting=counts["conflicting"] or 0,
        in_test=counts["in_test"] or 0,
        kept=counts["kept"] or 0,
        kept_positive=counts["kept_positive"] or 0,
        test=test_counts,
    )
    return cleaned, Frames(texts.where(kept), test_rows)


def _records(frame):
    """The rows' JSON lines in line order (a range-partitioned sort: partition i holds lines
    before partition i + 1's)."""
    return (
        frame.orderBy("line")
        .select("text", "label")
        .rdd.map(lambda row: json_line({"text": row["text"], "label": row["label"]}))
    )


def write_cleaned(frames: Frames, out_dir: Path) -> None:
    """train.jsonl (and test.jsonl) as the local engine writes them."""
    if frames.test is not None:
        write_lines(_records(frames.test), out_dir / "test.jsonl")
    write_lines(_records(frames.train), out_dir / "train.jsonl")
