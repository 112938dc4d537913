"""Stage `split`: train / validation / test splits and one vocabulary per tokenizer."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click
from sklearn.model_selection import train_test_split

from pipeline.errors import PipelineError
from pipeline.io import atomic_dir, read_json, read_jsonl, write_json, write_jsonl
from pipeline.options import input_dir, params_option, path_option
from pipeline.schema import load_section
from pipeline.tokenizers import TOKENIZERS_FILE, TokenizerConfig
from pipeline.vocab import build_pieces, build_vocab

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
    train: list[dict], test: list[dict] | None, cfg: SplitConfig, tagged: Mapping[str, bool]
) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """Stratified splits (the given test set is kept whole) and vocabularies from training only.

    `tagged` says per tokenizer whether its tokens end in '/TAG', which pieces leave out."""
    validation_share = cfg.validation_size
    if test is None:
        train, test = _stratified(train, cfg.test_size, cfg.seed)
        validation_share = cfg.validation_size / (1 - cfg.test_size)  # a share of all documents
    train, validation = _stratified(train, validation_share, cfg.seed)
    splits = {"train": train, "validation": validation, "test": test}
    vocabs = {name: _vocabulary(train, name, cfg, tagged[name]) for name in train[0]["tokens"]}
    return splits, vocabs


def _vocabulary(train: list[dict], name: str, cfg: SplitConfig, tagged: bool) -> dict:
    documents = [r["tokens"][name] for r in train]
    return {
        "tokens": build_vocab(documents, cfg.min_freq, cfg.max_vocab),
        "pieces": build_pieces(documents, cfg.min_freq, tagged),
    }


def _stratified(records: list[dict], size: float, seed: int) -> tuple[list[dict], list[dict]]:
    labels = [r["label"] for r in records]
    try:
        return train_test_split(records, test_size=size, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise PipelineError(f"cannot split {len(records)} documents: {exc}") from exc


@click.command("split")
@params_option
@input_dir("--in-dir", "Output folder of `tokenize`.")
@path_option("--out-dir", "Where train/validation/test JSON Lines and vocab/<tokenizer>.json go.")
def command(params_path: Path, in_dir: Path, out_dir: Path):
    """Split into train/validation/test (params `split`) and build the vocabularies."""
    cfg = SplitConfig.from_params(load_section(params_path, "split"))
    test_path = in_dir / "test.jsonl"
    tokenizers = read_json(in_dir / TOKENIZERS_FILE)
    splits, vocabs = run(
        read_jsonl(in_dir / "train.jsonl"),
        read_jsonl(test_path) if test_path.exists() else None,
        cfg,
        {name: TokenizerConfig(**config).tags for name, config in tokenizers.items()},
    )
    with atomic_dir(out_dir) as tmp:
        for name, records in splits.items():
            write_jsonl(tmp / f"{name}.jsonl", records)
        for name, vocab in vocabs.items():
            write_json(tmp / "vocab" / f"{name}.json", {"tokenizer": tokenizers[name], **vocab})
        shutil.copyfile(in_dir / TOKENIZERS_FILE, tmp / TOKENIZERS_FILE)
    sizes = ", ".join(f"{name} {len(records)}" for name, records in splits.items())
    click.echo(
        f"split: {sizes}; vocabulary sizes: "
        + ", ".join(
            f"{n} {len(v['tokens'])} (+{len(v['pieces'])} pieces)" for n, v in vocabs.items()
        )
    )
