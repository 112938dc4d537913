"""Checksum-verified downloads: a file appears under its final name only once its sha256 matches."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.io import atomic_file, sha256_file

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


def fetch(url: str, dest: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Return `dest`, downloading `url` first unless a file with the right checksum is cached."""
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    with atomic_file(dest) as tmp:
        actual = _stream_to(url, tmp, timeout)
        if actual != sha256:
            raise PipelineError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                "nothing was saved"
            )
    return dest


def fetch_nsmc(
    cache_dir: Path, base_url: str = NSMC_BASE_URL, files: tuple[RemoteFile, ...] = NSMC_FILES
) -> dict[str, Path]:
    return {f.name: fetch(f"{base_url}/{f.name}", cache_dir / f.name, f.sha256) for f in files}


def _stream_to(url: str, path: Path, timeout: float) -> str:
    digest = hashlib.sha256()
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            with (
                path.open("wb") as f,
                tqdm(total=total, unit="B", unit_scale=True, desc=path.name.strip(".")) as bar,
            ):
                for chunk in response.iter_content(chunk_size=1 << 16):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as exc:
        raise PipelineError(f"download of {url} failed: {exc}; nothing was saved") from exc
    return digest.hexdigest()
