"""Probe: do other inputs or architectures lift the LSTMs on NSMC? An experiment only.

Every config follows the NSMC benchmark settings (max pooling, 60 tokens, batches of 256, the
same per-epoch bucketed shuffle; Adam at 0.002, the benchmark's rate until run 12, unless
`learning_rates` says otherwise) and changes one or two things:
- `subwords`: each Kiwi morpheme gets, besides its own embedding, the mean embedding of its
  form's character 1-3-grams (fastText-style, hashed into a fixed number of buckets with
  CRC-32, so a token the vocabulary lacks still gets a meaning from its spelling);
- `char_fallback`: the pipeline's own fallback (pipeline/vocab.py), for comparison with it;
- `subword_table`: the same n-grams, looked up inside the model from a table of each
  vocabulary entry's bucket ids, so it combines with `char_fallback` and needs no extra input
  (`dim` below 128: n-gram vectors that narrow, projected to 128);
- `ppmi_init`: the embedding starts from PPMI + SVD vectors of the training split, made by
  pipeline/embeddings.py as for `embedding_init: ppmi` (the config records its constants);
- `kiwi_init`: the embedding starts from the morpheme embeddings of Kiwi's own CoNg language
  model (kiwipiepy 0.24; trained by Kiwi's authors, shipped in kiwipiepy_model), rebuilt
  from Kiwi's similarity API (`kiwi_vectors`); `concat`: beside the PPMI table, `columns` of
  each; `embedding_dim`: the embedding's width (128 unless named); `projection`: a linear map
  of the embedding to this width before the LSTM;
- `ema`: validate with a moving average of the weights (Adam's `use_ema`, this momentum);
- `layers`: stacked (Bi)LSTM layers; `cosine`: the learning rate decays along a cosine over all
  steps; `learning_rates`: one rate per epoch; `dropout`, `spatial_dropout`;
- `frozen_embedding`: the embedding keeps its starting table (no gradient, no Adam state);
  `weight_decay`: AdamW's decoupled decay of every weight; `label_smoothing`;
- `pooling`: `max` (the pipeline's, the default), `maxmean` (max and mean over the time steps,
  side by side) or `attention` (a weighted mean, the weights from a learned score per step);
- `token_dropout`: in training, each token id becomes the OOV id with this probability (drawn
  per epoch from the seed), so the model learns not to lean on any one word.
Each config trains for its `epochs` on the split of a benchmark run, and its best epoch is the
one of lowest validation loss; `--test` also scores the run's test split at each epoch:

    python benchmarks/lstm_probe.py --split-dir benchmarks/runs/<run>/data/split \
        --out benchmarks/lstm-probe.json bilstm bilstm_sub32k

The results file is rewritten after every config (keeping the configs it already holds), so a
probe may run in parts and a stopped one keeps what it measured. Each config records the run
folder its split came from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import zlib
from datetime import date
from pathlib import Path

import numpy as np

from pipeline.embeddings import CONTEXT_POWER, SCALE, WINDOW, ppmi_vectors
from pipeline.io import read_jsonl
from pipeline.vocab import OOV_ID, PAD_ID, PIECE, encode, form_of, id_tokens, index_of

MAX_LENGTH, BATCH, LEARNING_RATE, SEED = 60, 256, 0.002, 42  # the benchmark's seed
SUB_32K = {"buckets": 32768, "min_n": 1, "max_n": 3, "slots": 12}
SUB_200K = {**SUB_32K, "buckets": 200000}
PPMI = {"window": WINDOW, "alpha": CONTEXT_POWER, "scale": SCALE}  # pipeline/embeddings.py's
SUB_SMALL = {**SUB_32K, "slots": 8, "dim": 32}  # fewer slots, 32-dim vectors projected to 128
LSTM = {"bidirectional": False, "units": 128, "epochs": 2}
BILSTM = {"bidirectional": True, "units": 64, "epochs": 2}
DROPOUT = {**LSTM, "epochs": 3, "dropout": 0.4}
FALLBACK = {"char_fallback": True}
PPMI_EMA = {"ppmi_init": PPMI, "ema": 0.995}
ANCHORS = 384  # Kiwi's CoNg embeddings have 256 dimensions; more anchors than that span them
KIWI_EMA = {**PPMI_EMA, "kiwi_init": {"anchors": ANCHORS}}  # PPMI only for rows Kiwi lacks
KIWI_CAT_EMA = {**PPMI_EMA, "kiwi_init": {"anchors": ANCHORS, "concat": True}}  # 128 + 128
KIWI_HALF_EMA = {**PPMI_EMA, "kiwi_init": {"anchors": ANCHORS, "concat": True, "columns": 64}}


def at_rate(model: dict, rate: float) -> dict:
    """`model` with character fallback, PPMI and the moving average, at one rate for every epoch."""
    return {**model, **FALLBACK, **PPMI_EMA, "learning_rates": [rate] * model["epochs"]}


CONFIGS = {
    "bilstm": BILSTM,
    "bilstm_sub32k": {**BILSTM, "subwords": SUB_32K},
    "bilstm_sub200k": {**BILSTM, "subwords": SUB_200K},
    "lstm": LSTM,
    "lstm_sub32k": {**LSTM, "subwords": SUB_32K},
    "lstm_sub32k_decay": {
        **LSTM,
        "epochs": 3,
        "subwords": SUB_32K,
        "learning_rates": [0.002, 0.002, 0.0005],
    },
    "lstm_sub32k_spatial": {**LSTM, "epochs": 3, "subwords": SUB_32K, "spatial_dropout": 0.2},
    "bilstm128_sub32k": {**BILSTM, "units": 128, "subwords": SUB_32K},
    "dropout": DROPOUT,
    "lstm_fallback": {**LSTM, **FALLBACK},
    "lstm_fallback_cosine": {**LSTM, **FALLBACK, "cosine": True},
    "bilstm_fallback": {**BILSTM, **FALLBACK},
    "bilstm2_fallback": {**BILSTM, **FALLBACK, "layers": 2},
    "dropout_sub32k": {**DROPOUT, "subwords": SUB_32K},
    "lstm_fallback_subtable": {**LSTM, **FALLBACK, "subword_table": SUB_32K},
    "lstm_fallback_ema": {**LSTM, **FALLBACK, "ema": 0.995},
    "lstm_fallback_subtable_ema": {**LSTM, **FALLBACK, "subword_table": SUB_32K, "ema": 0.995},
    "lstm_fallback_ppmi": {**LSTM, **FALLBACK, "ppmi_init": PPMI},
    "lstm_fallback_ppmi_ema": {**LSTM, **FALLBACK, **PPMI_EMA},
    "bilstm_fallback_ppmi_ema": {**BILSTM, **FALLBACK, **PPMI_EMA},
    "dropout_fallback_ppmi_ema": {**DROPOUT, **FALLBACK, **PPMI_EMA},
    "lstm_fallback_subsmall_ppmi_ema": {
        **LSTM,
        **FALLBACK,
        "subword_table": SUB_SMALL,
        **PPMI_EMA,
    },
    "bilstm_fallback_subtable_ppmi_ema": {
        **BILSTM,
        **FALLBACK,
        "subword_table": SUB_32K,
        **PPMI_EMA,
    },
    "lstm_fallback_subtable_ppmi_ema": {
        **LSTM,
        **FALLBACK,
        "subword_table": SUB_32K,
        **PPMI_EMA,
    },
    "lstm_fallback_kiwi_ema": {**LSTM, **FALLBACK, **KIWI_EMA},
    "lstm_fallback_kiwicat_ema": {**LSTM, **FALLBACK, **KIWI_CAT_EMA},
    "lstm_fallback_kiwihalf_ema": {**LSTM, **FALLBACK, **KIWI_HALF_EMA},
    "lstm_fallback_ppmi256_ema": {**LSTM, **FALLBACK, **PPMI_EMA, "embedding_dim": 256},
    "lstm_fallback_ppmi_ema_frozen": {**LSTM, **FALLBACK, **PPMI_EMA, "frozen_embedding": True},
    "lstm_fallback_ppmi_ema_wd": {**LSTM, **FALLBACK, **PPMI_EMA, "weight_decay": 0.05},
    "lstm_fallback_ppmi_ema_smooth": {**LSTM, **FALLBACK, **PPMI_EMA, "label_smoothing": 0.1},
    "lstm_fallback_ppmi_ema_maxmean": {**LSTM, **FALLBACK, **PPMI_EMA, "pooling": "maxmean"},
    "lstm_fallback_ppmi_ema_attention": {**LSTM, **FALLBACK, **PPMI_EMA, "pooling": "attention"},
    "bilstm_fallback_ppmi_ema_maxmean": {**BILSTM, **FALLBACK, **PPMI_EMA, "pooling": "maxmean"},
    "lstm_fallback_ppmi_ema_maxmean_smooth": {
        **LSTM,
        **FALLBACK,
        **PPMI_EMA,
        "pooling": "maxmean",
        "label_smoothing": 0.1,
    },
    "lstm_fallback_ppmi_ema_lr3": at_rate(LSTM, 0.003),
    "lstm_fallback_ppmi_ema_lr4": at_rate(LSTM, 0.004),
    "lstm_fallback_ppmi_ema_lr6": at_rate(LSTM, 0.006),
    "bilstm_fallback_ppmi_ema_lr3": at_rate(BILSTM, 0.003),
    "bilstm_fallback_ppmi_ema_lr4": at_rate(BILSTM, 0.004),
    "dropout_fallback_ppmi_ema_lr3": at_rate(DROPOUT, 0.003),
    "dropout_fallback_ppmi_ema_lr4": at_rate(DROPOUT, 0.004),
    "lstm_fallback_ppmi_ema_tokdrop": {
        **LSTM,
        **FALLBACK,
        **PPMI_EMA,
        "token_dropout": 0.1,
        "epochs": 3,  # a regulariser: the third epoch may pay now
    },
    "lstm_fallback_ppmi256proj_ema": {
        **LSTM,
        **FALLBACK,
        **PPMI_EMA,
        "embedding_dim": 256,
        "projection": 128,
    },
}


def unit_vectors(similarity: np.ndarray, anchors: int) -> np.ndarray:
    """Unit vectors, up to a rotation, from their cosines with the first `anchors` of them.

    similarity[i, j] = v_i . v_j for j < anchors. With the anchors' own cosines
    G = Q L Q^T (so the anchors are Q L^1/2 R for some rotation R), S Q L^-1/2 = V R^T."""
    values, vectors = np.linalg.eigh(similarity[:anchors, :anchors])
    keep = values > values.max() * 1e-6
    return similarity[:, :anchors] @ vectors[:, keep] / np.sqrt(values[keep])


def kiwi_vectors(tokens: list[str], dim: int, fallback: np.ndarray, anchors: int) -> np.ndarray:
    """A (len(tokens), dim) table from the morpheme embeddings of Kiwi's CoNg language model.

    Kiwi (kiwipiepy 0.24, model_type 'cong') exposes those embeddings only as cosine
    similarities, so each morpheme's vector is rebuilt from its similarities to the `anchors` most
    frequent ones (unit_vectors), centred and cut to its `dim` principal components. Rows Kiwi lacks
    (symbols, numbers, unknown words, character pieces) come from `fallback` (the PPMI table),
    mapped into the same space by least squares on the rows both have."""
    from kiwipiepy import Kiwi

    kiwi = Kiwi(model_type="cong")
    morphemes = {i: _morpheme(token) for i, token in enumerate(tokens)}
    known = [i for i, m in morphemes.items() if m and _has_embedding(kiwi, m)]
    chosen = [morphemes[i] for i in known[:anchors]]
    similarity = np.array(
        [[kiwi.morpheme_similarity(morphemes[i], a) for a in chosen] for i in known]
    )
    unit = unit_vectors(similarity, len(chosen))
    unit -= unit.mean(axis=0)
    _, _, components = np.linalg.svd(unit, full_matrices=False)
    table = np.zeros((len(tokens), dim))
    table[known] = unit @ components[:dim].T
    mapping, *_ = np.linalg.lstsq(fallback[known], table[known], rcond=None)
    missing = np.setdiff1d(np.arange(1, len(tokens)), known)
    table[missing] = fallback[missing] @ mapping
    return (table * SCALE / table[1:].std()).astype(np.float32)


def _morpheme(token: str) -> tuple[str, str] | None:
    form, _, tag = token.rpartition("/")
    return (form, tag) if form and tag else None


def _has_embedding(kiwi, morpheme: tuple[str, str]) -> bool:
    try:
        kiwi.morpheme_similarity(morpheme, morpheme)
    except (ValueError, KeyError):
        return False
    return True


def char_ngrams(form: str, min_n: int, max_n: int) -> list[str]:
    marked = f"<{form}>"
    grams = []
    for n in range(min_n, max_n + 1):
        grams += [marked[i : i + n] for i in range(len(marked) - n + 1)]
    return [g for g in grams if g not in ("<", ">")]


def subword_ids(token: str, buckets: int, min_n: int, max_n: int, slots: int) -> list[int]:
    """Bucket ids (1..buckets; 0 pads) of the n-grams of a morpheme's form, without its tag."""
    grams = char_ngrams(form_of(token, tagged=True), min_n, max_n)
    return [1 + zlib.crc32(g.encode("utf-8")) % buckets for g in grams][:slots]


def subword_table(tokens: list[str], sub: dict) -> np.ndarray:
    """[id, slot] -> bucket id of each vocabulary entry's n-grams; zeros for <pad> and <oov>.

    Looked up inside the model from the token ids, so the data pipeline stays the pipeline's
    and character-fallback pieces ('##가') get the n-grams of their character."""
    grams = {key: sub[key] for key in ("buckets", "min_n", "max_n", "slots")}
    table = np.zeros((len(tokens), sub["slots"]), np.int32)
    for i, token in enumerate(tokens[2:], start=2):
        ids = subword_ids(token.removeprefix(PIECE), **grams)
        table[i, : len(ids)] = ids
    return table


def probe_data(records: list[dict], index: dict[str, int], batch: int, seed: int | None, config):
    """The pipeline's token ids and length-bucketed batches, plus each token's subword ids."""
    from pipeline.models import BucketedBatches

    sub, fallback = config.get("subwords"), config.get("char_fallback", False)
    tokens = [r["tokens"]["morph"][:MAX_LENGTH] for r in records]
    labels = np.array([r["label"] for r in records], dtype=np.float32)
    ids = encode(tokens, index, MAX_LENGTH, char_fallback=fallback, tagged=True)
    batches = BucketedBatches(ids, labels, batch, seed)
    subs = [[subword_ids(t, **sub) for t in doc] for doc in tokens] if sub else None
    return batches, subs


def epoch_batches(batches, subs, slots: int, epoch: int, token_dropout: float = 0.0):
    """The pipeline's batches of `epoch` (padded by its pad_batch), with subword ids beside."""
    rng = np.random.default_rng((batches.seed or 0, epoch, 1))  # only drawn from with dropout
    for rows in batches.rows_for_epoch(epoch):
        ids, labels = batches.batch(rows)
        if token_dropout:
            ids = np.where((ids != PAD_ID) & (rng.random(ids.shape) < token_dropout), OOV_ID, ids)
        inputs = {"tokens": ids}
        if subs:
            inputs["subwords"] = np.zeros((*ids.shape, slots), np.int32)
            for j, i in enumerate(rows):
                for position, bucket_ids in enumerate(subs[i]):
                    inputs["subwords"][j, position, : len(bucket_ids)] = bucket_ids
        yield inputs, labels


def build_model(config, tokens: list[str], steps: int, init=None, embedding_dim: int = 128):
    import keras
    from keras import layers, ops

    token_ids = keras.Input((None,), dtype="int32", name="tokens")
    inputs, mask = [token_ids], ops.not_equal(token_ids, 0)
    initializer = "uniform" if init is None else keras.initializers.Constant(init)
    x = layers.Embedding(
        len(tokens),
        embedding_dim,
        embeddings_initializer=initializer,
        trainable=not config.get("frozen_embedding", False),
    )(token_ids)
    sub_ids, sub = None, config.get("subwords") or config.get("subword_table")
    if config.get("subwords"):
        sub_ids = keras.Input((None, sub["slots"]), dtype="int32", name="subwords")
        inputs.append(sub_ids)
    elif sub:
        sub_ids = subword_lookup(subword_table(tokens, sub))(token_ids)
    if sub:
        vectors = layers.Embedding(sub["buckets"] + 1, sub.get("dim", embedding_dim))(sub_ids)
        present = ops.expand_dims(ops.cast(ops.not_equal(sub_ids, 0), vectors.dtype), -1)
        mean = ops.sum(vectors * present, axis=2) / ops.maximum(ops.sum(present, axis=2), 1.0)
        if sub.get("dim", embedding_dim) != embedding_dim:
            mean = layers.Dense(embedding_dim, use_bias=False)(mean)
        x = x + mean
    if width := config.get("projection"):  # a linear map of the embedding to this width
        x = layers.Dense(width, use_bias=False)(x)
    if spatial := config.get("spatial_dropout"):
        x = layers.SpatialDropout1D(spatial)(x)
    dropout = config.get("dropout", 0.0)
    if dropout:
        x = layers.Dropout(dropout)(x)
    for _ in range(config.get("layers", 1)):
        lstm = layers.LSTM(config["units"], return_sequences=True, dropout=dropout)
        x = (layers.Bidirectional(lstm) if config["bidirectional"] else lstm)(x, mask=mask)
    x = pooled(x, mask, config.get("pooling", "max"))
    if dropout:
        x = layers.Dropout(dropout)(x)
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    rate = LEARNING_RATE
    if config.get("cosine"):
        rate = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps, alpha=0.05)
    ema = {"use_ema": True, "ema_momentum": config["ema"]} if config.get("ema") else {}
    if decay := config.get("weight_decay"):
        optimizer = keras.optimizers.AdamW(rate, weight_decay=decay, **ema)
    else:
        optimizer = keras.optimizers.Adam(rate, **ema)
    smoothing = config.get("label_smoothing", 0.0)
    model.compile(optimizer, keras.losses.BinaryCrossentropy(label_smoothing=smoothing))
    return model


def pooled(x, mask, pooling: str):
    """One vector per document from the LSTM's outputs at its non-padding steps."""
    from keras import layers, ops

    from pipeline.models import MaskedMaxPooling

    if pooling == "max":
        return MaskedMaxPooling()(x, mask=mask)
    if pooling == "maxmean":  # the pipeline's `max` and `mean` poolings side by side
        mean = layers.GlobalAveragePooling1D()(x, mask=mask)
        return ops.concatenate([MaskedMaxPooling()(x, mask=mask), mean], axis=-1)
    if pooling == "attention":
        scores = layers.Dense(1)(layers.Dense(x.shape[-1], activation="tanh")(x))
        present = ops.expand_dims(mask, -1)
        scores = ops.where(present, scores, ops.full_like(scores, -1e9))
        return ops.sum(x * ops.softmax(scores, axis=1), axis=1)
    raise ValueError(f"unknown pooling {pooling!r}")


def subword_lookup(table: np.ndarray):
    import keras

    class Lookup(keras.layers.Layer):
        def call(self, token_ids):
            return keras.ops.take(keras.ops.convert_to_tensor(table), token_ids, axis=0)

    return Lookup(name="subword_lookup")


def averaged_weights(model):
    """Put the optimizer's moving averages into the model; returns the weights to put back.

    Copied through numpy: on JAX an assigned variable would share the average's buffer, which
    the next train step then donates (and deletes)."""
    current = [v.numpy() for v in model.trainable_variables]
    averages = model.optimizer._model_variables_moving_average
    for variable, average in zip(model.trainable_variables, averages, strict=True):
        variable.assign(np.array(average))
    return current


def probabilities(model, batches, subs, slots: int) -> np.ndarray:
    """P(positive) of every document of `batches`, in the order of its records."""
    p = np.empty(len(batches.ids), np.float64)
    for rows, (inputs, _) in zip(
        batches.rows_for_epoch(0), epoch_batches(batches, subs, slots, 0), strict=True
    ):
        p[rows] = np.asarray(model.predict_on_batch(inputs)).reshape(-1)
    return p


def accuracy_and_loss(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(np.mean((p >= 0.5) == y)), float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def kiwi_table(tokens: list[str], ppmi: np.ndarray, anchors: int, seed: int, folder: Path | None):
    """kiwi_vectors, kept in `folder` for a machine without kiwipiepy (the GPU machine)."""
    cached = folder / f"kiwi-seed{seed}.npy" if folder else None
    if cached and cached.exists():
        return np.load(cached)
    table = kiwi_vectors(tokens, 128, ppmi, anchors)
    if cached:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(cached, table)
    return table


def probe(
    config: dict,
    splits: dict,
    vocab: dict,
    seed: int,
    probabilities_file: Path | None = None,
    embeddings_dir: Path | None = None,
) -> dict:
    import keras

    if config.get("subwords") and config.get("char_fallback"):  # subword_table combines
        raise ValueError("subwords and char_fallback do not combine: ids would not align")
    keras.utils.set_random_seed(seed)
    tokens = id_tokens(vocab, len(vocab["tokens"]), config.get("char_fallback", False))
    index = index_of(tokens)
    subwords = config.get("subwords")
    slots = subwords["slots"] if subwords else 0
    started = time.perf_counter()
    train = probe_data(splits["train"], index, BATCH, seed, config)
    validation = probe_data(splits["validation"], index, 512, None, config)
    encode_seconds = time.perf_counter() - started
    test = probe_data(splits["test"], index, 512, None, config) if "test" in splits else None
    width = config.get("embedding_dim", 128)
    init = ppmi_vectors(train[0].ids, len(tokens), width, seed) if config.get("ppmi_init") else None
    if kiwi := config.get("kiwi_init"):
        table = kiwi_table(tokens, init, kiwi["anchors"], seed, embeddings_dir)
        columns = kiwi.get("columns", 128)  # the leading ones of each table
        init = np.hstack([init[:, :columns], table[:, :columns]]) if kiwi.get("concat") else table
    dim = width if init is None else init.shape[1]
    model = build_model(config, tokens, config["epochs"] * len(train[0]), init, dim)
    epochs, scored_epochs = [], []  # scored_epochs: each epoch's P(positive) per split
    for epoch in range(config["epochs"]):
        started = time.perf_counter()
        if rates := config.get("learning_rates"):
            model.optimizer.learning_rate = rates[epoch]
        for inputs, y in epoch_batches(*train, slots, epoch, config.get("token_dropout", 0.0)):
            model.train_on_batch(inputs, y)
        seconds = time.perf_counter() - started
        trained = averaged_weights(model) if config.get("ema") else None
        scored = {"validation": probabilities(model, *validation, slots)}
        accuracy, loss = accuracy_and_loss(scored["validation"], validation[0].labels)
        epochs.append(
            {
                "epoch": epoch + 1,
                "val_accuracy": round(accuracy, 4),
                "val_loss": round(loss, 4),
                "seconds": round(seconds, 1),
            }
        )
        if test:
            scored["test"] = probabilities(model, *test, slots)
            epochs[-1]["test_accuracy"] = round(
                accuracy_and_loss(scored["test"], test[0].labels)[0], 4
            )
        scored_epochs.append(scored)
        if trained:  # the averages were only for scoring; training goes on from its own
            for variable, value in zip(model.trainable_variables, trained, strict=True):
                variable.assign(value)
        print(epochs[-1], flush=True)
    best = min(epochs, key=lambda row: row["val_loss"])
    if probabilities_file:
        np.savez_compressed(probabilities_file, **scored_epochs[best["epoch"] - 1])
    return {
        "date": date.today().isoformat(),
        "config": config,
        "val_accuracy": best["val_accuracy"],
        **({"test_accuracy": best["test_accuracy"]} if test else {}),
        "best_epoch": best["epoch"],
        "epochs": epochs,
        "encode_seconds": round(encode_seconds, 1),
        "params": model.count_params(),
    }


def read_configs(path: Path) -> dict:
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))["configs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help="weights and shuffle; results of another seed are stored as <config>@seed<N>",
    )
    parser.add_argument(
        "--test", action="store_true", help="also score test.jsonl at each epoch (reported only)"
    )
    parser.add_argument(
        "--probabilities",
        type=Path,
        help="a folder: each config's P(positive) at its best epoch, <config>.npz, in split order",
    )
    parser.add_argument(
        "--embeddings", type=Path, help="a folder keeping the Kiwi tables (kiwi-seed<N>.npy)"
    )
    parser.add_argument("configs", nargs="*", help=f"any of {', '.join(CONFIGS)} (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.configs) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")

    import keras

    names = ("train", "validation", "test") if args.test else ("train", "validation")
    # <name>.jsonl, or <name>.jsonl.gz as copied to an accelerator machine
    splits = {name: read_jsonl(next(args.split_dir.glob(f"{name}.jsonl*"))) for name in names}
    vocab_file = args.split_dir / "vocab" / "morph.json"
    vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "backend": keras.backend.backend(),
        "train_size": len(splits["train"]),
        # Configs measured earlier into the same file are kept: a probe may run in parts.
        "configs": read_configs(args.out),
    }
    if args.probabilities:
        args.probabilities.mkdir(parents=True, exist_ok=True)
    for name in args.configs or CONFIGS:
        print(name, flush=True)
        key = name if args.seed == SEED else f"{name}@seed{args.seed}"
        saved = args.probabilities / f"{key}.npz" if args.probabilities else None
        measured = probe(CONFIGS[name], splits, vocab, args.seed, saved, args.embeddings)
        results["configs"][key] = {
            **measured,
            "seed": args.seed,
            "split_run": args.split_dir.parent.parent.name,
        }
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
