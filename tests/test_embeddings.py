import numpy as np
import pytest

from pipeline.embeddings import SCALE, chunked_cooccurrence, cooccurrence, ppmi, ppmi_vectors
from pipeline.errors import PipelineError


def test_cooccurrence_counts_pairs_within_the_window_by_inverse_distance():
    counts = cooccurrence([np.array([2, 3, 4]), np.array([3])], size=5, window=5).toarray()
    expected = np.zeros((5, 5))
    expected[2, 3] = expected[3, 2] = 1.0
    expected[3, 4] = expected[4, 3] = 1.0
    expected[2, 4] = expected[4, 2] = 0.5
    np.testing.assert_allclose(counts, expected)
    narrow = cooccurrence([np.array([2, 3, 4])], size=5, window=1).toarray()
    assert narrow[2, 4] == 0 and narrow[2, 3] == 1


def test_padding_is_never_counted_and_an_empty_corpus_counts_nothing():
    counts = cooccurrence([np.array([2, 0, 3])], size=4, window=2).toarray()
    assert counts[0].sum() == counts[:, 0].sum() == 0 and counts[2, 3] == 0.5
    assert cooccurrence([np.array([2])], size=4, window=5).nnz == 0


def test_counting_in_chunks_gives_the_counts_of_the_whole_corpus():
    rng = np.random.default_rng(3)
    documents = [rng.integers(0, 9, size=n) for n in rng.integers(0, 12, size=50)]
    whole = cooccurrence(documents, size=9, window=3)
    assert (chunked_cooccurrence(documents, 9, 3, chunk=50) != whole).nnz == 0  # one chunk
    np.testing.assert_allclose(
        chunked_cooccurrence(documents, 9, 3, chunk=7).toarray(), whole.toarray(), rtol=1e-12
    )
    assert chunked_cooccurrence([], 9, 3).nnz == 0


def test_ppmi_keeps_only_pairs_seen_together_more_than_by_chance():
    # 1 and 2 always occur together; 3 occurs beside everything, so it tells nothing
    documents = [np.array([1, 2, 3])] * 5 + [np.array([3, 4, 3, 5])] * 5
    matrix = ppmi(cooccurrence(documents, size=6, window=1)).toarray()
    assert matrix[1, 2] > matrix[2, 3] >= 0
    assert (matrix >= 0).all() and matrix[1, 4] == 0


def _corpus(seed=0):
    """Two groups of words that each appear among their own context words, never the other's."""
    rng = np.random.default_rng(seed)
    good, bad = [2, 3, 4], [5, 6, 7]
    context = {2: [8, 9, 10], 5: [11, 12, 13]}
    documents = []
    for _ in range(300):
        group = good if rng.random() < 0.5 else bad
        around = context[group[0]]
        documents.append(np.array([rng.choice(around), rng.choice(group), rng.choice(around)]))
    return documents


def test_ppmi_vectors_put_words_used_alike_close_together():
    vectors = ppmi_vectors(_corpus(), size=14, dim=4, seed=0)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    assert unit[2] @ unit[3] > 0.9 and unit[5] @ unit[6] > 0.9
    assert unit[2] @ unit[5] < 0.5


def test_ppmi_vectors_are_scaled_deterministic_and_leave_padding_at_zero():
    vectors = ppmi_vectors(_corpus(), size=14, dim=4, seed=0)
    assert vectors.shape == (14, 4) and vectors.dtype == np.float32
    assert vectors.std() == pytest.approx(SCALE, rel=1e-4)
    assert not vectors[0].any() and not vectors[1].any()  # 1 never occurs in the corpus
    np.testing.assert_array_equal(vectors, ppmi_vectors(_corpus(), size=14, dim=4, seed=0))


def test_ppmi_vectors_name_what_they_cannot_do():
    with pytest.raises(PipelineError, match="fewer embedding dimensions \\(14\\) than"):
        ppmi_vectors(_corpus(), size=14, dim=14, seed=0)
    with pytest.raises(PipelineError, match="tokens that occur near each other"):
        ppmi_vectors([np.array([2]), np.array([3])], size=14, dim=4, seed=0)
