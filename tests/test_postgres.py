"""The tracking server's PostgreSQL: its URIs and options, the missing-binary error and the
MLflow role's password (the cluster itself starts in tests/test_tracking_server.py)."""

from __future__ import annotations

import stat

import pytest

from pipeline.errors import PipelineError
from pipeline.postgres import (
    backend_store_uri,
    db_password,
    pg_binary,
    postgres_options,
    postgres_pid,
)
from pipeline.server_state import Layout


def test_mlflow_reaches_its_database_over_loopback_without_a_password_in_the_uri():
    assert backend_store_uri(5433) == "postgresql+psycopg://mlflow@127.0.0.1:5433/mlflow"


def test_the_socket_folder_is_quoted_for_pg_ctl_s_shell(tmp_path):
    layout = Layout(tmp_path / "a folder")
    assert postgres_options(layout, 5433) == f"-h 127.0.0.1 -p 5433 -k '{tmp_path}/a folder/socket'"


def test_a_missing_server_binary_is_one_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PipelineError, match="^initdb not found on PATH: install the PostgreSQL"):
        pg_binary("initdb")


def test_the_password_is_made_once_and_readable_by_its_owner_only(tmp_path):
    layout = Layout(tmp_path)
    password = db_password(layout)
    assert len(password) >= 32
    assert stat.S_IMODE(layout.password_file.stat().st_mode) == 0o600
    assert db_password(layout) == password


def test_no_cluster_is_no_pid(tmp_path):
    assert postgres_pid(Layout(tmp_path)) is None
