"""`predict`: score a file of texts with a registered model, a logged model, or a bundle folder."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import click
import pandas as pd
import requests

from pipeline import bundle
from pipeline.contract import TEXT_COLUMN
from pipeline.errors import PipelineError
from pipeline.io import atomic_file
from pipeline.options import path_option
from pipeline.tracking_uri import redacted


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


URI_FORMS = "models:/<name>@<alias>, runs:/<run-id>/model, models:/<model-id> or a bundle folder"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def load_scorer(model: str):
    """A bundle folder loads directly; anything else is an MLflow model URI."""
    path = Path(model)
    if bundle.is_bundle(path):
        from pipeline.serving import Bundle

        return Bundle(path).predict
    check_local_model(model)
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from pipeline.project import repo_root
    from pipeline.tracking import configure

    configure(repo_root())
    store_uri = mlflow.get_registry_uri() if _scheme(model) == "models" else ""
    store_uri = store_uri or mlflow.get_tracking_uri()
    check_tracking_store(model, store_uri)
    try:
        loaded = mlflow.pyfunc.load_model(model)
    except MlflowException as exc:
        raise PipelineError(load_failure(model, store_uri, exc)) from exc
    return lambda texts: loaded.predict(pd.DataFrame({TEXT_COLUMN: texts}))


def check_local_model(model: str) -> None:
    """A folder that is neither a bundle nor an MLflow model, or a name that is neither a
    folder nor a URI, fails here, before MLflow is imported."""
    path = Path(model)
    if path.is_dir() and not (path / "MLmodel").is_file():
        raise PipelineError(
            f"model {model!r} is a folder with neither bundle.json (a bundle) "
            "nor MLmodel (an MLflow model)"
        )
    if not path.exists() and not _SCHEME.match(model):
        raise PipelineError(
            f"model {model!r} is neither a folder nor a model URI; expected {URI_FORMS}"
        )


def check_tracking_store(model: str, tracking_uri: str) -> None:
    """A registry URI read from a SQLite store that does not exist would create an empty one."""
    store = _sqlite_file(tracking_uri)
    if store is not None and not store.is_file() and _scheme(model) in ("models", "runs"):
        raise PipelineError(
            f"cannot load model {model!r}: the tracking store {store} does not exist "
            "(run the pipeline first, or set MLFLOW_TRACKING_URI)"
        )


def _scheme(model: str) -> str:
    found = _SCHEME.match(model)
    return found.group(0).rstrip(":").lower() if found else ""


def _sqlite_file(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return Path(tracking_uri.removeprefix(prefix).split("?", 1)[0])


def load_failure(model: str, tracking_uri: str, exc: Exception) -> str:
    """One line for an MLflow error while loading `model`: the URI and what is wrong."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, requests.exceptions.Timeout):
        return (
            f"cannot load model {model!r}: the tracking server {redacted(tracking_uri)} timed out"
        )
    if isinstance(cause, requests.exceptions.ConnectionError):
        found = re.search(r"\[Errno -?\d+\] ([^'\"()]+)", str(cause))
        why = found.group(1).strip().lower() if found else "connection failed"
        return (
            f"cannot load model {model!r}: the tracking server {redacted(tracking_uri)} "
            f"is unreachable ({why})"
        )
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    reason = lines[0].rstrip(".")
    if len(reason) > 200:
        reason = reason[:200] + "..."
    if _scheme(model) in ("models", "runs"):
        reason += f" (tracking store {redacted(tracking_uri)})"
    return f"cannot load model {model!r}: {reason}"


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
