"""Checksum-verified downloads: a file appears under its final name only once its size and
sha256 match, and no download runs past the size it should have.

A download is written to `.<name>.<random>.tmp` beside the target, locked (flock) while it is
written and removed on any error. A process killed outright (SIGKILL, power loss) cannot remove
it, but the kernel releases its lock: the next fetch of the same file deletes every such
temporary file that no running download holds."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import requests
from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.io import sha256_file

NSMC_COMMIT = "cc0670e872d4ac27bfe36c87456783004b39ef6c"
NSMC_BASE_URL = f"https://raw.githubusercontent.com/e9t/nsmc/{NSMC_COMMIT}"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    sha256: str
    size: int


NSMC_FILES = (
    RemoteFile(
        "ratings_train.txt",
        "e03b7d14e9e41be8d464a28057cd25d7396c53e67aa7fd5f7e552c59b0ee2940",
        14_628_807,
    ),
    RemoteFile(
        "ratings_test.txt",
        "8ac9f64052f11dbf6ae0acb5e038f03d90a76f0eda7820cfb3a92d02edfcebda",
        4_893_335,
    ),
)


def fetch(url: str, dest: Path, sha256: str, size: int, timeout: float = 60.0) -> Path:
    """Return `dest`, downloading `url` first unless a file of the right size and checksum is
    there already; first remove what killed downloads of `dest` left behind."""
    remove_stale_parts(dest)
    if dest.is_file() and dest.stat().st_size == size and sha256_file(dest) == sha256:
        return dest
    with _part_file(dest) as (part, f):
        actual = _stream_to(url, f, size, timeout, dest.name)
        if actual != sha256:
            raise PipelineError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                "nothing was saved"
            )
        f.flush()
        part.replace(dest)
    return dest


def fetch_nsmc(
    cache_dir: Path, base_url: str = NSMC_BASE_URL, files: tuple[RemoteFile, ...] = NSMC_FILES
) -> dict[str, Path]:
    return {
        f.name: fetch(f"{base_url}/{f.name}", cache_dir / f.name, f.sha256, f.size) for f in files
    }


def verify_local(folder: Path, files: tuple[RemoteFile, ...] = NSMC_FILES, hint: str = "") -> None:
    """Raise unless each file is in `folder` with its pinned sha256; `hint` ends the message."""
    for remote in files:
        path = folder / remote.name
        if not path.is_file():
            raise PipelineError(f"data file not found: {path}")
        actual = sha256_file(path)
        if actual != remote.sha256:
            raise PipelineError(
                f"{path} is not the pinned file: expected sha256 {remote.sha256}, got {actual}"
                + (f"; {hint}" if hint else "")
            )


def part_files(dest: Path) -> list[Path]:
    """The temporary files downloads of `dest` write (`.<name>.<random>.tmp` beside it)."""
    return sorted(dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp"))


def remove_stale_parts(dest: Path) -> list[Path]:
    """Delete the temporary files of `dest` whose download is no longer running (nobody holds
    their lock); the ones a running download writes stay. Returns those deleted."""
    removed = []
    for part in part_files(dest):
        try:
            with part.open("rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                part.unlink()
        except (BlockingIOError, FileNotFoundError):
            continue
        removed.append(part)
    return removed


@contextlib.contextmanager
def _part_file(dest: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """A new temporary file beside `dest`, open for writing and locked until it is closed;
    deleted unless the block renamed it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        part = Path(name)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(part).st_ino == os.fstat(fd).st_ino:
                break
        # Another fetch's clean-up removed it before it was locked: take a new one.
        os.close(fd)
    try:
        with os.fdopen(fd, "wb") as f:
            yield part, f
    finally:
        part.unlink(missing_ok=True)


def _stream_to(url: str, f: BinaryIO, size: int, timeout: float, name: str) -> str:
    """Write the body of `url` to `f`, stopping as soon as it runs past `size` bytes; return
    its sha256."""
    digest = hashlib.sha256()
    received = 0
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            announced = response.headers.get("content-length", "")
            # A compressed body's length says nothing about the file's: only plain ones count.
            plain = response.headers.get("content-encoding", "identity") == "identity"
            if plain and announced.isdigit() and int(announced) != size:
                raise PipelineError(
                    f"download of {url} refused: the server announces {int(announced):,} bytes, "
                    f"the file has {size:,}; nothing was saved"
                )
            with tqdm(total=size, unit="B", unit_scale=True, desc=name) as bar:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    received += len(chunk)
                    if received > size:
                        raise PipelineError(
                            f"download of {url} stopped: the server sent more than the "
                            f"{size:,} bytes of the file; nothing was saved"
                        )
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as exc:
        raise PipelineError(f"download of {url} failed: {exc}; nothing was saved") from exc
    if received < size:
        raise PipelineError(
            f"download of {url} ended after {received:,} of {size:,} bytes; nothing was saved"
        )
    return digest.hexdigest()
