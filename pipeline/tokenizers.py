"""Tokenizers shared by the `tokenize` stage and the served model: text in, token lists out.

Every tokenizer is stateless per document, so the served model reproduces training exactly.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import islice

TOKENIZERS_FILE = "tokenizers.json"  # every tokenizer's settings, beside its tokens
KIWI_INSTANCES = "pipeline_kiwi_instances"  # a module of its own: see shared_kiwi
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
        self.cfg = cfg
        self.kiwi = shared_kiwi(cfg.num_workers, cfg.cutoff_threshold)

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        squeezed = [squeeze_repeats(text, self.cfg.max_repeat) for text in texts]
        if len(squeezed) == 1:  # one string skips the worker threads
            analysed = [self.kiwi.tokenize(squeezed[0])]
        else:
            analysed = self.kiwi.tokenize(squeezed)
        if self.cfg.tags:
            return [[f"{t.form}/{t.tag}" for t in tokens] for tokens in analysed]
        return [[t.form for t in tokens] for tokens in analysed]


def shared_kiwi(num_workers: int, cutoff_threshold: float | None):
    """This process's Kiwi with these settings, made on first use.

    Kiwi builds its model on its first analysis and holds the GIL meanwhile: seconds, in which a
    serving worker loading another model version answers nothing. So instances are kept in a
    module of their own in sys.modules, which survives a worker's reloading of this package for
    each version it loads: a version whose Kiwi settings the served one shares builds nothing."""
    from kiwipiepy import Kiwi

    instances = sys.modules.setdefault(KIWI_INSTANCES, types.ModuleType(KIWI_INSTANCES))
    built = instances.__dict__.setdefault("by_settings", {})
    key = (num_workers, cutoff_threshold)
    if key not in built:
        kiwi = Kiwi(num_workers=num_workers)
        if cutoff_threshold is not None:
            kiwi.global_config.cutoff_threshold = cutoff_threshold
        built[key] = kiwi
    return built[key]
