"""Vocabularies: token <-> id maps built from training tokens only, stored as JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

PAD, OOV = "<pad>", "<oov>"
PAD_ID, OOV_ID = 0, 1


def build_vocab(documents: Iterable[Sequence[str]], min_freq: int, max_size: int) -> list[str]:
    """Ids by descending frequency (ties alphabetical), so any prefix is itself a vocabulary."""
    counts = Counter(token for tokens in documents for token in tokens)
    frequent = sorted(
        (t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
    )
    return [PAD, OOV, *frequent[: max(max_size - 2, 0)]]


def encode(
    documents: Sequence[Sequence[str]], index: dict[str, int], max_length: int
) -> list[np.ndarray]:
    """Token ids per document; a document longer than `max_length` keeps its first tokens."""
    return [
        np.fromiter((index.get(t, OOV_ID) for t in tokens[:max_length]), dtype=np.int32)
        for tokens in documents
    ]


def index_of(tokens: Sequence[str]) -> dict[str, int]:
    return {token: i for i, token in enumerate(tokens)}
