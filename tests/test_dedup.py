import random

import numpy as np

from pipeline import dedup
from pipeline.dedup import DigestFiles, resolve


def expected(train: list[tuple[str, int]], test: set[str]) -> tuple[list[int], int, int, int]:
    """The in-memory rule: first copy kept, every copy of a two-label text dropped, then the
    kept texts also in the test set dropped."""
    labels: dict[str, set[int]] = {}
    for text, label in train:
        labels.setdefault(text, set()).add(label)
    seen, kept, duplicate, conflicting = set(), [], 0, 0
    for row, (text, _) in enumerate(train):
        if len(labels[text]) > 1:
            conflicting += 1
        elif text in seen:
            duplicate += 1
        else:
            seen.add(text)
            kept.append(row)
    in_test = sum(1 for row in kept if train[row][0] in test)
    return [row for row in kept if train[row][0] not in test], duplicate, conflicting, in_test


def test_matches_the_in_memory_rule_across_partitions_and_flushes(tmp_path, monkeypatch):
    monkeypatch.setattr(dedup, "FLUSH_EVERY", 50)  # many appends to every partition
    rng = random.Random(3)
    texts = [f"리뷰 {i}" for i in range(400)]
    train = [(rng.choice(texts), rng.choice((0, 0, 1))) for _ in range(2000)]
    test = {rng.choice(texts) for _ in range(60)}
    digests = DigestFiles(tmp_path, "train")
    for row, (text, label) in enumerate(train):
        digests.add(row, text, label)
    digests.flush()
    test_digests = DigestFiles(tmp_path, "test")
    for row, text in enumerate(sorted(test)):
        test_digests.add(row, text, 1)
    test_digests.flush()

    verdict = resolve(tmp_path, len(train), test=True)

    kept, duplicate, conflicting, in_test = expected(train, test)
    assert np.flatnonzero(verdict.keep).tolist() == kept
    assert (verdict.duplicate, verdict.conflicting, verdict.in_test) == (
        duplicate,
        conflicting,
        in_test,
    )
    assert verdict.kept_positive == sum(train[row][1] for row in kept)
    assert len(list(tmp_path.glob("train-*.bin"))) == dedup.PARTITIONS


def test_rows_without_a_text_are_never_kept(tmp_path):
    digests = DigestFiles(tmp_path, "train")
    digests.add(1, "좋다", 1)
    digests.add(3, "좋다", 1)
    digests.flush()
    verdict = resolve(tmp_path, 5, test=False)  # rows 0, 2 and 4 were empty: never added
    assert verdict.keep.tolist() == [False, True, False, False, False]
    assert (verdict.duplicate, verdict.conflicting, verdict.in_test) == (1, 0, 0)
