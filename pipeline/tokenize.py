"""Stage `tokenize`: run every configured tokenizer over the prepared documents."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import click
from tqdm import tqdm

from pipeline.io import atomic_dir, count_lines, iter_jsonl, write_json, write_jsonl
from pipeline.options import input_dir, params_option, path_option
from pipeline.schema import load_section
from pipeline.spark_session import EngineConfig, engine_session
from pipeline.tokenizers import (
    CHUNK,
    TOKENIZERS_FILE,
    Tokenizer,
    TokenizerConfig,
    make_tokenizer,
    tokenized,
)


def configs_from_params(section: dict) -> dict[str, TokenizerConfig]:
    """The tokenizers of params 'tokenize' (checked by pipeline/schema.py)."""
    return {name: TokenizerConfig(**cfg) for name, cfg in section["tokenizers"].items()}


def run(
    records: Iterable[dict], tokenizers: Mapping[str, Tokenizer], chunk: int = CHUNK
) -> Iterator[dict]:
    """Copies of `records` with a `tokens` mapping (tokenizer name -> token list), produced
    `chunk` documents at a time: memory holds one chunk, whatever the corpus size."""
    return tokenized(records, tokenizers, chunk)


def run_spark(
    spark, in_dir: Path, out_dir: Path, configs: dict[str, TokenizerConfig], partitions: int | None
) -> None:
    """`run` over each prepared file on a SparkSession (pipeline/spark_tokens.py), written
    byte for byte as the local engine writes it. `partitions`: at least this many per file."""
    from pipeline.spark_session import spark_errors
    from pipeline.spark_tokens import tokenize_file

    with spark_errors():
        for part in sorted(in_dir.glob("*.jsonl")):
            tokenize_file(spark, part, out_dir / part.name, configs, partitions)


def _with_progress(records: Iterator[dict], total: int, desc: str) -> Iterator[dict]:
    with tqdm(total=total, unit="doc", desc=desc, disable=total < 10 * CHUNK) as bar:
        for record in records:
            yield record
            bar.update()


@click.command("tokenize")
@params_option
@input_dir("--in-dir", "Output folder of `prepare`.")
@path_option("--out-dir", "Where the tokenized JSON Lines and tokenizers.json go.")
def command(params_path: Path, in_dir: Path, out_dir: Path):
    """Tokenize the prepared documents with every tokenizer in params `tokenize` (in this
    process, or on Spark: params `engine`)."""
    configs = configs_from_params(load_section(params_path, "tokenize"))
    engine = EngineConfig.from_params(load_section(params_path, "engine"))
    with atomic_dir(out_dir) as tmp:
        if engine.name == "spark":
            with engine_session(engine, "tokenize") as spark:
                run_spark(spark, in_dir, tmp, configs, engine.partitions)
        else:
            tokenizers = {name: make_tokenizer(cfg) for name, cfg in configs.items()}
            for part in sorted(in_dir.glob("*.jsonl")):
                tokenized = run(iter_jsonl(part), tokenizers)
                progress = _with_progress(tokenized, count_lines(part), part.stem)
                write_jsonl(tmp / part.name, progress)
        write_json(tmp / TOKENIZERS_FILE, {name: cfg.to_dict() for name, cfg in configs.items()})
    click.echo(f"tokenized {in_dir} with {', '.join(configs)}")
