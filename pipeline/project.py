"""Where the project is: its root (also from DVC's temporary experiment copies), its git commit,
and a fresh git copy of it (for the NSMC benchmark and the end-to-end tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# Set by DVC for every stage command; under `dvc exp run --temp/--queue` it names the user's
# repository, not the temporary copy the stage runs in.
DVC_ROOT_ENV = "DVC_ROOT"
MARKERS = ("dvc.yaml", ".dvc")


def repo_root(cwd: Path | None = None) -> Path:
    """DVC_ROOT when a DVC stage runs, else the nearest folder above `cwd` holding dvc.yaml or
    .dvc/ (so a command started from a subfolder finds the same root), else `cwd`."""
    if cwd is None and os.environ.get(DVC_ROOT_ENV):
        return Path(os.environ[DVC_ROOT_ENV]).resolve()
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in MARKERS):
            return folder
    return start


def git_commit(cwd: Path) -> str | None:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None


def copy_project(source: Path, dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, committed as a fresh git repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        if (source / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, dest / name)
    identity = ["-c", "user.name=pipeline", "-c", "user.email=pipeline@localhost"]
    for args in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "project snapshot"]):
        subprocess.run(["git", *args], cwd=dest, check=True)


def uncommitted(cwd: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """Which of these files differ from the git commit (staged or not, or untracked)."""
    result = subprocess.run(
        ["git", "status", "--porcelain", "--", *names],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    changed = {line[3:].strip() for line in result.stdout.splitlines()}
    return tuple(name for name in names if any(c.endswith(name) for c in changed))
