"""Stage `tokenize`: run every configured tokenizer over the prepared documents."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import click
from tqdm import tqdm

from pipeline.io import atomic_dir, read_jsonl, write_json, write_jsonl
from pipeline.options import input_dir, params_option, path_option
from pipeline.schema import load_section
from pipeline.tokenizers import TOKENIZERS_FILE, Tokenizer, TokenizerConfig, make_tokenizer

CHUNK = 2000


def configs_from_params(section: dict) -> dict[str, TokenizerConfig]:
    """The tokenizers of params 'tokenize' (checked by pipeline/schema.py)."""
    return {name: TokenizerConfig(**cfg) for name, cfg in section["tokenizers"].items()}


def run(records: list[dict], tokenizers: Mapping[str, Tokenizer], desc: str = "") -> list[dict]:
    """Return copies of `records` with a `tokens` mapping: tokenizer name -> token list."""
    texts = [record["text"] for record in records]
    tokens: dict[str, list[list[str]]] = {name: [] for name in tokenizers}
    with tqdm(total=len(texts), unit="doc", desc=desc, disable=len(texts) < 10 * CHUNK) as bar:
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start : start + CHUNK]
            for name, tokenize in tokenizers.items():
                tokens[name].extend(tokenize(chunk))
            bar.update(len(chunk))
    return [
        {**record, "tokens": {name: tokens[name][i] for name in tokenizers}}
        for i, record in enumerate(records)
    ]


@click.command("tokenize")
@params_option
@input_dir("--in-dir", "Output folder of `prepare`.")
@path_option("--out-dir", "Where the tokenized JSON Lines and tokenizers.json go.")
def command(params_path: Path, in_dir: Path, out_dir: Path):
    """Tokenize the prepared documents with every tokenizer in params `tokenize`."""
    configs = configs_from_params(load_section(params_path, "tokenize"))
    tokenizers = {name: make_tokenizer(cfg) for name, cfg in configs.items()}
    with atomic_dir(out_dir) as tmp:
        for part in sorted(in_dir.glob("*.jsonl")):
            write_jsonl(tmp / part.name, run(read_jsonl(part), tokenizers, desc=part.stem))
        write_json(tmp / TOKENIZERS_FILE, {name: cfg.to_dict() for name, cfg in configs.items()})
    click.echo(f"tokenized {in_dir} with {', '.join(configs)}")
