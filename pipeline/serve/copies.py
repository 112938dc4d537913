"""The local copies of the models a server downloads: one folder per server, in a per-user folder
of the temporary directory, beside a lock file the server holds for as long as it runs. A server
stopped normally removes its folder; one killed outright (SIGKILL, out of memory) cannot, and the
next server to start removes every folder whose lock no process holds (the kernel releases a
dead process's locks). Names start with the owner's PID, for whoever looks."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pipeline.errors import PipelineError

LOCK_SUFFIX = ".lock"


def copies_root(base: Path | None = None) -> Path:
    """This user's folder of model copies, in `base` (default: the temporary directory)."""
    root = Path(base or tempfile.gettempdir()) / f"pipeline-serve-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    if root.is_symlink() or root.stat().st_uid != os.getuid():
        raise PipelineError(f"{root} belongs to another user; remove it or set TMPDIR")
    return root


def remove_orphans(root: Path) -> list[str]:
    """Remove the copies whose server is gone (nobody holds their lock); their names."""
    removed = []
    for lock_path in sorted(root.glob(f"*{LOCK_SUFFIX}")):
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            continue  # removed meanwhile by its server, or by another one starting
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # its server is running
        try:
            shutil.rmtree(root / lock_path.stem, ignore_errors=True)
            lock_path.unlink(missing_ok=True)
            removed.append(lock_path.stem)
        finally:
            os.close(fd)
    return removed


def held_lock(root: Path) -> tuple[int, Path]:
    """A new lock file in `root`, locked by this process. Another server starting may lock and
    remove a lock file between its creation and our lock; then we take a new one."""
    while True:
        fd, name = tempfile.mkstemp(prefix=f"{os.getpid()}-", suffix=LOCK_SUFFIX, dir=root)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with suppress(FileNotFoundError):
            if os.stat(name).st_ino == os.fstat(fd).st_ino:
                return fd, Path(name)
        os.close(fd)


@contextmanager
def model_copy(base: Path | None = None) -> Iterator[Path]:
    """An empty folder for this server's copy of its model, removed at the end; orphaned
    copies of killed servers are removed first."""
    root = copies_root(base)
    remove_orphans(root)
    fd, lock_path = held_lock(root)
    folder = root / lock_path.stem
    try:
        folder.mkdir()
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
        os.close(fd)
