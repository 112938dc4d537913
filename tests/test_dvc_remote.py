"""The DVC remote: the project's default (a folder beside the repository), overridden per clone
with `--local`; a teammate's fresh clone pulls every output and has nothing to reproduce."""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import pytest

from tests.helpers import ALWAYS_CHANGED, REPO, sh, stages_run, stale_stages

REMOTE = "team"
GIT_IDENTITY = ["-c", "user.name=alice", "-c", "user.email=alice@localhost"]


def test_the_default_remote_is_a_folder_outside_the_work_tree():
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    assert config["core"]["remote"] == REMOTE
    url = config[f"'remote \"{REMOTE}\"'"]["url"]
    # DVC resolves a relative url against .dvc/: this one is a sibling of the repository.
    resolved = (REPO / ".dvc" / url).resolve()
    assert resolved.parent == REPO.resolve().parent


def _use_remote(repo: Path, folder: Path) -> None:
    """This clone's remote `team` points at `folder` (.dvc/config.local, never committed)."""
    sh(["dvc", "remote", "modify", "--local", REMOTE, "url", str(folder)], repo)
    assert str(folder) in sh(["dvc", "remote", "list"], repo).stdout


@pytest.mark.e2e
def test_a_teammate_clones_pulls_and_has_nothing_to_reproduce(sample_repo, tmp_path):
    alice, bob, remote = tmp_path / "alice", tmp_path / "bob", tmp_path / "remote"
    shutil.copytree(sample_repo, alice, symlinks=True)  # the shared fixture stays as it was
    _use_remote(alice, remote)
    sh(["git", "add", "-A"], alice)
    # --allow-empty: a reproduced sample leaves dvc.lock and summary.json as committed
    sh(["git", *GIT_IDENTITY, "commit", "--allow-empty", "-qm", "reproduced"], alice)
    assert "pushed" in sh(["dvc", "push"], alice).stdout
    assert "in sync" in sh(["dvc", "status", "--cloud"], alice).stdout

    sh(["git", "clone", "-q", str(alice), str(bob)], tmp_path)
    assert not (bob / "models" / "tfidf").exists()
    _use_remote(bob, remote)
    sh(["dvc", "pull"], bob)
    assert (bob / "models" / "tfidf" / "bundle.json").is_file()
    assert stale_stages(bob) == set()
    assert stages_run(sh(["dvc", "repro"], bob).stdout) == ALWAYS_CHANGED
    assert not (bob / "mlflow.db").exists()  # reaping found no store and made none


@pytest.mark.e2e
def test_a_pull_from_a_missing_remote_fails(sample_repo, tmp_path):
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(sample_repo), str(clone)], tmp_path)
    _use_remote(clone, tmp_path / "absent")
    result = sh(["dvc", "pull"], clone, check=False)
    assert result.returncode == 1
    assert "ERROR: failed to pull data from the cloud" in result.stderr
    assert not (clone / "models" / "tfidf").exists()
