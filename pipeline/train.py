"""Stage `train@<variant>`: fit one model variant and track it in MLflow."""

from __future__ import annotations

import csv
import io
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import click
import numpy as np
import yaml

from pipeline import bundle
from pipeline.errors import PipelineError
from pipeline.io import (
    JsonlRecords,
    atomic_dir,
    atomic_file,
    chunks,
    read_json,
    sha256_file,
    write_json,
)
from pipeline.options import input_dir, params_option, path_option
from pipeline.probability import labels_of, log_loss
from pipeline.project import repo_root
from pipeline.schema import load_section, variant_settings
from pipeline.tokenizers import TokenizerConfig
from pipeline.variants import (
    LstmConfig,
    TfidfConfig,
    VariantConfig,
    config_dict,
    variant_from_params,
)
from pipeline.vocab import TokenIds, encode, id_tokens, index_of

HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
ENCODE_CHUNK = 10_000  # records encoded or scored at a time
EpochHook = Callable[[dict[str, float], int], None]  # (train_/val_ loss and accuracy, epoch)


@dataclass(frozen=True)
class TrainSettings:
    experiment: str
    seed: int
    variant: str
    config: VariantConfig

    @classmethod
    def from_params(cls, section: dict, variant: str, overrides: str = "") -> TrainSettings:
        """From params 'train' (checked by pipeline/schema.py) and `overrides`, checked here."""
        variants = section["variants"] or {}
        if variant not in variants:
            raise PipelineError(
                f"unknown variant {variant!r}; params 'train.variants' defines "
                f"{', '.join(variants) or 'none'}"
            )
        config = variant_settings(section, variant, parse_overrides(overrides))
        return cls(section["experiment"], section["seed"], variant, variant_from_params(config))


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
    parts: dict[str, object] = field(default_factory=dict)
    keras_model: object = None

    @property
    def best(self) -> dict:
        return min(self.history, key=lambda row: row["val_loss"])

    @property
    def summary(self) -> str | None:
        """Keras' layer-by-layer summary of an LSTM; None for other models."""
        if self.keras_model is None:
            return None
        buffer = io.StringIO()
        self.keras_model.summary(print_fn=lambda line, **_: buffer.write(line + "\n"))
        return buffer.getvalue()


def train_variant(
    settings: TrainSettings,
    splits: Mapping[str, Iterable[dict]],
    vocab: dict | None,
    on_epoch: EpochHook | None = None,
    scratch: Path | None = None,
) -> Trained:
    """Fit the variant on `splits['train']`, validating on `splits['validation']` each epoch;
    `on_epoch` hears of every epoch as it ends. A split is any re-iterable of records (a list,
    or JsonlRecords to read it from disk on each pass); an LSTM's token ids go to a file in a
    temporary folder under `scratch` (the system's by default) for the training."""
    cfg = settings.config
    if isinstance(cfg, TfidfConfig):
        trained = train_tfidf(settings, cfg, splits, vocab)
        for row in trained.history if on_epoch else []:
            on_epoch(epoch_values(row), row["epoch"])
        return trained
    with tempfile.TemporaryDirectory(prefix=".token-ids.", dir=scratch) as folder:
        return train_lstm(settings, cfg, splits, vocab, on_epoch, Path(folder))


def train_lstm(
    settings, cfg: LstmConfig, splits, vocab, on_epoch: EpochHook | None, folder: Path
) -> Trained:
    from pipeline.models import EpochReport, build_lstm_model, fit, lstm_callbacks, seed_everything

    seed_everything(settings.seed)
    tokens = id_tokens(vocab, cfg.vocab_size, cfg.char_fallback)
    index = index_of(tokens)
    tagged = TokenizerConfig(**vocab["tokenizer"]).tags
    data = {
        name: batches_of(
            records,
            cfg,
            index,
            tagged,
            seed=settings.seed if name == "train" else None,
            path=folder / f"{name}.int32",
        )
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
        callbacks=[*lstm_callbacks(cfg), *([EpochReport(on_epoch)] if on_epoch else [])],
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
    return Trained(meta, history, seconds, {bundle.VOCAB_FILE: tokens}, keras_model=model)


def _initial_embeddings(cfg: LstmConfig, train, tokens: list[str], seed: int):
    """The PPMI table of the training ids for embedding_init 'ppmi'; None for a random start."""
    if cfg.embedding_init == "random":
        return None
    from pipeline.embeddings import ppmi_vectors

    return ppmi_vectors(train.ids, len(tokens), cfg.embedding_dim, seed)


def batches_of(
    records: Iterable[dict], cfg: LstmConfig, index: dict, tagged: bool, seed: int | None, path
):
    """A split's token ids and labels in the bucketed batches an LSTM trains on; the ids are
    written to `path` as they are encoded, chunk by chunk, and read back mapped into memory."""
    from pipeline.models import BucketedBatches

    lengths, labels = array("q"), array("f")
    with path.open("wb") as f:
        for chunk in chunks(records, ENCODE_CHUNK):
            documents = [r["tokens"][cfg.tokenizer] for r in chunk]
            for ids in encode(documents, index, cfg.max_length, cfg.char_fallback, tagged):
                f.write(ids.tobytes())
                lengths.append(len(ids))
            labels.extend(r["label"] for r in chunk)
    lengths = np.array(lengths, dtype=np.int64)
    flat = np.memmap(path, dtype=np.int32, mode="r") if lengths.sum() else np.zeros(0, np.int32)
    ids = TokenIds(flat, lengths)
    return BucketedBatches(ids, np.array(labels, dtype=np.float32), cfg.batch_size, seed)


def train_tfidf(settings, cfg: TfidfConfig, splits, vocab) -> Trained:
    """Fit on the first `max_fit_documents` training documents (all with null): the split's
    order is already a random one, so they are a random sample. Every document of both splits
    is then scored, a chunk at a time, for the history row."""
    from pipeline.baseline import fit_tfidf_logreg
    from pipeline.tfidf_inference import TfidfScorer

    started = time.perf_counter()
    fitted = list(islice(splits["train"], cfg.max_fit_documents))
    documents, labels = tfidf_documents(fitted, cfg), np.array([r["label"] for r in fitted])
    del fitted
    exported = fit_tfidf_logreg(documents, labels, cfg, settings.seed)
    del documents
    seconds = time.perf_counter() - started
    scorer = TfidfScorer(exported)
    row = {"epoch": 1}
    for name, prefix in (("train", "train_"), ("validation", "val_")):
        truth, p = tfidf_scores(scorer, splits[name], cfg)
        row[f"{prefix}loss"] = log_loss(truth, p)
        row[f"{prefix}accuracy"] = float(np.mean(labels_of(p) == truth))
    meta = {"variant": settings.variant, "type": cfg.type}
    if cfg.tokenizer is not None:
        meta["tokenizer"] = {"name": cfg.tokenizer, "config": vocab["tokenizer"]}
    return Trained(meta, [row], seconds, {bundle.TFIDF_FILE: exported})


def tfidf_scores(scorer, records: Iterable[dict], cfg: TfidfConfig):
    """The labels and P(positive) of every record, scored ENCODE_CHUNK records at a time (a
    document's score does not depend on the others in its chunk)."""
    truth, probabilities = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    for chunk in chunks(records, ENCODE_CHUNK):
        truth.append(np.array([r["label"] for r in chunk]))
        probabilities.append(scorer(tfidf_documents(chunk, cfg)))
    return np.concatenate(truth), np.concatenate(probabilities)


def tfidf_documents(records: list[dict], cfg: TfidfConfig) -> list:
    """What a TF-IDF variant reads of each record: the raw text, or its tokenizer's tokens."""
    if cfg.tokenizer is None:
        return [r["text"] for r in records]
    return [r["tokens"][cfg.tokenizer] for r in records]


def epoch_values(row: dict) -> dict[str, float]:
    return {name: value for name, value in row.items() if name != "epoch"}


def _history_rows(history: dict[str, list[float]]) -> list[dict]:
    from pipeline.models import epoch_metrics

    epochs = len(history["loss"])
    return [
        {"epoch": i + 1, **epoch_metrics({k: v[i] for k, v in history.items()})}
        for i in range(epochs)
    ]


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
    bundle.write(folder, trained.meta, trained.parts, trained.keras_model)


def final_metrics(trained: Trained) -> dict:
    """How training went, reproducibly (the time it took goes to MLflow only): the epoch whose
    weights were kept, and its validation loss and accuracy as Keras measured them."""
    best = trained.best
    return {
        "best_epoch": best["epoch"],
        "epochs_run": len(trained.history),
        "best_epoch_val_loss": best["val_loss"],
        "best_epoch_val_accuracy": best["val_accuracy"],
    }


def write_history_csv(history: list[dict], path: Path) -> None:
    with atomic_file(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(history)


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
@path_option("--reports-dir", "Where history.csv and metrics.json go.")
def command(params_path, variant, overrides, data_dir, data_report, model_dir, reports_dir):
    """Train one variant from params 'train' and log it as an MLflow run named after it."""
    from pipeline import tracking

    settings = TrainSettings.from_params(load_section(params_path, "train"), variant, overrides)
    splits = {name: JsonlRecords(data_dir / f"{name}.jsonl") for name in ("train", "validation")}
    vocab = read_vocab(data_dir, settings)
    digests = {name: sha256_file(data_dir / f"{name}.jsonl") for name in splits}
    params = config_dict(settings.config) | {
        "seed": settings.seed,
        "data_source": read_json(data_report)["source"],
    }
    tags = tracking.run_tags(variant, digests["train"][:16])
    name = tracking.run_name(variant)
    with tracking.variant_run(settings.experiment, repo_root(), name, tags, params) as logger:
        logger.log_inputs(data_dir, digests)
        # The token ids' scratch folder goes to the system's temporary folder, not beside the
        # model: a training killed outright must leave nothing in the folder `evaluate` reads.
        trained = train_variant(settings, splits, vocab, on_epoch=logger.log_epoch)
        with atomic_dir(model_dir) as tmp:
            write_bundle(trained, tmp)
            model_digest = bundle.digest(tmp)
        write_history_csv(trained.history, reports_dir / "history.csv")
        write_json(reports_dir / "metrics.json", final_metrics(trained))
        model = logger.log_result(trained, model_dir, model_digest)
    best = trained.best
    click.echo(
        f"{variant}: val_accuracy {best['val_accuracy']:.4f} at epoch {best['epoch']}, "
        f"{trained.seconds:.1f} s; MLflow run {model.run_id}"
    )
