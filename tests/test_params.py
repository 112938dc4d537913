"""Reading one section of params.yaml, and the one-line errors of a missing file, a missing
section and a misspelled setting."""

from __future__ import annotations

import pytest

from pipeline.errors import PipelineError
from pipeline.params import read_section
from tests.helpers import REPO


def test_a_section_is_read_as_written(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("split:\n  seed: 7\n  ratios: [0.8, 0.1, 0.1]\nother: 1\n", encoding="utf-8")
    assert read_section(params, "split") == {"seed": 7, "ratios": [0.8, 0.1, 0.1]}


def test_every_stage_section_of_the_project_s_params_is_there():
    for section in ("data", "tokenize", "split", "train", "evaluate"):
        assert isinstance(read_section(REPO / "params.yaml", section), dict)


def test_a_missing_params_file_is_one_error(tmp_path):
    with pytest.raises(PipelineError, match=r"^params file not found: .*nowhere\.yaml$"):
        read_section(tmp_path / "nowhere.yaml", "split")


@pytest.mark.parametrize("text", ["", "train:\n  seed: 1\n"], ids=["empty", "other-section"])
def test_a_missing_section_is_one_error(tmp_path, text):
    params = tmp_path / "params.yaml"
    params.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineError, match=r"params\.yaml has no 'split' section$"):
        read_section(params, "split")
