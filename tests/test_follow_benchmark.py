"""benchmarks/follow.py, run as documented on two tiny bundles: a server that follows the alias
across two switches, with no failed request and no answer from a version the alias had left."""

from __future__ import annotations

import json
import sys

import pytest

from pipeline.train import write_bundle
from tests.helpers import REPO, fit_small, fit_token_tfidf, sh


@pytest.mark.slow
def test_the_follow_benchmark_measures_steady_and_switching_requests(tmp_path):
    write_bundle(fit_small(), tmp_path / "a")
    write_bundle(fit_token_tfidf(), tmp_path / "b")
    out = tmp_path / "follow.json"
    command = [sys.executable, "benchmarks/follow.py", "--bundles", str(tmp_path / "a")]
    command += [str(tmp_path / "b"), "--switches", "2", "--steady-seconds", "1", "--out", str(out)]
    sh(command, REPO, timeout=600)
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["failures"] == [] and result["stale_answers"] == 0
    assert len(result["switch_seconds"]) == 2
    assert result["steady"]["requests"] > 0 and result["switching"]["requests"] > 0
    assert result["machine"]["cpus"] >= 1


def test_a_missing_bundle_is_one_line(tmp_path):
    command = [sys.executable, "benchmarks/follow.py", "--bundles", str(tmp_path / "none")]
    command += [str(tmp_path / "none"), "--out", str(tmp_path / "follow.json")]
    result = sh(command, REPO, check=False, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'none'} is not a bundle"]
    assert not (tmp_path / "follow.json").exists()
