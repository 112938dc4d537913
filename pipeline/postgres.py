"""The PostgreSQL cluster of a `tracking-server` folder: created, started and stopped with the
server binaries (initdb, pg_ctl), with a role and database for MLflow. As root, the binaries run
as the `postgres` OS user (initdb refuses root), which then owns the cluster."""

from __future__ import annotations

import os
import pwd
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.io import atomic_file
from pipeline.server_state import LOOPBACK, STOP_SECONDS, Layout, alive, read_pid, wait_gone
from pipeline.tracking_uri import first_line

PG_OS_USER = "postgres"  # the OS user that runs PostgreSQL when this command runs as root
SUPERUSER = "postgres"  # the cluster's superuser role, reachable only through the socket
DATABASE = "mlflow"
ROLE = "mlflow"


def backend_store_uri(pg_port: int) -> str:
    """The MLflow role's database over TCP on loopback; the password comes from PGPASSWORD."""
    return f"postgresql+psycopg://{ROLE}@{LOOPBACK}:{pg_port}/{DATABASE}"


def postgres_options(layout: Layout, pg_port: int) -> str:
    """postgres options for `pg_ctl start -o` (which passes them through a shell)."""
    return f"-h {LOOPBACK} -p {pg_port} -k {shlex.quote(str(layout.socket_dir))}"


def as_root() -> bool:
    return os.geteuid() == 0


def postgres_pid(layout: Layout) -> int | None:
    pid = read_pid(layout.pgdata / "postmaster.pid")
    return pid if alive(pid, "postgres") else None


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
    if pid is not None and not wait_gone([pid], STOP_SECONDS):
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
    psycopg = psycopg_module()
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


def psycopg_module():
    """The psycopg package (MLflow's PostgreSQL driver), or one line saying how to install it."""
    try:
        import psycopg
    except ModuleNotFoundError:
        raise PipelineError(
            "psycopg is not installed: pip install -e '.[server]' (the PostgreSQL driver)"
        ) from None
    return psycopg
