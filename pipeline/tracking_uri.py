"""What MLFLOW_TRACKING_URI names, and whether it answers: checked before any run starts, so
that a wrong or unreachable store is one line naming it (without its password), not minutes of
MLflow's retries and a traceback, and no run is left RUNNING."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipeline.errors import PipelineError

# MLflow retries an unreachable server for minutes by default; these apply unless the user set
# their own.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")
LOCAL_SCHEMES = ("sqlite", "file", "")


def redacted(uri: str) -> str:
    """The URI without any user name or password in it, fit for a message."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Raise a one-line PipelineError naming `uri` (without its password) when the tracking
    server or database it names cannot be reached, or MLflow knows no store for it; before
    any run starts, so that none is left RUNNING. For a server, MLflow's HTTP retries and
    timeout are shortened unless the user set them."""
    scheme = urlsplit(uri).scheme.lower()
    shown = redacted(uri)
    if scheme in LOCAL_SCHEMES:
        return  # a file MLflow creates on first use; opening it here would create it already
    if scheme in ("http", "https"):
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        _probe_server(uri, shown, timeout)
    elif scheme.split("+")[0] in DATABASE_SCHEMES:
        _probe_database(uri, shown, timeout)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException

    try:
        MlflowClient(tracking_uri=uri)
    except UnsupportedModelRegistryStoreURIException:
        raise PipelineError(
            f"MLFLOW_TRACKING_URI={shown}: unknown scheme {scheme!r} (expected http://host:port, "
            "sqlite:///path or postgresql+psycopg://user@host/db)"
        ) from None
    except MlflowException as exc:
        reason = first_line(exc.message).split(". ")[0].rstrip(".")
        raise PipelineError(f"MLFLOW_TRACKING_URI={shown} cannot be used: {reason}") from None


def _probe_server(uri: str, shown: str, timeout: float) -> None:
    import requests

    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.RequestException as exc:
        reason = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
        raise PipelineError(
            f"tracking server {shown} is unreachable ({reason}): start it "
            "(python -m pipeline tracking-server start) or fix MLFLOW_TRACKING_URI"
        ) from None
    if response.status_code == 404:
        raise PipelineError(
            f"{shown} does not answer like an MLflow tracking server (GET /health: HTTP 404)"
        )


def _probe_database(uri: str, shown: str, timeout: float) -> None:
    import sqlalchemy

    connect_args = {"connect_timeout": int(timeout)} if uri.startswith("postgresql") else {}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args)
    except (sqlalchemy.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise PipelineError(f"tracking database {shown}: {first_line(exc)}") from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = first_line(exc.orig if getattr(exc, "orig", None) else exc)
        raise PipelineError(f"tracking database {shown} is unreachable: {reason}") from None
    finally:
        engine.dispose()


def store_uri(root: Path) -> str:
    """The project's tracking store: MLFLOW_TRACKING_URI, else <root>/mlflow.db."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"


def may_hold_running_runs(uri: str) -> bool:
    """False when `uri` is a SQLite store that does not exist or holds no RUNNING run: read
    without MLflow (importing it costs seconds) and without creating anything. True for any
    other store, and when the file cannot be read as MLflow's tables."""
    if not uri.startswith("sqlite:///"):
        return True
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.is_file():
        return False
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            return (
                db.execute("SELECT 1 FROM runs WHERE status = 'RUNNING' LIMIT 1").fetchone()
                is not None
            )
    except sqlite3.Error:
        return True
