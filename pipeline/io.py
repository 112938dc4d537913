"""Small file helpers: JSON, JSON Lines, digests, and outputs that appear whole or not at all."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2, sort_keys=False)
        f.write("\n")


def write_json_rows(path: Path, rows: Iterable[dict]) -> None:
    """write_json of a list of flat records, the same bytes, one record at a time."""
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        f.write("[")
        written = 0
        for row in rows:
            fields = ",\n".join(
                f"    {json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
                for k, v in row.items()
            )
            f.write(f"{',' if written else ''}\n  {{\n{fields}\n  }}")
            written += 1
        f.write("\n]\n" if written else "]\n")


def read_jsonl(path: Path) -> list[dict]:
    """One record per line; a `.gz` file (a split packed to be copied elsewhere) is unpacked."""
    return list(iter_jsonl(path))


def iter_jsonl(path: Path) -> Iterator[dict]:
    """The records of a JSON Lines file one at a time, never the whole file in memory."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


class JsonlRecords:
    """A JSON Lines file as a re-iterable of records: every pass reads it again from disk, so
    a stage can go over a split twice without holding it."""

    def __init__(self, path: Path):
        self.path = path

    def __iter__(self) -> Iterator[dict]:
        return iter_jsonl(self.path)


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Lists of `size` consecutive items (the last one shorter)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False))
            f.write("\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def scratch_dir(near: Path) -> Iterator[Path]:
    """A temporary folder beside `near` (on its disk, not in a small /tmp), removed afterwards."""
    near.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{near.name}.scratch.", dir=near.parent) as name:
        yield Path(name)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
