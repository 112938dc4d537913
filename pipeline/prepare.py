"""Stage `prepare`: load the configured source, clean it, and report what was dropped and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import click

from pipeline.download import fetch_nsmc, verify_local
from pipeline.errors import PipelineError
from pipeline.io import atomic_dir, write_json, write_jsonl
from pipeline.options import params_option, path_option
from pipeline.schema import load_section
from pipeline.sources import NSMC_FORMAT, Row, TableFormat, read_table
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
    if cfg.test_file is not None and cfg.test_file.resolve() == cfg.train_file.resolve():
        raise PipelineError(
            f"data.file.train and data.file.test are the same file ({cfg.train_file}): "
            "leave data.file.test unset to carve a test split out of the training file"
        )


@dataclass(frozen=True)
class Table:
    """The rows of one data file, with the file's path and format for error messages."""

    path: Path
    rows: list[Row]
    fmt: TableFormat


@dataclass(frozen=True)
class Prepared:
    train: list[dict]
    test: list[dict] | None
    report: dict


def run(train_table: Table, test_table: Table | None) -> Prepared:
    """Normalise, drop empty documents, de-duplicate training data and remove test overlap."""
    train_rows, test_rows = train_table.rows, test_table.rows if test_table else None
    train, dropped_empty_train = _non_empty(train_rows)
    train, dropped_conflict, dropped_duplicate = _deduplicated(train)
    test = None
    dropped_empty_test = 0
    if test_rows is not None:
        test, dropped_empty_test = _non_empty(test_rows)
        test_texts = {text for text, _ in test}
        kept = [(text, label) for text, label in train if text not in test_texts]
        dropped_overlap = len(train) - len(kept)
        train = kept
    else:
        dropped_overlap = 0
    if not train:
        raise PipelineError(
            f"{train_table.path}: no training documents left after cleaning "
            f"({len(train_rows)} rows read: {dropped_empty_train} empty, "
            f"{dropped_duplicate} duplicate, {dropped_conflict} with conflicting labels, "
            f"{dropped_overlap} also in the test file)"
        )
    if test is not None and not test:
        raise PipelineError(
            f"{test_table.path}: no test documents left after cleaning "
            f"(all {len(test_rows)} rows have an empty text)"
        )
    _check_both_classes(train_table, train, "training")
    if test is not None:
        _check_both_classes(test_table, test, "test")
    report = {
        "rows_read": {"train": len(train_rows), "test": len(test_rows or [])},
        "dropped": {
            "empty_train": dropped_empty_train,
            "empty_test": dropped_empty_test,
            "duplicate": dropped_duplicate,
            "conflicting_label": dropped_conflict,
            "in_test_set": dropped_overlap,
        },
        "rows_kept": {"train": len(train), "test": len(test or [])},
        "positive_share": {"train": _positive_share(train), "test": _positive_share(test or [])},
    }
    return Prepared(_records(train), None if test is None else _records(test), report)


def _check_both_classes(table: Table, pairs: list[tuple[str, int]], kind: str) -> None:
    labels = {label for _, label in pairs}
    if len(labels) == 1:
        (only,) = labels
        raise PipelineError(
            f"{table.path}: all {len(pairs)} {kind} documents left after cleaning are labelled "
            f"{table.fmt.label_name(only)}; both classes are needed, "
            f"{table.fmt.label_name(1 - only)} too"
        )


def _non_empty(rows: list[Row]) -> tuple[list[tuple[str, int]], int]:
    pairs = [(normalize_text(row.text), row.label) for row in rows]
    kept = [(text, label) for text, label in pairs if text]
    return kept, len(pairs) - len(kept)


def _deduplicated(pairs: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], int, int]:
    """Keep the first copy of each text; drop every copy of a text seen with both labels."""
    labels_of: dict[str, set[int]] = {}
    for text, label in pairs:
        labels_of.setdefault(text, set()).add(label)
    conflicting = {text for text, labels in labels_of.items() if len(labels) > 1}
    dropped_conflict = sum(1 for text, _ in pairs if text in conflicting)
    seen: set[str] = set()
    kept = []
    for text, label in pairs:
        if text not in conflicting and text not in seen:
            seen.add(text)
            kept.append((text, label))
    return kept, dropped_conflict, len(pairs) - dropped_conflict - len(kept)


def _positive_share(pairs: list[tuple[str, int]]) -> float | None:
    if not pairs:
        return None
    return round(Counter(label for _, label in pairs)[1] / len(pairs), 4)


def _records(pairs: list[tuple[str, int]]) -> list[dict]:
    return [{"text": text, "label": label} for text, label in pairs]


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


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
            _table(folder / "ratings_train.txt", NSMC_FORMAT),
            _table(folder / "ratings_test.txt", NSMC_FORMAT),
            verified,
        )
    test = _table(cfg.test_file, cfg.file_format) if cfg.test_file else None
    return _table(cfg.train_file, cfg.file_format), test, None


def nsmc_folder(cfg: DataConfig, download_dir: Path) -> tuple[Path, bool]:
    """The folder with the NSMC files and whether they match the pinned checksums: a download
    always does (fetch keeps nothing else), a local copy is checked unless nsmc_verify is off."""
    if cfg.nsmc_dir is None:
        fetch_nsmc(download_dir)
        return download_dir, True
    if not cfg.nsmc_verify:
        return cfg.nsmc_dir, False
    verify_local(cfg.nsmc_dir, hint=VERIFY_HINT)
    return cfg.nsmc_dir, True


def _table(path: Path, fmt: TableFormat) -> Table:
    return Table(path, read_table(path, fmt), fmt)


@click.command("prepare")
@params_option
@path_option("--sample-file", "The embedded sample reviews (used when data.source is 'sample').")
@path_option("--download-dir", "Cache for downloaded NSMC files (used when data.source is 'nsmc').")
@path_option("--out-dir", "Where train.jsonl (and test.jsonl, if the source has a test set) go.")
@path_option("--report", "JSON data report: rows read, dropped per reason, class balance.")
def command(params_path: Path, sample_file: Path, download_dir: Path, out_dir: Path, report: Path):
    """Load the data source from params `data`, clean it and write JSON Lines plus a report."""
    cfg = DataConfig.from_params(load_section(params_path, "data"))
    train_table, test_table, verified = load_tables(cfg, sample_file, download_dir)
    prepared = run(train_table, test_table)
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "train.jsonl", prepared.train)
        if prepared.test is not None:
            write_jsonl(tmp / "test.jsonl", prepared.test)
    checked = {} if verified is None else {"verified": verified}
    write_json(report, {"source": cfg.source, **checked, **prepared.report})
    if verified is False:
        click.secho(
            f"warning: {cfg.nsmc_dir} was read without checking it against the official NSMC "
            "checksums (data.nsmc_verify is false)",
            err=True,
            fg="yellow",
        )
    click.echo(
        f"prepared {len(prepared.train)} training and {len(prepared.test or [])} test documents"
    )
