"""Vocabularies: token <-> id maps built from training tokens only, stored as JSON.

Besides its tokens, a vocabulary lists the characters of the training tokens ("pieces"). A
variant with `char_fallback` spells a token its vocabulary lacks with those characters instead
of the one out-of-vocabulary id, so a new word still says something through its spelling.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import numpy as np

PAD, OOV = "<pad>", "<oov>"
PAD_ID, OOV_ID = 0, 1
PIECE = "##"  # prefix of a character entry; no token has it (Kiwi tags '#', the notebook drops it)


def build_vocab(documents: Iterable[Sequence[str]], min_freq: int, max_size: int) -> list[str]:
    """Ids by descending frequency (ties alphabetical), so any prefix is itself a vocabulary."""
    counts = Counter(token for tokens in documents for token in tokens)
    return vocab_of(counts, min_freq, max_size)


def vocab_of(counts: Counter, min_freq: int, max_size: int) -> list[str]:
    """build_vocab from token counts gathered elsewhere (one document at a time)."""
    return [PAD, OOV, *_by_frequency(counts, min_freq)[: max(max_size - 2, 0)]]


def build_pieces(documents: Iterable[Sequence[str]], min_freq: int, tagged: bool) -> list[str]:
    """The characters of the tokens' forms (tags left out), by descending frequency."""
    counts = Counter(char for tokens in documents for t in tokens for char in form_of(t, tagged))
    return _by_frequency(counts, min_freq)


def pieces_of(counts: Counter, min_freq: int) -> list[str]:
    """build_pieces from character counts gathered elsewhere."""
    return _by_frequency(counts, min_freq)


def _by_frequency(counts: Counter, min_freq: int) -> list[str]:
    return sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))


def form_of(token: str, tagged: bool) -> str:
    """'감동/NNG' -> '감동' for a tagging tokenizer; the token itself otherwise."""
    return token.rsplit("/", 1)[0] if tagged else token


def id_tokens(vocab: dict, size: int, char_fallback: bool) -> list[str]:
    """A variant's id -> token list: the `size` most frequent tokens, then the pieces if used."""
    tokens = vocab["tokens"][:size]
    if not char_fallback:
        return tokens
    return tokens + [PIECE + char for char in vocab.get("pieces", [])]


def encode(
    documents: Sequence[Sequence[str]],
    index: dict[str, int],
    max_length: int,
    char_fallback: bool = False,
    tagged: bool = False,
) -> list[np.ndarray]:
    """Token ids per document, at most `max_length` of them, from the start of the document.

    A token outside `index` is the OOV id, or with `char_fallback` the ids of its known
    characters (the OOV id when it has none)."""
    return [
        np.fromiter(
            islice(_ids(tokens[:max_length], index, char_fallback, tagged), max_length),
            dtype=np.int32,
        )
        for tokens in documents
    ]


def _ids(
    tokens: Sequence[str], index: dict[str, int], char_fallback: bool, tagged: bool
) -> Iterator[int]:
    for token in tokens:
        token_id = index.get(token)
        if token_id is not None:
            yield token_id
        elif char_fallback:
            pieces = (index.get(PIECE + char) for char in form_of(token, tagged))
            yield from [i for i in pieces if i is not None] or [OOV_ID]
        else:
            yield OOV_ID


def index_of(tokens: Sequence[str]) -> dict[str, int]:
    return {token: i for i, token in enumerate(tokens)}


class TokenIds(Sequence):
    """Documents' token ids laid end to end in one int32 array (a file mapped into memory, for
    training on more documents than memory holds), and each document's length."""

    def __init__(self, flat: np.ndarray, lengths: np.ndarray):
        self.flat, self.lengths = flat, lengths
        self.starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.starts[i] : self.starts[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


PAD_MULTIPLE = 8


def pad_batch(ids: list[np.ndarray]) -> np.ndarray:
    """Right-pad to the longest member, rounded up to a multiple of 8 so that compiled training
    and inference functions see a handful of shapes instead of one per length."""
    longest = max(len(x) for x in ids)
    width = max(PAD_MULTIPLE, -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE)
    out = np.zeros((len(ids), width), dtype=np.int32)
    for row, x in enumerate(ids):
        out[row, : len(x)] = x
    return out
