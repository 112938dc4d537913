"""Fixtures; the helpers they and the tests share are in tests/helpers.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import pytest

from pipeline.project import copy_project
from tests.helpers import REPO, SAMPLE_EXECUTION, clean_env, free_port, sh

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    """A real, empty SQLite tracking store and registry for one test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # set_experiment sets both
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def sample_repo(tmp_path_factory) -> Path:
    """A fresh git copy of this project after one `dvc repro` on the sample data, with its own
    mlflow.db; shared by every test module that needs trained models (E2E_REUSE=<folder> reuses
    one made earlier)."""
    if os.environ.get("E2E_REUSE"):
        return Path(os.environ["E2E_REUSE"])
    root = tmp_path_factory.mktemp("e2e") / "repo"
    copy_project(REPO, root)
    sh([sys.executable, "-m", "pipeline", "plots-template"], root)  # what `make setup` does
    sh(["dvc", "repro"], root, env=clean_env(PIPELINE_EXECUTION_ID=SAMPLE_EXECUTION))
    return root


class ServerLog:
    """A server's output lines, read as they come."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ended = not self._thread.is_alive()  # the output is closed: nothing more will come
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if ended:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines[-30:]))

    def text(self) -> str:
        return "\n".join(self.lines)


class Servers:
    """Starts server processes on loopback in their own session, and watches them: for the
    tests of `python -m pipeline serve` and the servers it is compared with."""

    champion = "models:/korean-sentiment@champion"
    good: ClassVar[dict] = {"inputs": ["정말 감동적이고 훌륭한 영화"]}  # positive in every model

    @staticmethod
    @contextmanager
    def start(
        command: list[str], repo: Path, **env: str
    ) -> Iterator[tuple[subprocess.Popen, ServerLog]]:
        """The running process and its output; stopped (its whole session) at the end."""
        env = {**clean_env(**env), "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
        process = subprocess.Popen(
            command,
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            yield process, ServerLog(process.stdout)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # mlflow models serve's uvicorn child too
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()

    @classmethod
    def serve_command(cls, *options: str) -> list[str]:
        command = [sys.executable, "-m", "pipeline", "serve", "-m", cls.champion]
        return [*command, "--port", "0", *options]

    @staticmethod
    def session(leader: int) -> list:
        """The processes left in the session a server was started in (its workers included)."""
        import psutil

        left = []
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == leader:
                    left.append(process)
            except (ProcessLookupError, PermissionError, psutil.Error):
                pass
        return left

    @staticmethod
    def wait_ready(base: str, timeout: float = 300) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/ping", timeout=timeout).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError("the server did not become ready")

    @classmethod
    def still_serving(cls, base: str) -> bool:
        import requests

        try:
            response = requests.post(base + "/invocations", json=cls.good, timeout=60)
        except requests.RequestException:
            return False
        return response.status_code == 200 and response.json()["predictions"][0]["label"] == 1

    free_port = staticmethod(free_port)


@pytest.fixture(scope="session")
def servers() -> type[Servers]:
    """Helpers to start and watch server processes (see Servers)."""
    return Servers
