"""`tracking-server`: a team's MLflow tracking server on this machine.

`start` creates a PostgreSQL cluster in a state folder (default `.mlflow-server`, git-ignored),
listening on 127.0.0.1 and on a unix socket inside that folder, with a database and role for
MLflow (pipeline/postgres.py); then starts `mlflow server` on it with proxied artifacts
(pipeline/mlflow_server.py). Both run detached; their PIDs, logs and ports stay in the folder
(pipeline/server_state.py), which is all `stop` and `status` read.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.errors import PipelineError
from pipeline.io import write_json
from pipeline.mlflow_server import mlflow_pid, start_mlflow, stop_mlflow, wait_until_answers
from pipeline.postgres import (
    db_password,
    ensure_database,
    init_cluster,
    pg_binary,
    postgres_pid,
    prepare_folders,
    psycopg_module,
    start_postgres,
    stop_postgres,
)
from pipeline.server_state import LOOPBACK, Layout, Ports, port_free, saved_ports

DEFAULT_DIR = ".mlflow-server"
DEFAULT_PORT = 5000
DEFAULT_PG_PORT = 5433  # beside a system PostgreSQL's 5432


def _layout(folder: Path) -> Layout:
    return Layout(folder.resolve())


PORT_RANGE = click.IntRange(1, 65535)
dir_option = click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_DIR,
    show_default=True,
    help="The server's state folder: cluster, artifacts, logs, PIDs (keep it git-ignored).",
)


@click.group("tracking-server")
def command():
    """A team's MLflow tracking server: PostgreSQL for runs and the registry, proxied artifacts.

    Everything lives in one folder (--dir); `start` prints the MLFLOW_TRACKING_URI to export."""


@command.command("start")
@dir_option
@click.option(
    "--port", type=PORT_RANGE, default=DEFAULT_PORT, show_default=True, help="MLflow's port."
)
@click.option(
    "--pg-port",
    type=PORT_RANGE,
    default=DEFAULT_PG_PORT,
    show_default=True,
    help="PostgreSQL's port (on 127.0.0.1 only).",
)
@click.option(
    "--host",
    default=LOOPBACK,
    show_default=True,
    help="Where MLflow listens; 0.0.0.0 lets teammates reach it (add --allowed-hosts).",
)
@click.option(
    "--allowed-hosts",
    default=None,
    help="Host headers MLflow accepts, comma-separated (mlflow server --allowed-hosts); "
    "default: localhost and private IPs.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="MLflow's uvicorn worker processes.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120,
    show_default=True,
    help="Seconds to wait for the MLflow server to answer.",
)
def start(folder, port, pg_port, host, allowed_hosts, workers, timeout):
    """Start PostgreSQL and the MLflow server (creating the cluster the first time)."""
    layout = _layout(folder)
    pg_running, mlflow_running = postgres_pid(layout), mlflow_pid(layout)
    saved = saved_ports(layout)
    if saved and pg_running:
        pg_port = saved.pg_port
    if saved and mlflow_running:
        host, port = saved.host, saved.port
    ports = Ports(host, port, pg_port)
    if pg_running and mlflow_running:
        click.echo(
            f"already running: PostgreSQL (pid {pg_running}) and MLflow (pid {mlflow_running}) "
            f"at {ports.url}"
        )
        click.echo(f"export MLFLOW_TRACKING_URI={ports.url}")
        return
    initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
    psycopg_module()  # MLflow's PostgreSQL driver, checked before anything starts
    if not mlflow_running and not port_free(ports.host, ports.port):
        raise PipelineError(
            f"port {ports.port} on {ports.host} is already in use: stop what listens there "
            "or choose another --port"
        )
    if not pg_running and not port_free(LOOPBACK, ports.pg_port):
        raise PipelineError(
            f"port {ports.pg_port} on {LOOPBACK} is already in use: stop what listens there "
            "or choose another --pg-port"
        )
    started_pg = False
    if not pg_running:
        prepare_folders(layout)
        if not (layout.pgdata / "PG_VERSION").is_file():
            init_cluster(layout, initdb)
        pg_running = start_postgres(layout, pg_ctl, ports.pg_port)
        started_pg = True
        click.echo(f"PostgreSQL started (pid {pg_running}, {LOOPBACK}:{ports.pg_port})")
    try:
        password = db_password(layout)
        ensure_database(layout, ports.pg_port, password)
        if not mlflow_running:
            pid = start_mlflow(layout, ports, workers, allowed_hosts, password)
            try:
                wait_until_answers(ports.url, pid, layout.mlflow_log, timeout)
            except PipelineError:
                stop_mlflow(layout)
                raise
            mlflow_running = pid
            click.echo(f"MLflow server started (pid {pid}, {ports.url}, log {layout.mlflow_log})")
    except PipelineError:
        if started_pg:
            stop_postgres(layout, pg_ctl)
        raise
    state = {"host": ports.host, "port": ports.port, "pg_port": ports.pg_port}
    write_json(layout.state_file, state)
    click.echo(f"export MLFLOW_TRACKING_URI={ports.url}")


@command.command("stop")
@dir_option
def stop(folder):
    """Stop the MLflow server, then PostgreSQL (pg_ctl stop -m fast)."""
    layout = _layout(folder)
    pg_running, mlflow_running = postgres_pid(layout), mlflow_pid(layout)
    if not pg_running and not mlflow_running:
        raise PipelineError(f"no tracking server is running from {layout.root}: nothing to stop")
    if mlflow_running:
        stop_mlflow(layout)
        click.echo(f"MLflow server stopped (pid {mlflow_running})")
    if pg_running:
        stop_postgres(layout, pg_binary("pg_ctl"))
        click.echo(f"PostgreSQL stopped (pid {pg_running})")


@command.command("status")
@dir_option
def status(folder):
    """Say whether PostgreSQL and the MLflow server of this folder run, and where."""
    layout = _layout(folder)
    ports = saved_ports(layout)
    pg_running, mlflow_running = postgres_pid(layout), mlflow_pid(layout)
    where = f", {LOOPBACK}:{ports.pg_port}" if ports else ""
    click.echo(
        f"PostgreSQL: running (pid {pg_running}{where})" if pg_running else "PostgreSQL: stopped"
    )
    where = f", {ports.url}" if ports else ""
    click.echo(
        f"MLflow server: running (pid {mlflow_running}{where})"
        if mlflow_running
        else "MLflow server: stopped"
    )
    if pg_running and mlflow_running and ports:
        click.echo(f"export MLFLOW_TRACKING_URI={ports.url}")
