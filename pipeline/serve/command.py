"""`python -m pipeline serve`: the click command that binds the socket, fetches the model once
and hands both to the Supervisor."""

from __future__ import annotations

import os
import signal

import click

from pipeline.errors import PipelineError
from pipeline.project import repo_root
from pipeline.serve.checks import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    Limits,
    allowed_hosts,
    is_loopback,
)
from pipeline.serve.copies import model_copy
from pipeline.serve.follow import Follower, first_model
from pipeline.serve.protocol import ConnectionLimits
from pipeline.serve.served import alias_target
from pipeline.serve.supervisor import Stopped, Supervisor, announce_address, raise_stopped
from pipeline.serve.workers import WorkerSettings, listen, local_folder
from pipeline.tracking import reap_project_store

TIMEOUT_VARIABLE = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"


@click.command("serve")
@click.option(
    "-m",
    "--model",
    "model_uri",
    required=True,
    help="models:/<name>@<alias>, models:/<name>/<version>, runs:/<id>/model, or a model folder.",
)
# -h, -p and -w are `mlflow models serve`'s flags for the same options (its help is --help only).
@click.option("-h", "--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "-p",
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes, each holding the model.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1024),
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    help="Largest request body read; a larger one gets HTTP 413.",
)
@click.option(
    "--allowed-hosts",
    "allowed_hosts_option",
    default=None,
    help="Comma-separated Host names answered, '*' for any. Default: the loopback names when "
    "--host is a loopback address, else any.",
)
@click.option(
    "--follow-interval",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="For models:/<name>@<alias>: seconds between looks at the registry; when the alias "
    "moves, the workers switch to its new version. 0: serve the version found at start.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    envvar=TIMEOUT_VARIABLE,
    help=f"Seconds a request may take to score, on every path; then HTTP 504 (also read from "
    f"{TIMEOUT_VARIABLE}, as by mlflow models serve).",
)
@click.option(
    "--request-arrival-timeout",
    type=click.FloatRange(min=0.1),
    default=ConnectionLimits.request_seconds,
    show_default=True,
    help="Seconds a request's headers and body may take to arrive, from the connection's start "
    "or its previous answer; then HTTP 408 and the connection is closed.",
)
@click.option(
    "--keep-alive-timeout",
    type=click.FloatRange(min=0.1),
    default=ConnectionLimits.keep_alive_seconds,
    show_default=True,
    help="Seconds an idle connection stays open.",
)
@click.option(
    "--max-requests-per-connection",
    type=click.IntRange(1),
    default=ConnectionLimits.max_requests,
    show_default=True,
    help="Answers on one connection; the last says Connection: close, so clients reconnect and "
    "spread over the workers (again after a worker restarts).",
)
def command(
    model_uri,
    host,
    port,
    workers,
    max_body_bytes,
    allowed_hosts_option,
    follow_interval,
    request_timeout,
    request_arrival_timeout,
    keep_alive_timeout,
    max_requests_per_connection,
):
    """Serve a model with MLflow's scoring protocol, hardened against hostile requests."""
    local_folder(model_uri)  # a local path that is no model: refused before anything starts
    try:  # no run of a dead process stays RUNNING; serving a model never waits on it
        reap_project_store(repo_root())
    except PipelineError as exc:
        click.echo(f"warning: {exc}", err=True)
    limits = Limits(
        max_body_bytes,
        MAX_JSON_DEPTH,
        allowed_hosts(allowed_hosts_option, host),
        scoring_seconds=request_timeout,
    )
    os.environ[TIMEOUT_VARIABLE] = f"{request_timeout:g}"  # MLflow's app, in the workers
    connections = ConnectionLimits(
        request_arrival_timeout, keep_alive_timeout, max_requests_per_connection
    )
    sock = listen(host, port)
    url = announce_address(sock)
    click.echo(f"listening on {url}; loading {model_uri} in {workers} worker(s)", err=True)
    if limits.allowed_hosts is None and not is_loopback(host):
        click.echo(
            "warning: any Host name is answered; set --allowed-hosts to the names used", err=True
        )
    stopped = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, raise_stopped)
    signal.signal(signal.SIGINT, raise_stopped)
    try:
        with sock, model_copy() as copy:
            served = first_model(model_uri, copy)
            follow = follow_interval > 0 and alias_target(model_uri) is not None
            published = str(copy / "served.json") if follow else ""
            settings = WorkerSettings(
                served, limits, os.getpid(), published, connections=connections
            )
            supervisor = Supervisor(sock, settings, workers)
            signal.signal(signal.SIGTERM, supervisor.on_signal)
            signal.signal(signal.SIGINT, supervisor.on_signal)
            if follow:
                Follower(served, copy, follow_interval, supervisor.publish).start()
            supervisor.run(url)
    except Stopped:
        pass
    finally:
        signal.signal(signal.SIGTERM, stopped[0])
        signal.signal(signal.SIGINT, stopped[1])
    click.echo("stopped", err=True)
