"""How fast does the pipeline's `model.fit` input train the benchmark's LSTMs? Writes JSON.

    python benchmarks/fit_speed.py --split-dir benchmarks/runs/<run>/data/split \
        --out benchmarks/fit-speed.json base dropout bilstm

Each variant of benchmarks/nsmc-params.yaml trains for two epochs of the split's training
reviews (or of their first `--steps` batches), each epoch validated on the validation split
(or as many of its first reviews), with the pipeline's callbacks and output, once per input:
- `tensor_slices`: the pipeline's own (pipeline/models.py:fit and batch_dataset);
- `from_generator`: the same batches from a Python generator through
  `tf.data.Dataset.from_generator`, the pipeline's input until 2026-11-28.
Seconds per epoch, validation included; the second epoch's are the comparable ones (the first
also traces the graphs).

What it showed (2026-11-28): the two inputs train the benchmark's LSTM about equally fast here,
alone (benchmarks/fit-speed.json: 56.0 and 56.9 s for the second epoch) and with `--hold-split`,
the split's 145k records kept in memory as the `train` command keeps them
(benchmarks/fit-speed-held.json: 56.6 and 59.0 s). Yet the pipeline's own `train` command, the
same model on the same split, took 202.8 s with the generator and 132.2 s with the tensors, one
after the other (benchmarks/train-probe-20261128.json). What else in that process slows the
generator was not found.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import keras

from pipeline.benchmark import machine, merged_params
from pipeline.io import read_jsonl
from pipeline.models import BucketedBatches, build_lstm_model, fit
from pipeline.train import TrainSettings, _batches, _seed_everything, lstm_callbacks, read_vocab
from pipeline.vocab import id_tokens, index_of

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 2


def benchmark_settings(variant: str) -> TrainSettings:
    params = merged_params(ROOT / "params.yaml", ROOT / "benchmarks/nsmc-params.yaml")
    return TrainSettings.from_params(params["train"], variant)


def generator_dataset(batches: BucketedBatches):
    """The pipeline's input before 2026-11-28: each pass over it is the next epoch."""
    import itertools

    import tensorflow as tf

    epochs = itertools.count()

    def generate():
        for rows in batches.rows_for_epoch(next(epochs)):
            yield batches.batch(rows)

    signature = (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.float32))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches)))


def epoch_seconds(settings: TrainSettings, split_dir: Path, steps: int | None, source: str):
    cfg = settings.config
    limit = steps * cfg.batch_size if steps else None
    tokens = id_tokens(read_vocab(split_dir, settings), cfg.vocab_size, cfg.char_fallback)
    train, validation = (
        _batches(read_jsonl(split_dir / f"{name}.jsonl")[:limit], cfg, index_of(tokens), True, seed)
        for name, seed in (("train", settings.seed), ("validation", None))
    )
    _seed_everything(settings.seed)
    model = build_lstm_model(cfg, len(tokens))
    timer = EpochTimer()
    callbacks = [*lstm_callbacks(cfg), timer]
    verbose = 2  # the pipeline's when its output is not a terminal
    if source == "tensor_slices":
        fit(model, train, validation, EPOCHS, callbacks=callbacks, verbose=verbose)
    else:  # each pass over a generator's dataset is the next epoch
        model.fit(
            generator_dataset(train),
            validation_data=generator_dataset(validation),
            epochs=EPOCHS,
            shuffle=False,
            callbacks=callbacks,
            verbose=verbose,
        )
    return timer.seconds


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self.started, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, help="batches per epoch (default: the whole split)")
    parser.add_argument(
        "--hold-split",
        action="store_true",
        help="keep the split's records in memory meanwhile, as the pipeline's train command does",
    )
    parser.add_argument("variants", nargs="+")
    args = parser.parse_args()
    names = ("train", "validation") if args.hold_split else ()
    held = [read_jsonl(args.split_dir / f"{name}.jsonl") for name in names]
    results = {}
    for variant in args.variants:
        settings = benchmark_settings(variant)
        results[variant] = {
            source: epoch_seconds(settings, args.split_dir, args.steps, source)
            for source in ("tensor_slices", "from_generator")
        }
        print(variant, results[variant], flush=True)
    report = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "steps": args.steps,
        "split_held": args.hold_split,
        "records_held": sum(len(records) for records in held),
        "seconds_per_epoch": results,
        "speedup_epoch_2": {
            name: round(seconds["from_generator"][-1] / seconds["tensor_slices"][-1], 2)
            for name, seconds in results.items()
        },
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
