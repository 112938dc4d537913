"""Cheaper or stronger ensemble members, and a weighting fitted on validation: measured.

Fits candidate TF-IDF members on the training split of `split`'s output (n-grams of
SentencePiece pieces learned from the training texts, character n-grams), scores them with the
trained bundles under `--models-dir` on validation and test, and ranks every combination under
two rules: the ensemble's own mean log-odds, and a logistic regression on the members'
log-odds fitted on validation (its validation accuracy cross-fitted over `--folds` folds, its
test accuracy from the fit on all of validation). Logs one run to the MLflow experiment
`probes` with the table as `combinations.json`; the members' probabilities are cached under
`--cache-dir` (outside the repository, one folder per benchmark run) so a rerun refits and
rescores nothing. Nothing git tracks is written.

    python benchmarks/member_probe.py --data-dir data/split --models-dir models \
        --cache-dir /tmp/member-probe tfidf_nb tfidf_morph bilstm
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import click
import numpy as np
from ensemble_probe import (
    SPLITS,
    accuracy,
    cached_probabilities,
    chosen_variants,
    data_params,
    member_probabilities,
    probe_run,
    read_splits,
    run_quietly,
    split_labels,
)

from pipeline.cli import PipelineCommand
from pipeline.ensemble import combine
from pipeline.errors import PipelineError
from pipeline.io import read_jsonl
from pipeline.probability import MEMBER_EPS

CANDIDATES = {
    # name: (documents, analyzer, ngram range, C)
    "sp_nb": ("pieces", "word", (1, 3), 8.0),
    "char5_nb": ("text", "char", (1, 5), 8.0),
}
LSTM_CANDIDATES = ("bilstm_sp", "base_sp")  # the benchmark's variant, reading pieces


def train_pieces_model(texts: list[str], folder: Path, vocab_size: int, model_type: str) -> Path:
    """A SentencePiece model learned from the training texts (one text a line)."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "train.txt"
    corpus.write_text("\n".join(t.replace("\n", " ") for t in texts), encoding="utf-8")
    prefix = folder / f"sp-{model_type}-{vocab_size}"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=0.9995,
        num_threads=1,
        minloglevel=2,
        hard_vocab_limit=False,  # a small corpus gets the pieces it has
    )
    return prefix.with_suffix(".model")


def fit_candidate(name: str, docs: dict, labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """P(positive) on validation and test of one NB-scaled TF-IDF member fitted on train."""
    from pipeline.baseline import fit_tfidf_logreg
    from pipeline.tfidf_inference import TfidfScorer
    from pipeline.variants import TfidfConfig

    source, analyzer, (low, high), c = CANDIDATES[name]
    tokenized = source == "pieces"
    cfg = TfidfConfig(
        type="tfidf_logreg",
        tokenizer="pieces" if tokenized else None,
        analyzer=analyzer,
        ngram_min=low,
        ngram_max=high,
        min_df=2,
        max_features=1_000_000,
        sublinear_tf=True,
        nb_scaling=True,
        C=c,
    )
    exported = fit_tfidf_logreg(docs["train"][source], labels, cfg, seed)
    scorer = TfidfScorer(exported)
    return {split: scorer(docs[split][source]) for split in SPLITS}


def fit_lstm_candidate(
    name: str, docs: dict, params_path: Path, cache_dir: Path, seed: int
) -> dict[str, np.ndarray]:
    """P(positive) of the benchmark's `bilstm` (or `base`) read from SentencePiece pieces, not
    Kiwi morphemes: its vocabulary built from the training pieces, as `split` builds one."""
    from pipeline.schema import load_section, variant_settings
    from pipeline.serving import Bundle
    from pipeline.train import TrainSettings, train_variant, write_bundle
    from pipeline.variants import variant_from_params
    from pipeline.vocab import build_pieces, build_vocab

    variant = name.removesuffix("_sp")
    section = load_section(params_path, "train")
    cfg = variant_from_params(variant_settings(section, variant, {"tokenizer": "pieces"}))
    settings = TrainSettings("probes", seed, name, cfg)
    split_params = load_section(params_path, "split")
    train_pieces = docs["train"]["pieces"]
    vocab = {
        "tokenizer": {"method": "whitespace"},
        "tokens": build_vocab(train_pieces, split_params["min_freq"], split_params["max_vocab"]),
        "pieces": build_pieces(train_pieces, split_params["min_freq"], tagged=False),
    }
    splits = {
        split: [
            {"text": t, "label": int(y), "tokens": {"pieces": p}}
            for t, y, p in zip(
                docs[split]["text"], docs[split]["labels"], docs[split]["pieces"], strict=True
            )
        ]
        for split in ("train", "validation")
    }
    trained = train_variant(settings, splits, vocab)
    folder = cache_dir / f"bundle-{name}-seed{seed}"
    write_bundle(trained, folder)
    model = Bundle(folder, with_tokenizer=False)
    return {
        split: model.probabilities(docs[split]["text"], {"pieces": docs[split]["pieces"]})
        for split in SPLITS
    }


def logits(probabilities: list[np.ndarray]) -> np.ndarray:
    clipped = np.clip(
        np.stack(probabilities, axis=1).astype(np.float64), MEMBER_EPS, 1 - MEMBER_EPS
    )
    return np.log(clipped) - np.log1p(-clipped)


def stacked(probabilities: dict, labels: dict, members: tuple, folds: int, seed: int) -> dict:
    """Validation accuracy of a logistic regression on the members' log-odds, cross-fitted over
    `folds` folds of validation; test accuracy of the one fitted on all of validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x_val = logits([probabilities[m]["validation"] for m in members])
    x_test = logits([probabilities[m]["test"] for m in members])
    out_of_fold = np.zeros(len(x_val))
    for fit_rows, held_rows in StratifiedKFold(folds, shuffle=True, random_state=seed).split(
        x_val, labels["validation"]
    ):
        model = LogisticRegression(C=1.0).fit(x_val[fit_rows], labels["validation"][fit_rows])
        out_of_fold[held_rows] = model.predict_proba(x_val[held_rows])[:, 1]
    model = LogisticRegression(C=1.0).fit(x_val, labels["validation"])
    return {
        "validation_accuracy": accuracy(labels["validation"], out_of_fold),
        "test_accuracy": accuracy(labels["test"], model.predict_proba(x_test)[:, 1]),
        "weights": [round(float(w), 4) for w in model.coef_[0]],
    }


def ranking(probabilities: dict, labels: dict, folds: int, seed: int) -> list[dict]:
    rows = []
    names = list(probabilities)
    for size in range(1, len(names) + 1):
        for members in itertools.combinations(names, size):
            row = {"members": "+".join(members), "size": size}
            for split in SPLITS:
                mean = combine([probabilities[m][split] for m in members])
                row[f"mean_{split}_accuracy"] = accuracy(labels[split], mean)
            if size >= 2:
                stack = stacked(probabilities, labels, members, folds, seed)
                row |= {f"stacked_{k}": v for k, v in stack.items()}
            rows.append(row)
    return sorted(rows, key=lambda r: -r["mean_validation_accuracy"])


def documents(data_dir: Path, sp_model: Path | None) -> tuple[dict, np.ndarray]:
    docs = {}
    processor = None
    if sp_model is not None:
        import sentencepiece as spm

        processor = spm.SentencePieceProcessor(model_file=str(sp_model))
    for split in ("train", *SPLITS):
        records = read_jsonl(data_dir / f"{split}.jsonl")
        texts = [r["text"] for r in records]
        docs[split] = {"text": texts, "labels": np.array([r["label"] for r in records])}
        if processor is not None:
            started = time.perf_counter()
            docs[split]["pieces"] = processor.encode(texts, out_type=str)
            docs[split]["pieces_per_s"] = len(texts) / (time.perf_counter() - started)
    return docs, docs["train"]["labels"]


@click.command(cls=PipelineCommand)
@click.option("--data-dir", type=click.Path(path_type=Path, exists=True), default="data/split")
@click.option("--models-dir", type=click.Path(path_type=Path, exists=True), default="models")
@click.option("--cache-dir", type=click.Path(path_type=Path), required=True)
@click.option("--candidates", default="sp_nb,char5_nb", show_default=True)
@click.option("--vocab-size", default=16000, show_default=True)
@click.option("--model-type", type=click.Choice(["unigram", "bpe"]), default="unigram")
@click.option(
    "--params",
    "params_path",
    type=click.Path(path_type=Path),
    default="params.yaml",
    help="Params of the run that trained --models-dir (LSTM candidates take its settings).",
)
@click.option("--folds", default=5, show_default=True)
@click.option("--seed", default=42, show_default=True)
@click.option("--experiment", default="probes", show_default=True)
@click.argument("variants", nargs=-1)
def command(
    data_dir,
    models_dir,
    cache_dir,
    candidates,
    vocab_size,
    model_type,
    params_path,
    folds,
    seed,
    experiment,
    variants,
):
    """Fit the candidate members, score them beside VARIANTS, rank combinations (mean and
    stacked), log to MLflow."""
    candidates = [c for c in candidates.split(",") if c]
    unknown = [c for c in candidates if c not in CANDIDATES and c not in LSTM_CANDIDATES]
    if unknown:
        raise PipelineError(
            f"unknown candidate(s) {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join([*CANDIDATES, *LSTM_CANDIDATES])}"
        )
    if any(c in LSTM_CANDIDATES for c in candidates) and not params_path.is_file():
        raise PipelineError(f"{params_path} not found: an LSTM candidate takes its settings")
    if not candidates and len(variants) < 2:
        raise PipelineError("name at least 2 variants, or a candidate")
    splits = read_splits(data_dir)
    labels = split_labels(splits)
    variants = chosen_variants(models_dir, variants) if variants else []
    params = {
        **data_params(data_dir),
        "models_dir": str(models_dir),
        "variants": ",".join(variants),
        "candidates": ",".join(candidates),
        "vocab_size": vocab_size,
        "model_type": model_type,
        "folds": folds,
        "seed": seed,
    }
    with probe_run("member_probe", experiment, params) as run:
        import mlflow
        import pandas as pd

        cache_dir = cache_dir / params["validation_digest"]  # one folder per split scored
        cache_dir.mkdir(parents=True, exist_ok=True)
        probabilities = {}
        for variant in variants:
            probabilities[variant] = cached_probabilities(
                cache_dir / f"variant-{variant}.npz",
                lambda v=variant: member_probabilities(models_dir, [v], splits)[v],
            )
        train_texts = [r["text"] for r in read_jsonl(data_dir / "train.jsonl")]
        sp_model = cache_dir / f"sp-{model_type}-{vocab_size}.model"
        needs_pieces = any(c.endswith("_sp") or c == "sp_nb" for c in candidates)
        if needs_pieces and not sp_model.exists():
            started = time.perf_counter()
            sp_model = train_pieces_model(train_texts, cache_dir, vocab_size, model_type)
            mlflow.log_metric("sp_train_seconds", time.perf_counter() - started)
        docs = None
        for name in candidates:
            piece_based = name == "sp_nb" or name.endswith("_sp")
            tag = f"{name}-{model_type}-{vocab_size}" if piece_based else name
            tag += f"-seed{seed}"
            cached = cache_dir / f"{tag}.npz"
            if not cached.exists():
                if docs is None:
                    docs, train_labels = documents(data_dir, sp_model if needs_pieces else None)
                    if "pieces_per_s" in docs["test"]:
                        mlflow.log_metric("sp_pieces_per_s", docs["test"]["pieces_per_s"])
                started = time.perf_counter()
                fitted = (
                    fit_lstm_candidate(name, docs, params_path, cache_dir, seed)
                    if name.endswith("_sp")
                    else fit_candidate(name, docs, train_labels, seed)
                )
                mlflow.log_metric(f"{name}/fit_seconds", time.perf_counter() - started)
                np.savez(cached, **fitted)
            with np.load(cached) as loaded:
                probabilities[name] = {s: loaded[s] for s in SPLITS}
        rows = ranking(probabilities, labels, folds, seed)
        mlflow.log_metrics(
            {
                f"{r['members']}/{s}_accuracy": r[f"mean_{s}_accuracy"]
                for r in rows
                if r["size"] == 1
                for s in SPLITS
            }
        )
        mlflow.log_table(pd.DataFrame(rows).astype({"size": int}), "combinations.json")
    click.echo("mean val / test | stacked val (cross-fitted) / test  members")
    for row in sorted(
        rows,
        key=lambda r: -max(r["mean_validation_accuracy"], r.get("stacked_validation_accuracy", 0)),
    )[:25]:
        stack = (
            f"{row['stacked_validation_accuracy']:.4f} / {row['stacked_test_accuracy']:.4f}"
            if "stacked_validation_accuracy" in row
            else "       -        "
        )
        click.echo(
            f"  {row['mean_validation_accuracy']:.4f} / {row['mean_test_accuracy']:.4f} | "
            f"{stack}  {row['members']}"
        )
    click.echo(f"logged to MLflow run {run.info.run_id} ({experiment})")


if __name__ == "__main__":
    run_quietly(command)
