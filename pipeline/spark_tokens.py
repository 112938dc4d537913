"""Stage `tokenize` on Spark: each prepared file's lines tokenized on the executors by the local
engine's code (pipeline/tokenizers.py), in partitions of consecutive lines, and written back in
partition order, so byte for byte as the local engine writes them.

Each partition creates its tokenizers once (Kiwi loads its model in about a second) and feeds
them `CHUNK` documents at a time. Kiwi runs with as many threads as a task has cores
(spark.task.cpus): the executors' cores are Spark's to share out, and the tokens do not depend
on the thread count.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from pipeline.spark_lines import json_line, write_lines
from pipeline.spark_session import uri_of
from pipeline.tokenizers import TokenizerConfig, make_tokenizer, tokenized


def task_configs(configs: dict[str, TokenizerConfig], threads: int) -> dict[str, TokenizerConfig]:
    """The tokenizers' settings inside a task with `threads` cores."""
    return {
        name: replace(cfg, num_workers=max(threads, 1)) if cfg.method == "kiwi" else cfg
        for name, cfg in configs.items()
    }


def tokenized_lines(configs: dict[str, TokenizerConfig], lines: Iterable[str]) -> Iterator[str]:
    """One partition's JSON lines with their tokens (runs on the executors)."""
    tokenizers = {name: make_tokenizer(cfg) for name, cfg in configs.items()}
    records = (json.loads(line) for line in lines if line.strip())
    for record in tokenized(records, tokenizers):
        yield json_line(record)


def tokenize_file(
    spark,
    source: Path,
    target: Path,
    configs: dict[str, TokenizerConfig],
    partitions: int | None,
) -> None:
    """Tokenize one JSON Lines file into `target` (at least `partitions` partitions, default
    one per core Spark has)."""
    context = spark.sparkContext
    threads = int(context.getConf().get("spark.task.cpus", "1"))
    settings = task_configs(configs, threads)
    count = partitions or context.defaultParallelism
    lines = context.textFile(uri_of(source), minPartitions=count)
    write_lines(lines.mapPartitions(lambda part: tokenized_lines(settings, part)), target)
