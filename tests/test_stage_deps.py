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
        (package / f"{name}.py").write_text(source)
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


def test_this_project_s_stages_list_exactly_what_their_commands_import():
    assert differences(REPO) == []
