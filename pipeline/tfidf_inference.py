"""Scoring with an exported TF-IDF model (tfidf.json): texts or token lists in, P(positive) out.

What TfidfVectorizer.transform and the logistic regression compute, written as one weighted sum
over the n-grams a text holds: with c the count of an n-gram, idf its weight and coef its
coefficient, tf = 1 + log c (sublinear) or c, and

    P(positive) = sigmoid(sum(tf * idf / sqrt(sum((tf * idf) ** 2)) * coef) + intercept).

No scikit-learn at scoring time. The n-grams of a whole batch are found at once: each character
(or token) becomes a small id, each n-gram an integer built from its ids, looked up among the
vocabulary's integers with a hash index. Other analyzers (words, character n-grams within word
boundaries) look each n-gram up in a dict.

The arithmetic is the float32 of the previous scorer (CountVectorizer, a product with
diag(idf), sklearn's normalize, a sparse dot product), operation for operation and in the same
order, so every probability is the same to the last bit. That matters beyond tidiness: the
ensemble averages log-odds, where a member's last float32 digit near 0 or 1 moves the result
by up to 1e-5.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline import bundle
from pipeline.probability import sigmoid
from pipeline.tokenizers import TokenizerConfig

Documents = Sequence[str] | Sequence[Sequence[str]]  # texts, or token lists of a tokenizer
_WHITE_SPACES = re.compile(r"\s\s+")  # scikit-learn's, for character n-grams
_KEY_BITS = 63


def token_ngrams(tokens: Sequence[str], ngram_min: int, ngram_max: int) -> list[str]:
    """['a', 'b', 'c'], 1, 2 -> ['a', 'b', 'c', 'a b', 'b c'] (lower-cased)."""
    tokens = [token.lower() for token in tokens]
    return [
        " ".join(tokens[start : start + n])
        for n in range(ngram_min, ngram_max + 1)
        for start in range(len(tokens) - n + 1)
    ]


class TfidfScorer:
    """Probability of the positive class from an exported model."""

    def __init__(self, exported: dict, tokenizer: dict | None = None):
        self.ngram_range = tuple(exported["ngram_range"])
        self.sublinear_tf = exported["sublinear_tf"]
        self.idf = np.asarray(exported["idf"], dtype=np.float32)
        self.coef = np.asarray(exported["coef"], dtype=np.float32)
        self.intercept = np.float32(exported["intercept"])
        terms = exported["terms"]
        # A blank n-gram (a space, between the words of any text) says nothing of a text.
        self.telling = np.fromiter((bool(t.strip()) for t in terms), dtype=bool, count=len(terms))
        tokenized = exported.get("tokenized", False)  # absent in older bundles
        kind = TokenNgrams if tokenized else CharNgrams if exported["analyzer"] == "char" else None
        self.ngrams = kind(terms, self.ngram_range) if kind else None
        if self.ngrams is None or not self.ngrams.fits:
            self.ngrams = None
            self.columns = {term: column for column, term in enumerate(terms)}
            self.analyze = _analyzer(exported["analyzer"], self.ngram_range, tokenized)
        # n-grams of a tokenizer's tokens ({"name", "config"} from bundle.json), or of raw text
        self.name = tokenizer["name"] if tokenizer else None
        self.tokenizers = {self.name: TokenizerConfig(**tokenizer["config"])} if tokenizer else {}

    @classmethod
    def from_bundle(cls, folder: Path, meta: dict) -> TfidfScorer:
        return cls(bundle.read_part(folder, bundle.TFIDF_FILE), meta.get("tokenizer"))

    def probabilities(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]]
    ) -> np.ndarray:
        return self(tokens[self.name] if self.name else texts)

    def scores(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """P(positive), and whether the text has a feature: an n-gram of the vocabulary (not
        only blank ones)."""
        documents = tokens[self.name] if self.name else texts
        rows, columns = self.ngrams.find(documents) if self.ngrams else self._lookup(documents)
        known = np.bincount(rows[self.telling[columns]], minlength=len(documents)) > 0
        return self._score(len(documents), rows, columns), known

    def __call__(self, documents: Documents) -> np.ndarray:
        rows, columns = self.ngrams.find(documents) if self.ngrams else self._lookup(documents)
        return self._score(len(documents), rows, columns)

    def _lookup(self, documents: Documents) -> tuple[np.ndarray, np.ndarray]:
        rows, columns = [], []
        for row, document in enumerate(documents):
            found = [c for c in map(self.columns.get, self.analyze(document)) if c is not None]
            rows += [row] * len(found)
            columns += found
        return np.asarray(rows, dtype=np.int64), np.asarray(columns, dtype=np.int64)

    def _score(self, size: int, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """The formula above, in float32, from every (document, column) occurrence of an n-gram."""
        width = len(self.idf)
        # Each document's n-grams by descending column: the order in which scipy's product
        # with diag(idf) leaves them, and so the order the sums below run in.
        pairs, counts = np.unique(rows * width + (width - 1 - columns), return_counts=True)
        row, flipped = np.divmod(pairs, width)
        column = width - 1 - flipped
        tf = counts.astype(np.float32)
        if self.sublinear_tf:
            tf = np.log(tf) + 1
        weight = tf * self.idf[column]
        # normalize(): float32 squares summed in float64, each weight divided in float64
        norm = np.sqrt(np.bincount(row, weight * weight, minlength=size))
        normalised = (weight / norm[row]).astype(np.float32)
        starts = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=size))])
        features = sparse.csr_matrix((normalised, column, starts), shape=(size, width))
        return sigmoid(features @ self.coef + self.intercept)


def _analyzer(analyzer: str, ngram_range: tuple[int, int], tokenized: bool) -> Callable:
    if tokenized:
        return partial(token_ngrams, ngram_min=ngram_range[0], ngram_max=ngram_range[1])
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(analyzer=analyzer, ngram_range=ngram_range).build_analyzer()


class IntegerNgrams:
    """n-grams as integers: an n-gram of ids a, b, c is n << (width * max_n) | a << 2 width |
    b << width | c (trailing slots 0). An id no vocabulary term has is 0, which no term's
    integer holds, so an n-gram with an unknown part is found nowhere."""

    def __init__(self, alphabet_size: int, ngram_range: tuple[int, int]):
        self.min_n, self.max_n = ngram_range
        self.width = max(1, alphabet_size.bit_length())
        self.fits = self.width * self.max_n + self.max_n.bit_length() <= _KEY_BITS

    def keys(self, ids: np.ndarray, first: np.ndarray, n: int) -> np.ndarray:
        """The integers of the n-grams of `ids` starting at positions `first`."""
        key = np.full(len(first), n, dtype=np.int64)
        for offset in range(self.max_n):
            key = (key << self.width) | (ids[first + offset] if offset < n else 0)
        return key

    def whole_keys(self, ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The integers of whole sequences laid end to end (each an n-gram itself), and which
        sequences they are; a sequence of more or fewer parts than n-grams have has none."""
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        keys, which = [], []
        for n in range(self.min_n, self.max_n + 1):
            at = np.flatnonzero(lengths == n)
            keys.append(self.keys(ids, starts[at], n))
            which.append(at)
        return np.concatenate(keys), np.concatenate(which)

    def index_terms(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        """The vocabulary's integers, from its terms' ids laid end to end."""
        keys, self.column_at = self.whole_keys(ids, lengths)
        self.index = pd.Index(keys)

    def columns_of(self, keys: np.ndarray) -> np.ndarray:
        """The vocabulary column of each n-gram integer, -1 for none."""
        at = self.index.get_indexer(keys)
        return np.where(at >= 0, self.column_at[at], -1)

    def find_keys(self, ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(document, column) of every vocabulary n-gram of documents laid end to end."""
        row_of = np.repeat(np.arange(len(lengths)), lengths)
        end_of = np.repeat(np.cumsum(lengths), lengths)
        rows, columns = [], []
        for n in range(self.min_n, self.max_n + 1):
            first = np.arange(max(len(ids) - n + 1, 0))
            first = first[first + n <= end_of[first]]  # n-grams inside one document
            column = self.columns_of(self.keys(ids, first, n))
            found = column >= 0
            rows.append(row_of[first[found]])
            columns.append(column[found])
        return np.concatenate(rows), np.concatenate(columns)


class CharNgrams(IntegerNgrams):
    """Character n-grams of lower-cased texts, whitespace runs made one space (scikit-learn's
    `char` analyzer)."""

    def __init__(self, terms: Sequence[str], ngram_range: tuple[int, int]):
        alphabet = sorted({char for term in terms for char in term})
        super().__init__(len(alphabet), ngram_range)
        if not self.fits:
            return
        codes = np.array([ord(char) for char in alphabet], dtype=np.int64)
        self.ids = np.zeros(int(codes.max(initial=0)) + 1, dtype=np.int64)
        self.ids[codes] = np.arange(1, len(alphabet) + 1)
        self.index_terms(self._char_ids("".join(terms)), _lengths(terms))

    def _char_ids(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        inside = codes < len(self.ids)
        return np.where(inside, self.ids[np.where(inside, codes, 0)], 0)

    def find(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        prepared = [_WHITE_SPACES.sub(" ", text.lower()) for text in texts]
        return self.find_keys(self._char_ids("".join(prepared)), _lengths(prepared))


class TokenNgrams(IntegerNgrams):
    """n-grams of a tokenizer's lower-cased tokens, joined by spaces (token_ngrams). A token
    may hold a space itself: a document with one has its n-grams joined as strings, and each
    string is found by its space-separated parts, as the terms were; the few terms of more
    parts than an n-gram has are kept as strings."""

    def __init__(self, terms: Sequence[str], ngram_range: tuple[int, int]):
        parts = [term.split(" ") for term in terms]
        alphabet = sorted({token for split in parts for token in split})
        self.tokens = {token: i for i, token in enumerate(alphabet, start=1)}  # unknown: 0
        super().__init__(len(alphabet), ngram_range)
        if not self.fits:
            return
        self.index_terms(self._token_ids([t for split in parts for t in split]), _lengths(parts))
        self.long_terms = {
            term: column
            for column, (term, split) in enumerate(zip(terms, parts, strict=True))
            if len(split) > self.max_n
        }

    def _token_ids(self, tokens: Sequence[str]) -> np.ndarray:
        ids = (self.tokens.get(token, 0) for token in tokens)
        return np.fromiter(ids, dtype=np.int64, count=len(tokens))

    def find(self, documents: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        lowered = [[token.lower() for token in tokens] for tokens in documents]
        spaced = [i for i, tokens in enumerate(lowered) if any(" " in t for t in tokens)]
        for i in spaced:
            lowered[i] = []  # found by their strings' parts below
        flat = [token for tokens in lowered for token in tokens]
        rows, columns = self.find_keys(self._token_ids(flat), _lengths(lowered))
        if not spaced:
            return rows, columns
        more_rows, more_columns = self._find_strings(documents, spaced)
        return np.concatenate([rows, more_rows]), np.concatenate([columns, more_columns])

    def _find_strings(self, documents, spaced: list[int]) -> tuple[np.ndarray, np.ndarray]:
        grams = [(i, g) for i in spaced for g in token_ngrams(documents[i], self.min_n, self.max_n)]
        parts = [gram.split(" ") for _, gram in grams]
        keys, which = self.whole_keys(
            self._token_ids([t for split in parts for t in split]), _lengths(parts)
        )
        column = self.columns_of(keys)
        found = [(grams[w][0], c) for w, c in zip(which, column, strict=True) if c >= 0]
        found += [(i, self.long_terms[g]) for i, g in grams if g in self.long_terms]
        pairs = np.array(found, dtype=np.int64).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]


def _lengths(sequences: Sequence) -> np.ndarray:
    return np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
