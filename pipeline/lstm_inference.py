"""Scoring with a trained LSTM bundle: token lists in, P(positive) out, in NumPy.

The forward pass of the models pipeline/models.py builds (Embedding, LSTM or Bidirectional(LSTM),
stacked, last/mean/max pooling, Dense), read from the bundle's model.keras (its config.json and
weights) without TensorFlow: a served model starts in a second instead of ten, holds a fraction
of the memory, and scores a short text in well under a millisecond. Dropout is the identity at
inference. The first recurrent layer's input projection is folded into the embedding table
(one row per token id), so each time step costs one small matrix product.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from pipeline import bundle
from pipeline.probability import sigmoid
from pipeline.tokenizers import TokenizerConfig
from pipeline.vocab import OOV_ID, encode, index_of

BATCH = 1024  # texts per forward pass; the cost follows their real lengths, not padding
SKIPPED = {"InputLayer", "Dropout"}  # nothing to compute at inference


class LstmScorer:
    """One LSTM variant: its vocabulary, sequence length and forward pass."""

    def __init__(self, folder: Path, meta: dict):
        self.name = meta["tokenizer"]["name"]
        self.tokenizers = {self.name: TokenizerConfig(**meta["tokenizer"]["config"])}
        self.index = index_of(bundle.read_part(folder, bundle.VOCAB_FILE))
        self.max_length = meta["max_length"]
        self.char_fallback = meta.get("char_fallback", False)  # absent in older bundles
        self.tagged = self.tokenizers[self.name].tags
        self.forward = Forward.from_keras_file(folder / bundle.KERAS_FILE)
        self.threads = ThreadpoolController()

    def probabilities(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]]
    ) -> np.ndarray:
        return self.score_ids(self.encode(tokens[self.name]))

    def scores(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """P(positive), and whether the text has a feature: a token of the vocabulary or, with
        char_fallback, a known character among its first max_length tokens."""
        ids = self.encode(tokens[self.name])
        known = np.fromiter(((row != OOV_ID).any() for row in ids), dtype=bool, count=len(ids))
        return self.score_ids(ids), known

    def encode(self, documents: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """vocab.encode, with every token looked up at once: a document whose tokens are all
        in the vocabulary needs nothing more; one with an unknown token goes the long way."""
        heads = [tokens[: self.max_length] for tokens in documents]
        flat = [token for tokens in heads for token in tokens]
        found = np.fromiter((self.index.get(t, -1) for t in flat), dtype=np.int32, count=len(flat))
        ids = np.split(found, np.cumsum([len(tokens) for tokens in heads])[:-1])
        unknown = [i for i, row in enumerate(ids) if (row < 0).any()]
        slow = encode(
            [heads[i] for i in unknown],
            self.index,
            self.max_length,
            self.char_fallback,
            self.tagged,
        )
        for i, row in zip(unknown, slow, strict=True):
            ids[i] = row
        return ids

    def score_ids(self, ids: list[np.ndarray]) -> np.ndarray:
        """Batches of similar length, so that each step computes only unfinished texts. One
        BLAS thread: a step's matrices are small, and a second thread spins on a core that the
        tokenizer or another request needs. Measured on the NSMC champion, 1,000 texts: this
        forward pass alone takes 50 ms instead of 43 but 50 ms of CPU instead of 83, and whole
        requests (Kiwi, then the models) are 8 % faster."""
        out = np.empty(len(ids), dtype=np.float32)
        order = np.argsort([len(x) for x in ids], kind="stable")
        with self.threads.limit(limits=1, user_api="blas"):
            for start in range(0, len(order), BATCH):
                rows = order[start : start + BATCH]
                out[rows] = self.forward([ids[i] for i in rows])
        return out


@dataclass(frozen=True)
class Recurrent:
    """One LSTM layer, or both directions of a Bidirectional one. Per direction: the input
    kernel, the recurrent kernel and the bias, gates in Keras' order (input, forget, cell,
    output), the cell's columns doubled so that one sigmoid gives every gate
    (tanh(x) = 2 sigmoid(2x) - 1)."""

    directions: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]


@dataclass(frozen=True)
class Forward:
    embedding: np.ndarray  # first layer's input projection per token id, per direction
    layers: tuple[Recurrent, ...]
    pooling: str  # last | mean | max
    dense: tuple[np.ndarray, np.ndarray]

    @classmethod
    def from_keras_file(cls, path: Path) -> Forward:
        config, weights = _read_keras(path)
        layers = [
            (stored, layer)
            for stored, layer in _stored_names(config["config"]["layers"])
            if layer["class_name"] not in SKIPPED
        ]
        table = weights[f"{layers[0][0]}/vars/0"]
        recurrent, pooling, dense = [], "last", None
        for stored, layer in layers[1:]:
            kind = layer["class_name"]
            if kind in ("LSTM", "Bidirectional"):
                recurrent.append(_recurrent(stored, layer, weights))
            elif kind == "GlobalAveragePooling1D":
                pooling = "mean"
            elif kind == "MaskedMaxPooling":
                pooling = "max"
            elif kind == "Dense" and layer["config"]["activation"] == "sigmoid":
                dense = (weights[f"{stored}/vars/0"][:, 0], weights[f"{stored}/vars/1"])
            else:
                raise ValueError(f"{path}: no NumPy forward pass for a {kind} layer")
        first = recurrent[0]
        embedding = np.stack([table @ kernel + bias for kernel, _, bias in first.directions])
        return cls(embedding.astype(np.float32), tuple(recurrent), pooling, dense)

    def __call__(self, ids: list[np.ndarray]) -> np.ndarray:
        """P(positive) of each id sequence."""
        out = np.empty(len(ids), dtype=np.float32)
        empty = np.array([len(x) == 0 for x in ids], dtype=bool)
        if empty.any():  # no token to read: what Keras gives an input of padding only
            out[empty] = self.empty_probability()
        if not empty.all():
            out[~empty] = self.sequences([x for x in ids if len(x)])
        return out

    def empty_probability(self) -> float:
        """The state after no step (zeros), max-pooled over no step (-1e9, MaskedMaxPooling's
        fill; Keras' mean over no step would divide by zero, zeros here)."""
        width = sum(cell[1].shape[0] for cell in self.layers[-1].directions)
        pooled = np.full(width, -1e9 if self.pooling == "max" else 0.0, dtype=np.float32)
        kernel, bias = self.dense
        return float(sigmoid(float(pooled @ kernel + bias[0])))

    def sequences(self, ids: list[np.ndarray]) -> np.ndarray:
        """P(positive) of each id sequence (at least one id each)."""
        lengths = np.array([len(x) for x in ids])
        order = np.argsort(-lengths, kind="stable")  # longest first: the unfinished are a prefix
        lengths = lengths[order]
        padded = np.zeros((len(ids), lengths[0]), dtype=np.int64)
        for row, i in enumerate(order):
            padded[row, : lengths[row]] = ids[i]
        # direction d of the first layer reads its inputs by id from its row of `embedding`
        inputs = [padded, reversed_rows(padded, lengths)][: len(self.layers[0].directions)]
        project = [lambda x, d=d: self.embedding[d][x] for d in range(len(inputs))]
        for depth, layer in enumerate(self.layers):
            mode = self.pooling if depth == len(self.layers) - 1 else "sequences"
            outputs = [
                _run(inputs[d], project[d], layer.directions[d][1], lengths, mode)
                for d in range(len(layer.directions))
            ]
            if mode == "sequences":  # the next layer reads both directions at each step
                outputs[1:] = [reversed_rows(out, lengths) for out in outputs[1:]]
                below = np.concatenate(outputs, axis=-1)
                inputs = [below, reversed_rows(below, lengths)]
                project = [
                    lambda x, k=kernel, b=bias: x @ k + b
                    for kernel, _, bias in self.layers[depth + 1].directions
                ]
        kernel, bias = self.dense
        logit = np.concatenate(outputs, axis=-1) @ kernel + bias
        out = np.empty(len(ids), dtype=np.float32)
        out[order] = sigmoid(logit)  # float32, as Keras computes it: the same ties, the same AUC
        return out


def reversed_rows(rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each row's first `length` entries in reverse order (what a backward LSTM reads), the
    padding left where it was."""
    steps = np.arange(rows.shape[1])
    source = lengths[:, None] - 1 - steps[None, :]
    real = source >= 0
    picked = rows[np.arange(len(rows))[:, None], np.where(real, source, 0)]
    mask = real if rows.ndim == 2 else real[:, :, None]
    return np.where(mask, picked, 0)


def _read_keras(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    import h5py

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        stored = io.BytesIO(archive.read("model.weights.h5"))
    weights = {}
    with h5py.File(stored, "r") as h5:
        h5.visititems(
            lambda name, item: (
                weights.__setitem__(name, np.asarray(item))
                if isinstance(item, h5py.Dataset) and name.startswith("layers/")
                else None
            )
        )
    return config, weights


def _stored_names(layers: list[dict]) -> list[tuple[str, dict]]:
    """Where Keras stores each layer's weights: its class in snake case, numbered from the
    second of a class on (keras.src.saving.saving_lib), not its (generated) name."""
    used: dict[str, int] = {}
    named = []
    for layer in layers:
        kind = re.sub(r"\W+", "", layer["class_name"])
        kind = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", kind)
        kind = re.sub("([a-z])([A-Z])", r"\1_\2", kind).lower()
        used[kind] = used.get(kind, -1) + 1
        named.append((f"layers/{kind}_{used[kind]}" if used[kind] else f"layers/{kind}", layer))
    return named


def _recurrent(stored: str, layer: dict, weights: dict[str, np.ndarray]) -> Recurrent:
    name = layer["config"]["name"]
    if layer["class_name"] == "Bidirectional":
        inner = layer["config"]["layer"]["config"]
        paths = [f"{stored}/forward_layer/cell/vars", f"{stored}/backward_layer/cell/vars"]
    else:
        inner = layer["config"]
        paths = [f"{stored}/cell/vars"]
    if inner.get("activation") != "tanh" or inner.get("recurrent_activation") != "sigmoid":
        raise ValueError(f"layer {name}: only tanh/sigmoid LSTMs have a NumPy forward pass")
    return Recurrent(tuple(_doubled_cell(*(weights[f"{p}/{i}"] for i in range(3))) for p in paths))


def _doubled_cell(kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray):
    units = recurrent.shape[0]
    scale = np.ones(4 * units, dtype=np.float32)
    scale[2 * units : 3 * units] = 2.0
    return kernel * scale, recurrent * scale, bias * scale


def _sigmoid_in_place(x: np.ndarray) -> None:
    with np.errstate(over="ignore"):  # exp(-x) of a very negative x is inf: the sigmoid, 0
        np.negative(x, out=x)
        np.exp(x, out=x)
        x += 1.0
        np.reciprocal(x, out=x)


def _run(inputs, project, recurrent, lengths, mode: str) -> np.ndarray:
    """One direction of one layer over texts sorted longest first; `inputs` in the order this
    direction reads them, `project` turns a step's inputs into the gates' input part. Returns
    the last state, the mean or max of the states (pooling), or every state (`sequences`)."""
    units = recurrent.shape[0]
    batch, steps = inputs.shape[:2]
    h = np.zeros((batch, units), dtype=np.float32)
    c = np.zeros((batch, units), dtype=np.float32)
    if mode == "max":
        pooled = np.full((batch, units), -np.inf, dtype=np.float32)
    elif mode in ("mean", "sequences"):
        pooled = np.zeros((batch, steps, units) if mode == "sequences" else (batch, units), "f4")
    gates = np.empty((batch, 4 * units), dtype=np.float32)
    work = np.empty((batch, units), dtype=np.float32)
    active = batch
    for step in range(steps):
        while lengths[active - 1] <= step:
            active -= 1  # the shortest texts are done: only a prefix goes on
        z = gates[:active]
        np.matmul(h[:active], recurrent, out=z)
        z += project(inputs[:active, step])
        _sigmoid_in_place(z)
        i, f, g, o = (z[:, k * units : (k + 1) * units] for k in range(4))
        g *= 2.0  # tanh(x) = 2 sigmoid(2x) - 1, the cell's columns were doubled
        g -= 1.0
        g *= i
        ct, t = c[:active], work[:active]
        ct *= f
        ct += g
        np.tanh(ct, out=t)
        np.multiply(o, t, out=h[:active])
        if mode == "max":
            np.maximum(pooled[:active], h[:active], out=pooled[:active])
        elif mode == "mean":
            pooled[:active] += h[:active]
        elif mode == "sequences":
            pooled[:active, step] = h[:active]
    if mode == "last":
        return h
    return pooled / lengths[:, None] if mode == "mean" else pooled
