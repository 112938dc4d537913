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
from pathlib import Path

from pipeline.io import atomic_file, scratch_dir
from pipeline.spark_session import uri_of

PART = re.compile(r"part-(\d+)")


def json_line(record: dict) -> str:
    """A record as pipeline.io.write_jsonl writes it (without the line break)."""
    return json.dumps(record, ensure_ascii=False)


def numbered_lines(spark, location: str | Path, partitions: int | None):
    """RDD of (line as bytes, its 0-based number) of a text file, in the file's order: at least
    `partitions` partitions (default: as many as Spark has cores)."""
    context = spark.sparkContext
    count = partitions or context.defaultParallelism
    lines = context.textFile(uri_of(location), minPartitions=count, use_unicode=False)
    return lines.zipWithIndex()


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
