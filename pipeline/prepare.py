"""Stage `prepare`: load the configured source, clean it, and report what was dropped and why."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from pipeline.dedup import Cleaned, DigestFiles, TestCounts, resolve
from pipeline.download import fetch_nsmc, verify_local
from pipeline.errors import PipelineError
from pipeline.io import atomic_dir, atomic_file, scratch_dir, write_json, write_jsonl
from pipeline.options import params_option, path_option
from pipeline.schema import load_section
from pipeline.sources import NSMC_FORMAT, Row, TableFormat, TableRows
from pipeline.spark_session import EngineConfig, engine_session, is_uri
from pipeline.text import normalize_text

VERIFY_HINT = "for an equivalent corpus with other checksums, set data.nsmc_verify: false"


@dataclass(frozen=True)
class DataConfig:
    source: str
    nsmc_dir: Path | None
    nsmc_verify: bool
    train_file: Path | None
    test_file: Path | None
    file_format: TableFormat

    @classmethod
    def from_params(cls, section: dict) -> DataConfig:
        """From params 'data' (pipeline/schema.py checks each setting; the file settings are
        checked against each other here, when the source is a file)."""
        file = section["file"]
        cfg = cls(
            source=section["source"],
            nsmc_dir=_optional_path(section["nsmc_dir"]),
            nsmc_verify=section["nsmc_verify"],
            train_file=_optional_path(file["train"]),
            test_file=_optional_path(file["test"]),
            file_format=TableFormat(
                text_column=str(file["text_column"]),
                label_column=str(file["label_column"]),
                negative_label=str(file["negative_label"]),
                positive_label=str(file["positive_label"]),
            ),
        )
        if cfg.source == "file":
            _check_file_settings(cfg)
        return cfg


def _check_file_settings(cfg: DataConfig) -> None:
    """Settings of `data.file` that contradict each other, before any file is read."""
    fmt = cfg.file_format
    if cfg.train_file is None:
        raise PipelineError("data.source is 'file' but data.file.train is not set")
    if fmt.negative_label.strip() == fmt.positive_label.strip():
        raise PipelineError(
            f"data.file.negative_label and data.file.positive_label are both "
            f"{fmt.positive_label.strip()!r}: the two classes need different labels"
        )
    if fmt.text_column == fmt.label_column:
        raise PipelineError(
            f"data.file.text_column and data.file.label_column are both {fmt.text_column!r}: "
            "texts and labels need different columns"
        )
    if cfg.test_file is not None and _same_file(cfg.test_file, cfg.train_file):
        raise PipelineError(
            f"data.file.train and data.file.test are the same file ({cfg.train_file}): "
            "leave data.file.test unset to carve a test split out of the training file"
        )


def _same_file(one: Path | str, other: Path | str) -> bool:
    if is_uri(one) or is_uri(other):
        return one == other
    return one.resolve() == other.resolve()


def check_local(train_table: Table, test_table: Table | None) -> None:
    """The local engine reads files: a URI is the spark engine's."""
    for table in (train_table, test_table):
        if table is not None and is_uri(table.path):
            raise PipelineError(
                f"{table.path} is a URI, which only the spark engine reads; set engine.name: "
                "spark, or give a local path"
            )


@dataclass(frozen=True)
class Table:
    """The rows of one data file (read from disk as they are iterated, never held in memory),
    with the file's path and format for error messages."""

    path: Path | str  # a URI for the spark engine
    rows: Iterable[Row]
    fmt: TableFormat


def run(train_table: Table, test_table: Table | None, out_dir: Path) -> dict:
    """Normalise, drop empty documents, de-duplicate training data and remove test overlap;
    write train.jsonl (and test.jsonl) into `out_dir` and return the report.

    Streams: each file is read once; the non-empty training documents wait in a scratch file
    until the verdict on repeats is known. Memory holds one byte per training document and one
    partition of digests (pipeline.dedup)."""
    with scratch_dir(out_dir) as scratch:
        candidates = scratch / "train.jsonl"
        digests = DigestFiles(scratch, "train")
        train_read, empty_train = _write_candidates(train_table.rows, candidates, digests)
        test = None
        if test_table is not None:
            test = _write_test(
                test_table.rows, out_dir / "test.jsonl", DigestFiles(scratch, "test")
            )
        verdict = resolve(scratch, digests.count, test is not None)
        cleaned = Cleaned(
            train_read,
            empty_train,
            duplicate=verdict.duplicate,
            conflicting=verdict.conflicting,
            in_test=verdict.in_test,
            kept=int(verdict.keep.sum()),
            kept_positive=verdict.kept_positive,
            test=test,
        )
        check_counts(train_table, test_table, cleaned)
        _copy_kept_lines(candidates, verdict.keep, out_dir / "train.jsonl")
    return data_report(cleaned)


def run_spark(
    spark, train_table: Table, test_table: Table | None, out_dir: Path, partitions: int | None
) -> dict:
    """`run` on a SparkSession (pipeline/spark_cleaning.py): the same files, byte for byte, and
    the same report. `partitions`: at least this many per file (None: one per core)."""
    from pipeline.spark_cleaning import clean, write_cleaned
    from pipeline.spark_session import spark_errors

    train, test = spark_tables(train_table, test_table)
    try:
        with spark_errors():
            cleaned, frames = clean(spark, train, test, partitions)
            check_counts(train_table, test_table, cleaned)
            write_cleaned(frames, out_dir)
    finally:
        spark.catalog.clearCache()
    return data_report(cleaned)


def spark_tables(train_table: Table, test_table: Table | None) -> tuple:
    """The tables as the spark engine reads them, checked for what is seen before it starts."""
    from pipeline.spark_cleaning import SparkTable, check_readable

    tables = [SparkTable(str(t.path), t.fmt) if t else None for t in (train_table, test_table)]
    for table in filter(None, tables):
        check_readable(table)
    return tuple(tables)


def data_report(cleaned: Cleaned) -> dict:
    test = cleaned.test
    return {
        "rows_read": {"train": cleaned.train_read, "test": test.read if test else 0},
        "dropped": {
            "empty_train": cleaned.empty_train,
            "empty_test": test.empty if test else 0,
            "duplicate": cleaned.duplicate,
            "conflicting_label": cleaned.conflicting,
            "in_test_set": cleaned.in_test,
        },
        "rows_kept": {"train": cleaned.kept, "test": test.kept if test else 0},
        "positive_share": {
            "train": _share(cleaned.kept_positive, cleaned.kept),
            "test": _share(test.positive, test.kept) if test else None,
        },
    }


def check_counts(train_table: Table, test_table: Table | None, cleaned: Cleaned) -> None:
    """Nothing left, or one class only: the first of these faults, named by its file."""
    test = cleaned.test
    if not cleaned.kept:
        raise PipelineError(
            f"{train_table.path}: no training documents left after cleaning "
            f"({cleaned.train_read} rows read: {cleaned.empty_train} empty, "
            f"{cleaned.duplicate} duplicate, {cleaned.conflicting} with conflicting labels, "
            f"{cleaned.in_test} also in the test file)"
        )
    if test is not None and not test.kept:
        raise PipelineError(
            f"{test_table.path}: no test documents left after cleaning "
            f"(all {test.read} rows have an empty text)"
        )
    _check_both_classes(train_table, cleaned.kept, cleaned.kept_positive, "training")
    if test is not None:
        _check_both_classes(test_table, test.kept, test.positive, "test")


def _write_candidates(rows: Iterable[Row], path: Path, digests: DigestFiles) -> tuple[int, int]:
    """(rows read, empty rows); every non-empty document goes to `path` and its digest to
    `digests` (whose row numbers are then the lines of `path`)."""
    counts = {"read": 0, "empty": 0}

    def records() -> Iterator[dict]:
        for row in rows:
            counts["read"] += 1
            text = normalize_text(row.text)
            if not text:
                counts["empty"] += 1
                continue
            digests.add(text, row.label)
            yield {"text": text, "label": row.label}

    write_jsonl(path, records())
    digests.flush()
    return counts["read"], counts["empty"]


def _copy_kept_lines(candidates: Path, keep: np.ndarray, path: Path) -> None:
    with candidates.open("rb") as lines, atomic_file(path) as tmp, tmp.open("wb") as out:
        for line, kept in zip(lines, keep, strict=True):
            if kept:
                out.write(line)


def _write_test(rows: Iterable[Row], path: Path, digests: DigestFiles) -> TestCounts:
    """Write the non-empty test documents as given (order and copies kept) and their digests."""
    counts = TestCounts()

    def records() -> Iterator[dict]:
        for row in rows:
            counts.read += 1
            text = normalize_text(row.text)
            if not text:
                counts.empty += 1
                continue
            counts.kept += 1
            counts.positive += row.label
            digests.add(text, row.label)
            yield {"text": text, "label": row.label}

    write_jsonl(path, records())
    digests.flush()
    return counts


def _check_both_classes(table: Table, count: int, positive: int, kind: str) -> None:
    if positive in (0, count):
        only = int(positive == count)
        raise PipelineError(
            f"{table.path}: all {count} {kind} documents left after cleaning are labelled "
            f"{table.fmt.label_name(only)}; both classes are needed, "
            f"{table.fmt.label_name(1 - only)} too"
        )


def _share(positive: int, count: int) -> float | None:
    return round(positive / count, 4) if count else None


def _optional_path(value: str | None) -> Path | str | None:
    """A path, or a URI (hdfs://, s3a://: the spark engine's only) kept as written."""
    if not value:
        return None
    return value if is_uri(value) else Path(value)


def _inside(folder: Path | str, name: str) -> Path | str:
    return f"{folder.rstrip('/')}/{name}" if isinstance(folder, str) else folder / name


def load_tables(
    cfg: DataConfig, sample_file: Path, download_dir: Path
) -> tuple[Table, Table | None, bool | None]:
    """The training table, the test table if the source has one, and for NSMC whether its
    files were checked against the pinned sha256 checksums (None for other sources)."""
    if cfg.source == "sample":
        return _table(sample_file, NSMC_FORMAT), None, None
    if cfg.source == "nsmc":
        folder, verified = nsmc_folder(cfg, download_dir)
        return (
            _table(_inside(folder, "ratings_train.txt"), NSMC_FORMAT),
            _table(_inside(folder, "ratings_test.txt"), NSMC_FORMAT),
            verified,
        )
    test = _table(cfg.test_file, cfg.file_format) if cfg.test_file else None
    return _table(cfg.train_file, cfg.file_format), test, None


def nsmc_folder(cfg: DataConfig, download_dir: Path) -> tuple[Path | str, bool]:
    """The folder with the NSMC files and whether they match the pinned checksums: a download
    always does (fetch keeps nothing else), a local copy is checked unless nsmc_verify is off."""
    if cfg.nsmc_dir is None:
        fetch_nsmc(download_dir)
        return download_dir, True
    if not cfg.nsmc_verify:
        return cfg.nsmc_dir, False
    if is_uri(cfg.nsmc_dir):
        raise PipelineError(
            f"data.nsmc_dir {cfg.nsmc_dir} is a URI, whose files cannot be checked against the "
            "NSMC checksums here; set data.nsmc_verify: false"
        )
    verify_local(cfg.nsmc_dir, hint=VERIFY_HINT)
    return cfg.nsmc_dir, True


def _table(path: Path, fmt: TableFormat) -> Table:
    return Table(path, TableRows(path, fmt), fmt)


@click.command("prepare")
@params_option
@path_option("--sample-file", "The embedded sample reviews (used when data.source is 'sample').")
@path_option("--download-dir", "Cache for downloaded NSMC files (used when data.source is 'nsmc').")
@path_option("--out-dir", "Where train.jsonl (and test.jsonl, if the source has a test set) go.")
@path_option("--report", "JSON data report: rows read, dropped per reason, class balance.")
def command(params_path: Path, sample_file: Path, download_dir: Path, out_dir: Path, report: Path):
    """Load the data source from params `data`, clean it and write JSON Lines plus a report
    (in this process, or on Spark: params `engine`)."""
    cfg = DataConfig.from_params(load_section(params_path, "data"))
    engine = EngineConfig.from_params(load_section(params_path, "engine"))
    train_table, test_table, verified = load_tables(cfg, sample_file, download_dir)
    if engine.name == "local":
        check_local(train_table, test_table)
    with atomic_dir(out_dir) as tmp:
        if engine.name == "spark":
            spark_tables(train_table, test_table)  # before Spark takes its seconds to start
            with engine_session(engine, "prepare") as spark:
                prepared = run_spark(spark, train_table, test_table, tmp, engine.partitions)
        else:
            prepared = run(train_table, test_table, tmp)
    checked = {} if verified is None else {"verified": verified}
    write_json(report, {"source": cfg.source, **checked, **prepared})
    if verified is False:
        click.secho(
            f"warning: {cfg.nsmc_dir} was read without checking it against the official NSMC "
            "checksums (data.nsmc_verify is false)",
            err=True,
            fg="yellow",
        )
    kept = prepared["rows_kept"]
    click.echo(f"prepared {kept['train']} training and {kept['test']} test documents")
