"""Stage `train@<variant>`: fit one model variant and track it in MLflow."""

from __future__ import annotations

import csv
import io
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import yaml

from pipeline.errors import PipelineError
from pipeline.io import atomic_dir, atomic_file, read_json, read_jsonl, sha256_file, write_json
from pipeline.models import (
    LstmConfig,
    TfidfConfig,
    VariantConfig,
    build_lstm_model,
    fit,
    variant_from_params,
)
from pipeline.options import input_dir, params_option, path_option
from pipeline.params import check_keys, read_section
from pipeline.serving import BUNDLE_FILE
from pipeline.tokenizers import TokenizerConfig
from pipeline.vocab import encode, id_tokens, index_of

HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class TrainSettings:
    experiment: str
    seed: int
    variant: str
    config: VariantConfig

    @classmethod
    def from_params(cls, section: dict, variant: str, overrides: str = "") -> TrainSettings:
        check_keys("train", section, {"experiment", "seed", "variants"})
        variants = section["variants"] or {}
        if variant not in variants:
            raise PipelineError(
                f"unknown variant {variant!r}; params 'train.variants' defines "
                f"{', '.join(variants) or 'none'}"
            )
        config = {**variants[variant], **parse_overrides(overrides)}
        return cls(
            section["experiment"], section["seed"], variant, variant_from_params(variant, config)
        )


def parse_overrides(text: str) -> dict:
    """'units=64 epochs=3' -> {'units': 64, 'epochs': 3}, values read as YAML scalars."""
    overrides = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PipelineError(f"override {item!r} is not KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    return overrides


@dataclass
class Trained:
    """A fitted variant: what goes into its bundle folder, plus how training went."""

    meta: dict
    history: list[dict]
    seconds: float
    files: dict[str, object] = field(default_factory=dict)
    keras_model: object = None

    @property
    def best(self) -> dict:
        return min(self.history, key=lambda row: row["val_loss"])


def train_variant(
    settings: TrainSettings,
    splits: dict[str, list[dict]],
    vocab: dict | None,
    callbacks: Sequence = (),
) -> Trained:
    """Fit the variant on `splits['train']`, validating on `splits['validation']` each epoch."""
    cfg = settings.config
    if isinstance(cfg, TfidfConfig):
        return _train_tfidf(settings, cfg, splits, vocab)
    return _train_lstm(settings, cfg, splits, vocab, callbacks)


def _train_lstm(settings, cfg: LstmConfig, splits, vocab, callbacks) -> Trained:
    _seed_everything(settings.seed)
    tokens = id_tokens(vocab, cfg.vocab_size, cfg.char_fallback)
    index = index_of(tokens)
    tagged = TokenizerConfig(**vocab["tokenizer"]).tags
    data = {
        name: _batches(records, cfg, index, tagged, seed=settings.seed if name == "train" else None)
        for name, records in splits.items()
    }
    started = time.perf_counter()
    model = build_lstm_model(
        cfg, len(tokens), _initial_embeddings(cfg, data["train"], tokens, settings.seed)
    )
    fitted = fit(
        model,
        data["train"],
        data["validation"],
        cfg.epochs,
        callbacks=[*lstm_callbacks(cfg), *callbacks],
        verbose=1 if sys.stdout.isatty() else 2,
    )
    seconds = time.perf_counter() - started
    meta = {
        "variant": settings.variant,
        "type": cfg.type,
        "tokenizer": {"name": cfg.tokenizer, "config": vocab["tokenizer"]},
        "max_length": cfg.max_length,
        "char_fallback": cfg.char_fallback,
        "vocab_size": len(tokens),
    }
    history = _history_rows(fitted.history)
    return Trained(meta, history, seconds, {"vocab.json": tokens}, keras_model=model)


def lstm_callbacks(cfg: LstmConfig) -> list:
    """Early stopping that keeps the best epoch's weights, validated with the moving average."""
    import keras

    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=cfg.patience, restore_best_weights=True
    )
    # With a moving average, each epoch is validated, and the best kept, with averaged weights:
    # the swap must come before EarlyStopping so that it records those.
    average = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema_momentum else []
    return [*average, stop]


def _initial_embeddings(cfg: LstmConfig, train, tokens: list[str], seed: int):
    """The PPMI table of the training ids for embedding_init 'ppmi'; None for a random start."""
    if cfg.embedding_init == "random":
        return None
    from pipeline.embeddings import ppmi_vectors

    return ppmi_vectors(train.ids, len(tokens), cfg.embedding_dim, seed)


def _batches(records, cfg: LstmConfig, index, tagged: bool, seed):
    from pipeline.models import BucketedBatches

    documents = [r["tokens"][cfg.tokenizer] for r in records]
    ids = encode(documents, index, cfg.max_length, cfg.char_fallback, tagged)
    labels = np.array([r["label"] for r in records], dtype=np.float32)
    return BucketedBatches(ids, labels, cfg.batch_size, seed)


def _train_tfidf(settings, cfg: TfidfConfig, splits, vocab) -> Trained:
    from pipeline.baseline import TfidfScorer, fit_tfidf_logreg

    started = time.perf_counter()
    documents = {name: _tfidf_documents(records, cfg) for name, records in splits.items()}
    labels = {name: np.array([r["label"] for r in records]) for name, records in splits.items()}
    exported = fit_tfidf_logreg(documents["train"], labels["train"], cfg, settings.seed)
    seconds = time.perf_counter() - started
    scorer = TfidfScorer(exported)
    row = {"epoch": 1}
    for name, prefix in (("train", "train_"), ("validation", "val_")):
        p = scorer(documents[name])
        row[f"{prefix}loss"] = _log_loss(labels[name], p)
        row[f"{prefix}accuracy"] = float(np.mean((p >= 0.5) == labels[name]))
    meta = {"variant": settings.variant, "type": cfg.type}
    if cfg.tokenizer is not None:
        meta["tokenizer"] = {"name": cfg.tokenizer, "config": vocab["tokenizer"]}
    return Trained(meta, [row], seconds, {"tfidf.json": exported})


def _tfidf_documents(records: list[dict], cfg: TfidfConfig) -> list:
    if cfg.tokenizer is None:
        return [r["text"] for r in records]
    return [r["tokens"][cfg.tokenizer] for r in records]


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def epoch_metrics(logs: dict) -> dict[str, float]:
    return {
        (name if name.startswith("val_") else f"train_{name}"): float(value)
        for name, value in logs.items()
        if name.removeprefix("val_") in ("loss", "accuracy")
    }


def _history_rows(history: dict[str, list[float]]) -> list[dict]:
    epochs = len(history["loss"])
    return [
        {"epoch": i + 1, **epoch_metrics({k: v[i] for k, v in history.items()})}
        for i in range(epochs)
    ]


def _seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def read_vocab(data_dir: Path, settings: TrainSettings) -> dict | None:
    """The vocabulary `split` built for the variant's tokenizer; None for raw-text TF-IDF."""
    tokenizer = settings.config.tokenizer
    if tokenizer is None:
        return None
    path = data_dir / "vocab" / f"{tokenizer}.json"
    if not path.is_file():
        raise PipelineError(
            f"variant {settings.variant!r} uses tokenizer {tokenizer!r}, which params "
            "'tokenize.tokenizers' does not define"
        )
    return read_json(path)


def write_bundle(trained: Trained, folder: Path) -> None:
    write_json(folder / BUNDLE_FILE, trained.meta)
    for name, content in trained.files.items():
        write_json(folder / name, content)
    if trained.keras_model is not None:
        trained.keras_model.save(folder / "model.keras")


def final_metrics(trained: Trained) -> dict:
    best = trained.best
    return {
        "val_loss": best["val_loss"],
        "val_accuracy": best["val_accuracy"],
        "best_epoch": best["epoch"],
        "epochs_run": len(trained.history),
        "train_seconds": round(trained.seconds, 2),
    }


def write_history_csv(history: list[dict], path: Path) -> None:
    with atomic_file(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(history)


def model_summary(model) -> str:
    buffer = io.StringIO()
    model.summary(print_fn=lambda line, **_: buffer.write(line + "\n"))
    return buffer.getvalue()


@click.command("train")
@params_option
@click.option("--variant", required=True, help="A key of params 'train.variants'.")
@click.option(
    "--overrides",
    default="",
    metavar="'KEY=VALUE ...'",
    help="Settings that replace the variant's params for this run, e.g. 'units=64'.",
)
@input_dir("--data-dir", "Output folder of `split`.")
@click.option(
    "--data-report",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="The data report of `prepare` (names the data source).",
)
@path_option("--model-dir", "Where the variant's bundle (model, vocabulary, settings) goes.")
@path_option("--reports-dir", "Where history.csv, metrics.json and run.json go.")
def command(params_path, variant, overrides, data_dir, data_report, model_dir, reports_dir):
    """Train one variant from params 'train' and log it as an MLflow run named after it."""
    from pipeline.tracking import variant_run

    settings = TrainSettings.from_params(read_section(params_path, "train"), variant, overrides)
    splits = {name: read_jsonl(data_dir / f"{name}.jsonl") for name in ("train", "validation")}
    vocab = read_vocab(data_dir, settings)
    digests = {name: sha256_file(data_dir / f"{name}.jsonl") for name in splits}
    with variant_run(settings, read_json(data_report)["source"], digests) as logger:
        logger.log_inputs(splits, data_dir, digests)
        trained = train_variant(settings, splits, vocab, callbacks=logger.callbacks())
        with atomic_dir(model_dir) as tmp:
            write_bundle(trained, tmp)
        metrics = final_metrics(trained)
        write_history_csv(trained.history, reports_dir / "history.csv")
        write_json(reports_dir / "metrics.json", metrics)
        run_info = logger.log_result(trained, metrics, model_dir)
        write_json(reports_dir / "run.json", run_info)
    click.echo(
        f"{variant}: val_accuracy {metrics['val_accuracy']:.4f} at epoch {metrics['best_epoch']}, "
        f"{metrics['train_seconds']:.1f} s; MLflow run {run_info['run_id']}"
    )
