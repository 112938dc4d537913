"""`python -m pipeline serve`'s options (pipeline/serve/command.py): `mlflow models serve`'s short
flags mean the same here, and --help still answers."""

from __future__ import annotations

import socket
import subprocess
import sys

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.serve import command
from tests.helpers import REPO, clean_env


def test_mlflow_s_short_flags_set_host_port_and_workers():
    short = ["-m", "models:/m@champion", "-h", "0.0.0.0", "-p", "5001", "-w", "3"]
    long = ["-m", "models:/m@champion", "--host", "0.0.0.0", "--port", "5001", "--workers", "3"]
    parsed = command.make_context("serve", short).params
    assert parsed == command.make_context("serve", long).params
    assert (parsed["host"], parsed["port"], parsed["workers"]) == ("0.0.0.0", 5001, 3)


def test_help_is_still_long_only_and_names_the_short_flags():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in ("-h, --host", "-p, --port", "-w, --workers"):
        assert flag in result.output


def test_bad_short_flag_values_are_refused_like_the_long_ones():
    result = CliRunner().invoke(cli, ["serve", "-m", "models:/m@champion", "-w", "0"])
    assert result.exit_code == 2
    assert "Invalid value for '-w' / '--workers'" in result.output


def test_a_server_started_with_short_flags_listens_where_they_say():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flags = ["-h", "127.0.0.1", "-p", str(port), "-w", "2"]
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "serve", "-m", "models:/x@y", *flags],
            cwd=REPO,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_connection_limits_default_and_read_mlflow_s_timeout_variable(monkeypatch):
    parsed = command.make_context("serve", ["-m", "models:/m@champion"]).params
    assert parsed["request_arrival_timeout"] <= 30
    assert (parsed["request_timeout"], parsed["keep_alive_timeout"]) == (60, 5)
    monkeypatch.setenv("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", "7")
    assert command.make_context("serve", ["-m", "models:/m"]).params["request_timeout"] == 7


def test_a_limit_that_is_not_positive_is_refused():
    for option in ("--request-timeout", "--request-arrival-timeout", "--keep-alive-timeout"):
        result = CliRunner().invoke(cli, ["serve", "-m", "models:/m@champion", option, "0"])
        assert result.exit_code == 2
        assert f"Invalid value for '{option}'" in result.output
