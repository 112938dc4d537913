"""The three environment files must pin the same packages."""

import tomllib

import yaml

from tests.conftest import REPO


def _pins_pyproject() -> list[str]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return sorted(tomllib.load(f)["project"]["dependencies"])


def test_python_env_matches_pyproject():
    env = yaml.safe_load((REPO / "python_env.yaml").read_text())
    assert sorted(d for d in env["dependencies"] if d != "-e .") == _pins_pyproject()


def test_conda_env_matches_pyproject():
    env = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(d for d in pip if d != "-e .") == _pins_pyproject()
    assert "python=3.11" in env["dependencies"]


def test_every_dependency_is_pinned():
    assert all("==" in pin for pin in _pins_pyproject())


def test_mlproject_entry_points_call_the_cli():
    project = yaml.safe_load((REPO / "MLproject").read_text())
    assert project["python_env"] == "python_env.yaml"
    assert "dvc repro" in project["entry_points"]["main"]["command"]
    assert "python -m pipeline train" in project["entry_points"]["train"]["command"]


def test_dvc_yaml_stages_list_only_their_params():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert stages["prepare"]["params"] == ["data"]
    assert stages["tokenize"]["params"] == ["tokenize"]
    assert stages["split"]["params"] == ["split"]
    assert "train.variants.${key}" in stages["train"]["do"]["params"]


def test_every_subpackage_is_installed():
    with (REPO / "pyproject.toml").open("rb") as f:
        listed = tomllib.load(f)["tool"]["setuptools"]["packages"]
    found = sorted(
        ".".join(init.parent.relative_to(REPO).parts)
        for init in REPO.glob("pipeline/**/__init__.py")
    )
    assert sorted(listed) == found
