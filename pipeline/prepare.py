"""Stage `prepare`: load the configured source, clean it, and report what was dropped and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import click

from pipeline.download import fetch_nsmc
from pipeline.errors import PipelineError
from pipeline.io import atomic_dir, write_json, write_jsonl
from pipeline.options import params_option, path_option
from pipeline.params import check_keys, read_section
from pipeline.sources import NSMC_FORMAT, Row, TableFormat, read_table
from pipeline.text import normalize_text

SOURCES = ("sample", "nsmc", "file")


@dataclass(frozen=True)
class DataConfig:
    source: str
    nsmc_dir: Path | None
    train_file: Path | None
    test_file: Path | None
    file_format: TableFormat

    @classmethod
    def from_params(cls, section: dict) -> DataConfig:
        check_keys("data", section, {"source", "nsmc_dir", "file"})
        file = section["file"]
        check_keys("data.file", file, {"train", "test", *TableFormat.__dataclass_fields__})
        if section["source"] not in SOURCES:
            raise PipelineError(
                f"unknown data source {section['source']!r}; choose one of {', '.join(SOURCES)}"
            )
        if section["source"] == "file" and not file["train"]:
            raise PipelineError("data.source is 'file' but data.file.train is not set")
        return cls(
            source=section["source"],
            nsmc_dir=_optional_path(section["nsmc_dir"]),
            train_file=_optional_path(file["train"]),
            test_file=_optional_path(file["test"]),
            file_format=TableFormat(
                text_column=file["text_column"],
                label_column=file["label_column"],
                negative_label=str(file["negative_label"]),
                positive_label=str(file["positive_label"]),
            ),
        )


@dataclass(frozen=True)
class Prepared:
    train: list[dict]
    test: list[dict] | None
    report: dict


def run(train_rows: list[Row], test_rows: list[Row] | None) -> Prepared:
    """Normalise, drop empty documents, de-duplicate training data and remove test overlap."""
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
        raise PipelineError("no training documents left after cleaning")
    if test is not None and not test:
        raise PipelineError("no test documents left after cleaning")
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


def load_rows(
    cfg: DataConfig, sample_file: Path, download_dir: Path
) -> tuple[list[Row], list[Row] | None]:
    if cfg.source == "sample":
        return read_table(sample_file, NSMC_FORMAT), None
    if cfg.source == "nsmc":
        folder = cfg.nsmc_dir or download_dir
        if cfg.nsmc_dir is None:
            fetch_nsmc(download_dir)
        return (
            read_table(folder / "ratings_train.txt", NSMC_FORMAT),
            read_table(folder / "ratings_test.txt", NSMC_FORMAT),
        )
    test = read_table(cfg.test_file, cfg.file_format) if cfg.test_file else None
    return read_table(cfg.train_file, cfg.file_format), test


@click.command("prepare")
@params_option
@path_option("--sample-file", "The embedded sample reviews (used when data.source is 'sample').")
@path_option("--download-dir", "Cache for downloaded NSMC files (used when data.source is 'nsmc').")
@path_option("--out-dir", "Where train.jsonl (and test.jsonl, if the source has a test set) go.")
@path_option("--report", "JSON data report: rows read, dropped per reason, class balance.")
def command(params_path: Path, sample_file: Path, download_dir: Path, out_dir: Path, report: Path):
    """Load the data source from params `data`, clean it and write JSON Lines plus a report."""
    cfg = DataConfig.from_params(read_section(params_path, "data"))
    train_rows, test_rows = load_rows(cfg, sample_file, download_dir)
    prepared = run(train_rows, test_rows)
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "train.jsonl", prepared.train)
        if prepared.test is not None:
            write_jsonl(tmp / "test.jsonl", prepared.test)
    write_json(report, {"source": cfg.source, **prepared.report})
    click.echo(
        f"prepared {len(prepared.train)} training and {len(prepared.test or [])} test documents"
    )
