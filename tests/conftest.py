"""Fixtures; the helpers they and the tests share are in tests/helpers.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipeline.project import copy_project
from tests.helpers import REPO, SAMPLE_EXECUTION, clean_env, sh

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    """A real, empty SQLite tracking store and registry for one test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
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
