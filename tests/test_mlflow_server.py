"""The MLflow server process of a tracking-server folder: the command line it runs (the process
itself starts and stops in tests/test_tracking_server.py)."""

from __future__ import annotations

from pipeline.mlflow_server import SERVER_DEFAULTS, mlflow_command
from pipeline.postgres import backend_store_uri
from pipeline.server_state import Layout, Ports


def test_mlflow_command_proxies_artifacts_and_keeps_the_password_off_the_command_line(tmp_path):
    layout = Layout(tmp_path)
    command = mlflow_command(layout, Ports("127.0.0.1", 5000, 5433), 2, None)
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert "--serve-artifacts" in command
    assert command[command.index("--artifacts-destination") + 1] == str(tmp_path / "artifacts")
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1] == backend_store_uri(5433)
    assert backend_store_uri(5433) == "postgresql+psycopg://mlflow@127.0.0.1:5433/mlflow"
    assert "--allowed-hosts" not in command
    shared = mlflow_command(layout, Ports("0.0.0.0", 5000, 5433), 2, "mlflow.team.lan")
    assert shared[shared.index("--allowed-hosts") + 1] == "mlflow.team.lan"
    assert Ports("0.0.0.0", 5000, 5433).url == "http://127.0.0.1:5000"


def test_the_genai_job_runner_is_off_unless_the_user_turns_it_on():
    assert SERVER_DEFAULTS == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
