"""The `mlflow server` process of a `tracking-server` folder: started detached on the folder's
PostgreSQL with proxied artifacts (clients see `mlflow-artifacts:/` URIs; the files go to
`<folder>/artifacts`), waited for, and stopped with its workers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from pipeline.errors import PipelineError
from pipeline.io import atomic_file
from pipeline.postgres import backend_store_uri
from pipeline.server_state import STOP_SECONDS, Layout, Ports, alive, read_pid, wait_gone

# Only set when the user has not: MLflow's GenAI job runner (8 more processes, ~2 GB) is off.
SERVER_DEFAULTS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_command(
    layout: Layout, ports: Ports, workers: int, allowed_hosts: str | None
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri(ports.pg_port),
        "--serve-artifacts",
        "--artifacts-destination",
        str(layout.artifacts),
        "--host",
        ports.host,
        "--port",
        str(ports.port),
        "--workers",
        str(workers),
    ]
    return [*command, "--allowed-hosts", allowed_hosts] if allowed_hosts else command


def mlflow_pid(layout: Layout) -> int | None:
    pid = read_pid(layout.mlflow_pid_file)
    return pid if alive(pid, "mlflow") else None


def start_mlflow(
    layout: Layout, ports: Ports, workers: int, allowed_hosts: str | None, password: str
) -> int:
    layout.artifacts.mkdir(exist_ok=True)
    env = {**SERVER_DEFAULTS, **os.environ, "PGPASSWORD": password}
    env.pop("MLFLOW_TRACKING_URI", None)  # the server's own store is its command line
    with layout.mlflow_log.open("a", encoding="utf-8") as log:
        process = subprocess.Popen(
            mlflow_command(layout, ports, workers, allowed_hosts),
            cwd=layout.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with atomic_file(layout.mlflow_pid_file) as tmp:
        tmp.write_text(f"{process.pid}\n", encoding="utf-8")
    return process.pid


def wait_until_answers(url: str, pid: int, log: Path, timeout: float) -> None:
    """Poll <url>/health until it answers 200; fail when the process exits or time runs out."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, "mlflow"):
            raise PipelineError(f"the MLflow server exited while starting; see {log}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise PipelineError(f"the MLflow server did not answer within {timeout:.0f} s; see {log}")


def stop_mlflow(layout: Layout) -> None:
    """SIGTERM to the server's process group (the CLI and its uvicorn workers), then SIGKILL to
    whatever is left after STOP_SECONDS."""
    pid = mlflow_pid(layout)
    if pid is None:
        layout.mlflow_pid_file.unlink(missing_ok=True)
        return
    try:
        group = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        group = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if not wait_gone([p.pid for p in group], STOP_SECONDS):
        for process in group:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        wait_gone([p.pid for p in group], 5)
    layout.mlflow_pid_file.unlink(missing_ok=True)
