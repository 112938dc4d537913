from pathlib import Path

from tests.helpers import REPO
from tools.stage_deps import differences, imported_modules, modules_used_by

FORMS = """
import os
import pipelinex
from pipeline_other import thing
from pipeline import registry, tracking
import pipeline.train
from pipeline.io import read_json
from . import bundle
from .vocab import encode


def later():
    from pipeline.models import build_lstm_model
"""


def test_every_import_form_is_seen():
    assert imported_modules(FORMS) == {
        "registry",
        "tracking",
        "train",
        "io",
        "bundle",
        "vocab",
        "models",
    }


def _package(root: Path, modules: dict[str, str]) -> Path:
    package = root / "pipeline"
    package.mkdir(parents=True)
    for name, source in modules.items():
        path = package / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return package


def test_modules_used_are_followed_through_other_modules(tmp_path):
    package = _package(
        tmp_path,
        {
            "evaluate": "from pipeline import registry\n",
            "registry": "def f():\n    from pipeline.tracking import x\n",
            "tracking": "import os\n",
            "unused": "",
        },
    )
    assert modules_used_by("evaluate", package) == {"evaluate", "registry", "tracking"}


def test_modules_of_a_subpackage_are_followed_in_every_form(tmp_path):
    package = _package(
        tmp_path,
        {
            "serve/__init__": "from pipeline.serve.command import command\n",
            "serve/command": "from pipeline.serve import checks\nfrom .guard import Guard\n",
            "serve/checks": "from pipeline import errors\n",
            "serve/guard": "from . import checks\nfrom ..text import x\n",
            "serve/unused": "",
            "errors": "",
            "text": "",
        },
    )
    assert modules_used_by("serve", package) == {
        "serve",
        "serve.command",
        "serve.checks",
        "serve.guard",
        "errors",
        "text",
    }
    assert modules_used_by("serve.checks", package) == {
        "serve.checks",
        "serve",
        *("serve.command", "serve.guard", "errors", "text"),
    }


DVC_YAML = """
stages:
  evaluate:
    cmd: python -m pipeline evaluate --out x
    deps:
      - pipeline/evaluate.py
      - pipeline/unused.py
      - data/split
  plots-free:
    cmd: echo not ours
    deps: [pipeline/evaluate.py]
"""


def test_a_module_imported_as_from_package_import_must_be_a_dependency(tmp_path):
    _package(
        tmp_path,
        {"evaluate": "from pipeline import registry\n", "registry": "", "unused": ""},
    )
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    assert differences(tmp_path) == [
        "stage evaluate: add pipeline/registry.py; remove pipeline/unused.py"
    ]


PACKAGE_DVC_YAML = """
stages:
  serve:
    cmd: python -m pipeline serve
    deps:
      - pipeline/serve/__init__.py
      - pipeline/serve/checks.py
      - pipeline/serve/unused.py
"""


def test_a_subpackage_s_modules_are_listed_by_their_paths(tmp_path):
    _package(
        tmp_path,
        {
            "serve/__init__": "from pipeline.serve import checks, guard\n",
            "serve/checks": "",
            "serve/guard": "",
            "serve/unused": "",
        },
    )
    (tmp_path / "dvc.yaml").write_text(PACKAGE_DVC_YAML)
    assert differences(tmp_path) == [
        "stage serve: add pipeline/serve/guard.py; remove pipeline/serve/unused.py"
    ]


def test_this_project_s_stages_list_exactly_what_their_commands_import():
    assert differences(REPO) == []
