"""Starting embeddings learnt from the training split alone, before the LSTM sees a label.

Each token's row comes from how often other tokens occur near it: positive pointwise mutual
information (PPMI) of co-occurrence counts, reduced to `dim` columns by truncated SVD, as
in Levy, Goldberg & Dagan (2015), whose smoothing of context counts by the power 0.75 we keep.
Words used alike (재밌/VA, 재미있/VA, 잼/NNG) start close together instead of at random.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from pipeline.errors import PipelineError

WINDOW = 5  # tokens on either side; a pair at distance d counts 1/d
CONTEXT_POWER = 0.75
COUNT_CHUNK = 150_000  # documents counted at a time (NSMC's training split is one chunk)
SCALE = 0.05  # standard deviation of the table, near Keras' default uniform(-0.05, 0.05) init


def cooccurrence(documents: Sequence[np.ndarray], size: int, window: int) -> sparse.csr_matrix:
    """Symmetric counts of token ids within `window` of each other, weighted 1/distance.

    Id 0 is padding and never counted; every document is a sequence of ids below `size`."""
    longest = max((len(doc) for doc in documents), default=0)
    padded = np.zeros((len(documents), longest), np.int64)
    for row, doc in enumerate(documents):
        padded[row, : len(doc)] = doc
    rows, cols, weights = [], [], []
    for distance in range(1, min(window, longest - 1) + 1):
        left, right = padded[:, :-distance].ravel(), padded[:, distance:].ravel()
        both = (left > 0) & (right > 0)
        rows += [left[both], right[both]]
        cols += [right[both], left[both]]
        weights.append(np.full(2 * int(both.sum()), 1.0 / distance))
    if not weights:
        return sparse.csr_matrix((size, size))
    entries = (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols)))
    return sparse.coo_matrix(entries, (size, size)).tocsr()


def chunked_cooccurrence(
    documents: Sequence[np.ndarray], size: int, window: int, chunk: int = COUNT_CHUNK
) -> sparse.csr_matrix:
    """cooccurrence() of `chunk` documents at a time, summed: memory holds one chunk's pairs.
    A corpus of one chunk gives cooccurrence()'s very numbers; more, the same counts summed in
    another order (the last bit of a float may differ)."""
    total = sparse.csr_matrix((size, size))
    for start in range(0, len(documents), chunk):
        part = [documents[i] for i in range(start, min(start + chunk, len(documents)))]
        counts = cooccurrence(part, size, window)
        if len(documents) <= chunk:
            return counts
        total = total + counts
    return total


def ppmi(counts: sparse.csr_matrix) -> sparse.csr_matrix:
    """max(0, log P(w, c) / (P(w) P(c))), with context counts raised to CONTEXT_POWER."""
    counts = counts.tocoo()
    word = np.asarray(counts.sum(axis=1)).ravel()
    context = np.asarray(counts.sum(axis=0)).ravel() ** CONTEXT_POWER
    pmi = np.log(counts.data * context.sum() / (word[counts.row] * context[counts.col]))
    keep = pmi > 0
    return sparse.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), counts.shape)


def ppmi_vectors(documents: Sequence[np.ndarray], size: int, dim: int, seed: int) -> np.ndarray:
    """A (size, dim) embedding table; row 0 (padding) and tokens never seen near another are 0."""
    from sklearn.decomposition import TruncatedSVD

    if dim >= size:  # checked before the counting, which is the costly part
        raise PipelineError(
            f"embedding_init 'ppmi' needs fewer embedding dimensions ({dim}) than vocabulary "
            f"entries ({size}); use embedding_init: random for so small a vocabulary"
        )
    matrix = ppmi(chunked_cooccurrence(documents, size, WINDOW))
    if matrix.nnz == 0:
        raise PipelineError(
            "embedding_init 'ppmi' needs tokens that occur near each other; the training "
            "split has none (use embedding_init: random)"
        )
    vectors = TruncatedSVD(dim, random_state=seed).fit_transform(matrix)
    vectors[0] = 0.0
    return (vectors * SCALE / vectors.std()).astype(np.float32)
