from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.project import copy_project

REPO = Path(__file__).resolve().parents[1]
SAMPLE_EXECUTION = "sample-repro"  # pipeline.execution_id of the sample_repo fixture's runs
ALWAYS_CHANGED = {"reap"}  # dvc.yaml's stages that run in every `dvc repro`

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_tsv(path: Path, rows: list[tuple], header=("id", "document", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    """A real, empty SQLite tracking store and registry for one test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def tiny_records() -> list[dict]:
    """24 tokenized documents, balanced, with an obvious signal word per class."""
    records = []
    for i in range(12):
        for label, word in ((1, "좋다"), (0, "싫다")):
            tokens = ["영화", word, f"w{i % 4}"]
            records.append({"text": " ".join(tokens), "label": label, "tokens": {"space": tokens}})
    return records


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the caller's MLflow and DVC settings, the venv first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "PIPELINE_EXECUTION_ID", "DVC_ROOT")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


def sh(args: list[str], cwd: Path, check: bool = True, timeout: int = 900, env=None):
    result = subprocess.run(
        args, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


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


def stale_stages(root: Path) -> set[str]:
    """The stages `dvc status` lists, but for those that run in every `dvc repro`."""
    return set(json.loads(sh(["dvc", "status", "--json"], root).stdout)) - ALWAYS_CHANGED


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` ran (not skipped nor restored), from its output."""
    return set(re.findall(r"Running stage '([^']+)'", output))
