"""The state folder of a `tracking-server` and the processes it holds: where each file lives,
the ports of the last start, and whether a PID still names a live process.

Folder layout:
  pgdata/         the cluster (postmaster.pid holds PostgreSQL's PID)
  socket/         PostgreSQL's unix socket, reachable only by its owner
  artifacts/      every run's and model's files
  postgres.log    initdb's and PostgreSQL's output
  mlflow.log      the MLflow server's output
  mlflow.pid      the MLflow server's PID (the leader of its process group)
  db-password     the MLflow role's password (mode 0600; passed as PGPASSWORD, never on a
                  command line)
  server.json     the host and ports of the last successful start
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from pipeline.io import read_json

LOOPBACK = "127.0.0.1"
STOP_SECONDS = 30


@dataclass(frozen=True)
class Layout:
    """Where everything of one server lives, under one folder."""

    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def pg_log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def mlflow_log(self) -> Path:
        return self.root / "mlflow.log"

    @property
    def mlflow_pid_file(self) -> Path:
        return self.root / "mlflow.pid"

    @property
    def password_file(self) -> Path:
        return self.root / "db-password"

    @property
    def state_file(self) -> Path:
        return self.root / "server.json"


@dataclass(frozen=True)
class Ports:
    host: str
    port: int
    pg_port: int

    @property
    def url(self) -> str:
        """The URL this machine's clients use."""
        return f"http://{_client_host(self.host)}:{self.port}"


def _client_host(host: str) -> str:
    return LOOPBACK if host in ("0.0.0.0", "::", "") else host


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (SO_REUSEADDR, as servers set it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def alive(pid: int | None, name: str) -> bool:
    """A live (not zombie) process whose command line mentions `name`."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and any(
            name in part for part in process.cmdline()
        )
    except psutil.Error:
        return False


def read_pid(path: Path) -> int | None:
    """The first line of a PID file as a number, None if absent or unreadable."""
    try:
        return int(path.read_text(encoding="utf-8").splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def saved_ports(layout: Layout) -> Ports | None:
    if not layout.state_file.is_file():
        return None
    state = read_json(layout.state_file)
    return Ports(state["host"], int(state["port"]), int(state["pg_port"]))


def wait_gone(pids: list[int], timeout: float) -> bool:
    """Whether every one of `pids` has exited (or is a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_running(pid) for pid in pids):
            return True
        time.sleep(0.2)
    return not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
