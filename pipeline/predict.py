"""`predict`: score a file of texts with a registered model, a logged model, or a bundle folder."""

from __future__ import annotations

import csv
from pathlib import Path

import click
import pandas as pd

from pipeline import bundle
from pipeline.errors import PipelineError
from pipeline.io import atomic_file
from pipeline.options import path_option
from pipeline.pyfunc import TEXT_COLUMN


def read_texts(path: Path, column: str) -> list[str]:
    """Texts from a .txt file (one per line) or the `column` of a CSV/TSV file."""
    if not path.is_file():
        raise PipelineError(f"input file not found: {path}")
    if path.suffix.lower() == ".txt":
        return path.read_text(encoding="utf-8").splitlines()
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    frame = pd.read_csv(
        path,
        sep=sep,
        dtype=str,
        keep_default_na=False,
        quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL,
    )
    if column not in frame.columns:
        raise PipelineError(f"{path}: no column {column!r}; found {', '.join(frame.columns)}")
    return frame[column].tolist()


def load_scorer(model: str):
    """A bundle folder loads directly; anything else is an MLflow model URI."""
    if bundle.is_bundle(Path(model)):
        from pipeline.serving import Bundle

        return Bundle(Path(model)).predict
    import mlflow.pyfunc

    from pipeline.project import repo_root
    from pipeline.tracking import configure

    configure(repo_root())
    loaded = mlflow.pyfunc.load_model(model)
    return lambda texts: loaded.predict(pd.DataFrame({TEXT_COLUMN: texts}))


@click.command("predict")
@click.option(
    "--model",
    required=True,
    help="models:/<name>@champion, runs:/<id>/model, models:/<model-id>, or a bundle folder.",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="A .txt file (one text per line) or a CSV/TSV file with a text column.",
)
@click.option(
    "--text-column",
    default=TEXT_COLUMN,
    show_default=True,
    help="The column holding the texts in a CSV/TSV input.",
)
@path_option("--output", "CSV file to write: text, label, sentiment, probability.")
def command(model, input_path, text_column, output):
    """Score every text of a file and write the predictions as CSV."""
    texts = read_texts(input_path, text_column)
    predictions = load_scorer(model)(texts)
    result = pd.concat(
        [pd.DataFrame({TEXT_COLUMN: texts}), predictions.reset_index(drop=True)], axis=1
    )
    with atomic_file(output) as tmp:
        result.to_csv(tmp, index=False)
    counts = result["sentiment"].value_counts().to_dict()
    click.echo(f"scored {len(texts)} texts -> {output} ({counts})")
