"""The three environment files must pin the same packages; test modules import only
tests/helpers.py of tests/."""

import ast
import tomllib

import pytest
import yaml

from tests.helpers import REPO


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
    assert stages["prepare"]["params"] == ["data", "engine"]
    assert stages["tokenize"]["params"] == ["tokenize", "engine"]
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


def cross_test_imports(source: str) -> list[str]:
    """The imports in a test module's source of another test module or of conftest.py (whatever
    in tests/ is not tests/helpers.py), as written."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if module in ("tests", "."):
                names = [f"tests.{alias.name}" for alias in node.names]
            else:
                names = [module.replace(".", "tests.", 1) if node.level else module]
        else:
            continue
        found += [
            f"line {node.lineno}: {name}"
            for name in names
            if name.startswith("tests.") and name != "tests.helpers"
        ]
    return found


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from tests.conftest import REPO", "tests.conftest"),
        ("from tests.test_models import LSTM", "tests.test_models"),
        ("from tests import helpers, test_models", "tests.test_models"),
        ("import tests.test_train", "tests.test_train"),
        ("from .conftest import sh", "tests.conftest"),
        ("from . import test_train", "tests.test_train"),
        ("def f():\n    from tests.test_train import _fit", "tests.test_train"),
    ],
)
def test_the_check_finds_every_form_of_cross_test_import(source, found):
    assert [line.split(": ")[1] for line in cross_test_imports(source)] == [found]


def test_the_check_allows_the_helpers_and_the_package():
    assert cross_test_imports("from tests.helpers import REPO\nfrom pipeline import io") == []


def test_no_test_module_imports_another_or_conftest():
    """Shared helpers live in tests/helpers.py; a test module imports nothing else of tests/."""
    found = {
        path.name: imports
        for path in sorted((REPO / "tests").glob("*.py"))
        if (imports := cross_test_imports(path.read_text(encoding="utf-8")))
    }
    assert found == {}
