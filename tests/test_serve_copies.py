"""`serve`'s model copies (pipeline/serve/copies.py): removed when the server stops, and, when it
is killed with SIGKILL, by the next server to start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.serve.copies import copies_root, held_lock, model_copy, remove_orphans
from tests.helpers import REPO, clean_env


def test_a_copy_is_removed_at_the_end_and_a_live_one_is_kept(tmp_path):
    with model_copy(tmp_path) as copy:
        assert copy.is_dir() and copy.name.startswith(f"{os.getpid()}-")
        (copy / "MLmodel").write_text("x")
        assert remove_orphans(copy.parent) == []  # its lock is held: the server runs
        assert copy.is_dir()
    assert list(copies_root(tmp_path).iterdir()) == []


def test_a_copy_whose_lock_nobody_holds_is_removed(tmp_path):
    root = copies_root(tmp_path)
    fd, lock = held_lock(root)
    (root / lock.stem).mkdir()
    (root / lock.stem / "MLmodel").write_text("x")
    os.close(fd)  # as the kernel does for a process killed with SIGKILL
    assert remove_orphans(root) == [lock.stem]
    assert list(root.iterdir()) == []


def test_a_folder_of_another_user_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"pipeline-serve-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PipelineError, match="belongs to another user"):
        copies_root(tmp_path)


def _serve(model: Path, tmp: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "-m", str(model), "-p", "0"],
        cwd=REPO,
        env=clean_env(TMPDIR=str(tmp)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _copies(root: Path) -> list[str]:
    return sorted(path.name for path in root.iterdir()) if root.is_dir() else []


@pytest.mark.slow
def test_the_copy_of_a_killed_server_is_removed_by_the_next_one(tmp_path):
    # A model folder no worker can load: the server holds its copy until its worker fails.
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    root = tmp / f"pipeline-serve-{os.getuid()}"
    killed = _serve(model, tmp)
    deadline = time.monotonic() + 60
    while not _copies(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _copies(root)
    assert killed.poll() is None and len(left) == 2  # a folder and its lock
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    killed.stderr.close()
    assert _copies(root) == left  # nothing could remove it

    second = _serve(model, tmp)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 1, stderr
    assert "before it had loaded the model" in stderr
    assert _copies(root) == []


@pytest.mark.e2e
def test_a_downloaded_champion_outlives_sigkill_only_until_the_next_start(
    sample_repo, servers, tmp_path
):
    root = tmp_path / f"pipeline-serve-{os.getuid()}"
    command = servers.serve_command()
    with servers.start(command, sample_repo, TMPDIR=str(tmp_path)) as (process, log):
        servers.wait_ready(log.wait_for(r"listening on (http://\S+);", 120).group(1))
        (killed,) = [path for path in root.iterdir() if path.is_dir()]
        assert any(killed.rglob("MLmodel"))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert any(killed.rglob("MLmodel"))
    with servers.start(command, sample_repo, TMPDIR=str(tmp_path)) as (process, log):
        base = log.wait_for(r"listening on (http://\S+);", 120).group(1)
        servers.wait_ready(base)
        assert servers.still_serving(base)
        assert not killed.exists()
        assert len([path for path in root.iterdir() if path.is_dir()]) == 1
    assert process.returncode == 0
    assert list(root.iterdir()) == []
