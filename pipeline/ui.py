"""`ui`: the MLflow UI on this project's store, opened on the runs list of its experiment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import mlflow

from pipeline.options import params_option
from pipeline.params import read_section
from pipeline.project import repo_root
from pipeline.tracking import configure, experiment_id, store_is_local

# MLflow 3's UI shows an experiment's GenAI overview unless the URL asks for the runs.
RUNS_VIEW = "?workflowType=machine_learning"


def runs_url(host: str, port: int, experiment: str) -> str:
    return f"http://{host}:{port}/#/experiments/{experiment}{RUNS_VIEW}"


def ui_args(uri: str, host: str, port: int) -> list[str]:
    """`mlflow ui` on the store `uri`, listening on host:port (argv, program name first)."""
    return ["mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]


@click.command("ui")
@params_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
def command(params_path: Path, host: str, port: int):
    """Start `mlflow ui` on the project's tracking store and print its runs list's address."""
    root = repo_root()
    configure(root)
    experiment = experiment_id(read_section(params_path, "train")["experiment"], root)
    uri = mlflow.get_tracking_uri()
    if not store_is_local():  # a tracking server has its own UI
        click.echo(f"runs of the project's experiment: {uri}/#/experiments/{experiment}{RUNS_VIEW}")
        return
    click.echo(f"runs of the project's experiment: {runs_url(host, port, experiment)}")
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    os.execv(mlflow_cli, ui_args(uri, host, port))
