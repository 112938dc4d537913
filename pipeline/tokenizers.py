"""Tokenizers shared by the `tokenize` stage and the served model: text in, token lists out.

Every tokenizer is stateless per document, so the served model reproduces training exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import islice

TOKENIZERS_FILE = "tokenizers.json"  # every tokenizer's settings, beside its tokens
CHUNK = 2000  # documents tokenized at a time by the `tokenize` stage

# The characters Keras' old Tokenizer removed by default; the notebook relied on them.
_KERAS_FILTERS = re.compile(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~\t\n]")

Tokenizer = Callable[[Sequence[str]], list[list[str]]]


@dataclass(frozen=True)
class TokenizerConfig:
    method: str
    tags: bool = False
    max_repeat: int = 0
    num_workers: int = 0
    cutoff_threshold: float | None = None  # Kiwi's beam pruning; lower is faster, None = Kiwi's

    def to_dict(self) -> dict:
        return asdict(self)


def tokenized(
    records: Iterable[dict], tokenizers: Mapping[str, Tokenizer], chunk: int = CHUNK
) -> Iterator[dict]:
    """Copies of `records` with a `tokens` mapping (tokenizer name -> token list), produced
    `chunk` documents at a time: memory holds one chunk, whatever the corpus size (the
    `tokenize` stage's work, in this process or in each Spark partition)."""
    records = iter(records)
    while batch := list(islice(records, chunk)):
        texts = [record["text"] for record in batch]
        tokens = {name: tokenize(texts) for name, tokenize in tokenizers.items()}
        for i, record in enumerate(batch):
            yield {**record, "tokens": {name: tokens[name][i] for name in tokenizers}}


def make_tokenizer(cfg: TokenizerConfig) -> Tokenizer:
    if cfg.method == "whitespace":
        return whitespace_tokens
    return KiwiTokenizer(cfg)


def whitespace_tokens(texts: Sequence[str]) -> list[list[str]]:
    """The notebook's Keras Tokenizer: strip punctuation, lower-case, split on whitespace."""
    return [_KERAS_FILTERS.sub(" ", text).lower().split() for text in texts]


def squeeze_repeats(text: str, max_repeat: int) -> str:
    """Shorten runs of one character (ㅋㅋㅋㅋㅋ, !!!!!) to at most `max_repeat` copies."""
    if max_repeat <= 0:
        return text
    return re.sub(rf"(.)\1{{{max_repeat},}}", lambda m: m.group(1) * max_repeat, text)


class KiwiTokenizer:
    """Kiwi morphemes (optionally `form/TAG`), loaded once and reused for every call."""

    def __init__(self, cfg: TokenizerConfig):
        from kiwipiepy import Kiwi

        self.cfg = cfg
        self.kiwi = Kiwi(num_workers=cfg.num_workers)
        if cfg.cutoff_threshold is not None:
            self.kiwi.global_config.cutoff_threshold = cfg.cutoff_threshold

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        squeezed = [squeeze_repeats(text, self.cfg.max_repeat) for text in texts]
        if len(squeezed) == 1:  # one string skips the worker threads
            analysed = [self.kiwi.tokenize(squeezed[0])]
        else:
            analysed = self.kiwi.tokenize(squeezed)
        if self.cfg.tags:
            return [[f"{t.form}/{t.tag}" for t in tokens] for tokens in analysed]
        return [[t.form for t in tokens] for tokens in analysed]
