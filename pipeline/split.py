"""Stage `split`: train / validation / test splits and one vocabulary per tokenizer."""

from __future__ import annotations

import json
import os
import shutil
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from sklearn.model_selection._split import _validate_shuffle_split
from sklearn.utils.extmath import _approximate_mode

from pipeline.errors import PipelineError
from pipeline.io import (
    atomic_dir,
    atomic_file,
    count_lines,
    iter_jsonl,
    read_json,
    write_json,
    write_jsonl,
)
from pipeline.options import input_dir, params_option, path_option
from pipeline.schema import load_section
from pipeline.tokenizers import TOKENIZERS_FILE, TokenizerConfig
from pipeline.vocab import form_of, pieces_of, vocab_of

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitConfig:
    seed: int
    validation_size: float
    test_size: float
    min_freq: int
    max_vocab: int

    @classmethod
    def from_params(cls, section: dict) -> SplitConfig:
        """From params 'split', checked by pipeline/schema.py."""
        return cls(**section)


def run(
    train_path: Path,
    test_path: Path | None,
    cfg: SplitConfig,
    tagged: Mapping[str, bool],
    out_dir: Path,
) -> tuple[dict[str, int], dict[str, dict]]:
    """Stratified splits (the given test file is kept whole) written to `out_dir` as JSON Lines,
    and the vocabularies from training only; returns the split sizes and the vocabularies.

    `tagged` says per tokenizer whether its tokens end in '/TAG', which pieces leave out.
    Streams: memory holds each record's file offset and label, never the records."""
    index = _line_index(train_path)
    assignment = assign(index.labels, test_path is not None, cfg)
    counts = _Counts(tagged)
    with train_path.open("rb") as f:
        for name, rows in assignment.items():
            lines = _lines_at(f.fileno(), index, rows)
            _write_lines(out_dir / f"{name}.jsonl", counts.of(lines) if name == "train" else lines)
    sizes = {name: len(rows) for name, rows in assignment.items()}
    if test_path is not None:
        write_jsonl(out_dir / "test.jsonl", iter_jsonl(test_path))
        sizes["test"] = count_lines(out_dir / "test.jsonl")
    return {name: sizes[name] for name in SPLITS}, counts.vocabularies(cfg)


def assign(labels: np.ndarray, test_given: bool, cfg: SplitConfig) -> dict[str, np.ndarray]:
    """Row numbers of each split, in the order of its records: the stratified shuffle sklearn's
    `train_test_split` draws over the records themselves."""
    rows = np.arange(len(labels), dtype=np.int32)
    validation_share = cfg.validation_size
    parts = {}
    if not test_given:
        rows, parts["test"] = _stratified(rows, labels[rows], cfg.test_size, cfg.seed)
        validation_share = cfg.validation_size / (1 - cfg.test_size)  # a share of all documents
    parts["train"], parts["validation"] = _stratified(
        rows, labels[rows], validation_share, cfg.seed
    )
    return {name: parts[name] for name in SPLITS if name in parts}


def _stratified(rows: np.ndarray, labels: np.ndarray, size: float, seed: int):
    """`train_test_split(rows, test_size=size, random_state=seed, stratify=labels)`: the same
    draw from the same random numbers, in int32 arrays. sklearn gathers the rows in a Python
    list of NumPy scalars, about 90 bytes a document at its peak; this needs about 16."""
    try:
        n_train, n_test = _validate_shuffle_split(len(rows), size, None, default_test_size=0.25)
    except ValueError as exc:
        raise PipelineError(f"cannot split {len(rows)} documents: {exc}") from exc
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2 or min(n_train, n_test) < len(classes):
        raise PipelineError(
            f"cannot split {len(rows)} documents: each of the {len(classes)} labels needs at "
            f"least 2 documents and each split one per label ({n_train} train, {n_test} held "
            f"out; label counts {dict(zip(classes.tolist(), counts.tolist(), strict=True))})"
        )
    rng = np.random.RandomState(seed)
    train_counts = _approximate_mode(counts, n_train, rng)
    held_counts = _approximate_mode(counts - train_counts, n_test, rng)
    train_parts, held_parts = [], []
    for label, count, n_i, t_i in zip(classes, counts, train_counts, held_counts, strict=True):
        order = np.arange(count, dtype=np.int32)  # rng.permutation(count), in 4 bytes a row
        rng.shuffle(order)
        drawn = np.flatnonzero(labels == label).astype(np.int32).take(order)
        train_parts.append(drawn[:n_i])
        held_parts.append(drawn[n_i : n_i + t_i])
    train, held = np.concatenate(train_parts), np.concatenate(held_parts)
    rng.shuffle(train)
    rng.shuffle(held)
    return rows[train], rows[held]


@dataclass(frozen=True)
class LineIndex:
    starts: np.ndarray  # byte offset of each record's line
    lengths: np.ndarray
    labels: np.ndarray


def _line_index(path: Path) -> LineIndex:
    starts, lengths, labels = array("q"), array("i"), array("b")
    offset = 0
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                starts.append(offset)
                lengths.append(len(line))
                labels.append(json.loads(line)["label"])
            offset += len(line)
    return LineIndex(np.asarray(starts), np.asarray(lengths), np.asarray(labels))


def _lines_at(fd: int, index: LineIndex, rows: np.ndarray) -> Iterator[bytes]:
    """The records' lines as `tokenize` wrote them (json.dumps, one a line), so they are copied
    as they are instead of parsed and written again."""
    for row in rows:
        line = os.pread(fd, int(index.lengths[row]), int(index.starts[row]))
        yield line if line.endswith(b"\n") else line + b"\n"


def _write_lines(path: Path, lines: Iterable[bytes]) -> None:
    with atomic_file(path) as tmp, tmp.open("wb") as f:
        f.writelines(lines)


class _Counts:
    """Token counts of the training records, gathered as their lines are written; the
    characters' counts follow from the tokens' (each token's count, once per character)."""

    def __init__(self, tagged: Mapping[str, bool]):
        self.tagged = tagged
        self.tokens: dict[str, Counter] = {}

    def of(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        for line in lines:
            for name, tokens in json.loads(line)["tokens"].items():
                self.tokens.setdefault(name, Counter()).update(tokens)
            yield line

    def vocabularies(self, cfg: SplitConfig) -> dict[str, dict]:
        return {
            name: {
                "tokens": vocab_of(counts, cfg.min_freq, cfg.max_vocab),
                "pieces": pieces_of(self._characters(name), cfg.min_freq),
            }
            for name, counts in self.tokens.items()
        }

    def _characters(self, name: str) -> Counter:
        characters: Counter = Counter()
        for token, count in self.tokens[name].items():
            for char in form_of(token, self.tagged[name]):
                characters[char] += count
        return characters


@click.command("split")
@params_option
@input_dir("--in-dir", "Output folder of `tokenize`.")
@path_option("--out-dir", "Where train/validation/test JSON Lines and vocab/<tokenizer>.json go.")
def command(params_path: Path, in_dir: Path, out_dir: Path):
    """Split into train/validation/test (params `split`) and build the vocabularies."""
    cfg = SplitConfig.from_params(load_section(params_path, "split"))
    test_path = in_dir / "test.jsonl"
    tokenizers = read_json(in_dir / TOKENIZERS_FILE)
    with atomic_dir(out_dir) as tmp:
        sizes, vocabs = run(
            in_dir / "train.jsonl",
            test_path if test_path.exists() else None,
            cfg,
            {name: TokenizerConfig(**config).tags for name, config in tokenizers.items()},
            tmp,
        )
        for name, vocab in vocabs.items():
            write_json(tmp / "vocab" / f"{name}.json", {"tokenizer": tokenizers[name], **vocab})
        shutil.copyfile(in_dir / TOKENIZERS_FILE, tmp / TOKENIZERS_FILE)
    sizes_shown = ", ".join(f"{name} {size}" for name, size in sizes.items())
    click.echo(
        f"split: {sizes_shown}; vocabulary sizes: "
        + ", ".join(
            f"{n} {len(v['tokens'])} (+{len(v['pieces'])} pieces)" for n, v in vocabs.items()
        )
    )
