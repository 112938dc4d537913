"""JSON Lines files of the data stages' spark engine: read with each line's place in the file,
written in the order of the partitions, byte for byte as the local engine writes them.

Spark writes each partition's lines to a part file of its own (all partitions at once, on the
executors), into a scratch folder beside the output; the driver then joins the part files in
partition order into the output, atomically. The driver never holds more than a buffer of it.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.io import atomic_file, scratch_dir
from pipeline.spark_session import uri_of

PART = re.compile(r"part-(\d+)")


def json_line(record: dict) -> str:
    """A record as pipeline.io.write_jsonl writes it (without the line break)."""
    return json.dumps(record, ensure_ascii=False)


def numbered_lines(spark, location: str | Path, partitions: int | None):
    """(RDD of (line as the file's bytes, its 0-based number), the first line or None) of one
    text file.

    Spark's text source keeps each line's bytes as they are (the RDD text reader would replace
    bytes that are not UTF-8), and says where each line's split of the file starts: lines are
    numbered by counting each split's lines first, whatever order Spark gives the splits in.
    `partitions`: at least this many splits (default: one per core Spark has)."""
    from pyspark.sql import functions as F

    if partitions:
        spark.conf.set("spark.sql.files.minPartitionNum", str(partitions))
    lines = (
        spark.read.text(uri_of(location))
        .select(F.col("value").cast("binary"), F.input_file_block_start())
        .rdd.map(tuple)
    )
    sizes, first = {}, None
    for start, size, head in lines.mapPartitions(_split_sizes).collect():
        sizes[start] = size
        first = head if start == 0 else first
    firsts, count = {}, 0
    for start in sorted(sizes):
        firsts[start], count = count, count + sizes[start]
    return lines.mapPartitions(lambda part: _numbered(part, firsts)), first


def _split_sizes(lines: Iterable[tuple[bytes, int]]) -> Iterator[tuple[int, int, bytes]]:
    """(where a split starts, its lines, its first line) for the splits of one partition."""
    sizes: dict[int, int] = {}
    heads: dict[int, bytes] = {}
    for raw, start in lines:
        if start not in sizes:
            sizes[start], heads[start] = 0, bytes(raw)
        sizes[start] += 1
    for start, size in sizes.items():
        yield start, size, heads[start]


def _numbered(lines: Iterable[tuple[bytes, int]], firsts: dict[int, int]):
    seen: dict[int, int] = {}
    for raw, start in lines:
        position = seen.get(start, 0)
        seen[start] = position + 1
        yield bytes(raw), firsts[start] + position


def shuffle_partitions(spark, partitions: int | None) -> None:
    """As many partitions after a shuffle as the files are read in (not Spark's 200, a job per
    200 tiny tasks on a small corpus), unless the engine's conf sets it."""
    context = spark.sparkContext
    if not context.getConf().contains("spark.sql.shuffle.partitions"):
        count = partitions or context.defaultParallelism
        spark.conf.set("spark.sql.shuffle.partitions", str(count))


def part_files(folder: Path) -> list[Path]:
    """Spark's part files of one output, in partition order."""
    parts = [(int(m.group(1)), p) for p in folder.iterdir() if (m := PART.fullmatch(p.name))]
    return [path for _, path in sorted(parts)]


def write_lines(lines, path: Path) -> None:
    """Write an RDD of text lines to `path`, one per line in partition order, atomically."""
    with scratch_dir(path) as scratch:
        parts = scratch / "parts"
        lines.saveAsTextFile(uri_of(parts))
        with atomic_file(path) as tmp, tmp.open("wb") as out:
            for part in part_files(parts):
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
