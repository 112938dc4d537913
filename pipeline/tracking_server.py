"""`tracking-server`: a team's MLflow tracking server on this machine, and the check every
tracking command makes of the server (or database) that MLFLOW_TRACKING_URI names.

`start` creates a PostgreSQL cluster in a state folder (default `.mlflow-server`, git-ignored),
listening on 127.0.0.1 and on a unix socket inside that folder, with a database and role for
MLflow; then starts `mlflow server` on it with proxied artifacts (clients see
`mlflow-artifacts:/` URIs; the files go to `<folder>/artifacts`). Both run detached; their PIDs,
logs and ports stay in the folder, which is all `stop` and `status` read. As root, the PostgreSQL
binaries run as the `postgres` OS user (initdb refuses root), which then owns the cluster.

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

import contextlib
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import psutil

from pipeline.errors import PipelineError
from pipeline.io import atomic_file, read_json, write_json
from pipeline.tracking_uri import first_line

DEFAULT_DIR = ".mlflow-server"
DEFAULT_PORT = 5000
DEFAULT_PG_PORT = 5433  # beside a system PostgreSQL's 5432
LOOPBACK = "127.0.0.1"
PG_OS_USER = "postgres"  # the OS user that runs PostgreSQL when this command runs as root
SUPERUSER = "postgres"  # the cluster's superuser role, reachable only through the socket
DATABASE = "mlflow"
ROLE = "mlflow"
STOP_SECONDS = 30
# Only set when the user has not: a tracking request fails after seconds, not minutes of retries.
# Only set when the user has not: MLflow's GenAI job runner (8 more processes, ~2 GB) is off.
SERVER_DEFAULTS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


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


# --- pure helpers -------------------------------------------------------------------------------


def backend_store_uri(pg_port: int) -> str:
    """The MLflow role's database over TCP on loopback; the password comes from PGPASSWORD."""
    return f"postgresql+psycopg://{ROLE}@{LOOPBACK}:{pg_port}/{DATABASE}"


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


def postgres_options(layout: Layout, pg_port: int) -> str:
    """postgres options for `pg_ctl start -o` (which passes them through a shell)."""
    return f"-h {LOOPBACK} -p {pg_port} -k {shlex.quote(str(layout.socket_dir))}"


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


def as_root() -> bool:
    return os.geteuid() == 0


# --- state of one folder -----------------------------------------------------------------------


def postgres_pid(layout: Layout) -> int | None:
    pid = read_pid(layout.pgdata / "postmaster.pid")
    return pid if alive(pid, "postgres") else None


def mlflow_pid(layout: Layout) -> int | None:
    pid = read_pid(layout.mlflow_pid_file)
    return pid if alive(pid, "mlflow") else None


def saved_ports(layout: Layout) -> Ports | None:
    if not layout.state_file.is_file():
        return None
    state = read_json(layout.state_file)
    return Ports(state["host"], int(state["port"]), int(state["pg_port"]))


# --- PostgreSQL ---------------------------------------------------------------------------------


def pg_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PipelineError(
            f"{name} not found on PATH: install the PostgreSQL server binaries "
            "(initdb, pg_ctl, postgres; e.g. Debian's postgresql package)"
        )
    return path


def pg_command(binary: str, *args: str) -> list[str]:
    """A PostgreSQL binary, run as the postgres OS user when this process is root."""
    command = [binary, *args]
    return ["runuser", "-u", PG_OS_USER, "--", *command] if as_root() else command


def _owned_by_postgres(path: Path, mode: int) -> None:
    """As root, hand `path` to the postgres OS user (PostgreSQL runs as that user)."""
    if as_root():
        account = pwd.getpwnam(PG_OS_USER)
        os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(mode)


def prepare_folders(layout: Layout) -> None:
    if as_root():
        try:
            pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise PipelineError(
                f"running as root needs the '{PG_OS_USER}' OS user to run PostgreSQL "
                "(initdb refuses root); create it or run as a normal user"
            ) from None
    if not layout.root.is_dir():
        layout.root.mkdir(parents=True)
        if as_root():  # the postgres OS user goes through it to its cluster and socket
            layout.root.chmod(0o711)
    for folder in (layout.pgdata, layout.socket_dir):
        folder.mkdir(exist_ok=True)
        _owned_by_postgres(folder, 0o700)
    layout.pg_log.touch()
    _owned_by_postgres(layout.pg_log, 0o600)
    if as_root():
        reach = subprocess.run(
            pg_command("test", "-w", str(layout.pgdata), "-a", "-w", str(layout.pg_log)),
            check=False,
        )
        if reach.returncode != 0:
            raise PipelineError(
                f"the {PG_OS_USER} OS user cannot reach {layout.root}: make the folders above "
                "it searchable (chmod o+x) or choose another --dir"
            )


def init_cluster(layout: Layout, initdb: str) -> None:
    """A new cluster: local socket connections trusted (the socket folder is private),
    TCP connections on loopback by password."""
    command = pg_command(
        initdb,
        "-D",
        str(layout.pgdata),
        "-U",
        SUPERUSER,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        "--no-instructions",
    )
    with layout.pg_log.open("a", encoding="utf-8") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        # initdb empties the folder on failure; remove it so that the next start begins afresh.
        shutil.rmtree(layout.pgdata, ignore_errors=True)
        raise PipelineError(f"initdb failed; see {layout.pg_log}")


def start_postgres(layout: Layout, pg_ctl: str, pg_port: int) -> int:
    command = pg_command(
        pg_ctl,
        "start",
        "-D",
        str(layout.pgdata),
        "-l",
        str(layout.pg_log),
        "-w",
        "-t",
        "60",
        "-s",
        "-o",
        postgres_options(layout, pg_port),
    )
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, start_new_session=True
    )
    pid = postgres_pid(layout)
    if result.returncode != 0 or pid is None:
        raise PipelineError(f"PostgreSQL failed to start; see {layout.pg_log}")
    return pid


def stop_postgres(layout: Layout, pg_ctl: str) -> None:
    pid = postgres_pid(layout)
    command = pg_command(pg_ctl, "stop", "-D", str(layout.pgdata), "-m", "fast", "-w", "-s")
    with layout.pg_log.open("a", encoding="utf-8") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if pid is not None and not _wait_gone([pid], STOP_SECONDS):
        raise PipelineError(f"PostgreSQL (pid {pid}) did not stop; see {layout.pg_log}")


def db_password(layout: Layout) -> str:
    """The MLflow role's password, made once and kept readable by this user only."""
    if layout.password_file.is_file():
        return layout.password_file.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(24)
    with atomic_file(layout.password_file) as tmp:
        tmp.write_text(password + "\n", encoding="utf-8")
        tmp.chmod(0o600)
    return password


def ensure_database(layout: Layout, pg_port: int, password: str) -> None:
    """The MLflow role (with this password) and its database, created if missing."""
    psycopg = _psycopg()
    from psycopg import sql

    try:
        with psycopg.connect(
            host=str(layout.socket_dir),
            port=pg_port,
            user=SUPERUSER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as connection:
            role = sql.Identifier(ROLE)
            exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,))
            verb = "ALTER" if exists.fetchone() else "CREATE"
            connection.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password))
            )
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if not exists.fetchone():
                connection.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), role)
                )
    except psycopg.Error as exc:
        raise PipelineError(
            f"could not create the MLflow database: {first_line(exc)}; see {layout.pg_log}"
        ) from None


def _psycopg():
    try:
        import psycopg
    except ModuleNotFoundError:
        raise PipelineError(
            "psycopg is not installed: pip install -e '.[server]' (the PostgreSQL driver)"
        ) from None
    return psycopg


# --- MLflow -------------------------------------------------------------------------------------


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
    if not _wait_gone([p.pid for p in group], STOP_SECONDS):
        for process in group:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        _wait_gone([p.pid for p in group], 5)
    layout.mlflow_pid_file.unlink(missing_ok=True)


def _wait_gone(pids: list[int], timeout: float) -> bool:
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


# --- commands -----------------------------------------------------------------------------------


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
    _psycopg()  # MLflow's PostgreSQL driver, checked before anything starts
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
