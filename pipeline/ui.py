"""`ui`: a light MLflow UI on this project's store, opened on the leaderboard of its experiment.

Light: one uvicorn worker and no GenAI job runner (MLflow's default is 4 workers and a huey
consumer pool, about 3.7 GB, none of it needed to browse runs). The runs list opens on a saved
view (an experiment tag MLflow's UI reads when the address names it) that shows the
leaderboard's metric columns, best validation accuracy first.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import mlflow
from mlflow import MlflowClient

from pipeline.options import params_option
from pipeline.project import repo_root
from pipeline.schema import load_section
from pipeline.tracking import configure, experiment_id, store_is_local

# Beside the tracking server (`make server`, 5000) and the model server (`serve`, 8080).
DEFAULT_PORT = 5001
WORKERS = 1
# MLflow's GenAI job runner: off unless the user turns it on.
LIGHT_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# MLflow 3's UI shows an experiment's GenAI overview unless the URL asks for the runs.
RUNS_VIEW = "workflowType=machine_learning"
# A saved view is the experiment tag `mlflow.sharedViewState.<key>`, opened by
# `?viewStateShareKey=<key>`: its JSON holds the search facets and the runs table's columns.
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "leaderboard"
LEADERBOARD_METRICS = (
    "val_accuracy",
    "val_f1",
    "val_roc_auc",
    "test_accuracy",
    "test_f1",
    "test_roc_auc",
    "train_seconds",
)


def column(kind: str, name: str) -> str:
    """A runs-table column as MLflow's UI names it, e.g. metrics.`val_accuracy`."""
    return f"{kind}.`{name}`"


def leaderboard_view() -> dict:
    """The saved view: the leaderboard's metrics and the variant tag, best validation first."""
    return {
        "orderByKey": column("metrics", "val_accuracy"),
        "orderByAsc": False,
        "selectedColumns": [
            column("tags", "variant"),
            *(column("metrics", m) for m in LEADERBOARD_METRICS),
        ],
    }


def save_leaderboard_view(experiment: str) -> None:
    MlflowClient().set_experiment_tag(
        experiment, VIEW_TAG_PREFIX + VIEW_KEY, json.dumps(leaderboard_view())
    )


def runs_url(base: str, experiment: str) -> str:
    return f"{base}/#/experiments/{experiment}?{RUNS_VIEW}&viewStateShareKey={VIEW_KEY}"


def ui_args(uri: str, host: str, port: int) -> list[str]:
    """`mlflow ui`'s arguments for a light UI on the store `uri`."""
    return [
        *("mlflow", "ui", "--backend-store-uri", uri),
        *("--host", host, "--port", str(port), "--workers", str(WORKERS)),
    ]


def ui_env() -> dict[str, str]:
    """This environment, with the job runner off unless the user set it."""
    return {**LIGHT_ENV, **os.environ}


@click.command("ui")
@params_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port.")
def command(params_path: Path, host: str, port: int):
    """Start a light `mlflow ui` on the project's store; print its leaderboard's address."""
    root = repo_root()
    configure(root)
    experiment = experiment_id(load_section(params_path, "train")["experiment"], root)
    save_leaderboard_view(experiment)
    uri = mlflow.get_tracking_uri()
    if not store_is_local():  # a tracking server has its own UI
        click.echo(f"the project's runs: {runs_url(uri, experiment)}")
        return
    click.echo(
        f"MLflow UI (1 worker, no job runner) on {uri}\n"
        f"the project's runs: {runs_url(f'http://{host}:{port}', experiment)}"
    )
    sys.stdout.flush()
    os.execve(Path(sys.executable).with_name("mlflow"), ui_args(uri, host, port), ui_env())
