"""Repeated and conflicting texts in a corpus larger than memory, resolved partition by partition.

A text is known by the 16-byte blake2b digest of its UTF-8 bytes: two different texts share one
with a probability of about n²/2¹²⁹ (10⁻²⁵ for ten million texts). Each digest goes, with its row
number and label, to one of PARTITIONS files chosen by its first byte, so equal texts meet in one
partition and each partition (about 1/64 of the corpus, 25 bytes a text) is resolved on its own.
What stays in memory for the whole corpus is one byte per training row: whether it is kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARTITIONS = 64
RECORD = np.dtype([("key", "V16"), ("row", "<u8"), ("label", "u1")])
FLUSH_EVERY = 1 << 16  # digests buffered before they are appended to their partitions


class DigestFiles:
    """Appends (digest, row, label) of one table's texts to its partition files; a text's row is
    its place among the texts added (0, 1, 2...)."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name = folder, name
        self.keys: list[bytes] = []
        self.labels = bytearray()
        self.count = 0  # texts flushed

    def add(self, text: str, label: int) -> None:
        self.keys.append(hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest())
        self.labels.append(label)
        if len(self.keys) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self.keys:
            return
        keys = b"".join(self.keys)
        batch = np.empty(len(self.keys), dtype=RECORD)
        batch["key"] = np.frombuffer(keys, dtype="V16")
        batch["row"] = np.arange(self.count, self.count + len(self.keys))
        batch["label"] = np.frombuffer(bytes(self.labels), dtype="u1")
        partition = np.frombuffer(keys, dtype="u1")[::16] % PARTITIONS
        for number in np.unique(partition):
            with partition_path(self.folder, self.name, number).open("ab") as f:
                f.write(batch[partition == number].tobytes())
        self.count += len(self.keys)
        self.keys, self.labels = [], bytearray()


def partition_path(folder: Path, name: str, number: int) -> Path:
    return folder / f"{name}-{number:02d}.bin"


def _load(folder: Path, name: str, number: int) -> np.ndarray:
    path = partition_path(folder, name, number)
    if not path.exists():
        return np.empty(0, dtype=RECORD)
    return np.fromfile(path, dtype=RECORD)


@dataclass(frozen=True)
class Verdict:
    """Which training rows survive de-duplication and the test overlap, and why others do not."""

    keep: np.ndarray  # bool per training row number
    conflicting: int  # rows whose text also appears with the other label (every copy dropped)
    duplicate: int  # later copies of a text
    in_test: int  # first copies whose text is also in the test table
    kept_positive: int


def resolve(folder: Path, train_rows: int, test: bool) -> Verdict:
    """Keep the first copy of each training text, drop every copy of a text seen with both
    labels, then drop the kept texts that the test table also has."""
    keep = np.zeros(train_rows, dtype=bool)
    conflicting = duplicate = in_test = kept_positive = 0
    for number in range(PARTITIONS):
        part = _load(folder, "train", number)
        if not len(part):
            continue
        part = part[np.argsort(part["key"], kind="stable")]  # rows ascending within a text
        starts = np.flatnonzero(np.concatenate([[True], part["key"][1:] != part["key"][:-1]]))
        sizes = np.diff(np.append(starts, len(part)))
        both = np.minimum.reduceat(part["label"], starts) != np.maximum.reduceat(
            part["label"], starts
        )
        conflicting += int(sizes[both].sum())
        duplicate += int((sizes[~both] - 1).sum())
        firsts = part[starts[~both]]
        if test:
            overlap = np.isin(firsts["key"], _load(folder, "test", number)["key"])
            in_test += int(overlap.sum())
            firsts = firsts[~overlap]
        keep[firsts["row"]] = True
        kept_positive += int(firsts["label"].sum())
    return Verdict(keep, conflicting, duplicate, in_test, kept_positive)


@dataclass
class TestCounts:
    read: int = 0
    empty: int = 0
    kept: int = 0
    positive: int = 0


@dataclass(frozen=True)
class Cleaned:
    """What cleaning read, dropped and kept (either engine's), before anything is written."""

    train_read: int
    empty_train: int
    duplicate: int
    conflicting: int
    in_test: int
    kept: int
    kept_positive: int
    test: TestCounts | None
